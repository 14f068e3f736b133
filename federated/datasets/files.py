"""A member's own data file, mapped onto a profile's input schema.

Tabular profiles (``feature_schema.columns``) read CSV (UTF-8) and Parquet: the schema's
columns in the schema's order (other columns are ignored and reported), each converted to
its dtype and checked against its bounds, and the label from ``task.label_column``
(``"label"`` when the profile does not name one). Image profiles (``feature_schema.shape``)
read an ``.npz`` holding ``X`` and ``y``, or a folder with one sub-folder of PNG/JPEG
images per label (read with Pillow; 0–255 intensities are mapped linearly onto the
schema's ``min``–``max``).

Every refusal is one :class:`~federated.errors.DatasetError` line naming the file, the
column or row, and what was expected. Great Expectations validates the result afterwards
(:mod:`federated.validation`), as a node does before each round.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from federated.datasets.info import Dataset, DatasetInfo
from federated.errors import DatasetError
from federated.types import NDArray

DEFAULT_LABEL_COLUMN = "label"
TABULAR_SUFFIXES = (".csv", ".parquet", ".pq")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_TRUE = {"true", "yes", "1", "1.0"}
_FALSE = {"false", "no", "0", "0.0"}


@dataclass(frozen=True)
class LoadedFile:
    """A file's rows as the profile's :class:`Dataset`, and what was left out of it."""

    dataset: Dataset
    format: str  # csv, parquet, npz, images
    ignored: tuple[str, ...]  # columns (tabular) or files (image folders) not used


@dataclass(frozen=True)
class _Source:
    """Where a value came from, for error messages."""

    path: Path
    first_line: int | None  # the file line of row 0 (CSV), or None: rows are counted

    def where(self, row: int) -> str:
        if self.first_line is not None:
            return f"line {self.first_line + row}"
        return f"row {row + 1}"

    def fail(self, message: str) -> DatasetError:
        return DatasetError(f"{self.path}: {message}")


def read_data_file(path: Path | str, spec: Mapping[str, Any], profile_id: str) -> LoadedFile:
    """Read ``path`` onto the profile ``spec`` (its ``feature_schema`` and ``task``)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    schema = spec.get("feature_schema") or {}
    if schema.get("columns"):
        return _read_tabular(path, spec, profile_id)
    if schema.get("shape"):
        return _read_images(path, spec, profile_id)
    raise DatasetError(
        f"profile {profile_id} declares neither feature_schema.columns nor feature_schema.shape"
    )


def profile_info(spec: Mapping[str, Any], profile_id: str, names: Sequence[str]) -> DatasetInfo:
    """The :class:`DatasetInfo` of data mapped onto a profile: its characteristics, schema
    and task, named after the profile."""
    task = spec.get("task") or {}
    classification = task.get("type", "classification") == "classification"
    labels = task.get("labels")
    return DatasetInfo(
        name=profile_id,
        feature_names=tuple(names),
        task_type="classification" if classification else "regression",
        classes=tuple(int(c) for c in labels) if classification and labels else None,
        characteristics=dict(spec.get("characteristics") or {}),
        feature_schema=dict(spec.get("feature_schema") or {}),
        min_rows=int(task.get("min_rows", 1)),
    )


# ---------------------------------------------------------------------------- tabular
def _read_tabular(path: Path, spec: Mapping[str, Any], profile_id: str) -> LoadedFile:
    suffix = path.suffix.lower()
    if path.is_dir() or suffix not in TABULAR_SUFFIXES:
        raise DatasetError(
            f"{path}: profile {profile_id} is tabular; it takes a .csv (UTF-8) or .parquet file"
        )
    if suffix == ".csv":
        frame, source = _read_csv(path), _Source(path, first_line=2)
    else:
        frame, source = _read_parquet(path), _Source(path, first_line=None)
    columns = list(spec["feature_schema"]["columns"])
    names = [str(c["name"]) for c in columns]
    label = str((spec.get("task") or {}).get("label_column", DEFAULT_LABEL_COLUMN))
    if label in names:
        raise DatasetError(f"profile {profile_id}: label column {label!r} is also a feature")
    header = [str(c) for c in frame.columns]
    if len(set(header)) != len(header):
        twice = next(c for c in header if header.count(c) > 1)
        raise source.fail(f"column {twice!r} appears twice in the header")
    frame.columns = pd.Index(header)
    missing = [n for n in [*names, label] if n not in header]
    if missing:
        raise source.fail(
            f"missing column {missing[0]!r}; profile {profile_id} expects the columns "
            f"{', '.join(names)} and the label column {label!r}"
        )
    if len(frame) == 0:
        raise source.fail("no rows (a header only)")
    X = np.column_stack([_feature(source, frame[str(c["name"])], c) for c in columns])
    y = _labels(source, _numbers(source, frame[label], f"label column {label!r}"), spec)
    ignored = tuple(c for c in header if c not in names and c != label)
    return LoadedFile(Dataset(X, y, profile_info(spec, profile_id, names)), suffix[1:], ignored)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")  # strict: a Latin-1 or UTF-16 file is refused, not guessed
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}: line {line} is not UTF-8 text (byte {exc.start}); save the file as UTF-8"
        ) from None
    if not text.strip():
        raise DatasetError(f"{path}: empty file (no header, no rows)")
    try:
        # Text first: each column is converted to the profile's dtype here, so a bad value
        # is named with its line instead of silently turning a column into strings.
        return pd.read_csv(io.StringIO(text), dtype=str, skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{path}: not a readable CSV: {_first_line(exc)}") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError:
        raise DatasetError(
            f"{path}: reading Parquet needs pyarrow, which is not installed; use a CSV file"
        ) from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet file: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _numbers(source: _Source, series: pd.Series, what: str) -> NDArray:
    """The column as float64 (NaN where empty); a value that is not a number is refused."""
    if pd.api.types.is_bool_dtype(series):
        return np.asarray(series.astype("float64").to_numpy(), dtype=np.float64)
    if pd.api.types.is_numeric_dtype(series):
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    numbers = pd.to_numeric(series, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & series.notna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise source.fail(f"{what} at {source.where(i)}: {series.iloc[i]!r} is not a number")
    return np.asarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _booleans(source: _Source, series: pd.Series, what: str) -> NDArray:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return _numbers(source, series, what)
    text = series.str.strip().str.lower()
    values = np.where(text.isin(_TRUE), 1.0, np.where(text.isin(_FALSE), 0.0, np.nan))
    bad = np.flatnonzero(np.isnan(values) & series.notna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise source.fail(
            f"{what} at {source.where(i)}: {series.iloc[i]!r} is not a boolean (true/false, 1/0)"
        )
    return values


def _feature(source: _Source, series: pd.Series, column: Mapping[str, Any]) -> NDArray:
    name, dtype = str(column["name"]), str(column.get("dtype", "float"))
    what = f"column {name!r}"
    values = _booleans(source, series, what) if dtype == "bool" else _numbers(source, series, what)
    missing = np.isnan(values)
    if missing.any() and not column.get("nullable", False):
        i = int(np.flatnonzero(missing)[0])
        raise source.fail(f"{what} is empty at {source.where(i)}; the profile requires a value")
    present = ~missing
    _check_finite(source, values, present, what)
    if dtype in ("int", "bool", "category"):
        fractional = np.flatnonzero(present & (values != np.round(values)))
        if fractional.size:
            i = int(fractional[0])
            raise source.fail(
                f"{what} at {source.where(i)}: {values[i]!r} is not an integer (dtype {dtype})"
            )
    _check_bounds(source, values, present, what, column.get("min"), column.get("max"))
    return values


def _check_finite(source: _Source, values: NDArray, present: NDArray, what: str) -> None:
    infinite = np.flatnonzero(present & ~np.isfinite(values))
    if infinite.size:
        i = int(infinite[0])
        raise source.fail(f"{what} at {source.where(i)}: {values[i]!r} is not a finite number")


def _bound(value: Any, default: float) -> float:
    return default if value is None else float(Decimal(str(value)))


def _check_bounds(
    source: _Source, values: NDArray, present: NDArray, what: str, low: Any, high: Any
) -> None:
    lo, hi = _bound(low, -math.inf), _bound(high, math.inf)
    with np.errstate(invalid="ignore"):
        outside = np.flatnonzero(present & ((values < lo) | (values > hi)))
    if outside.size:
        i = int(outside[0])
        expected = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise source.fail(
            f"{what} at {source.where(i)}: {_number(values[i])} is outside {expected} "
            f"({outside.size} values out of bounds)"
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _labels(source: _Source, values: NDArray, spec: Mapping[str, Any]) -> NDArray:
    """Labels as the profile's task wants them: int64 in ``task.labels``, or float64 targets."""
    task = spec.get("task") or {}
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        raise source.fail(f"no label at {source.where(int(missing[0]))}")
    _check_finite(source, values, np.ones(values.shape, dtype=bool), "label")
    if task.get("type", "classification") == "regression":
        return values.astype(np.float64)
    labels = task.get("labels")
    if labels and not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise source.fail("the profile's labels are not integers; fedspec trains on integer labels")
    integral = values == np.round(values)
    allowed = np.isin(values, np.asarray(labels, dtype=np.float64)) if labels else integral
    bad = np.flatnonzero(~(integral & allowed))
    if bad.size:
        i = int(bad[0])
        expected = f"one of {list(labels)}" if labels else "an integer"
        raise source.fail(
            f"label {_number(values[i])} at {source.where(i)} is not {expected} "
            f"({bad.size} rows with unknown labels)"
        )
    return values.astype(np.int64)


# ---------------------------------------------------------------------------- images
def _read_images(path: Path, spec: Mapping[str, Any], profile_id: str) -> LoadedFile:
    schema = spec["feature_schema"]
    width = math.prod(int(s) for s in schema["shape"])
    if path.is_dir():
        X, labels, ignored = _image_folder(path, width, schema)
        source, fmt = _Source(path, first_line=None), "images"
    elif path.suffix.lower() == ".npz":
        X, labels = _read_npz(path, schema["shape"])
        source, fmt, ignored = _Source(path, first_line=None), "npz", ()
    else:
        raise DatasetError(
            f"{path}: profile {profile_id} takes images: an .npz file with arrays X and y, or a "
            "folder with one sub-folder of PNG/JPEG images per label"
        )
    if X.shape[0] == 0:
        raise source.fail("no rows (no images)")
    _check_pixels(source, X, schema)
    y = _labels(source, labels, spec)
    names = [f"x{i}" for i in range(width)]
    return LoadedFile(Dataset(X, y, profile_info(spec, profile_id, names)), fmt, ignored)


def _read_npz(path: Path, shape: Sequence[int]) -> tuple[NDArray, NDArray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "X" not in archive or "y" not in archive:
                raise DatasetError(f"{path}: needs arrays 'X' and 'y', has {sorted(archive)}")
            X, y = archive["X"], archive["y"]
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file: {_first_line(exc)}") from None
    width = math.prod(int(s) for s in shape)
    n = X.shape[0] if X.ndim else 0
    accepted = sorted({tuple(int(s) for s in shape), (width,)}, key=len)
    if X.ndim == 0 or X.shape[1:] not in accepted:
        expected = " or ".join(f"(rows, {', '.join(map(str, a))})" for a in accepted)
        raise DatasetError(f"{path}: X has shape {X.shape}; expected {expected}")
    if y.shape != (n,):
        raise DatasetError(f"{path}: y has shape {y.shape}; expected ({n},), one label per row")
    for name, array in (("X", X), ("y", y)):
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise DatasetError(f"{path}: {name} holds {array.dtype} values, not numbers")
    return X.reshape(n, width).astype(np.float64), y.astype(np.float64)


def _check_pixels(source: _Source, X: NDArray, schema: Mapping[str, Any]) -> None:
    missing = np.argwhere(~np.isfinite(X))
    if missing.size:
        row, col = (int(v) for v in missing[0])
        raise source.fail(f"{source.where(row)}, value {col}: {X[row, col]!r} is not a number")
    lo, hi = _bound(schema.get("min"), -math.inf), _bound(schema.get("max"), math.inf)
    outside = np.argwhere((lo > X) | (hi < X))
    if outside.size:
        row, col = (int(v) for v in outside[0])
        raise source.fail(
            f"{source.where(row)}, value {col}: {_number(X[row, col])} is outside "
            f"[{schema.get('min', '-inf')}, {schema.get('max', 'inf')}]"
        )


def _image_folder(
    path: Path, width: int, schema: Mapping[str, Any]
) -> tuple[NDArray, NDArray, tuple[str, ...]]:
    """One row per image of each ``<path>/<label>/`` sub-folder, in name order."""
    read = _image_reader(path, width, schema)
    rows: list[NDArray] = []
    labels: list[float] = []
    ignored: list[str] = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        try:
            label = float(folder.name)
        except ValueError:
            raise DatasetError(
                f"{folder}: sub-folders are named by label (e.g. 0, 1, …), not {folder.name!r}"
            ) from None
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(str(file.relative_to(path)))
                continue
            rows.append(read(file))
            labels.append(label)
    X = np.stack(rows) if rows else np.zeros((0, width))
    return X, np.asarray(labels, dtype=np.float64), tuple(ignored)


def _image_reader(path: Path, width: int, schema: Mapping[str, Any]) -> Callable[[Path], NDArray]:
    try:
        # Deferred: loads Pillow only when a folder of images is read.
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DatasetError(
            f"{path}: reading image folders needs Pillow, which is not installed; "
            "give an .npz file with arrays X and y instead"
        ) from None
    low, high = schema.get("min"), schema.get("max")
    scale = None if low is None or high is None else (_bound(low, 0.0), _bound(high, 255.0))

    def read(file: Path) -> NDArray:
        try:
            with Image.open(file) as image:
                size = image.width * image.height
                mode = "L" if size == width else "RGB" if 3 * size == width else None
                if mode is None:
                    raise DatasetError(
                        f"{file}: {image.width}×{image.height} pixels do not fit the profile's "
                        f"shape {list(schema['shape'])} ({width} values, gray or RGB)"
                    )
                pixels = np.asarray(image.convert(mode), dtype=np.float64).reshape(-1)
        except (OSError, UnidentifiedImageError) as exc:
            raise DatasetError(f"{file}: not a readable image: {_first_line(exc)}") from None
        if scale is None:
            return pixels
        return scale[0] + pixels / 255.0 * (scale[1] - scale[0])

    return read

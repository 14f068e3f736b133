"""A client's rows: read from ``.csv`` or ``.npy``, and adapted to a profile's model.

:func:`read_rows` accepts numeric CSV (a header of column names is optional: a first row
with a cell that is not a number is one) and ``.npy`` arrays (loaded without pickle; 1-D
is one row, images ``(n, h, w)`` are flattened). :func:`adapt_rows` turns the rows into
what a profile's model takes, as :func:`registry.matching.fit_schema` decided: unchanged,
columns selected by name, or square images resampled with ``scipy.ndimage.zoom``.
Everything unreadable raises :class:`registry.errors.InputError` (``INPUT_INVALID``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from federated.types import NDArray
from registry.errors import InputError
from registry.matching import SchemaFit
from registry.query import InputSchema, square_side


@dataclass(frozen=True)
class InputRows:
    """A client's raw feature rows (float64, one per example) and their column names, if
    the file had a header."""

    values: NDArray
    columns: tuple[str, ...] | None = None
    source: str = ""

    def schema(self, given: InputSchema | None = None, resolution: Any = None) -> InputSchema:
        """The rows' :class:`InputSchema`: width and names from the file; a square side and
        value range from ``given`` (the query's), or a square ``resolution`` of this width."""
        width = int(self.values.shape[1])
        if given is not None and given.width is not None and given.width != width:
            raise InputError(
                f"{self.source}: the query says {given.width} features, rows have {width}"
            )
        columns = self.columns or (given.columns if given else None)
        side = given.side if given else None
        if side is None and (square := square_side(resolution)) is not None:
            side = square if square * square == width else None
        return InputSchema(width, columns, side, given.bounds if given else None)


def read_rows(path: str | Path) -> InputRows:
    """Numeric rows from ``.csv`` (an optional header of column names) or ``.npy`` (2-D, or
    1-D for one row; images ``(n, h, w)`` are flattened). Anything else, or a value that is
    not a finite number, raises ``InputError`` (``INPUT_INVALID``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".npy":
        return _read_npy(path)
    raise InputError(f"{path}: unknown input format {suffix or '(none)'!r}; use .csv or .npy")


def _read_csv(path: Path) -> InputRows:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            table = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read CSV: {exc}") from exc
    columns = None
    # A header has a cell that is not a number at all ("nan" parses: a bad value, not a name).
    if table and not all(_parses(cell) for cell in table[0]):
        columns = tuple(cell.strip() for cell in table[0])  # a header: the first row is text
        if not all(columns) or len(set(columns)) != len(columns):
            raise InputError(f"{path}: header names must be non-empty and distinct")
        table = table[1:]
    if not table:
        raise InputError(f"{path}: no data rows")
    width = len(columns) if columns else len(table[0])
    first_line = 2 if columns else 1
    values = np.empty((len(table), width), dtype=np.float64)
    for i, row in enumerate(table):
        if len(row) != width:
            raise InputError(
                f"{path}: row {i + first_line} has {len(row)} values, expected {width}"
            )
        for j, cell in enumerate(row):
            if not _is_number(cell):
                raise InputError(
                    f"{path}: row {i + first_line}, column {j + 1}: {cell!r} is not a number"
                )
            values[i, j] = float(cell)
    return InputRows(values, columns, str(path))


def _read_npy(path: Path) -> InputRows:
    try:
        array = np.load(path, allow_pickle=False)  # never unpickle a client's file
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a numeric .npy array: {exc}") from exc
    if not isinstance(array, np.ndarray) or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise InputError(f"{path}: the array holds {getattr(array, 'dtype', '?')}, not numbers")
    if array.ndim == 0 or array.size == 0:
        raise InputError(f"{path}: no data rows")
    rows = array.reshape(1, -1) if array.ndim == 1 else array.reshape(array.shape[0], -1)
    values = rows.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: the array holds NaN or infinite values")
    return InputRows(values, None, str(path))


def _parses(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def adapt_rows(
    rows: NDArray, fit: SchemaFit, source_bounds: tuple[float, float] | None = None
) -> NDArray:
    """The client's raw rows as a profile's model takes them (``fit`` from
    :func:`registry.matching.fit_schema`): unchanged, columns picked by name, or square
    images resampled (bilinear, pixels as areas) with values mapped from ``source_bounds``
    to the profile's range, so that the model's own scaling sees what it trained on."""
    if fit.kind == "same":
        return rows
    if fit.kind == "columns":
        return rows[:, list(fit.indices)]
    if fit.kind != "resample":
        raise InputError(fit.line)
    source, target = fit.source_side, fit.target_side
    if rows.shape[1] != source * source:
        raise InputError(f"rows of {rows.shape[1]} values are not {source}x{source} images")
    # Deferred: loads scipy only when used.
    from scipy.ndimage import zoom

    images = rows.reshape(-1, source, source)
    remap = source_bounds is not None and fit.target_bounds is not None
    if remap and source_bounds is not None:
        low, high = source_bounds
        images = np.clip((images - low) / (high - low), 0.0, 1.0)
    factor = target / source
    out = zoom(images, (1.0, factor, factor), order=1, grid_mode=True, mode="nearest")
    if out.shape[1:] != (target, target):  # zoom rounds the output size; it should be exact
        raise InputError(f"resampling {source}x{source} to {target}x{target} gave {out.shape}")
    if remap and fit.target_bounds is not None:
        low, high = fit.target_bounds
        out = low + np.clip(out, 0.0, 1.0) * (high - low)
    resampled: NDArray = out.reshape(out.shape[0], -1).astype(np.float64)
    return resampled

"""Profile documents as people write them (YAML or JSON) and as the ledger stores them.

People write ``epsilon_budget: 2.5``; the ledger stores exact decimal strings (``"2.5"``) so
that consensus never does floating-point arithmetic. Conversion happens here, then the
document is validated against the same JSON Schema (and privacy rules) the chaincode enforces.

A file is refused with one :class:`~fedspec.errors.ProfileFileError` naming the problem,
never with a traceback: it is read as bytes (at most :data:`MAX_FILE_BYTES`), decoded as
strict UTF-8 (a UTF-8 byte-order mark is allowed; UTF-16, UTF-32, NUL bytes and invalid
sequences are refused), parsed (JSON without NaN, Infinity or duplicate keys; YAML with the
safe loader), and walked before anything else: at most :data:`MAX_DEPTH` levels and
:data:`MAX_VALUES` values (YAML aliases that expand past it are refused), string keys, and
JSON's types only: a YAML date, ``!!binary`` or ``!!set`` value, or a number that is not
finite, is refused with its key path.
"""

from __future__ import annotations

import codecs
import datetime
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from chaincode.errors import ChaincodeError
from chaincode.schema import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH, validate_profile
from fedspec.errors import ProfileFileError

DECIMAL_FIELDS = (
    "epsilon_per_round",
    "delta_per_round",
    "epsilon_budget",
    "delta_budget",
    "clip_norm",
)
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = MAX_DOCUMENT_DEPTH
MAX_VALUES = 20_000
_WIDE_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}
# What YAML's safe loader builds beyond JSON's types, by the tag a person wrote.
_YAML_ONLY = {
    bytes: "!!binary",
    set: "!!set",
    datetime.datetime: "a timestamp",
    datetime.date: "a date",
    tuple: "an !!omap or !!pairs entry",
}


def _decimal_text(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    # repr gives the shortest text that round-trips, so 1e-05 stays 1e-05, not 1.0000000000000001e-05.
    text = format(Decimal(repr(value)).normalize(), "f") if isinstance(value, float) else str(value)
    return text


def to_ledger_form(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(doc))  # a deep copy
    privacy = out.get("privacy")
    if isinstance(privacy, dict):
        for key in DECIMAL_FIELDS:
            if key in privacy:
                privacy[key] = _decimal_text(privacy[key])
    objective = out.get("objective")
    constraints = objective.get("constraints") if isinstance(objective, dict) else None
    for constraint in constraints if isinstance(constraints, list) else []:
        if isinstance(constraint, dict) and "value" in constraint:
            constraint["value"] = _decimal_text(constraint["value"])
    return out


def load_profile_file(path: Path) -> dict[str, Any]:
    """Read, convert and validate; any problem is one readable :class:`ProfileFileError`."""
    path = Path(path)
    text = _decode(path, _read(path))
    doc = _parse(path, text, is_yaml=path.suffix.lower() in (".yaml", ".yml"))
    _check_values(path, doc)
    if not isinstance(doc, dict):
        raise ProfileFileError(
            f"{path} must hold one profile (a mapping), not {type(doc).__name__}"
        )
    spec = to_ledger_form(doc)
    try:
        validate_profile(spec)
    except ChaincodeError as exc:
        raise ProfileFileError(f"{path}: {exc.message}") from exc
    if len(json.dumps(spec, sort_keys=True).encode()) > MAX_DOCUMENT_BYTES:
        raise ProfileFileError(f"{path}: the profile is larger than {MAX_DOCUMENT_BYTES} bytes")
    return spec


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ProfileFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a path the OS cannot take at all (an embedded NUL)
        raise ProfileFileError(f"cannot read {path}: {exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ProfileFileError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return data


def _decode(path: Path, data: bytes) -> str:
    for bom, name in _WIDE_BOMS.items():
        if data.startswith(bom):
            raise ProfileFileError(f"{path} is not UTF-8 text ({name}); save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProfileFileError(
            f"{path} is not UTF-8 text (byte {exc.start} is not valid UTF-8)"
        ) from None
    if "\x00" in text:
        raise ProfileFileError(f"{path} is not UTF-8 text (it holds NUL bytes: UTF-16?)")
    return text


def _parse(path: Path, text: str, *, is_yaml: bool) -> Any:
    kind = "YAML" if is_yaml else "JSON"
    try:
        if is_yaml:
            return yaml.safe_load(text)
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ProfileFileError(f"{path} nests deeper than {MAX_DEPTH} levels") from None
    except (yaml.YAMLError, ValueError) as exc:
        lines = str(exc).splitlines()
        first = lines[0] if lines else type(exc).__name__
        raise ProfileFileError(f"{path} is not valid {kind}: {first}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r:.60}")
        out[key] = value
    return out


def _check_values(path: Path, doc: Any) -> None:
    """Walk the parsed document without recursion: depth, size, keys and JSON types only."""
    seen = 0
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ProfileFileError(
                f"{path} holds more than {MAX_VALUES} values (YAML aliases expanding?)"
            )
        if depth > MAX_DEPTH:
            raise ProfileFileError(f"{path} nests deeper than {MAX_DEPTH} levels (at {where})")
        at = where or "(document)"
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ProfileFileError(
                        f"{path}: key {key!r:.60} in {at} is not a string; quote it"
                    )
                stack.append((value, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise ProfileFileError(f"{path}: {at} is {node}, not a finite number")
        elif node is not None and not isinstance(node, str | int | float):
            tag = next((t for kind, t in _YAML_ONLY.items() if isinstance(node, kind)), None)
            what = tag or type(node).__name__
            hint = "; quote it" if isinstance(node, datetime.date) else ""
            raise ProfileFileError(f"{path}: {at} is {what}, which a profile cannot hold{hint}")

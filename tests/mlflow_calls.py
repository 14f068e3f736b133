"""Count the MLflow client calls code makes, as benchmarks/scale.py counts them.

Every public method of ``MlflowClient`` and MLflow's ``download_artifacts`` is wrapped; only
the outermost call counts (some client methods call others), per thread, under the label
the thread was given with :meth:`MlflowCalls.label` (``"other"`` otherwise).
"""

from __future__ import annotations

import inspect
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest


class MlflowCalls:
    def __init__(self) -> None:
        self.by_label: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def label(self, name: str) -> Iterator[None]:
        """Count this thread's calls under ``name`` while the block runs."""
        before = getattr(self._local, "label", "other")
        self._local.label = name
        try:
            yield
        finally:
            self._local.label = before

    def clear(self) -> None:
        with self._lock:
            self.by_label.clear()

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._local, "depth", 0)
            if depth == 0:
                with self._lock:
                    self.by_label[getattr(self._local, "label", "other")][name] += 1
            self._local.depth = depth + 1
            try:
                return fn(*args, **kwargs)
            finally:
                self._local.depth = depth

        return call


def count_mlflow_calls(monkeypatch: pytest.MonkeyPatch) -> MlflowCalls:
    """Wrap MLflow's client for the rest of the test (undone by ``monkeypatch``)."""
    import mlflow.artifacts
    from mlflow import MlflowClient

    calls = MlflowCalls()
    for name, fn in list(vars(MlflowClient).items()):
        if not name.startswith("_") and inspect.isfunction(fn):
            monkeypatch.setattr(MlflowClient, name, calls._wrap(name, fn))
    download = mlflow.artifacts.download_artifacts
    monkeypatch.setattr(
        mlflow.artifacts, "download_artifacts", calls._wrap("download_artifacts", download)
    )
    return calls

"""Packages export lazily: the CLI starts without the heavy libraries it may never use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ledger_client
import registry
from fedspec.lazy import lazy_exports

HEAVY = ("grpc", "mlflow", "torch", "prefect", "great_expectations", "xgboost")


def test_the_command_line_starts_without_heavy_libraries() -> None:
    probe = (
        "import sys, fedspec.cli.app, ledger_client, registry; "
        "from ledger_client import Consortium; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


def test_an_export_loads_on_first_use_and_is_kept() -> None:
    namespace: dict[str, object] = {}
    get, listed = lazy_exports("pkg", {"sqrt": "math"}, namespace)
    assert listed() == ["sqrt"] and namespace == {}
    import math

    assert get("sqrt") is math.sqrt and namespace == {"sqrt": math.sqrt}
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'cos'"):
        get("cos")


@pytest.mark.parametrize("package", [ledger_client, registry])
def test_every_listed_name_resolves(package) -> None:
    assert dir(package) == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None

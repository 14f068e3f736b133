"""`fedspec round volunteer`: this home's nodes volunteer for a profile their local data fits
(as after a split, for the child of their group), or withdraw; bad input writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fedspec.app.settings import Settings
from tests.cli_scenario import height, ledger, ledger_home, refused, run


@pytest.fixture(autouse=True)
def _settings_from_home_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ledger-only demo's home, with 8×8 digits on org1/node0 and org2/node0 only."""
    from federated.datasets import load_digits_8x8, materialize_partitions

    home = tmp_path_factory.mktemp("volunteer") / "home"
    settings = ledger_home(home)
    digits = load_digits_8x8()
    for org, rows in (("org1", np.arange(0, 300)), ("org2", np.arange(300, 600))):
        materialize_partitions(
            digits, {"node0": rows}, settings.data_dir / "nodes", orgs={"node0": org}, seed=0
        )
    return home


@pytest.fixture
def home(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(built, copy)
    return copy


def _volunteers(home: Path, profile: str) -> list[str]:
    result: list[str] = ledger(Settings.load(home, env={})).volunteers(profile)
    return result


def test_nodes_whose_data_fits_volunteer_and_withdraw(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert {"org1/node0", "org2/node0"} <= set(_volunteers(home, "digits-8x8"))
    code, out, err = run(home, capsys, "round", "volunteer", "digits-8x8", "--withdraw", "--json")
    assert code == 0, err
    assert json.loads(out) == {"profile": "digits-8x8", "withdrew": ["org1/node0", "org2/node0"]}
    assert not {"org1/node0", "org2/node0"} & set(_volunteers(home, "digits-8x8"))

    code, out, err = run(home, capsys, "round", "volunteer", "digits-8x8", "--json")
    assert code == 0, err
    assert json.loads(out)["volunteered"] == ["org1/node0", "org2/node0"]
    assert {"org1/node0", "org2/node0"} <= set(_volunteers(home, "digits-8x8"))

    # Digits do not fit the gyroscope profile: nobody volunteers, nothing is written.
    before = height(Settings.load(home, env={}))
    code, out, _ = run(home, capsys, "round", "volunteer", "watch-gyroscope")
    assert code == 1, out  # nothing happened, and each node says why
    for node in ("org1/node0", "org2/node0"):
        assert f"{node} does not volunteer: {node} has no local data fitting" in out
    assert height(Settings.load(home, env={})) == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["digits-8x8", "--node", "org9/node0"], "org9/node0 is not a node"),
        (["no-such-profile"], "NOT_FOUND"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    before = height(Settings.load(home, env={}))
    code, out, err = run(home, capsys, "round", "volunteer", *args)
    refused(code, err, fragment)
    assert out == "" and height(Settings.load(home, env={})) == before

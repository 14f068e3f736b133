"""`fedspec round status`: a round as the ledger records it — phase, deadlines, participants,
coordinator, updates and exclusions, model, lineage, rewards — for closed rounds, a round in
progress and a child profile's first round; bad input refused in one line, exit code 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from fedspec.app.settings import Settings
from tests.cli_scenario import (
    CONTRIBUTIONS,
    DIGITS,
    activate,
    height,
    ledger,
    ledger_home,
    profile_doc,
    real,
    refused,
    run,
    run_round,
    split_reward,
)
from tests.processes import wait_until


@pytest.fixture(autouse=True)
def _settings_from_home_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's rounds; a child of digits-8x8 whose first round has one node whose data
    failed validation and one the coordinator left out; a third digits round left open."""
    path = tmp_path_factory.mktemp("round-status") / "home"
    settings = ledger_home(path)
    activate(settings, profile_doc("digits-child", parent="digits-8x8"), DIGITS)
    run_round(
        settings,
        "digits-child",
        DIGITS,
        invalid=["org2/node0"],
        excluded={"org3/node0": "update norm 9.1 beyond 3 × median"},
    )
    activate(settings, profile_doc("no-rounds", privacy="none"), [])
    opened = ledger(settings, "org1/node0").open_round("digits-8x8")
    from ledger_client.records import new_seed_secret

    for node in DIGITS[:2]:
        ledger(settings, node).join_round("digits-8x8", opened.number, new_seed_secret()[1])
    return path


def _status(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = run(home, capsys, "round", "status", *args, "--json")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_a_closed_round(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _status(home, capsys, "digits-8x8", "--round", "2")
    model = hashlib.sha256(b"digits-8x8:2:model").hexdigest()
    assert doc["profile"] == "digits-8x8" and doc["round"] == 2
    assert doc["status"] == doc["phase"] == "closed"
    assert doc["participants"] == doc["joined"] == doc["revealed"] == DIGITS
    assert doc["coordinator"] in DIGITS and doc["coordinator"] == doc["model"]["coordinator"]
    assert doc["opened_by"] == "org1/node0"
    d = doc["deadlines"]
    assert doc["opened_at"] < d["join"] < d["reveal"] and d["coordinator"] > doc["opened_at"]
    assert doc["model"]["sha256"] == model
    assert doc["model"]["metrics"] == {"accuracy": 0.900002}  # micro-units on the ledger
    assert doc["model"]["included"] == DIGITS and doc["model"]["alias"] == "champion"
    assert [u["node"] for u in doc["updates"]] == DIGITS
    assert all(u["validation_passed"] for u in doc["updates"]) and doc["excluded"] == []
    assert doc["updates"][0]["privacy"] == {"epsilon": "0.5", "delta": "0.000001"}
    assert doc["base"] == {
        "model": hashlib.sha256(b"digits-8x8:1:model").hexdigest(),
        "round": 1,
        "profile": "digits-8x8",
        "source": "own",
        "reason": "digits-8x8's model of round 1",
    }
    assert doc["rewards"] == split_reward(1000, dict(zip(DIGITS, CONTRIBUTIONS, strict=True)))
    assert doc["failure"] is None


def test_the_latest_round_is_the_one_in_progress(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _status(home, capsys, "digits-8x8")
    assert doc["round"] == 3 and doc["status"] == "joining" and doc["phase"] == "joining"
    assert doc["joined"] == DIGITS[:2] and doc["revealed"] == [] and doc["participants"] == []
    assert doc["coordinator"] is None and doc["deadlines"]["coordinator"] is None
    assert doc["model"] is None and doc["rewards"] is None and doc["updates"] == []
    assert doc["base"]["round"] == 2 and doc["base"]["source"] == "own"


def test_a_child_s_first_round_shows_its_lineage_and_exclusions(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _status(home, capsys, "digits-child", "--round", "1")
    assert doc["base"]["profile"] == "digits-8x8" and doc["base"]["source"] == "parent"
    assert doc["base"]["model"] == hashlib.sha256(b"digits-8x8:2:model").hexdigest()
    assert doc["excluded"] == [
        {
            "node": "org2/node0",
            "by": "node",
            "code": "VALIDATION_FAILED",
            "reason": "labels outside the profile's",
        },
        {
            "node": "org3/node0",
            "by": "coordinator",
            "code": "NORM_OUTLIER",
            "reason": "update norm 9.1 beyond 3 × median",
        },
    ]
    assert doc["model"]["included"] == ["org1/node0", "org4/node0"]
    assert doc["rewards"] == {"org1/node0": 500, "org4/node0": 500}
    failed = next(u for u in doc["updates"] if u["node"] == "org2/node0")
    assert failed["sha256"] == "" and failed["privacy"] == {"epsilon": "0", "delta": "0"}


def test_the_table_for_people(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(home, capsys, "round", "status", "digits-child")
    assert code == 0
    assert "digits-child round 1: closed" in out
    assert "starts from: digits-8x8 round 2" in out and "parent" in out
    assert "excluded org3/node0 by the coordinator: NORM_OUTLIER" in out
    assert "model " in out and "accuracy 0.75" in out and "rewards: org1/node0 500" in out


BAD = [
    (["no-such"], "NOT_FOUND"),
    (["no-rounds"], "has no rounds yet"),
    (["digits-8x8", "--round", "9"], "round 9 of profile digits-8x8 does not exist"),
    (["digits-8x8", "--round", "0"], "--round"),
    (["digits-8x8", "--round", "two"], "--round"),
    (["Bad Id"], "INVALID_ARGUMENT"),
    ([], "Missing argument 'PROFILE'"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    settings = Settings.load(home, env={})
    before = height(settings)
    code, out, err = run(home, capsys, "round", "status", *args)
    refused(code, err, fragment)
    assert out == "" and height(settings) == before


def test_in_a_real_process(home: Path) -> None:
    proc = real(home, "round", "status", "watch-gyroscope", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (
        doc["round"] == 2
        and doc["model"]["sha256"] == hashlib.sha256(b"watch-gyroscope:2:model").hexdigest()
    )


def test_round_run_s_progress_follows_the_ledger_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `round run` shows while its flow runs: the round's phase, read from the
    ledger's events, on stderr (stdout stays the result's), nothing with --json."""
    from fedspec.cli.context import State
    from fedspec.cli.round import _progress
    from fedspec.console import progress

    shown: list[progress.LedgerProgress] = []

    class Recorded(progress.LedgerProgress):  # the display `_progress` opens, to wait on
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            shown.append(self)

    monkeypatch.setattr(progress, "LedgerProgress", Recorded)
    settings = ledger_home(tmp_path / "home")
    state = State(tmp_path / "home")
    with _progress(state, "digits-8x8", 1, enabled=False):
        pass
    assert capsys.readouterr() == ("", "")
    with _progress(state, "digits-8x8", 1, enabled=True):
        run_round(settings, "digits-8x8", DIGITS)
        (display,) = shown
        # The follower reads the events on a thread of its own: wait until it saw the last.
        wait_until(
            lambda: display.states["digits-8x8"].phase == "rewarded",
            timeout=60,
            what="the progress display following the round to its rewards",
        )
    out, err = capsys.readouterr()
    assert out == ""
    assert "digits-8x8" in err and "3/1" in err and "rewarded" in err

"""`fedspec model find` records demand: a query no active profile fits well puts its
characteristics (only those) on the ledger, with the threshold from `[specialization]`;
`--no-record` opts out; a query that fits, or a bad one, writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fedspec.app.settings import Settings
from tests.cli_scenario import height, ledger, ledger_home, refused, run

# The demo's profiles: digits-8x8 (image, 8x8) and watch-gyroscope (timeseries, gyroscope).
# An audio query: digits scores 0.25 (modality differs, sensor undeclared), the watch 0.
AUDIO = ("--char", "modality=audio", "--char", "sensor=microphone")


@pytest.fixture(autouse=True)
def _settings_from_home_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demand") / "home"
    ledger_home(path)
    return path


@pytest.fixture
def home(built: Path, tmp_path: Path) -> Path:
    """A fresh copy per test: each test counts its own demand."""
    copy = tmp_path / "home"
    shutil.copytree(built, copy)
    return copy


def _demand(home: Path) -> list[dict[str, object]]:
    return [g.to_json() for g in ledger(Settings.load(home, env={})).list_demand()]


def _height(home: Path) -> int:
    return height(Settings.load(home, env={}))


def test_an_unmatched_query_is_recorded_per_requester(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _height(home)
    code, out, err = run(home, capsys, "model", "find", *AUDIO, "--json")
    assert code == 0, err
    demand = json.loads(out)["demand"]
    assert demand["recorded"] is True
    assert demand["characteristics"] == {"modality": "audio", "sensor": "microphone"}
    assert demand["reason"] == "the best eligible profile, digits-8x8, scores 0.25 < 0.5"
    assert (demand["requests"], demand["requesters"], demand["ready"]) == (1, 1, False)
    assert _height(home) == before + 1  # one RecordDemand transaction, nothing else
    (group,) = _demand(home)
    assert group["characteristics"] == demand["characteristics"]
    assert group["signature"] == demand["signature"]

    code, out, _ = run(home, capsys, "model", "find", *AUDIO, "--as", "org2/node0", "--json")
    demand = json.loads(out)["demand"]
    assert (demand["requests"], demand["requesters"]) == (2, 2)
    code, out, _ = run(home, capsys, "model", "find", *AUDIO, "--as", "org3/admin")
    assert code == 0
    assert (
        "no active profile fits well (the best eligible profile, digits-8x8, scores 0.25 < 0.5): "
        "recorded demand for modality=audio, sensor=microphone on the ledger, 3 requests by 3 "
        "identities; enough demand to propose a profile for it"
    ) in " ".join(out.split())


def test_the_threshold_comes_from_the_settings(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "fedspec.toml").write_text(
        "[specialization]\ndemand_score = 0.2\ndemand_min_requests = 1\ndemand_min_requesters = 1\n"
    )
    before = _height(home)
    code, out, _ = run(home, capsys, "model", "find", *AUDIO, "--json")
    assert code == 0 and json.loads(out)["demand"] is None  # 0.25 fits well enough at 0.2
    assert _height(home) == before and _demand(home) == []
    code, out, _ = run(home, capsys, "model", "find", "--char", "modality=radar", "--json")
    demand = json.loads(out)["demand"]
    assert demand["recorded"] and demand["ready"]  # one request suffices under these settings


def test_no_record_and_good_matches_write_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _height(home)
    code, out, _ = run(home, capsys, "model", "find", *AUDIO, "--no-record", "--json")
    assert code == 0
    assert json.loads(out)["demand"] == {
        "recorded": False,
        "reason": "the best eligible profile, digits-8x8, scores 0.25 < 0.5",
    }
    code, out, _ = run(home, capsys, "model", "find", *AUDIO, "--no-record")
    assert code == 0 and "not recorded (--no-record)" in out
    chars = ("--char", "modality=image", "--char", "resolution=8x8")
    code, out, _ = run(home, capsys, "model", "find", *chars, "--json")
    assert code == 0 and json.loads(out)["demand"] is None
    code, out, _ = run(home, capsys, "model", "find", "--optimize", "accuracy", "--json")
    assert code == 0 and json.loads(out)["demand"] is None  # no characteristics to ask for
    assert _height(home) == before and _demand(home) == []


def test_the_schema_s_values_are_never_recorded(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--schema", "shape=3", "--schema", "columns=heart_rate,weight,age", "--json")
    code, out, err = run(home, capsys, "model", "find", "--char", "modality=tabular", *args)
    assert code == 0, err
    assert json.loads(out)["demand"]["characteristics"] == {"modality": "tabular"}
    (group,) = _demand(home)
    assert "heart_rate" not in json.dumps(group)


BAD = [
    (["--char", "sensor"], "is not KEY=VALUE"),
    (["--char", "Sensor=x"], "QUERY_INVALID"),
    ([*AUDIO, "--require", "latency_ms<=abc"], "QUERY_INVALID"),
    ([*AUDIO, "--optimize", "n_rows"], "no natural direction"),
    ([*AUDIO, "--top", "0"], "--top"),
    ([*AUDIO, "--as", "org9/admin"], "IDENTITY_INVALID"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD)
def test_a_bad_query_records_nothing(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    before = _height(home)
    code, out, err = run(home, capsys, "model", "find", *args)
    refused(code, err, fragment)
    assert out == "" and _height(home) == before and _demand(home) == []


def test_demand_past_the_threshold_becomes_a_proposal_the_consortium_votes_in(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two requests by one identity: below the default threshold (3 requests, 2 requesters).
    for _ in range(2):
        run(home, capsys, "model", "find", *AUDIO, "--json")
    code, out, err = run(home, capsys, "specialize", "suggest", "--json")
    assert code == 0, err
    assert json.loads(out) == {"suggestions": [], "proposed": []}

    run(home, capsys, "model", "find", *AUDIO, "--as", "org2/admin", "--json")
    code, out, err = run(home, capsys, "specialize", "suggest", "--propose", "--json")
    assert code == 0, err
    answer = json.loads(out)
    (suggestion,) = answer["suggestions"]
    document = suggestion["profile"]
    assert suggestion["template"] == "digits-8x8"  # the closest active profile
    assert document["parent"] == "digits-8x8"
    assert document["characteristics"]["modality"] == "audio"
    assert document["characteristics"]["sensor"] == "microphone"
    assert answer["proposed"] == [
        {"id": document["id"], "status": "proposed", "template": "digits-8x8"}
    ]

    # Covered now: asked again, nothing new is suggested; the vote works as on any proposal.
    code, out, _ = run(home, capsys, "specialize", "suggest", "--propose", "--json")
    assert json.loads(out) == {"suggestions": [], "proposed": []}
    for admin in ("org1/admin", "org2/admin", "org3/admin"):
        code, out, err = run(home, capsys, "profile", "vote", document["id"], "--as", admin)
        assert code == 0, err
    profile = ledger(Settings.load(home, env={})).get_profile(document["id"])
    assert profile.status == "active"

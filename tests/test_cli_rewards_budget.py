"""`fedspec rewards` and `fedspec budget` on a ledger with real rounds: balances equal to the
reward formula, privacy spend and budget left as exact decimal strings, and bad input
refused in one line with exit code 2, the ledger unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fedspec.app.settings import Settings
from tests.cli_scenario import (
    CONTRIBUTIONS,
    DIGITS,
    WATCH,
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

PER_ROUND = split_reward(1000, dict(zip(DIGITS, CONTRIBUTIONS, strict=True)))


@pytest.fixture(autouse=True)
def _settings_from_home_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two rounds of each profile, then org1/node0 gives 34 tokens to org2/node1, and a
    profile without a privacy mode runs one round."""
    path = tmp_path_factory.mktemp("rewards") / "home"
    settings = ledger_home(path)
    ledger(settings, "org1/node0").transfer("org2/node1", 34)
    activate(settings, profile_doc("plain", privacy="none"), DIGITS[:2])
    run_round(settings, "plain", DIGITS[:2], spend=("0", "0"))
    return path


def _settings(home: Path) -> Settings:
    return Settings.load(home, env={})


def test_rewards_are_the_formula_s_per_node_and_per_organization(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(home, capsys, "rewards", "--json")
    assert code == 0, err
    doc = json.loads(out)
    # Two rounds of digits (node0) and of the watch (node1) with the same scores, then the
    # transfer, then one round of "plain" split evenly between org1/node0 and org2/node0.
    expected = {}
    for i in range(4):
        expected[DIGITS[i]] = 2 * PER_ROUND[DIGITS[i]]
        expected[WATCH[i]] = 2 * PER_ROUND[DIGITS[i]]
    expected["org1/node0"] += 500 - 34
    expected["org2/node0"] += 500
    expected["org2/node1"] += 34
    balances = {n["node"]: n["balance"] for n in doc["nodes"]}
    assert balances == expected
    assert doc["orgs"] == {
        f"org{i}": expected[f"org{i}/node0"] + expected[f"org{i}/node1"] for i in range(1, 5)
    }
    assert doc["total"] == 5 * 1000  # minted; a transfer moves tokens, creates none
    org1 = next(n for n in doc["nodes"] if n["node"] == "org1/node0")
    assert org1["org"] == "org1"
    assert org1["by_kind"] == {"reward": 2 * PER_ROUND["org1/node0"] + 500, "transfer": -34}


def test_rewards_of_one_node_with_its_history(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(home, capsys, "rewards", "--node", "org3/node0", "--history", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [n["node"] for n in doc["nodes"]] == ["org3/node0"]
    assert doc["orgs"] == {"org3": 4 * PER_ROUND["org3/node0"]}
    assert doc["history"] == [
        {
            "profile": "digits-8x8",
            "round": r,
            "node": "org3/node0",
            "amount": PER_ROUND["org3/node0"],
        }
        for r in (1, 2)
    ]
    code, out, _ = run(home, capsys, "rewards", "--org", "org2", "--json")
    assert code == 0
    assert [n["node"] for n in json.loads(out)["nodes"]] == ["org2/node0", "org2/node1"]


def test_rewards_as_a_table(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(home, capsys, "rewards", "--history")
    assert code == 0
    assert "token balances" in out and "per organization" in out and "minted per round" in out
    assert "transfer -34" in out


def test_budget_spent_and_left_as_exact_decimals(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        home, capsys, "budget", "--node", "org1/node0", "--profile", "digits-8x8", "--json"
    )
    assert code == 0, err
    assert json.loads(out) == {
        "budgets": [
            {
                "node": "org1/node0",
                "profile": "digits-8x8",
                "mode": "client-dp",
                "rounds": 2,
                "spent": {"epsilon": "1", "delta": "0.000002"},
                "budget": {"epsilon": "2", "delta": "1e-5"},
                "remaining": {"epsilon": "1", "delta": "0.000008"},
                "exhausted": False,
            }
        ]
    }


def test_budget_of_every_node_and_profile(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(home, capsys, "budget", "--json")
    assert code == 0
    entries = json.loads(out)["budgets"]
    assert {(e["node"], e["profile"]) for e in entries} == {
        (n, p) for n in DIGITS + WATCH for p in ("digits-8x8", "watch-gyroscope", "plain")
    }
    by = {(e["node"], e["profile"]): e for e in entries}
    assert by[("org4/node1", "watch-gyroscope")]["spent"] == {"epsilon": "1", "delta": "0.000002"}
    assert by[("org4/node1", "digits-8x8")]["rounds"] == 0  # never took part: all left
    assert by[("org4/node1", "digits-8x8")]["remaining"] == {"epsilon": "2", "delta": "0.00001"}
    plain = by[("org1/node0", "plain")]
    assert plain["mode"] == "none" and plain["budget"] is None and plain["remaining"] is None
    assert not plain["exhausted"]

    code, out, _ = run(home, capsys, "budget", "--profile", "digits-8x8")
    assert code == 0 and "privacy budgets" in out and "0.000008" in out


def test_an_exhausted_budget_says_so(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    settings = _settings(copy)
    for _ in range(2):  # ε 0.5 per round against a budget of 2: rounds 3 and 4 spend the rest
        run_round(settings, "digits-8x8", DIGITS)
    code, out, _ = run(
        copy, capsys, "budget", "--node", "org2/node0", "--profile", "digits-8x8", "--json"
    )
    (entry,) = json.loads(out)["budgets"]
    assert code == 0 and entry["exhausted"] and entry["remaining"]["epsilon"] == "0"
    assert entry["spent"] == {"epsilon": "2", "delta": "0.000004"}


BAD = [
    (["rewards", "--node", "org9/node0"], "NOT_FOUND"),
    (["rewards", "--node", "node0"], "INVALID_ARGUMENT"),
    (["rewards", "--org", "org9"], "org9 is not a member organization"),
    (["rewards", "--org", "org1", "--node", "org1/node0"], "not both"),
    (["rewards", "--as", "org9/admin"], "IDENTITY_INVALID"),
    (["budget", "--node", "org9/node0"], "NOT_FOUND"),
    (["budget", "--profile", "no-such"], "NOT_FOUND"),
    (["budget", "--profile", "Bad Id"], "INVALID_ARGUMENT"),
    (["budget", "--verbose"], "No such option"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    before = height(_settings(home))
    code, out, err = run(home, capsys, *args)
    refused(code, err, fragment)
    assert out == "" and height(_settings(home)) == before


def test_both_commands_in_a_real_process(home: Path) -> None:
    rewards = real(home, "rewards", "--org", "org4", "--json")
    assert rewards.returncode == 0, rewards.stderr
    assert json.loads(rewards.stdout)["orgs"] == {"org4": 4 * PER_ROUND["org4/node0"]}
    budget = real(home, "budget", "--node", "org4/node0", "--profile", "plain")
    assert budget.returncode == 0, budget.stderr
    assert "org4/node0" in budget.stdout and "none" in budget.stdout
    bad = real(home, "budget", "--profile", "no-such")
    refused(bad.returncode, bad.stderr, "NOT_FOUND")


def test_budget_shows_the_rdp_accountant_for_dp_sgd(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from fractions import Fraction

    from chaincode import rdp
    from chaincode.schema import decimal_text, dp_sgd_round_rdp

    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    settings = _settings(copy)
    privacy = {"mode": "dp-sgd", "noise_multiplier": "1", "sample_rate": "0.1",
               "epochs_per_round": "1", "clip_norm": "1", "epsilon_budget": "8",
               "delta_budget": "1e-5"}  # fmt: skip
    curve = dp_sgd_round_rdp(privacy)
    one = decimal_text(Fraction(rdp.epsilon(curve, Fraction("1e-5"))))
    activate(settings, {**profile_doc("sgd"), "privacy": privacy}, DIGITS[:2])
    run_round(settings, "sgd", DIGITS[:2], spend=(one, "0.00001"))
    code, out, err = run(copy, capsys, "budget", "--node", DIGITS[0], "--profile", "sgd", "--json")
    assert code == 0, err
    (entry,) = json.loads(out)["budgets"]
    assert entry["accountant"] == "rdp" and entry["mode"] == "dp-sgd" and entry["rounds"] == 1
    assert entry["spent"] == {"epsilon": one, "delta": "0.00001"}
    assert entry["round"] == {"epsilon": one, "delta": "0.00001"}
    # The node's other profiles are client-level DP: their ε and δ count towards the family.
    assert Fraction(entry["family"]["epsilon"]) > Fraction(one)
    assert entry["rounds_left"] >= 1 and not entry["exhausted"]
    code, out, _ = run(copy, capsys, "budget", "--profile", "sgd")
    assert code == 0 and "dp-sgd" in out and "family" in out

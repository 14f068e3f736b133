"""A ledger with real rounds, for the CLI's read commands, built through the facade in ~1 s.

:func:`ledger_home` runs the ledger-only demo (four organizations, two nodes each;
``digits-8x8`` on every organization's ``node0`` and ``watch-gyroscope`` on ``node1``, two
closed and rewarded rounds each, contributions 100, 110, 120, 130); :func:`run_round` runs
one more round with chosen exclusions. No learning: hashes stand for updates, the ledger is
real (signatures, endorsement, blocks). Commands run in this process through
``fedspec.cli.app.main`` (the console script's code) or as a real process.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from fedspec.app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DIGITS = [f"org{i}/node0" for i in range(1, 5)]
WATCH = [f"org{i}/node1" for i in range(1, 5)]
CONTRIBUTIONS = (100, 110, 120, 130)  # what the demo scores its four nodes


def ledger_home(home: Path) -> Settings:
    from fedspec.demo.ledger_tour import run_ledger_demo

    with contextlib.redirect_stdout(io.StringIO()):  # the demo's tables are not under test
        result = run_ledger_demo(home, fresh=True, rounds=2)
    assert result["verified"]
    return Settings.load(home, env={})


def three_org_home(home: Path) -> Path:
    """Three organizations of one node each and a fresh embedded ledger in ``home``: the
    home the bad-input tests propose their profiles to."""
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium

    init_consortium(["org1", "org2", "org3"], home / "consortium", nodes_per_org=1)
    init_ledger(Settings.load(home, env={}))
    return home


def home_settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``home``'s settings, with no outer FEDSPEC_* setting in the way."""
    for name in ("FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH", "FEDSPEC_CONSORTIUM"):
        monkeypatch.delenv(name, raising=False)
    return Settings.load(home, env={})


def ledger(settings: Settings, identity: str = "org1/admin") -> Any:
    from ledger_client import open_ledger

    return open_ledger(settings.ledger, identity)


def height(settings: Settings) -> int:
    with sqlite3.connect(settings.ledger.ledger_path) as db:
        return int(db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0])


def profile_doc(profile_id: str, *, privacy: str = "client-dp", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": profile_id,
        "name": profile_id,
        "characteristics": {"modality": "image", "resolution": "8x8"},
        "task": {"type": "classification"},
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "model": {"family": "torch-mlp"},
        "aggregation": {"strategy": "fedavg"},
        "privacy": {"mode": "none"}
        if privacy == "none"
        else {
            "mode": privacy,
            "epsilon_per_round": "0.5",
            "delta_per_round": "1e-6",
            "epsilon_budget": "2",
            "delta_budget": "1e-5",
            "clip_norm": "1",
        },
        "min_nodes": 2,
        "reward_per_round": 1000,
    }
    return {**doc, **extra}


def activate(settings: Settings, doc: Mapping[str, Any], volunteers: Iterable[str]) -> None:
    ledger(settings, "org1/admin").propose_profile(doc)
    for org in ("org1", "org2", "org3"):
        if ledger(settings, f"{org}/admin").vote_profile(doc["id"]).status == "active":
            break
    for node in volunteers:
        ledger(settings, node).volunteer(doc["id"])


def run_round(
    settings: Settings,
    profile_id: str,
    nodes: list[str],
    *,
    spend: tuple[str, str] = ("0.5", "1e-6"),
    invalid: Iterable[str] = (),
    excluded: Mapping[str, str] = {},
    mint: bool = True,
) -> dict[str, Any]:
    """One round to the end: ``invalid`` nodes report data that failed validation, the
    coordinator leaves ``excluded`` nodes (node → reason) out of the model."""
    from ledger_client import ModelCommitment, UpdateCommitment
    from ledger_client.records import new_seed_secret

    invalid = set(invalid)
    rnd = ledger(settings, nodes[0]).open_round(profile_id)
    secrets = {n: new_seed_secret() for n in nodes}
    for n in nodes:
        ledger(settings, n).join_round(profile_id, rnd.number, secrets[n][1])
    for n in nodes:
        ledger(settings, n).reveal_seed(profile_id, rnd.number, secrets[n][0])
    rnd = ledger(settings, nodes[-1]).elect_coordinator(profile_id, rnd.number)
    included = {}
    for i, n in enumerate(nodes):
        digest = hashlib.sha256(f"{profile_id}:{rnd.number}:{n}".encode()).hexdigest()
        bad = n in invalid
        ledger(settings, n).submit_update(
            profile_id,
            rnd.number,
            UpdateCommitment(
                sha256="" if bad else digest,
                num_samples=0 if bad else 100 + 10 * i,
                validation_sha256=hashlib.sha256(n.encode()).hexdigest(),
                validation_passed=not bad,
                validation_reason="labels outside the profile's" if bad else "",
                epsilon="0" if bad else spend[0],
                delta="0" if bad else spend[1],
            ),
        )
        if not bad and n not in excluded:
            included[n] = digest
    model = hashlib.sha256(f"{profile_id}:{rnd.number}:model".encode()).hexdigest()
    coordinator = ledger(settings, rnd.coordinator)
    coordinator.commit_model(
        profile_id,
        rnd.number,
        ModelCommitment(
            sha256=model,
            uri=f"models:/{profile_id}/{rnd.number}",
            metrics={"accuracy": 750_000},
            inclusion=included,
            contributions={n: 100 for n in included},
            excluded=[
                {"node": n, "code": "NORM_OUTLIER", "reason": r} for n, r in excluded.items()
            ],
        ),
    )
    if mint:
        coordinator.mint_rewards(profile_id, rnd.number)
    return {"round": rnd.number, "coordinator": rnd.coordinator, "model": model}


def split_reward(total: int, scores: Mapping[str, int]) -> dict[str, int]:
    """docs/ledger.md's formula, written again here so that the tests check the chaincode's:
    ⌊R·s_i/S⌋ each, the units left one each to the largest remainders, ties by node id."""
    s = sum(scores.values())
    shares = {n: total * v // s for n, v in scores.items()}
    left = total - sum(shares.values())
    for n in sorted(scores, key=lambda n: (-(total * scores[n] % s), n))[:left]:
        shares[n] += 1
    return shares


def run(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command in this process: exit code, stdout, stderr."""
    from fedspec.cli.app import main

    with pytest.raises(SystemExit) as exited:
        main(["--home", str(home), *args])
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def real(home: Path | None, *args: str, env: Mapping[str, str] | None = None) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FEDSPEC_", "MLFLOW_"))}
    argv = [sys.executable, "-m", "fedspec.cli", *(["--home", str(home)] if home else []), *args]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
        env={**base, **(env or {})},
    )


def refused(code: int, err: str, fragment: str) -> None:
    """Exit code 2 and one readable line naming the problem."""
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedspec: error: "), err
    assert fragment in lines[0], lines[0]

"""The ledger scenario `make demo` runs until the federated demo exists.

Four organizations form a consortium, vote two specialization profiles into existence, and
run rounds of each: nodes join with seed commitments, reveal, a coordinator is elected, nodes
commit update hashes with their privacy spend, the coordinator commits the model and mints
rewards. No learning happens here (the hashes stand for updates); the ledger is real.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fedspec.app.settings import Settings
from fedspec.console.output import console, table

if TYPE_CHECKING:
    from ledger_client import FedspecLedger
    from ledger_client.records import Balances, Round

ORGS = ["org1", "org2", "org3", "org4"]
PROFILES = {
    "digits-8x8": {"modality": "image", "resolution": "8x8"},
    "watch-gyroscope": {"modality": "timeseries", "sensor": "gyroscope"},
}

# One line of the rounds table: profile, round, participants, coordinator, block of the
# model's commit, model hash prefix, tokens minted.
RoundRow = tuple[str, int, int, str, int, str, int]


def print_verification(settings: Settings) -> bool:
    """Close this process's ledger services, run ``ledger verify`` and print its verdict."""
    # Deferred: the command line starts without it.
    from ledger_client import close_services
    from ledger_client.embedded.verify import verify_ledger

    close_services()
    report = verify_ledger(settings.ledger.ledger_path)
    status = (
        "[green]passed[/]"
        if report.ok
        else f"[red]FAILED[/] at block {report.first_bad_block}: {report.problem}"
    )
    console.print(
        f"ledger verify {status}: {report.blocks} blocks, {report.transactions} transactions"
    )
    return report.ok


def _profile(profile_id: str, characteristics: dict[str, str]) -> dict[str, object]:
    return {
        "id": profile_id,
        "name": profile_id,
        "characteristics": characteristics,
        "task": {"type": "classification"},
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "model": {"family": "torch-mlp"},
        "aggregation": {"strategy": "fedavg"},
        "privacy": {
            "mode": "client-dp",
            "epsilon_per_round": "0.5",
            "delta_per_round": "1e-6",
            "epsilon_budget": "2",
            "delta_budget": "1e-5",
            "clip_norm": "1",
        },
        "min_nodes": 2,
        "reward_per_round": 1000,
    }


def run_ledger_demo(home: Path, *, fresh: bool = True, rounds: int = 2) -> dict[str, object]:
    """Run the scenario in ``home`` (emptied first if ``fresh``) with ``rounds`` rounds per
    profile, printing each step. Returns the round rows (profile, round, participants,
    coordinator, block, model hash prefix, minted), the balances as JSON and whether
    ``ledger verify`` passed.
    """
    started = time.perf_counter()
    settings = _form_consortium(home, fresh=fresh)
    _activate_profiles(settings)
    rows: list[RoundRow] = []
    for pid in PROFILES:
        rows.extend(_run_profile_rounds(settings, pid, rounds))
    balances = _print_outcome(settings, rows)
    verified = print_verification(settings)
    console.print(
        f"done in {time.perf_counter() - started:.1f} s; inspect with "
        f"`fedspec --home {home} ledger blocks` or `... ledger events`"
    )
    return {"rounds": rows, "balances": balances.to_json(), "verified": verified}


def _ledger(settings: Settings, ref: str) -> FedspecLedger:
    """The ledger facade acting as ``ref`` (``org1/admin``, ``org2/node1``, ...)."""
    # Deferred: the command line starts without it.
    from ledger_client import open_ledger

    return open_ledger(settings.ledger, ref)


def _form_consortium(home: Path, *, fresh: bool) -> Settings:
    """Remove ``home`` if ``fresh``, then create the four-organization consortium (two
    nodes each) and its ledger there, every node registered; prints the title and the
    consortium. Returns ``home``'s settings (the process environment is ignored).
    """
    # Deferred: the command line starts without it.
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium

    if fresh and home.exists():
        shutil.rmtree(home)
    settings = Settings.load(home, env={})
    console.rule("[bold]fedspec ledger scenario[/] (embedded ledger, real signatures)")
    init_consortium(ORGS, settings.ledger.consortium_dir, nodes_per_org=2, force=True)
    boot = init_ledger(settings, force=True)
    console.print(f"consortium {', '.join(boot.orgs)}; {len(boot.nodes)} nodes registered")
    return settings


def _activate_profiles(settings: Settings) -> None:
    """org1/node0 proposes each of :data:`PROFILES`; org1, org2, ... admins vote for it
    until it is active (a majority: three of four). Prints each activation.
    """
    for pid, chars in PROFILES.items():
        _ledger(settings, "org1/node0").propose_profile(_profile(pid, chars))
        for org in ORGS[:3]:
            outcome = _ledger(settings, f"{org}/admin").vote_profile(pid)
            if outcome.outcome == "active":
                break
        console.print(
            f"profile [bold]{pid}[/] activated by vote ({outcome.approvals} of {len(ORGS)} organizations)"
        )


def _run_profile_rounds(settings: Settings, pid: str, rounds: int) -> list[RoundRow]:
    """Every organization's node volunteers for ``pid`` (``node0`` for digits-8x8,
    ``node1`` otherwise), then ``rounds`` rounds of it run to their reward. Returns a row
    per round.
    """
    nodes = [f"{org}/node{0 if pid == 'digits-8x8' else 1}" for org in ORGS]
    for ref in nodes:
        _ledger(settings, ref).volunteer(pid)
    return [_run_round(settings, pid, nodes) for _ in range(rounds)]


def _run_round(settings: Settings, pid: str, nodes: list[str]) -> RoundRow:
    """One round of ``pid`` with ``nodes``: the first opens it, all join and reveal their
    seeds, the last asks for the election, all submit update hashes, and the elected
    coordinator commits the model and mints the reward. Returns the round's table row.
    """
    rnd = _open_and_elect(settings, pid, nodes)
    updates = _submit_updates(settings, pid, rnd.number, nodes)
    coordinator = _ledger(settings, rnd.coordinator)
    model_hash = hashlib.sha256(f"{pid}:{rnd.number}:model".encode()).hexdigest()
    block = _commit_model(coordinator, pid, rnd.number, model_hash, updates, nodes)
    minted = coordinator.mint_rewards(pid, rnd.number)
    return (pid, rnd.number, len(nodes), rnd.coordinator, block, model_hash[:12], minted.total)


def _open_and_elect(settings: Settings, pid: str, nodes: list[str]) -> Round:
    """``nodes[0]`` opens a round of ``pid``; every node joins with a fresh seed
    commitment, then reveals its secret; ``nodes[-1]`` asks for the election. Returns the
    round as the election left it (``coordinator`` set).
    """
    # Deferred: the command line starts without it.
    from ledger_client.records import new_seed_secret

    rnd = _ledger(settings, nodes[0]).open_round(pid)
    secrets = {ref: new_seed_secret() for ref in nodes}
    for ref in nodes:
        _ledger(settings, ref).join_round(pid, rnd.number, secrets[ref][1])
    for ref in nodes:
        _ledger(settings, ref).reveal_seed(pid, rnd.number, secrets[ref][0])
    return _ledger(settings, nodes[-1]).elect_coordinator(pid, rnd.number)


def _submit_updates(settings: Settings, pid: str, number: int, nodes: list[str]) -> dict[str, str]:
    """Each node commits a stand-in update hash for round ``number`` (100, 110, ...
    samples in ``nodes`` order; ε 0.5, δ 1e-6 spent). Returns the hashes by node.
    """
    # Deferred: the command line starts without it.
    from ledger_client import UpdateCommitment

    updates = {}
    for ref in nodes:
        digest = hashlib.sha256(f"{pid}:{number}:{ref}".encode()).hexdigest()
        updates[ref] = digest
        _ledger(settings, ref).submit_update(
            pid,
            number,
            UpdateCommitment(
                sha256=digest,
                num_samples=100 + 10 * nodes.index(ref),
                validation_sha256=hashlib.sha256(ref.encode()).hexdigest(),
                epsilon="0.5",
                delta="1e-6",
            ),
        )
    return updates


def _commit_model(
    coordinator: FedspecLedger,
    pid: str,
    number: int,
    model_hash: str,
    updates: dict[str, str],
    nodes: list[str],
) -> int:
    """The coordinator commits round ``number``'s stand-in model, including every update
    and scoring the nodes 100, 110, ... in ``nodes`` order. Returns the commit's block
    number (-1 if the ledger reported none).
    """
    # Deferred: the command line starts without it.
    from ledger_client import ModelCommitment

    model = coordinator.commit_model(
        pid,
        number,
        ModelCommitment(
            sha256=model_hash,
            uri=f"models:/{pid}/{number}",
            metrics={"accuracy": 900_000 + number},
            inclusion=updates,
            contributions={ref: 100 + 10 * nodes.index(ref) for ref in nodes},
        ),
    )
    return model.commit.block_number if model.commit else -1


def _print_outcome(settings: Settings, rows: list[RoundRow]) -> Balances:
    """Print the rounds table, the rewards per organization and org1/node0's privacy
    budget on digits-8x8. Returns the balances (read as org1's admin).
    """
    table(
        "rounds",
        ["profile", "round", "participants", "coordinator", "block", "model", "minted"],
        rows,
    )
    reader = _ledger(settings, "org1/admin")
    balances = reader.balances()
    table("rewards per organization", ["organization", "tokens"], sorted(balances.orgs.items()))
    budget = reader.budget("org1/node0", "digits-8x8")
    console.print(
        f"privacy budget of org1/node0 on digits-8x8: spent ε={budget.spent.epsilon}, "
        f"left ε={budget.remaining.epsilon if budget.remaining else '-'}"
    )
    return balances

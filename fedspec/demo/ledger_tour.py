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

from fedspec.app.settings import Settings
from fedspec.console.output import console, table

ORGS = ["org1", "org2", "org3", "org4"]
PROFILES = {
    "digits-8x8": {"modality": "image", "resolution": "8x8"},
    "watch-gyroscope": {"modality": "timeseries", "sensor": "gyroscope"},
}


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
    # Deferred: the command line starts without it.
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium
    from ledger_client import ModelCommitment, UpdateCommitment, open_ledger
    from ledger_client.records import new_seed_secret

    started = time.perf_counter()
    if fresh and home.exists():
        shutil.rmtree(home)
    settings = Settings.load(home, env={})
    console.rule("[bold]fedspec ledger scenario[/] (embedded ledger, real signatures)")
    init_consortium(ORGS, settings.ledger.consortium_dir, nodes_per_org=2, force=True)
    boot = init_ledger(settings, force=True)
    console.print(f"consortium {', '.join(boot.orgs)}; {len(boot.nodes)} nodes registered")

    def L(ref: str):  # type: ignore[no-untyped-def]
        return open_ledger(settings.ledger, ref)

    for pid, chars in PROFILES.items():
        L("org1/node0").propose_profile(_profile(pid, chars))
        for org in ORGS[:3]:
            outcome = L(f"{org}/admin").vote_profile(pid)
            if outcome.outcome == "active":
                break
        console.print(
            f"profile [bold]{pid}[/] activated by vote ({outcome.approvals} of {len(ORGS)} organizations)"
        )

    rows = []
    for pid in PROFILES:
        nodes = [f"{org}/node{0 if pid == 'digits-8x8' else 1}" for org in ORGS]
        for ref in nodes:
            L(ref).volunteer(pid)
        for _ in range(rounds):
            rnd = L(nodes[0]).open_round(pid)
            secrets = {ref: new_seed_secret() for ref in nodes}
            for ref in nodes:
                L(ref).join_round(pid, rnd.number, secrets[ref][1])
            for ref in nodes:
                L(ref).reveal_seed(pid, rnd.number, secrets[ref][0])
            rnd = L(nodes[-1]).elect_coordinator(pid, rnd.number)
            updates = {}
            for ref in nodes:
                digest = hashlib.sha256(f"{pid}:{rnd.number}:{ref}".encode()).hexdigest()
                updates[ref] = digest
                L(ref).submit_update(
                    pid,
                    rnd.number,
                    UpdateCommitment(
                        sha256=digest,
                        num_samples=100 + 10 * nodes.index(ref),
                        validation_sha256=hashlib.sha256(ref.encode()).hexdigest(),
                        epsilon="0.5",
                        delta="1e-6",
                    ),
                )
            coordinator = L(rnd.coordinator)
            model_hash = hashlib.sha256(f"{pid}:{rnd.number}:model".encode()).hexdigest()
            model = coordinator.commit_model(
                pid,
                rnd.number,
                ModelCommitment(
                    sha256=model_hash,
                    uri=f"models:/{pid}/{rnd.number}",
                    metrics={"accuracy": 900_000 + rnd.number},
                    inclusion=updates,
                    contributions={ref: 100 + 10 * nodes.index(ref) for ref in nodes},
                ),
            )
            block = model.commit.block_number if model.commit else -1
            minted = coordinator.mint_rewards(pid, rnd.number)
            rows.append(
                (
                    pid,
                    rnd.number,
                    len(nodes),
                    rnd.coordinator,
                    block,
                    model_hash[:12],
                    minted.total,
                )
            )

    table(
        "rounds",
        ["profile", "round", "participants", "coordinator", "block", "model", "minted"],
        rows,
    )
    reader = L("org1/admin")
    balances = reader.balances()
    table("rewards per organization", ["organization", "tokens"], sorted(balances.orgs.items()))
    budget = reader.budget("org1/node0", "digits-8x8")
    console.print(
        f"privacy budget of org1/node0 on digits-8x8: spent ε={budget.spent.epsilon}, "
        f"left ε={budget.remaining.epsilon if budget.remaining else '-'}"
    )
    verified = print_verification(settings)
    console.print(
        f"done in {time.perf_counter() - started:.1f} s; inspect with "
        f"`fedspec --home {home} ledger blocks` or `... ledger events`"
    )
    return {"rounds": rows, "balances": balances.to_json(), "verified": verified}

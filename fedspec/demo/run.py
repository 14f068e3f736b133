"""`make demo`: a consortium trains a family of specialized models, on embedded defaults.

Embedded ledger, Prefect's local API (its database under ``<home>/prefect``), MLflow on
SQLite (``<home>/mlflow``). Four organizations, four profiles trained concurrently for a few
rounds each, live progress from the ledger's events, then the results: rounds per profile,
rewards per organization, the family of specialized models against one global model trained
on everyone's data, and ``ledger verify``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fedspec.app.settings import Settings
from fedspec.console.output import console, table

ROUNDS = 3


def _environment(home: Path) -> None:
    """Prefect and MLflow settings for a quiet, local, offline run (before they are imported)."""
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow's INFO lines (table creation, input-example validation) would break the live view.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ["FEDSPEC_HOME"] = str(home)


def run_demo(
    home: Path,
    *,
    rounds: int = ROUNDS,
    fresh: bool = True,
    ledger: str = "embedded",
    secure: bool = False,
) -> dict[str, Any]:
    """``ledger="fabric"`` runs the same demo on a Fabric network started in ``<home>/network``
    (left running at the end, for a look around; ``fedspec network down`` stops it);
    ``secure`` runs digits-8x8 with secure aggregation (docs/privacy.md)."""
    started = time.perf_counter()
    home = home.absolute()
    if fresh and home.exists():
        # Deferred: the command line starts without it.
        from fabric_network import NetworkLayout, network_down

        network_down(NetworkLayout(home / "network", home / "consortium"))  # by PID, if any
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    _environment(home)
    ledger_env = {"FEDSPEC_LEDGER": ledger}
    os.environ.update(ledger_env)
    settings = Settings.load(home, env=ledger_env)
    console.rule("[bold]fedspec[/] — a family of specialized models, trained across organizations")

    if ledger == "fabric":
        settings = _fabric_network(settings)
    with console.status("consortium, ledger, data and profiles…"):
        profiles = _setup(settings, new_consortium=ledger != "fabric", secure=secure)
    console.print(
        f"[green]✓[/] consortium of {len(profiles['orgs'])} organizations, "
        f"{len(profiles['nodes'])} nodes; profiles voted in: {', '.join(profiles['ids'])}"
    )

    with console.status("Prefect's local API…"):
        start_local_api()

    # Deferred: the command line starts without it.
    from fedspec.console.progress import LedgerProgress

    progress = LedgerProgress(settings, profiles["ids"], rounds)
    with progress.live(console):
        results = _train(settings, profiles["ids"], rounds)
    console.print(
        f"[green]✓[/] {sum(len(r) for r in results.values())} rounds in "
        f"{time.perf_counter() - started:.0f} s"
    )

    report = _report(settings, profiles["ids"], results)
    console.print(f"\ndone in {time.perf_counter() - started:.0f} s. Look around:")
    commands = [f"fedspec --home {home} ledger blocks | events | verify"]
    if ledger == "fabric":
        # Deferred: the command line starts without it.
        from fedspec.console.network import peer_query_command

        commands = [
            f"FEDSPEC_LEDGER=fabric fedspec --home {home} ledger blocks | events | status",
            peer_query_command(home, "org2", "GetModel", profiles["ids"][0], "1"),
            f"fedspec --home {home} network status | down",
        ]
    # Commands to copy: never wrapped, never highlighted.
    for command in (
        *commands,
        f"mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} --host 127.0.0.1 --port 5000",
        f"PREFECT_HOME={home / 'prefect'} prefect server start --host 127.0.0.1 --port 4200",
    ):
        console.print(f"  {command}", highlight=False, soft_wrap=True, markup=False)
    return report


def start_local_api() -> None:
    """Start Prefect's temporary local API once, here: the profiles' flows start together in
    threads, and Prefect's lazy start of it is not thread-safe (concurrent migrations)."""
    # Deferred: loads prefect only when used.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.api_healthcheck()


def _fabric_network(settings: Settings) -> Settings:
    """The demo's consortium, then a Fabric network that trusts it; settings that use it."""
    # Deferred: the command line starts without it.
    from fabric_network import NetworkLayout, network_up
    from fedspec.app.consortium import init_consortium
    from fedspec.demo.setup import ORGS

    init_consortium(ORGS, settings.ledger.consortium_dir, nodes_per_org=2, force=True)
    layout = NetworkLayout(settings.home / "network", settings.ledger.consortium_dir)
    with console.status("Fabric network…") as status:
        network = network_up(layout, progress=lambda m: status.update(f"Fabric network: {m}"))
    console.print(
        f"[green]✓[/] Fabric {network.version} network: {len(network.orderers)} raft orderers, "
        f"peers {', '.join(f'{o}={a}' for o, a in network.peers.items())}"
    )
    return Settings.load(settings.home, env={"FEDSPEC_LEDGER": "fabric"})


def _setup(
    settings: Settings, *, new_consortium: bool = True, secure: bool = False
) -> dict[str, Any]:
    # Deferred: loads numpy, pandas only when used.
    from fedspec.demo.setup import ORGS, demo_profiles, setup_consortium

    profiles = demo_profiles(secure=secure)
    boot = setup_consortium(
        settings, ORGS, profiles, nodes_per_org=2, new_consortium=new_consortium
    )
    return {"orgs": boot.orgs, "nodes": boot.nodes, "ids": [p.id for p in profiles]}


def _train(
    settings: Settings, profile_ids: list[str], rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Every profile's training flow at once (each its own thread, as separate deployments would)."""
    # Deferred: loads numpy, pandas, prefect, safetensors, scipy, sklearn only when used.
    from flows.rounds import federated_training, local_api_settings

    def train(profile_id: str) -> list[dict[str, Any]]:
        with local_api_settings():  # per thread: Prefect's settings live in a context var
            return federated_training(
                profile_id, rounds=rounds, opener="org1/admin", home=str(settings.home)
            )

    with ThreadPoolExecutor(max_workers=len(profile_ids), thread_name_prefix="profile") as pool:
        futures = {pid: pool.submit(train, pid) for pid in profile_ids}
        return {pid: f.result() for pid, f in futures.items()}


def _report(
    settings: Settings, profile_ids: list[str], results: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    # Deferred: loads numpy, pandas, safetensors, scipy, sklearn only when used.
    from fedspec.demo.compare import compare_family
    from fedspec.demo.ledger_tour import print_verification
    from ledger_client import from_fixed, open_ledger

    reader = open_ledger(settings.ledger, "org1/admin")
    blocks = {
        (e.json()["profile"], e.json()["round"]): e.block_number  # type: ignore[index]
        for e in reader.contract.network.get_chaincode_events(
            settings.ledger.chaincode,
            start_block=0,
            # The embedded ledger answers at once; a Fabric peer streams blocks over TLS.
            timeout=0.1 if settings.ledger.backend == "embedded" else 3.0,
        )
        if e.name == "ModelCommitted"
    }
    accuracy: dict[str, float] = {}
    for pid in profile_ids:
        rows = []
        for summary in results[pid]:
            record = None
            if summary["status"] == "closed":
                record = reader.get_model(pid, summary["round"])
                if record.alias == "champion" or pid not in accuracy:
                    # The family is compared by its champions, the models a client is served.
                    accuracy[pid] = from_fixed(record.metrics.get("accuracy", 0))
            rows.append(
                (
                    summary["round"],
                    len(summary["participants"]),
                    summary["coordinator"],
                    f"{from_fixed(record.metrics.get('accuracy', 0)):.3f}"
                    if record
                    else summary["status"],
                    blocks.get((pid, summary["round"]), ""),
                    summary["model"][:12] or (summary["failure"] or {}).get("code", ""),
                    record.alias if record else "",
                )
            )
        columns = ["round", "participants", "coordinator", "accuracy", "block", "model", "alias"]
        table(pid, columns, rows)
    balances = reader.balances()
    table("rewards per organization", ["organization", "tokens"], sorted(balances.orgs.items()))
    specs = {pid: reader.get_profile(pid).spec for pid in profile_ids}
    rounds = max((len(r) for r in results.values()), default=0)
    comparison = compare_family(settings, specs, accuracy, rounds=rounds)
    table(
        f"held-out accuracy: federated champion vs the same model trained centrally on the "
        f"profile's rows, and vs a generic model of the same family trained centrally on its "
        f"group's pooled data (budgets of {rounds} rounds)",
        ["profile", "family", "federated", "centralized", "generic", "fed-central",
         "central-generic"],
        [
            (c.profile, c.family, f"{c.federated:.3f}", f"{c.centralized:.3f}",
             f"{c.generic:.3f}", f"{c.federated - c.centralized:+.3f}",
             f"{c.centralized - c.generic:+.3f}")
            for c in comparison
        ],
    )  # fmt: skip
    if settings.ledger.backend == "fabric":
        # Deferred: the command line starts without it.
        from fedspec.console.network import print_agreement

        verified = print_agreement(settings)
    else:
        verified = print_verification(settings)
    return {
        "results": results,
        "balances": balances.to_json(),
        "comparison": {c.profile: c.to_json() for c in comparison},
        "verified": verified,
    }

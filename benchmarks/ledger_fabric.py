"""Fabric against the embedded ledger, measured in the same run on the same machine.

1. Load: ``--submits`` ProposeProfile transactions from ``--threads`` client threads (the
   admins of every organization in turn), each submitted and waited for until committed;
   submits/s and commit latency p50/p95 (endorse → ordered → validated → committed) on each.
2. A federated round (the demo's ``digits-8x8`` profile, three organizations, a node each,
   the ``federated-round`` flow) on each ledger: the ledger's share of the round's wall time
   and its longest single ledger call ("phase": open, join, reveal, elect, an update's
   commitment, the model's commitment, a read).

Targets on 2 cores: ≥ 100 submits/s on Fabric, ≤ 1 s per ledger phase. The Fabric network
is three raft orderers with a 100 ms batch timeout and one peer per organization, all on
127.0.0.1 with TLS, endorsement by a majority of organizations.

Run: ``.venv/bin/python -m benchmarks.ledger_fabric [--submits 600] [--threads 16] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import threading
import time
from dataclasses import replace
from typing import Any

from benchmarks.sandbox import bench_dir

ORGS = ["org1", "org2", "org3"]  # the network: three organizations


def profile_doc(pid: str) -> str:
    return json.dumps(
        {
            "id": pid,
            "name": pid,
            "characteristics": {"modality": "image"},
            "task": {"type": "classification"},
            "objective": {"metric": "accuracy", "direction": "maximize"},
            "model": {"family": "torch-mlp"},
            "aggregation": {"strategy": "fedavg"},
            "privacy": {"mode": "none"},
            "min_nodes": 2,
        }
    )


def load(settings: Any, prefix: str, count: int, threads: int) -> dict[str, Any]:
    from ledger_client import close_services, open_ledger

    contracts = [open_ledger(settings.ledger, f"{org}/admin").contract for org in ORGS]
    latencies: list[float] = []
    lock = threading.Lock()
    counter = itertools.count()

    def worker(k: int) -> None:
        contract = contracts[k % len(contracts)]
        mine = []
        while (i := next(counter)) < count:
            start = time.perf_counter()
            submitted = contract.submit_async("ProposeProfile", profile_doc(f"{prefix}-{i}"))
            submitted.get_status().raise_for_failure()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    close_services()
    q = statistics.quantiles(latencies, n=100)
    return {"rate": count / elapsed, "p50": q[49], "p95": q[94]}


def round_share(settings: Any, profile: Any, rounds: int) -> list[dict[str, float]]:
    from flows import timing
    from flows.rounds import federated_round, local_api_settings

    out = []
    for _ in range(rounds):
        with local_api_settings(), timing.recording() as spans:
            start = time.perf_counter()
            summary = federated_round(profile.id, "org1/admin", home=str(settings.home))
            end = time.perf_counter()
        totals = timing.breakdown(spans, start, end)
        phases = [e - s for c, s, e in spans if c == "ledger"]
        out.append(
            {
                "round": summary["round"],
                "status": summary["status"],
                "wall": end - start,
                "ledger": totals["ledger"],
                "longest": max(phases, default=0.0),
                "calls": len(phases),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=600)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    root = bench_dir("fedspec-bench-fabric-", fedspec_home=False)
    from fabric_network import NetworkLayout, network_down, network_up
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium
    from fedspec.app.settings import Settings
    from fedspec.demo.run import start_local_api
    from fedspec.demo.setup import PROFILES, setup_consortium
    from tests.fabric_support import free_base_port

    consortium = init_consortium(ORGS, root / "consortium", nodes_per_org=1)
    homes = {"embedded": root / "embedded", "fabric": root / "fabric"}
    for home in homes.values():
        home.mkdir()
        (home / "consortium").symlink_to(consortium)
    layout = NetworkLayout(homes["fabric"] / "network", consortium, base_port=free_base_port())
    try:
        status = network_up(layout)
        print(
            f"Fabric {status.version}: {len(status.orderers)} raft orderers, peers {status.peers}"
        )
        settings = {b: Settings.load(h, env={"FEDSPEC_LEDGER": b}) for b, h in homes.items()}
        for s in settings.values():
            init_ledger(s)

        print(f"\n1. load: {args.submits} submits from {args.threads} threads, each waited for")
        results = {b: load(s, f"load-{b}", args.submits, args.threads) for b, s in settings.items()}
        print(f"{'ledger':>10} {'submits/s':>10} {'p50 ms':>8} {'p95 ms':>8}")
        for b, r in results.items():
            print(f"{b:>10} {r['rate']:>10.0f} {r['p50'] * 1e3:>8.0f} {r['p95'] * 1e3:>8.0f}")
        ratio = results["fabric"]["rate"] / results["embedded"]["rate"]
        print(f"Fabric/embedded throughput: {ratio:.2f}x (target on Fabric: >= 100 submits/s)")

        print(f"\n2. the ledger's share of a federated round ({args.rounds} rounds each)")
        profile = next(p for p in PROFILES if p.id == "digits-8x8")
        profile = replace(profile, hyperparameters={**profile.hyperparameters, "epochs": 2})
        start_local_api()
        for b, s in settings.items():
            os.environ["FEDSPEC_LEDGER"] = b
            os.environ["FEDSPEC_HOME"] = str(s.home)
            setup_consortium(s, ORGS, [profile], nodes_per_org=1, new_consortium=False)
            for r in round_share(s, profile, args.rounds):
                print(
                    f"{b:>10} round {r['round']} ({r['status']}): {r['wall']:.2f} s, ledger "
                    f"{r['ledger']:.2f} s = {r['ledger'] / r['wall']:.0%} over {r['calls']} calls, "
                    f"longest call {r['longest']:.2f} s (target <= 1 s)"
                )
    finally:
        network_down(layout)


if __name__ == "__main__":
    main()

"""Fabric against the embedded ledger, measured in the same run on the same machine.

1. Load: ``--submits`` ProposeProfile transactions offered by each ``--clients`` setting
   (client processes × threads × transactions in flight per thread: ``benchmarks.fabric_load``;
   the admins of every organization in turn), each waited for until committed on every
   peer; submits/s, latency p50/p95 (endorse → ordered → validated → committed) and its
   phases, transactions per block, and where the CPU went (orderers, peers, chaincode
   servers, the client, everything else on the machine), ``--repeat`` times each. Each
   ``--network`` setting (batch settings, raft orderers: ``benchmarks.fabric_networks``) is a
   network of its own, all started at once and loaded in turn, so that their figures share
   the machine's load.
2. A federated round (the demo's ``digits-8x8`` profile, three organizations, a node each,
   the ``federated-round`` flow) on the embedded ledger and the first network: the ledger's
   share of the round's wall time and its longest single ledger call ("phase": open, join,
   reveal, elect, an update's commitment, the model's commitment, a read).

Targets on 2 cores: ≥ 250 submits/s on Fabric, ≤ 1 s per ledger phase. The default network
is three raft orderers with a 100 ms batch timeout and one peer per organization, all on
127.0.0.1 with TLS, endorsement by a majority of organizations.

Run: ``.venv/bin/python -m benchmarks.ledger_fabric [--submits 600] [--clients 32,3*32x2]
[--network default --network big:timeout=1s,size=500] [--repeat 3] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import fabric_networks
from benchmarks.cpu_meter import CpuMeter
from benchmarks.fabric_load import ORGS, Clients, LoadResult, load
from benchmarks.fabric_networks import Setting
from benchmarks.sandbox import bench_dir


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


def _uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


HEADER = (
    f"{'ledger':>10} {'clients':>9} {'max':>5} {'submits/s':>9} {'p50ms':>6} {'p95ms':>6} "
    f"{'endorse':>7} {'submit':>6} {'commit':>6} {'blocks':>6} {'tx/blk':>6} {'most':>4}"
)


def _line(ledger: str, r: LoadResult) -> str:
    blocks, mean, most = r.block_sizes()
    phases = [statistics.mean(getattr(r.done, p)) * 1e3 for p in ("endorse", "submit", "commit")]
    return (
        f"{ledger:>10} {r.clients!s:>9} {r.clients.in_flight:>5} {r.rate:>9.0f} "
        f"{r.quantile('latency', 50) * 1e3:>6.0f} {r.quantile('latency', 95) * 1e3:>6.0f} "
        f"{phases[0]:>7.0f} {phases[1]:>6.0f} {phases[2]:>6.0f} {blocks:>6} {mean:>6.1f} {most:>4}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--submits", type=int, default=600, help="transactions per run")
    parser.add_argument(
        "--clients",
        default="32",
        help="comma-separated [P*]T[xW]: P processes of T threads with W in flight each",
    )
    parser.add_argument(
        "--network",
        action="append",
        default=None,
        help="NAME[:orderers=1,timeout=500ms,size=500,gomaxprocs=1]; repeatable "
        "(default: one network named default, as `fedspec network up` starts it)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting")
    parser.add_argument("--rounds", type=int, default=2, help="federated rounds per ledger")
    parser.add_argument("--embedded", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--idle", type=float, default=3.0, help="seconds of the idle networks' CPU, measured first"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the networks' ledgers and logs (0.4 - 1.7 GB a run) after they stop",
    )
    return parser


def _report_cpu(usage: Any, transactions: int) -> None:
    print("\n".join("           " + line for line in usage.report(transactions)))


def _measure_load(
    args: argparse.Namespace, homes: dict[str, Path], networks: dict[str, Path]
) -> None:
    """``homes``: the embedded ledger's and each network's; ``networks``: their run folders."""
    groups = {n: fabric_networks.process_groups(run) for n, run in networks.items()}
    if args.idle > 0:
        every = {
            kind: (lambda k=kind: [p for g in groups.values() for p in g[k]()])
            for kind in ("orderers", "peers", "chaincode")
        }
        with CpuMeter(every) as idle:
            time.sleep(args.idle)  # nothing to wait for: the span is what is measured
        print(f"\nthe {len(networks)} idle network(s), {args.idle:.0f} s:")
        _report_cpu(idle.usage, 0)
    specs = [Clients.parse(c) for c in args.clients.split(",") if c]
    ledgers = (["embedded"] if args.embedded else []) + list(networks)
    print(f"\n1. load: {args.submits} submits per run, each waited for until committed")
    print(f"   before: {_uptime()}")
    print(HEADER)
    results: dict[tuple[str, Clients], list[LoadResult]] = {}
    for run in range(args.repeat):
        for spec in specs:
            for b in ledgers:
                backend = "embedded" if b == "embedded" else "fabric"
                prefix = f"load-{b}-{spec}-{run}".replace("*", "p")
                r = load(str(homes[b]), backend, prefix, args.submits, spec, groups.get(b))
                results.setdefault((b, spec), []).append(r)
                print(_line(b, r))
                if r.cpu is not None:
                    _report_cpu(r.cpu, args.submits)
    print(f"   after: {_uptime()}")
    print("\nsubmits/s over the runs (min / median / max):")
    for (b, spec), rs in results.items():
        rates = sorted(r.rate for r in rs)
        print(
            f"{b:>10} {spec!s:>9}: {rates[0]:.0f} / {statistics.median(rates):.0f} / {rates[-1]:.0f}"
        )
    first = next(iter(networks))
    for spec in specs:
        base = statistics.median(r.rate for r in results[(first, spec)])
        for b in ledgers:
            if b != first:
                other = statistics.median(r.rate for r in results[(b, spec)])
                print(f"{b}/{first} at {spec}: {other / base:.2f}x")
    best = max(
        ((statistics.median(r.rate for r in rs), b, spec) for (b, spec), rs in results.items()),
        key=lambda t: t[0] if t[1] != "embedded" else -1.0,
    )
    print(f"best Fabric median: {best[0]:.0f} submits/s ({best[1]}, {best[2]}); target >= 250/s")


def _measure_rounds(rounds: int, settings: dict[str, Any]) -> None:
    from fedspec.demo.run import start_local_api
    from fedspec.demo.setup import PROFILES, setup_consortium

    print(f"\n2. the ledger's share of a federated round ({rounds} rounds each)")
    profile = next(p for p in PROFILES if p.id == "digits-8x8")
    profile = replace(profile, hyperparameters={**profile.hyperparameters, "epochs": 2})
    start_local_api()
    for b, s in settings.items():
        os.environ["FEDSPEC_LEDGER"] = s.ledger.backend
        os.environ["FEDSPEC_HOME"] = str(s.home)
        setup_consortium(s, ORGS, [profile], nodes_per_org=1, new_consortium=False)
        for r in round_share(s, profile, rounds):
            print(
                f"{b:>10} round {r['round']} ({r['status']}): {r['wall']:.2f} s, ledger "
                f"{r['ledger']:.2f} s = {r['ledger'] / r['wall']:.0%} over {r['calls']} calls, "
                f"longest call {r['longest']:.2f} s (target <= 1 s)"
            )


def main() -> None:
    args = _parser().parse_args()
    variants = [Setting.parse(n) for n in args.network or ["default"]]
    if len({v.name for v in variants}) < len(variants) or "embedded" in {v.name for v in variants}:
        raise SystemExit("--network names must differ from each other and from 'embedded'")
    root = bench_dir("fedspec-bench-fabric-", fedspec_home=False)
    from fabric_network import network_down
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium
    from fedspec.app.settings import Settings
    from tests.fabric_support import free_base_port

    consortium = init_consortium(ORGS, root / "consortium", nodes_per_org=1)
    (root / "embedded").mkdir()
    (root / "embedded" / "consortium").symlink_to(consortium)
    homes = {"embedded": root / "embedded"}
    layouts = []
    try:
        for v in variants:
            homes[v.name] = root / f"fabric-{v.name}"
            layouts.append(fabric_networks.start(v, homes[v.name], consortium, free_base_port()))
            print(f"Fabric network {v}")
        settings = {
            b: Settings.load(h, env={"FEDSPEC_LEDGER": "embedded" if b == "embedded" else "fabric"})
            for b, h in homes.items()
        }
        for s in settings.values():
            init_ledger(s)
        _measure_load(
            args, homes, {v.name: lay.run_dir for v, lay in zip(variants, layouts, strict=True)}
        )
        if args.rounds:
            first = variants[0].name
            _measure_rounds(args.rounds, {b: settings[b] for b in ("embedded", first)})
    finally:
        for lay in layouts:
            network_down(lay, wipe=not args.keep)
            if args.keep:
                print(f"kept {lay.run_dir}")


if __name__ == "__main__":
    main()

"""Aggregation throughput: fedspec's strategies against Flower's and against a numpy copy.

Throughput is the bytes of node updates read per second (N × P × itemsize / best time).
A large ``np.copyto`` of the same number of bytes, timed in the same run, is the memory
bound to compare with. Flower cannot live in ``.venv`` (flwr pins a fastapi that our
Prefect pin excludes), so its functions run in a subprocess of ``.venv-bench`` on arrays of
the same shapes, dtype and seed; the environment is created on first use::

    .venv/bin/uv venv .venv-bench --python 3.11
    .venv/bin/uv pip install --python .venv-bench/bin/python flwr==1.42.0

Run: ``.venv/bin/python -m benchmarks.aggregation [--nodes 10 50] [--params 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from federated.strategies import aggregate

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
FLWR_VERSION = "1.42.0"
TRIM = 0.2

# Runs inside .venv-bench: same shapes, dtype and seed as make_updates below.
FLOWER_WORKER = r"""
import json, sys, time
import numpy as np
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.server.strategy.aggregate import (
    aggregate, aggregate_inplace, aggregate_median, aggregate_trimmed_avg,
)

args = json.loads(sys.argv[1])
n, shapes, dtype, repeat = args["nodes"], args["shapes"], args["dtype"], args["repeat"]
rng = np.random.default_rng(args["seed"])
updates = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(n)]
counts = [int(c) for c in rng.integers(50, 500, n)]
pairs = list(zip(updates, counts))
fit_results = [
    (None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(u), c, {}))
    for u, c in pairs
]

def best(fn):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

out = {
    "aggregate": best(lambda: aggregate(pairs)),
    "aggregate_inplace": best(lambda: aggregate_inplace(fit_results)),
    "aggregate_median": best(lambda: aggregate_median(pairs)),
    "aggregate_trimmed_avg": best(lambda: aggregate_trimmed_avg(pairs, args["trim"])),
}
print(json.dumps(out))
"""


def make_updates(
    nodes: int, shapes: list[tuple[int, ...]], dtype: str, seed: int
) -> tuple[list[list[np.ndarray]], list[int]]:
    rng = np.random.default_rng(seed)
    updates = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(nodes)]
    counts = [int(c) for c in rng.integers(50, 500, nodes)]
    return updates, counts


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def copy_time(nbytes: int, dtype: str, repeat: int) -> float:
    """Best time of one large ``np.copyto`` of ``nbytes`` (the memory bound to compare with)."""
    source = np.ones(nbytes // np.dtype(dtype).itemsize, dtype=dtype)
    target = np.empty_like(source)
    return best_time(lambda: np.copyto(target, source), repeat)


def shapes_for(params: int) -> list[tuple[int, ...]]:
    """A dense layer and its bias, plus a small layer: P values in all."""
    width = 1000
    rows = max(1, (params - width - 10) // width)
    rest = params - rows * width - 10
    return [(rows, width), (max(rest, 1),), (10,)]


def bench_python() -> Path | None:
    """``.venv-bench``'s python with flwr, created if missing; ``None`` if that fails."""
    python = BENCH_VENV / "bin" / "python"
    check = [str(python), "-c", f"import flwr; assert flwr.__version__ == '{FLWR_VERSION}'"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    uv = ROOT / ".venv" / "bin" / "uv"
    uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
    if uv_cmd is None:
        print("SKIP flower: no uv to create .venv-bench (see this module's docstring)")
        return None
    print(f"creating {BENCH_VENV.name} with flwr=={FLWR_VERSION} (once) ...", flush=True)
    steps = [
        [uv_cmd, "venv", str(BENCH_VENV), "--python", "3.11", "-q"],
        [uv_cmd, "pip", "install", "-q", "--python", str(python), f"flwr=={FLWR_VERSION}"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"SKIP flower: {' '.join(step[:3])} failed: {done.stderr.strip()[-300:]}")
            return None
    return python


def flower_times(
    python: Path, nodes: int, shapes: list[tuple[int, ...]], dtype: str, repeat: int, seed: int
) -> dict[str, float] | None:
    payload = {
        "nodes": nodes, "shapes": shapes, "dtype": dtype, "repeat": repeat,
        "seed": seed, "trim": TRIM,
    }  # fmt: skip
    done = subprocess.run(
        [str(python), "-c", FLOWER_WORKER, json.dumps(payload)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"SKIP flower: worker failed: {done.stderr.strip()[-500:]}")
        return None
    times: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return times


def gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


def run_case(
    nodes: int, params: int, dtype: str, repeat: int, python: Path | None, seed: int = 0
) -> None:
    shapes = shapes_for(params)
    updates, counts = make_updates(nodes, shapes, dtype, seed)
    nbytes = sum(a.nbytes for u in updates for a in u)
    copy = gbps(nbytes, copy_time(nbytes, dtype, repeat))
    ours = {
        "fedavg": best_time(lambda: aggregate.weighted_mean(updates, counts), repeat),
        "median": best_time(lambda: aggregate.coordinate_median(updates), repeat),
        "trimmed-mean": best_time(lambda: aggregate.trimmed_mean(updates, TRIM), repeat),
        "krum-distances": best_time(lambda: aggregate.pairwise_sq_distances(updates), repeat),
    }
    theirs = flower_times(python, nodes, shapes, dtype, repeat, seed) if python else None
    print(
        f"\nN={nodes} nodes × P={params:,} {dtype} ({nbytes / 1e6:,.0f} MB of updates); "
        f"numpy copy: {copy:.2f} GB/s"
    )
    print(f"  {'fedspec':<16}{'GB/s':>8}{'% copy':>8}   {'flower':<30}{'GB/s':>8}{'ratio':>8}")
    pairs = {
        "fedavg": ["aggregate_inplace", "aggregate"],
        "median": ["aggregate_median"],
        "trimmed-mean": ["aggregate_trimmed_avg"],
        "krum-distances": [],
    }
    for name, seconds in ours.items():
        rate = gbps(nbytes, seconds)
        label = f"  {name:<16}{rate:8.2f}{100 * rate / copy:7.0f}%"
        rows = pairs[name] if theirs else []
        if not rows:
            print(label)
        for i, flower in enumerate(rows):
            their_rate = gbps(nbytes, theirs[flower]) if theirs else float("nan")
            prefix = label if i == 0 else " " * len(label)
            print(f"{prefix}   {flower:<30}{their_rate:8.2f}{rate / their_rate:7.1f}×")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--params", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-flower", action="store_true", help="skip Flower's functions")
    args = parser.parse_args(argv)
    python = None if args.no_flower else bench_python()
    if args.no_flower:
        print("SKIP flower: --no-flower")
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}")
    for dtype in args.dtype:
        for nodes in args.nodes:
            for params in args.params:
                run_case(nodes, params, dtype, args.repeat, python)


if __name__ == "__main__":
    main()

"""How long the read-only commands take to answer, as a user starts them.

Workload: a home made by ``fedspec demo --ledger-only`` (a consortium, the embedded ledger,
the demo's profiles with champions on the ledger). Each command runs ``--runs`` times in a
fresh process; the table gives min and median wall seconds and the ratio of the median to a
bare interpreter start (``python -c pass``), measured in the same run: what is left above 1×
is imports and work.

Targets (issue 17, on a quiet 2-core machine): ``fedspec --help`` ≤ 0.5 s; ``profile list``
and ``model find`` ≤ 1.5 s. Read paths load no model layer (scikit-learn, torch), no MLflow
and no gRPC: ``ledger_client`` and ``registry`` export their names lazily.

Run: ``.venv/bin/python -m benchmarks.read_paths [--runs 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.sandbox import bench_dir

TARGETS = {"--help": 0.5, "profile list": 1.5, "model find": 1.5}


def _timed(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    home = bench_dir("fedspec-read-paths-")
    fedspec = [str(Path(sys.executable).parent / "fedspec"), "--home", str(home)]
    subprocess.run([*fedspec, "demo", "--ledger-only"], check=True, capture_output=True)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "--help": [*fedspec, "--help"],
        "profile list": [*fedspec, "profile", "list"],
        "model find": [*fedspec, "model", "find", "--char", "modality=image", "--no-record"],
    }
    results = {name: _timed(argv, args.runs) for name, argv in commands.items()}
    base = statistics.median(results["python -c pass"])
    print(f"read paths, {args.runs} runs each, home from `fedspec demo --ledger-only`")
    print(f"{'command':<16} {'min s':>7} {'median s':>9} {'× python':>9} {'target s':>9}")
    for name, times in results.items():
        median = statistics.median(times)
        target = TARGETS.get(name)
        print(
            f"{name:<16} {min(times):>7.2f} {median:>9.2f} {median / base:>8.1f}× "
            f"{'' if target is None else f'{target:.1f}':>9}"
        )


if __name__ == "__main__":
    main()

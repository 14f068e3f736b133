"""How long the commands of the README's walkthrough take to start and answer.

Workload: the walkthrough's first steps (README.md, "Run a consortium"): four organizations
and the ordering organization, each in its own home; the consortium founded from their
bundles; one embedded ledger file; ``flights-delay`` voted in; each member's CSV written by
``examples/data/flights_csv.py``. Then, each ``--runs`` times in a fresh process: ``data
add`` of a node's file and of the evaluation set, ``data list``, ``round volunteer``; and two
rounds, each as the walkthrough runs it: org2–org4 ``round join`` in the background, org1
``round run --dispatch own``. The first round starts on fresh Prefect and MLflow databases
(both migrate their schema), the second on the ones the first left.

Baselines measured in the same run: ``python -c pass`` (an interpreter start);
``fedspec version``, the floor of every command (the interpreter, Typer, which builds the
whole command tree and imports pydantic to coerce each parameter, and the command line's own
modules): what a command takes above it is its own imports and work;
``import great_expectations``, the floor of a command that validates a file with Great
Expectations (``data add``); ``import flows.rounds``, what a round's process imports before
it can run a flow. A round is split at its first flow run (Prefect's "Beginning flow run"
log line): start-up before it (imports, Prefect's temporary API, the MLflow store), the
flows (the round itself, whose windows wait on the joining members), and the exit.
The commands' runs are interleaved (one run of each, then the next), and each prints its CPU
seconds (user + system, children included) beside its wall seconds: on a shared machine the
CPU seconds move less with the load than the wall seconds do.

Run: ``.venv/bin/python -m benchmarks.startup [--runs 3]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.sandbox import bench_dir

REPO = Path(__file__).resolve().parents[1]
PROFILE = "flights-delay"
ORGS = ["org1", "org2", "org3", "org4"]
_FLOW_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) \| INFO .*(Beginning flow run|Finished in state)")


def _env(walk: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDSPEC_", "PREFECT_"))}
    return {
        **env,
        "FEDSPEC_LEDGER_PATH": str(walk / "ledger.sqlite"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{walk / 'mlflow.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",  # the flow-run lines split a round into phases
    }


def _fedspec(home: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "fedspec.cli", "--home", home, *args]


def _setup(walk: Path, env: dict[str, str]) -> None:
    """The walkthrough's steps up to its data files (commands as README.md runs them)."""
    steps: list[list[str]] = []
    for org in ORGS:
        steps += [
            _fedspec(org, "org", "init", org, "--nodes", "1"),
            _fedspec(org, "org", "export", "--out", f"{org}.bundle"),
        ]
    steps += [
        _fedspec("ordering", "org", "init", "ordering", "--orderers", "1"),
        _fedspec("ordering", "org", "export", "--out", "ordering.bundle"),
    ]
    members = [a for org in [*ORGS, "ordering"] for a in ("--member", f"{org}.bundle")]
    steps += [_fedspec(org, "consortium", "create", *members) for org in ORGS]
    steps += [_fedspec("org1", "ledger", "init")]
    steps += [_fedspec(org, "ledger", "join") for org in ORGS[1:]]
    profile_file = REPO / "examples" / "profiles" / f"{PROFILE}.yaml"
    steps += [_fedspec("org1", "profile", "propose", str(profile_file))]
    steps += [_fedspec(org, "profile", "vote", PROFILE) for org in ORGS[:3]]
    script = REPO / "examples" / "data" / "flights_csv.py"
    steps += [[sys.executable, str(script), "--out", "data", "--members", "4"]]
    for argv in steps:
        subprocess.run(argv, cwd=walk, env=env, check=True, capture_output=True)


Timings = dict[str, tuple[list[float], list[float]]]  # command → (wall s, CPU s) per run


def _timed(
    commands: dict[str, list[str]], runs: int, cwd: Path, env: dict[str, str], *, status: int = 0
) -> Timings:
    """Wall and CPU seconds (user + system, of the command and every child it waited for) of
    each command, ``runs`` times, interleaved: one run of each, then the next, so that a change
    of load on a shared machine falls on every command alike."""
    timings: Timings = {name: ([], []) for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=cwd, env=env, check=False, capture_output=True)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != status:
                raise RuntimeError(f"{argv}: exit {done.returncode}: {done.stderr[-2000:]!r}")
            timings[name][0].append(wall)
            timings[name][1].append(
                after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            )
    return timings


def _clock(line_time: str, started: float) -> float:
    """A log line's local ``HH:MM:SS.fff`` as seconds since ``started`` (a wall clock)."""
    day = dt.datetime.fromtimestamp(started).date()
    at = dt.datetime.combine(day, dt.time.fromisoformat(line_time)).timestamp() - started
    return at + 86400 if at < -3600 else at  # the round ran past midnight


def _round(walk: Path, env: dict[str, str]) -> dict[str, float]:
    """One round as the walkthrough runs it; seconds of each phase of org1's ``round run``."""
    joins = [
        subprocess.Popen(
            _fedspec(org, "round", "join", PROFILE),
            cwd=walk,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for org in ORGS[1:]
    ]
    started = time.time()
    run = subprocess.run(
        _fedspec("org1", "round", "run", PROFILE, "--dispatch", "own"),
        check=False,  # a failed round is reported with its output below
        cwd=walk,
        env=env,
        capture_output=True,
        text=True,
    )
    total = time.time() - started
    for join in joins:
        join.wait()
    if run.returncode != 0 or any(j.returncode for j in joins):
        raise RuntimeError(f"the round failed: {run.stdout[-2000:]}{run.stderr[-2000:]}")
    marks = [
        _clock(m[1], started)
        for line in (run.stdout + run.stderr).splitlines()
        if (m := _FLOW_LINE.match(line))
    ]
    first, last = min(marks), max(marks)
    return {"total": total, "start-up": first, "flows": last - first, "exit": total - last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    walk = bench_dir("fedspec-startup-", fedspec_home=False)
    env = _env(walk)
    _setup(walk, env)
    py = sys.executable
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "fedspec version": _fedspec("org1", "version"),
        "import great_expectations": [py, "-c", "import great_expectations"],
        "import flows.rounds": [py, "-c", "import flows.rounds"],
        "data add --node": _fedspec(
            "org1", "data", "add", "--node", "org1/node0", "--profile", PROFILE,
            "data/flights-1.csv",
        ),
        "data add --evaluation": _fedspec(
            "org1", "data", "add", "--evaluation", "--profile", PROFILE,
            "data/flights-evaluation.csv",
        ),
        "data list": _fedspec("org1", "data", "list"),
        "round volunteer": _fedspec("org1", "round", "volunteer", PROFILE),
    }  # fmt: skip
    results = _timed(commands, args.runs, walk, env)
    for k in range(2, len(ORGS) + 1):  # every member's data, as the walkthrough adds it
        org = f"org{k}"
        for argv in (
            _fedspec(org, "data", "add", "--node", f"{org}/node0", "--profile", PROFILE,
                     f"data/flights-{k}.csv"),
            _fedspec(org, "data", "add", "--evaluation", "--profile", PROFILE,
                     "data/flights-evaluation.csv"),
            _fedspec(org, "round", "volunteer", PROFILE),
        ):  # fmt: skip
            subprocess.run(argv, cwd=walk, env=env, check=True, capture_output=True)
    # A member's `round join` (its node volunteers) up to its first look at the ledger: no
    # round is open, and it gives up after 1 s (exit 2); what is above 1 s is its start-up.
    join = {
        "round join (--timeout 1)": _fedspec("org2", "round", "join", PROFILE, "--timeout", "1")
    }
    results |= _timed(join, args.runs, walk, env, status=2)
    rounds = [_round(walk, env) for _ in range(2)]

    def median(name: str, cpu: bool = False) -> float:
        return statistics.median(results[name][1 if cpu else 0])

    base, ge, flows = (
        median(n) for n in ("python -c pass", "import great_expectations", "import flows.rounds")
    )
    ge_cpu = median("import great_expectations", cpu=True)
    print(
        f"walkthrough commands, {args.runs} runs each, interleaved; load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'command':<26} {'min s':>7} {'median s':>9} {'× python':>9} {'× import GE':>12} "
        f"{'CPU s':>7} {'CPU × GE':>9}"
    )
    for name, (walls, _) in results.items():
        wall, cpu = median(name), median(name, cpu=True)
        print(
            f"{name:<26} {min(walls):>7.2f} {wall:>9.2f} {wall / base:>8.1f}× "
            f"{wall / ge:>11.2f}× {cpu:>7.2f} {cpu / ge_cpu:>8.2f}×"
        )
    print(f"\nround run --dispatch own, 3 members joining; import flows.rounds: {flows:.2f} s")
    header = ("total s", "start-up s", "× import", "flows s", "exit s")
    print(f"{'round':<26} " + " ".join(f"{h:>10}" for h in header))
    for label, phases in zip(("1 (fresh databases)", "2"), rounds, strict=True):
        print(
            f"{label:<26} {phases['total']:>10.1f} {phases['start-up']:>10.1f} "
            f"{phases['start-up'] / flows:>9.1f}× {phases['flows']:>10.1f} {phases['exit']:>10.1f}"
        )


if __name__ == "__main__":
    main()

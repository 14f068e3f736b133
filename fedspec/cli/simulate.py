"""``fedspec simulate``: rounds of a profile over many virtual nodes, on this machine or a
Dask cluster, with the node code of real rounds (flows/simulate.py). Nothing is recorded:
a simulation is not a round."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from fedspec.cli.completion import complete_profile
from fedspec.cli.context import State
from fedspec.cli.options import JsonOption, ReadAsOption
from fedspec.console.output import emit_json, table

PROFILE_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def simulate(
    ctx: typer.Context,
    profile: Annotated[
        str,
        typer.Argument(
            metavar="PROFILE",
            help="An active profile id on the ledger (e.g. digits-8x8), or a profile file "
            "(.yaml, .yml, .json; e.g. examples/profiles/digits-8x8.yaml)",
            autocompletion=complete_profile,
        ),
    ],
    nodes: Annotated[
        int, typer.Option("--nodes", min=1, max=1_000_000, help="Virtual nodes")
    ] = 100,
    rounds: Annotated[int, typer.Option(min=1, max=1000, help="Rounds, one after the other")] = 3,
    engine: Annotated[
        str,
        typer.Option(help="local: in this process, one node after the other; dask: on Dask"),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="A running Dask scheduler, e.g. tcp://scheduler:8786",
            show_default="a LocalCluster on this machine",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=256, help="Worker processes of the LocalCluster")
    ] = 2,
    chunk_size: Annotated[
        int | None,
        typer.Option(
            "--chunk-size",
            min=1,
            help="Virtual nodes per engine task",
            show_default="N/(4×workers)",
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Built-in dataset split over the nodes", show_default="the profile id"),
    ] = None,
    dirichlet: Annotated[
        float | None,
        typer.Option(
            metavar="ALPHA", help="Non-IID: Dirichlet(ALPHA) label skew", show_default="IID"
        ),
    ] = None,
    min_rows: Annotated[
        int, typer.Option("--min-rows", min=1, help="Fewest training rows a virtual node gets")
    ] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the split, the model, the training")] = 0,
    as_identity: ReadAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Simulate ROUNDS rounds of PROFILE over NODES virtual nodes (nothing is recorded).

    Each virtual node trains with the profile's model, hyper-parameters and privacy, by the
    code of real rounds; the profile's strategy aggregates; held-out rows evaluate."""
    if engine not in ("local", "dask"):
        raise typer.BadParameter("must be 'local' or 'dask'", param_hint="--engine")
    if dirichlet is not None and not dirichlet > 0:  # NaN too
        raise typer.BadParameter("must be a positive number", param_hint="--dirichlet")
    if address is not None and engine != "dask":
        raise typer.BadParameter("a scheduler address needs --engine dask", param_hint="--address")
    state: State = ctx.obj
    profile_id, spec = _profile(state, profile, as_identity)
    # Deferred: loads numpy, sklearn, torch, prefect only when used.
    from flows.virtual_nodes import build_population

    # Refused here, in one line, before Prefect (and the seconds it takes) starts: no rows
    # for that many nodes, a dataset that does not fit, no engine, no scheduler.
    build_population(
        profile_id, spec, nodes=nodes, dataset=dataset, dirichlet=dirichlet,
        min_rows=min_rows, seed=seed,
    )  # fmt: skip
    if engine == "dask":
        from flows.simulate import connect, require_dask

        require_dask()
        if address is not None:
            connect(address).close()
    # As `fedspec round run`: Prefect's local API keeps its database beside this home.
    prefect_home = state.settings.home / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(prefect_home))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from flows.rounds import local_api_settings
    from flows.simulate import simulate_profile

    with local_api_settings():
        summary = simulate_profile(
            profile_id, spec, nodes=nodes, rounds=rounds, engine=engine, address=address,
            workers=workers, chunk_size=chunk_size, dataset=dataset, dirichlet=dirichlet,
            min_rows=min_rows, seed=seed, progress=not json_out,
        )  # fmt: skip
    if json_out:
        emit_json(summary)
    else:
        _say(summary)
    if any(r.get("error") for r in summary["rounds"]):
        raise typer.Exit(1)  # a round missed its quorum or gave an unusable model


def _profile(state: State, profile: str, as_identity: str | None) -> tuple[str, dict[str, Any]]:
    """A profile file when PROFILE names one (by suffix or as an existing file), else an
    active profile on the ledger."""
    path = Path(profile)
    if path.suffix.lower() in PROFILE_FILE_SUFFIXES or path.is_file():
        from fedspec.app.profiles import load_profile_file

        spec = load_profile_file(path)
        return str(spec["id"]), spec
    from ledger_client import open_ledger

    record = open_ledger(state.settings.ledger, as_identity or state.default_admin()).get_profile(
        profile
    )
    if record.status != "active":
        raise typer.BadParameter(f"profile {profile} is {record.status}, not active")
    return record.id, record.spec


def _say(summary: dict[str, Any]) -> None:
    table(
        f"{summary['profile']}: {summary['nodes']} virtual nodes of {summary['dataset']} on "
        f"{summary['engine']} ({summary['workers']} workers, {summary['chunks']} chunks)",
        ["round", "accuracy", "log loss", "trained", "failed", "seconds", "nodes/s", "error"],
        [
            (
                r["round"],
                r.get("accuracy", ""),
                r.get("log_loss", ""),
                r["nodes_trained"],
                r["nodes_failed"],
                r["seconds"],
                r.get("nodes_per_s", ""),
                r.get("error", ""),
            )
            for r in summary["rounds"]
        ],
    )
    typer.echo(
        f"{len(summary['rounds'])} rounds in {summary['seconds']} s, {summary['nodes_per_s']} "
        f"nodes/s, {summary['nodes_failed']} node failures; {summary['note']}"
    )

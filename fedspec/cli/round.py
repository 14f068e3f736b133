"""``fedspec round``: run a profile's federated rounds, one node's part in a round, or read
a round's status from the ledger."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from fedspec.cli.completion import complete_node
from fedspec.cli.context import State
from fedspec.cli.options import ActAsOption, JsonOption, ProfileArgument, ReadAsOption
from fedspec.cli.round_status import status
from fedspec.console.output import emit_json, errors, table

app = typer.Typer(
    help="Run federated rounds of a profile, or read a round's status.", no_args_is_help=True
)
app.command("status")(status)


def _quiet_prefect(state: State) -> None:
    # Prefect's local API keeps its database beside the rest of this home.
    os.environ.setdefault("PREFECT_HOME", str(state.settings.home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


@contextmanager
def _progress(state: State, profile_id: str, rounds: int, *, enabled: bool) -> Iterator[None]:
    """The round's phases live on stderr, read from the ledger's events (as the demo shows
    them), so the flows need not report to the terminal."""
    if not enabled:
        yield
        return
    # Deferred: the command line starts without it.
    from fedspec.console.progress import LedgerProgress

    with LedgerProgress(state.settings, [profile_id], rounds).live(errors):
        yield


@app.command("run")
def run(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    rounds: Annotated[int, typer.Option(min=1, max=1000, help="Rounds, one after the other")] = 1,
    dispatch: Annotated[
        str,
        typer.Option(
            help="local: every node's agent here; own: this home's nodes here, the other "
            "members' by `fedspec round join`; deployments: on each org's pool"
        ),
    ] = "local",
    as_identity: ActAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run ROUNDS rounds of PROFILE with the nodes that volunteer for it."""
    if dispatch not in ("local", "own", "deployments"):
        raise typer.BadParameter("must be 'local', 'own' or 'deployments'", param_hint="--dispatch")
    state: State = ctx.obj
    _quiet_prefect(state)
    # Deferred: the command line starts without it.
    from ledger_client import open_ledger

    opener = as_identity or state.default_admin()
    # An unknown or inactive profile is refused here, in one line, before Prefect (and the
    # seconds its import takes) starts.
    profile = open_ledger(state.settings.ledger, opener).get_profile(profile_id)
    if profile.status != "active":
        raise typer.BadParameter(f"profile {profile_id} is {profile.status}, not active")
    # Prefect's temporary API boots in its own process while this one imports the flows
    # and opens the MLflow store (flows.local_api says why).
    from flows.local_api import start_local_api

    api = start_local_api()
    # Deferred: loads numpy, pandas, prefect, safetensors, scipy, sklearn only when used.
    from flows.rounds import federated_training, local_api_settings, open_tracking

    open_tracking(str(state.settings.home))
    with local_api_settings(api), _progress(state, profile_id, rounds, enabled=not json_out):
        summaries = federated_training(
            profile_id,
            rounds=rounds,
            opener=opener,
            home=str(state.settings.home),
            dispatch=dispatch,
        )
    if json_out:
        emit_json(summaries)
        return
    table(
        profile_id,
        ["round", "status", "coordinator", "participants", "model", "reason"],
        [
            (
                s["round"],
                s["status"],
                s["coordinator"],
                len(s["participants"]),
                s["model"][:12],
                (s["failure"] or {}).get("reason", ""),
            )
            for s in summaries
        ],
    )
    if any(s["status"] != "closed" for s in summaries):
        raise typer.Exit(1)


@app.command("node")
def node(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    node_id: Annotated[
        str,
        typer.Option("--node", help="This node, e.g. org2/node0", autocompletion=complete_node),
    ],
    round_no: Annotated[
        int | None,
        typer.Option("--round", min=1, help="The round", show_default="the profile's current"),
    ] = None,
    parent_run_id: Annotated[
        str | None,
        typer.Option(help="The round's MLflow run", show_default="found by round"),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Take part in a round as NODE: join, train on local data, commit, coordinate if elected."""
    state: State = ctx.obj
    # Deferred: the command line starts without it.
    from ledger_client import open_ledger

    if round_no is None:  # an unknown profile is refused here, before the heavy imports
        round_no = open_ledger(state.settings.ledger, node_id).round_status(profile_id).number
    # Deferred: loads numpy, pandas, safetensors, scipy, sklearn only when used.
    from flows.node_agent import run_node

    outcome = run_node(node_id, profile_id, round_no, parent_run_id, str(state.settings.home))
    if json_out:
        emit_json(outcome)
        return
    typer.echo(
        f"{outcome['node']} in {profile_id} round {round_no}: {outcome['role']}, "
        f"{outcome['status']}" + (f" ({outcome['reason']})" if outcome["reason"] else "")
    )
    if outcome["status"] not in ("ok", "excluded"):
        raise typer.Exit(1)


@app.command("join")
def join(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    nodes: Annotated[
        list[str] | None,
        typer.Option(
            "--node",
            help="A node of this home, e.g. org2/node0 (repeatable)",
            autocompletion=complete_node,
            show_default="this home's nodes that volunteer for PROFILE",
        ),
    ] = None,
    timeout_s: Annotated[
        int,
        typer.Option("--timeout", min=1, max=86400, help="Seconds to wait for a round to open"),
    ] = 600,
    json_out: JsonOption = False,
) -> None:
    """Wait for PROFILE's next round and take part with this home's own nodes.

    Another member opens the round (`fedspec round run PROFILE --dispatch own`); each
    member runs its own nodes with its own keys and data."""
    state: State = ctx.obj
    settings = state.settings
    # Deferred: the command line starts without it.
    from ledger_client import Consortium, open_ledger

    consortium = Consortium.load(settings.ledger.consortium_dir)
    own = [n for n in consortium.node_refs() if n.partition("/")[0] in consortium.own]
    for node in nodes or []:
        if node not in own:
            raise typer.BadParameter(f"{node} is not a node of this home", param_hint="--node")
    if not nodes:
        volunteers = set(
            open_ledger(settings.ledger, consortium.default_admin).volunteers(profile_id)
        )
        nodes = [n for n in own if n in volunteers]
        if not nodes:
            raise typer.BadParameter(
                f"no node of this home volunteers for {profile_id} (`fedspec round volunteer`)"
            )
    # Deferred: loads numpy, pandas, safetensors, scipy, sklearn only when used.
    from flows.joining import join_round

    outcomes = join_round(settings, profile_id, list(nodes), timeout_s=timeout_s)
    if json_out:
        emit_json(outcomes)
    else:
        for o in outcomes:
            reason = f" ({o['reason']})" if o.get("reason") else ""
            typer.echo(
                f"{o['node']} in {profile_id} round {o['round']}: {o.get('role', '')} {o['status']}{reason}"
            )
    if any(o["status"] not in ("ok", "excluded") for o in outcomes):
        raise typer.Exit(1)


@app.command("volunteer")
def volunteer(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    nodes: Annotated[
        list[str] | None,
        typer.Option(
            "--node",
            help="A node of this home, e.g. org2/node0 (repeatable)",
            autocompletion=complete_node,
            show_default="every node of this home whose data fits",
        ),
    ] = None,
    withdraw: Annotated[
        bool, typer.Option("--withdraw", help="Stop volunteering for PROFILE instead")
    ] = False,
    as_identity: ReadAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Volunteer this home's nodes whose local data fits PROFILE (e.g. a child after a split)."""
    # Deferred: loads numpy, pandas only when used.
    from flows.environment import volunteer_fitting
    from ledger_client import Consortium, open_ledger

    state: State = ctx.obj
    settings = state.settings
    # Unknown or inactive profiles are refused before any node writes (the ledger would
    # refuse each Volunteer whole too; this names the cause once).
    profile = open_ledger(settings.ledger, as_identity or state.default_admin()).get_profile(
        profile_id
    )
    if profile.status != "active" and not withdraw:
        raise typer.BadParameter(f"profile {profile_id} is {profile.status}, not active")
    known = Consortium.load(settings.ledger.consortium_dir).node_refs()
    for node in nodes or []:
        if node not in known:
            raise typer.BadParameter(
                f"{node} is not a node of this consortium", param_hint="--node"
            )
    # Without --node: the nodes whose data lives in this home (a member holds only its own).
    chosen = (
        list(nodes) if nodes else [n for n in known if (settings.data_dir / "nodes" / n).is_dir()]
    )
    refused: dict[str, str] = {}
    if withdraw:
        done = []
        for node in chosen:
            ledger = open_ledger(settings.ledger, node)
            if node in ledger.volunteers(profile_id):
                ledger.withdraw(profile_id)
                done.append(node)
    else:
        outcome = volunteer_fitting(settings, profile_id, chosen)
        done, refused = outcome.joined, outcome.refused
    if json_out:
        key = "withdrew" if withdraw else "volunteered"
        emit_json({"profile": profile_id, key: done, **({} if withdraw else {"refused": refused})})
    else:
        _say_volunteering(settings.data_dir, profile_id, chosen, done, refused, withdraw=withdraw)
    if not withdraw and not done:
        raise typer.Exit(1)  # nothing happened, and each node's reason was said


def _say_volunteering(
    data_dir: Path,
    profile_id: str,
    chosen: list[str],
    done: list[str],
    refused: dict[str, str],
    *,
    withdraw: bool,
) -> None:
    verb = "withdrew from" if withdraw else "volunteer for"
    if not chosen:
        typer.echo(f"no node of this home holds data under {data_dir / 'nodes'}")
    elif done or not refused:
        typer.echo(f"{', '.join(done) or 'no node'} {verb} {profile_id}")
    for node, reason in refused.items():
        typer.echo(f"{node} does not volunteer: {reason}")

"""``fedspec profile``: propose, vote on, retire and inspect specialization profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedspec.cli.options import ActAsOption, JsonOption, ProfileArgument
from fedspec.console.output import console, emit_json, table

app = typer.Typer(
    help="Propose, vote on, retire and inspect specialization profiles.", no_args_is_help=True
)

AsOption = ActAsOption


@app.command("propose")
def propose(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The profile document, .yaml or .json")],
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Propose the profile in FILE (YAML or JSON); it becomes active once a majority votes for it."""
    # Deferred: the command line starts without it.
    from fedspec.app.profiles import load_profile_file

    spec = load_profile_file(file)  # refuses before anything is signed
    profile = ctx.obj.ledger(as_identity).propose_profile(spec)
    if json_out:
        emit_json(profile.to_json())
    else:
        console.print(
            f"profile [bold]{profile.id}[/] proposed by {profile.proposed_by}; status {profile.status}"
        )


def _vote(
    ctx: typer.Context,
    profile_id: str,
    action: str,
    approve: bool,
    as_identity: str | None,
    json_out: bool,
) -> None:
    outcome = ctx.obj.ledger(as_identity).vote_profile(profile_id, approve=approve, action=action)
    if json_out:
        emit_json(outcome.to_json())
    else:
        console.print(
            f"{outcome.org} voted {'for' if approve else 'against'} {action} of {profile_id}: "
            f"{outcome.approvals} for, {outcome.rejections} against of {outcome.members} "
            f"members → {outcome.status}"
        )


@app.command("vote")
def vote(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    reject: Annotated[bool, typer.Option("--reject", help="Vote against")] = False,
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Cast your organization's vote (as its admin) to activate a proposed profile."""
    _vote(ctx, profile_id, "activate", not reject, as_identity, json_out)


@app.command("retire")
def retire(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    reject: Annotated[bool, typer.Option("--reject", help="Vote against retiring")] = False,
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Cast your organization's vote to retire an active profile."""
    _vote(ctx, profile_id, "retire", not reject, as_identity, json_out)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="proposed, active, retired or rejected")
    ] = None,
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Profiles on the ledger."""
    profiles = ctx.obj.ledger(as_identity).list_profiles(status or "")
    if json_out:
        emit_json([p.to_json() for p in profiles])
        return
    table(
        "profiles",
        ["id", "status", "characteristics", "objective", "model", "strategy"],
        [
            (
                p.id,
                p.status,
                ", ".join(f"{k}={v}" for k, v in p.spec["characteristics"].items()),
                f"{p.spec['objective']['direction']} {p.spec['objective']['metric']}",
                p.spec["model"]["family"],
                p.spec["aggregation"]["strategy"],
            )
            for p in profiles
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """One profile: its document, status and votes."""
    profile = ctx.obj.ledger(as_identity).get_profile(profile_id)
    if json_out:
        emit_json(profile.to_json())
        return
    # Deferred: loads yaml only when used.
    import yaml

    console.print(f"[bold]{profile.id}[/] ({profile.status}), proposed by {profile.proposed_by}")
    console.print(
        yaml.safe_dump(profile.spec, sort_keys=False).rstrip(), highlight=False, markup=False
    )
    for v in profile.votes:
        console.print(f"  vote: {v['org']} {'for' if v['approve'] else 'against'} ({v['by']})")

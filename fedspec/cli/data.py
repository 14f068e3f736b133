"""``fedspec data``: add a member's own data file for one of its nodes (or the consortium's
evaluation set), list what this home holds, show one dataset, remove one.

Tabular profiles take CSV (UTF-8) and Parquet; image profiles an ``.npz`` holding ``X`` and
``y``, or a folder with one sub-folder of PNG/JPEG images per label (docs/data.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fedspec.cli.completion import complete_node, complete_profile
from fedspec.cli.context import State
from fedspec.cli.options import JsonOption
from fedspec.console.output import emit_json, table

app = typer.Typer(
    help="Add your own data files for this home's nodes, list, show or remove them.",
    no_args_is_help=True,
)

DataNodeOption = Annotated[
    str | None,
    typer.Option(
        "--node", help="A node of this home, e.g. org1/node0", autocompletion=complete_node
    ),
]
EvaluationOption = Annotated[
    bool,
    typer.Option(
        "--evaluation", help="The consortium's held-out evaluation set of PROFILE, not a node's"
    ),
]
DataProfileOption = Annotated[
    str,
    typer.Option(
        "--profile",
        help="The profile the data is for, e.g. flights-delay",
        autocompletion=complete_profile,
    ),
]


def _target(node: str | None, evaluation: bool) -> str | None:
    """The node, or ``None`` for the evaluation set: exactly one of the two."""
    if (node is None) == (not evaluation):
        raise typer.BadParameter("give either --node ORG/NODE or --evaluation", param_hint="--node")
    return node


def _short(fingerprint: Any) -> str:
    return str(fingerprint["sha256"])[:16] if isinstance(fingerprint, dict) else "-"


@app.command("add")
def add(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet (tabular profiles); .npz with X and y, or a folder of "
            "images per label (image profiles)"
        ),
    ],
    profile: DataProfileOption,
    node: DataNodeOption = None,
    evaluation: EvaluationOption = False,
    json_out: JsonOption = False,
) -> None:
    """Map FILE onto PROFILE's input schema, validate it, and store it as NODE's data."""
    target = _target(node, evaluation)
    state: State = ctx.obj
    # Deferred: loads pandas only when used.
    from fedspec.app.data import add_evaluation_data, add_node_data

    if target is None:
        added = add_evaluation_data(state.settings, profile, file)
    else:
        added = add_node_data(state.settings, target, profile, file)
    if json_out:
        emit_json(added.to_json())
        return
    whose = "the evaluation set" if target is None else target
    split = ", ".join(f"{v} {k}" for k, v in added.rows.items())
    typer.echo(
        f"{whose}: {sum(added.rows.values())} rows of {file.name} for {profile} ({split}); "
        f"validated ({added.validation.get('checks', 0)} checks passed); "
        f"fingerprint {added.fingerprint['sha256'][:16]}…"
    )
    if added.ignored:
        typer.echo(f"ignored: {', '.join(added.ignored)}")
    if target is not None:
        typer.echo(f"next: fedspec round volunteer {profile} --node {target}")


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """List the datasets this home holds: each node's, then the evaluation sets."""
    state: State = ctx.obj
    # Deferred: loads pandas only when used.
    from fedspec.app.data import list_data

    entries = list_data(state.settings)
    if json_out:
        emit_json({"datasets": entries})
        return
    table(
        f"data under {state.settings.data_dir}",
        ["node", "profile / dataset", "rows", "fingerprint", "added at"],
        [
            (
                e["node"] or "(evaluation)",
                e["dataset"],
                e["rows"],
                _short(e["fingerprint"]),
                e["added_at"] or "-",
            )
            for e in entries
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    profile: DataProfileOption,
    node: DataNodeOption = None,
    evaluation: EvaluationOption = False,
    json_out: JsonOption = False,
) -> None:
    """Show one dataset: schema, rows, label counts, fingerprint and last validation."""
    target = _target(node, evaluation)
    state: State = ctx.obj
    # Deferred: loads pandas only when used.
    from fedspec.app.data import show_data

    shown = show_data(state.settings, target, profile)
    if json_out:
        emit_json(shown)
        return
    _print_shown(shown)


def _print_shown(shown: dict[str, Any]) -> None:
    schema = shown["feature_schema"] or {}
    columns = schema.get("columns")
    validation = shown["validation"] or {}
    lines = [
        f"dataset    {shown['dataset']} ({shown['node'] or 'evaluation set'})",
        f"directory  {shown['directory']}",
        f"rows       {shown['rows']} ({', '.join(f'{v} {k}' for k, v in shown['split'].items())})",
        "schema     "
        + (
            ", ".join(f"{c['name']}:{c.get('dtype', 'float')}" for c in columns)
            if columns
            else f"shape {schema.get('shape')}, values in [{schema.get('min')}, {schema.get('max')}]"
        ),
        f"labels     {shown['label_counts'] or shown['task_type']}",
        f"fingerprint {(shown['fingerprint'] or {}).get('sha256', '-')}",
        f"added at   {shown['added_at'] or '-'}",
        "validation "
        + (
            f"{'passed' if validation.get('success') else 'failed'} "
            f"({validation.get('passed')}/{validation.get('checks')} checks) at {validation.get('at')}"
            if validation
            else "-"
        ),
    ]
    for line in lines:
        typer.echo(line)


@app.command("remove")
def remove(
    ctx: typer.Context,
    profile: DataProfileOption,
    node: DataNodeOption = None,
    evaluation: EvaluationOption = False,
    json_out: JsonOption = False,
) -> None:
    """Delete NODE's data for PROFILE from this home (the ledger keeps its volunteering)."""
    target = _target(node, evaluation)
    state: State = ctx.obj
    # Deferred: loads pandas only when used.
    from fedspec.app.data import remove_data

    directory = remove_data(state.settings, target, profile)
    hint = (
        None if target is None else f"fedspec round volunteer {profile} --withdraw --node {target}"
    )
    if json_out:
        emit_json({"removed": str(directory), "node": target, "profile": profile, "withdraw": hint})
        return
    typer.echo(f"removed {directory}")
    if hint:
        typer.echo(
            f"{target} still volunteers for {profile} on the ledger if it did; `{hint}` withdraws it"
        )

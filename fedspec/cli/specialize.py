"""``fedspec specialize``: should a profile split, what demand is recorded, what to propose.

``check`` runs the divergence check a round runs after it commits (:mod:`flows.specialization`)
on the profile's last committed rounds, now; ``demand`` lists what unmatched model queries
recorded on the ledger; ``suggest`` turns demand past the thresholds into profile documents.
Nothing is proposed without ``--propose``; a proposal is then voted on like any other.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fedspec.cli.context import State
from fedspec.cli.options import ActAsOption, JsonOption, ProfileArgument
from fedspec.console.output import console, emit_json, table

app = typer.Typer(
    help="Split profiles whose nodes' updates diverge; turn recorded demand into profiles.",
    no_args_is_help=True,
)

ProposeOption = Annotated[
    bool, typer.Option("--propose", help="Propose what is found (the consortium then votes)")
]


@app.command("check")
def check(
    ctx: typer.Context,
    profile_id: ProfileArgument,
    propose: ProposeOption = False,
    as_identity: ActAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run divergence detection on PROFILE's last committed rounds (and the demand check)."""
    # Deferred: loads numpy, prefect only when used.
    from flows.specialization import check_profile

    state: State = ctx.obj
    identity = as_identity or state.default_admin()
    report = check_profile(
        profile_id, state.settings, propose=propose, proposer=identity, reader=identity
    )
    if json_out:
        doc = report.to_json()
        for entry in doc["children"] + doc["demand"]:
            entry.pop("document", None)  # the full documents are on the ledger once proposed
        emit_json(doc)
        return
    for rnd in report.rounds:
        div = rnd.divergence
        if div is None:
            continue
        part = div.bipartition
        table(
            f"{profile_id} round {rnd.round}: cosine similarity of updates "
            f"(norm ratio {div.norm_ratio:.2f}"
            + (f", cross {part.cross_max:.2f}, gap {part.gap:.2f}" if part else "")
            + f") → {'split' if div.split else 'no split'}",
            ["node", *div.nodes, "local loss"],
            [
                [n, *(f"{v:+.2f}" for v in div.similarity[i]), _loss(rnd.losses.get(n))]
                for i, n in enumerate(div.nodes)
            ],
        )
    for line in report.lines:
        console.print(f"• {line}", highlight=False, markup=False, soft_wrap=True)
    if report.children:
        table(
            "children",
            ["id", "nodes", "distinguishing", "status", "reason"],
            [
                [
                    c["id"],
                    ", ".join(c["nodes"]),
                    ", ".join(f"{k}={v}" for k, v in c["distinguishing"].items()),
                    c["status"],
                    c["reason"],
                ]
                for c in report.children
            ],
        )


@app.command("demand")
def demand(
    ctx: typer.Context, as_identity: ActAsOption = None, json_out: JsonOption = False
) -> None:
    """Recorded demand: characteristic sets no profile fitted, with counts and covering profiles."""
    groups = ctx.obj.ledger(as_identity).list_demand()
    if json_out:
        emit_json([g.to_json() for g in groups])
        return
    if not groups:
        console.print("no demand recorded")
        return
    table(
        "demand (characteristics only; never a client's data)",
        ["characteristics", "requests", "requesters", "orgs", "covered by"],
        [
            [
                ", ".join(f"{k}={v}" for k, v in sorted(g.characteristics.items())),
                g.requests,
                len(g.requesters),
                ", ".join(g.orgs),
                ", ".join(g.profiles) or "—",
            ]
            for g in groups
        ],
    )


@app.command("suggest")
def suggest(
    ctx: typer.Context,
    propose: ProposeOption = False,
    as_identity: ActAsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Profiles for demand past the [specialization] thresholds that no profile covers yet."""
    # Deferred: loads numpy, safetensors, scipy, sklearn only when used.
    from registry.demand import DemandPolicy, propose_suggestions, suggest_profiles

    state: State = ctx.obj
    ledger = state.ledger(as_identity)
    policy = DemandPolicy.from_settings(state.settings.specialization)
    suggestions = suggest_profiles(ledger, policy)
    proposed = propose_suggestions(ledger, suggestions) if propose else []
    if json_out:
        emit_json({"suggestions": [s.to_json() for s in suggestions], "proposed": proposed})
        return
    if not suggestions:
        console.print(
            f"no demand asked {policy.min_requests}+ times by {policy.min_requesters}+ "
            "identities and not yet covered"
        )
        return
    done = {p["id"]: p["status"] for p in proposed}
    table(
        "suggested profiles",
        ["id", "from", "reason", "status"],
        [
            [
                s.document["id"] if s.document else "—",
                s.template or "—",
                s.reason,
                done.get(s.document["id"], "not proposed") if s.document else "—",
            ]
            for s in suggestions
        ],
    )
    if not propose:
        console.print("propose them with --propose; the consortium then votes")


def _loss(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"

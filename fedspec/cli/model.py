"""``fedspec model``: find the profile whose model fits your data, and predict with it.

Models are the profiles' champions as the ledger records them; their bytes come from
MLflow and are checked against the ledger's sha256 before they are decoded
(:mod:`registry.access`). Ranking reads only the ledger (:mod:`registry.matching`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fedspec.app.settings import usable_path
from fedspec.cli.completion import complete_profile
from fedspec.cli.context import State
from fedspec.cli.options import JsonOption, ReadAsOption
from fedspec.console.output import console, emit_json, table

if TYPE_CHECKING:
    from ledger_client.facade import FedspecLedger
    from registry.access import Prediction
    from registry.matching import Match
    from registry.query import Query
    from registry.rows import InputRows

app = typer.Typer(
    help="Find the model that fits your data and predict with it, verified against the ledger.",
    no_args_is_help=True,
)

CharOption = Annotated[
    list[str] | None,
    typer.Option("--char", help="A characteristic of your data, KEY=VALUE (repeat it)"),
]
SchemaOption = Annotated[
    list[str] | None,
    typer.Option(
        "--schema", help="Your rows: shape=64 or 8x8, columns=a,b,c, min=0, max=16 (repeat it)"
    ),
]
OptimizeOption = Annotated[
    str | None,
    typer.Option(
        "--optimize",
        help="Recorded metric that breaks ties: accuracy, latency_ms, size_mb… (or METRIC:max|min)",
    ),
]
RequireOption = Annotated[
    list[str] | None,
    typer.Option("--require", help='A constraint on recorded metrics, e.g. "latency_ms<=5"'),
]
AsOption = ReadAsOption
SHOWN_ROWS = 20


@app.command("find")
def find(
    ctx: typer.Context,
    char: CharOption = None,
    schema: SchemaOption = None,
    optimize: OptimizeOption = None,
    require: RequireOption = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Show the best N")] = None,
    no_record: Annotated[
        bool,
        typer.Option(
            "--no-record",
            help="Do not record on the ledger that no profile fits (characteristics only)",
        ),
    ] = False,
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Rank the active profiles for your data and criteria, with the reasons for each score.

    When no active profile fits well, the query's characteristics (never rows or schema
    values) are recorded on the ledger as demand for a new profile, unless --no-record.
    """
    # Deferred: loads numpy, safetensors, scipy, sklearn only when used.
    from registry.matching import find_matches

    query = _query(char, schema, optimize, require)  # a bad query is refused before any read
    state: State = ctx.obj
    ledger = state.ledger(as_identity)
    ranked = find_matches(ledger, query)
    demand = _demand(state, ledger, query, ranked, record=not no_record)
    matches = ranked[:top]
    if json_out:
        emit_json(
            {
                "query": query.to_json(),
                "matches": [m.to_json() for m in matches],
                "demand": demand,
            }
        )
        return
    metric = query.optimize_name or (query.optimize.metric if query.optimize else "")
    table(
        "profiles for your data, best first",
        ["#", "profile", "score", "eligible", "champion", *([metric] if metric else []), "why"],
        [
            (
                i,
                m.profile_id,
                f"{m.score:.2f}",
                "yes" if m.eligible else "no",
                "-" if m.champion_round is None else f"round {m.champion_round}",
                *([_number(m.objective_value)] if metric else []),
                "\n".join(m.explanation),
            )
            for i, m in enumerate(matches, 1)
        ],
    )
    if demand is not None:
        console.print(_demand_line(demand), highlight=False, markup=False, soft_wrap=True)


def _demand(
    state: State, ledger: FedspecLedger, query: Query, matches: list[Match], *, record: bool
) -> dict[str, Any] | None:
    """What became of an unmatched query: ``None`` when a profile fits well (or the query
    states no characteristics), else the reason and, unless opted out, the ledger's count."""
    # Deferred: loads numpy, safetensors, scipy, sklearn only when used.
    from registry.demand import DemandPolicy, demand_characteristics, note_demand, unmatched

    policy = DemandPolicy.from_settings(state.settings.specialization)
    reason = unmatched(matches, policy.score_threshold)
    if not reason or not demand_characteristics(query):
        return None
    if not record:
        return {"recorded": False, "reason": reason}
    note = note_demand(ledger, query, matches, policy)
    if note is None:  # unmatched and with characteristics: note_demand records it
        return {"recorded": False, "reason": reason}
    return {"recorded": True, **note.to_json()}


def _demand_line(demand: dict[str, Any]) -> str:
    if not demand["recorded"]:
        return f"no active profile fits well ({demand['reason']}); not recorded (--no-record)"
    chars = ", ".join(f"{k}={v}" for k, v in sorted(demand["characteristics"].items()))
    ready = "; enough demand to propose a profile for it" if demand["ready"] else ""
    return (
        f"no active profile fits well ({demand['reason']}): recorded demand for {chars} on the "
        f"ledger, {_count(demand['requests'], 'request')} by "
        f"{_count(demand['requesters'], 'identity', 'identities')}{ready}"
    )


@app.command("predict")
def predict(
    ctx: typer.Context,
    input_file: Annotated[
        Path, typer.Option("--input", help="Your rows: .csv (header optional) or .npy")
    ],
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", help="Use this profile's champion", autocompletion=complete_profile
        ),
    ] = None,
    char: CharOption = None,
    schema: SchemaOption = None,
    optimize: OptimizeOption = None,
    require: RequireOption = None,
    ensemble: Annotated[
        int | None,
        typer.Option("--ensemble", min=1, help="Soft-vote the best K profiles (with --char)"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the predictions to this .csv")
    ] = None,
    as_identity: AsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Predict on your rows with a profile's champion, the best-fitting one, or an ensemble."""
    if (profile is None) == (not char):
        raise typer.BadParameter("give either --profile or --char", param_hint="--profile")
    if profile is not None and (ensemble or optimize or require):
        raise typer.BadParameter("--ensemble, --optimize and --require go with --char")
    usable_path(input_file, "--input")
    if output is not None and (
        output.suffix.lower() != ".csv" or not usable_path(output, "--output").parent.is_dir()
    ):
        raise typer.BadParameter(
            f"{output} is not a .csv in an existing folder", param_hint="--output"
        )
    from registry.rows import read_rows

    # Everything the client gave is read and checked before the ledger or MLflow is touched.
    rows = read_rows(input_file)
    query = _query(char, schema, optimize, require, rows)
    state: State = ctx.obj
    ledger = state.ledger(as_identity)
    _open_registry(state)
    if profile is not None:
        source, prediction = _predict_profile(ledger, profile, rows, query)
    elif ensemble is not None:
        source, prediction = _predict_ensemble(ledger, rows, query, ensemble)
    else:
        source, prediction = _predict_best(ledger, rows, query)
    if output is not None:
        header, body = prediction.table()
        with output.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(body)
    if json_out:
        emit_json({**source, **prediction.to_json(), "output": str(output) if output else None})
        return
    _show(source, prediction, output)


def _predict_profile(
    ledger: FedspecLedger, profile_id: str, rows: InputRows, query: Query
) -> tuple[dict[str, Any], Prediction]:
    # Deferred: loads numpy, safetensors, scipy, sklearn only when used.
    from registry.access import load_verified
    from registry.errors import InputError
    from registry.matching import fit_schema
    from registry.rows import adapt_rows

    verified = load_verified(ledger, profile_id)
    fit = fit_schema(query.schema or rows.schema(), verified.profile)
    if not fit.adaptable:
        raise InputError(f"{profile_id}: {fit.line.removeprefix('schema: ')}")
    bounds = query.schema.bounds if query.schema else None
    prediction = verified.predict(adapt_rows(rows.values, fit, bounds))
    return _model_source(verified, [fit.line]), prediction


def _predict_best(
    ledger: FedspecLedger, rows: InputRows, query: Query
) -> tuple[dict[str, Any], Prediction]:
    # Deferred: loads numpy, safetensors, scipy, sklearn only when used.
    from registry.access import load_verified
    from registry.errors import QueryError
    from registry.matching import find_matches
    from registry.rows import adapt_rows

    matches = find_matches(ledger, query)
    best = next((m for m in matches if m.eligible), None)
    if best is None or best.schema_fit is None:
        why = f": {matches[0].profile_id}: {'; '.join(matches[0].reasons)}" if matches else ""
        raise QueryError(f"no eligible profile for this query{why}")
    verified = load_verified(ledger, best.profile_id)
    bounds = query.schema.bounds if query.schema else None
    prediction = verified.predict(adapt_rows(rows.values, best.schema_fit, bounds))
    return _model_source(verified, list(best.explanation)), prediction


def _predict_ensemble(
    ledger: FedspecLedger, rows: InputRows, query: Query, k: int
) -> tuple[dict[str, Any], Prediction]:
    # Deferred: loads numpy, safetensors, scipy, sklearn only when used.
    from registry.access import build_ensemble
    from registry.matching import find_matches

    schema = query.schema or rows.schema()
    metric = query.optimize.metric if query.optimize else None
    built = build_ensemble(ledger, find_matches(ledger, query), schema, k=k, metric=metric)
    return {"ensemble": built.to_json()}, built.predict(rows.values)


def _model_source(verified: Any, explanation: list[str]) -> dict[str, Any]:
    return {
        "model": {
            "profile": verified.profile_id,
            "round": verified.champion.round,
            "sha256": verified.sha256,
            "verified": "sha256 of the MLflow bytes equals the ledger's",
            "explanation": explanation,
        }
    }


def _show(source: dict[str, Any], prediction: Prediction, output: Path | None) -> None:
    if "model" in source:
        model = source["model"]
        console.print(
            f"[bold]{model['profile']}[/] round {model['round']}, sha256 {model['sha256'][:16]}… "
            "verified against the ledger"
        )
    else:
        members = source["ensemble"]["members"]
        console.print(f"ensemble of {len(members)} profiles, each verified against the ledger:")
        for line in source["ensemble"]["explanation"]:
            console.print(f"  {line}", highlight=False, markup=False)
    confidence = prediction.probabilities
    shown = list(enumerate(prediction.labels))[:SHOWN_ROWS]
    table(
        "predictions",
        ["row", "prediction", *(["probability"] if confidence is not None else [])],
        [
            (i, label, *([f"{confidence[i].max():.3f}"] if confidence is not None else []))
            for i, label in shown
        ],
    )
    rest = len(prediction.labels) - len(shown)
    if rest > 0:
        console.print(f"… {rest} more rows" + ("" if output else " (use --output or --json)"))
    if output is not None:
        console.print(f"wrote {len(prediction.labels)} rows to {output}")


def _query(
    char: list[str] | None,
    schema: list[str] | None,
    optimize: str | None,
    require: list[str] | None,
    rows: InputRows | None = None,
) -> Query:
    # Deferred: loads numpy, safetensors, scipy, sklearn only when used.
    from registry.errors import QueryError
    from registry.query import SCHEMA_KEYS, parse_assignment, parse_query, parse_schema

    chars: dict[str, Any] = {}
    schema_doc: dict[str, Any] = {}
    for text in char or ():
        key, value = parse_assignment(text)
        if key in chars:
            raise QueryError(f"--char {key} given twice")
        chars[key] = value
    for text in schema or ():
        key, value = parse_assignment(text)
        schema_doc[key] = value
    # --char shape=64 says the same as --schema shape=64.
    schema_doc.update({k: chars.pop(k) for k in SCHEMA_KEYS if k in chars})
    if rows is None:
        return parse_query(chars, schema=schema_doc, optimize=optimize, require=require or ())
    given = parse_schema(schema_doc, chars.get("resolution"))
    # The rows themselves say how wide they are and, with a header, what their columns are.
    return parse_query(
        chars,
        schema=rows.schema(given, chars.get("resolution")),
        optimize=optimize,
        require=require or (),
    )


def _open_registry(state: State) -> None:
    """Point the registry at the settings' MLflow store, refusing to create an empty one."""
    # Deferred: loads numpy, safetensors, scipy, sklearn only when used.
    import registry
    from registry.errors import NotConfiguredError

    uri = state.settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        if not database.is_file():
            raise NotConfiguredError(
                f"no MLflow store at {database}: run rounds first, or set MLFLOW_TRACKING_URI"
            )
    registry.configure(uri)


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"

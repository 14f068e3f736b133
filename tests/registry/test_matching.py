"""The model query: constraint parsing, graded characteristics, schema fits, ranking and the
explanation of every score. Pure functions: no ledger, no MLflow store."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from ledger_client.records import Profile
from registry.errors import QueryError
from registry.evaluation import evaluate_global_model
from registry.matching import Champion, fit_schema, grade, rank_profiles
from registry.profiles import Constraint
from registry.query import (
    METRIC_ALIASES,
    METRICS,
    InputSchema,
    parse_assignment,
    parse_constraint,
    parse_objective,
    parse_query,
)
from tests.registry.conftest import MLFLOW_WARNINGS, Digits, Trained

pytestmark = MLFLOW_WARNINGS


def _profile(profile_id: str, characteristics: dict[str, Any], schema: dict[str, Any]) -> Profile:
    spec = {
        "id": profile_id,
        "characteristics": characteristics,
        "feature_schema": schema,
        "task": {"type": "classification", "labels": list(range(10))},
        "objective": {"metric": "accuracy", "direction": "maximize"},
    }
    return Profile(profile_id, "active", spec, "org1/admin")


def _image(profile_id: str, side: int, top: int = 16) -> Profile:
    return _profile(
        profile_id,
        {"modality": "image", "resolution": f"{side}x{side}"},
        {"shape": [side * side], "min": "0", "max": str(top)},
    )


def _watch(profile_id: str, sensor: str, prefix: str) -> Profile:
    columns = [{"name": f"{prefix}{axis}_mean", "dtype": "float"} for axis in "xyz"]
    return _profile(
        profile_id,
        {"modality": "inertial-timeseries", "sensor": sensor, "channels": ["x", "y", "z"]},
        {"columns": columns},
    )


def _champion(profile_id: str, **metrics: float) -> Champion:
    return Champion(profile_id, 3, "ab" * 32, metrics)


# ---------------------------------------------------------------------------- the query
def test_constraints_parse_to_the_recorded_metric_and_unit() -> None:
    assert parse_constraint("latency_ms_p95<=5") == Constraint("latency_ms_p95", "<=", 5.0)
    assert parse_constraint(" latency_ms <= 5 ") == Constraint("latency_ms_p95", "<=", 5.0)
    assert parse_constraint("accuracy>=0.9") == Constraint("accuracy", ">=", 0.9)
    assert parse_constraint("size_mb<=10") == Constraint("model_size_bytes", "<=", 1e7)
    assert parse_constraint("f1==1") == Constraint("f1_macro", "==", 1.0)
    for op in ("<", ">", "<=", ">=", "=="):
        assert parse_constraint(f"accuracy{op}0.5").op == op


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("latency_ms<=abc", "'abc' is not a number"),
        ("latency_ms=>5", "unknown operator '=>'"),
        ("latency_ms!=5", "unknown operator '!='"),
        ("latency_ms~5", "unknown operator"),
        ("acuracy>=0.9", "unknown metric 'acuracy'"),
        ("latency_ms", "is not METRIC OP VALUE"),
        ("latency_ms<=nan", "is not a number"),
        ("latency_ms<=inf", "is not a number"),
        ("<=5", "is not METRIC OP VALUE"),
    ],
)
def test_bad_constraints_are_query_invalid(text: str, fragment: str) -> None:
    with pytest.raises(QueryError, match=fragment) as caught:
        parse_constraint(text)
    assert caught.value.code == "QUERY_INVALID"


def test_objectives_take_the_metric_s_natural_direction_or_an_explicit_one() -> None:
    assert (parse_objective("accuracy").metric, parse_objective("accuracy").direction) == (
        "accuracy",
        "maximize",
    )
    latency = parse_objective("latency_ms")
    assert (latency.metric, latency.direction) == ("latency_ms_p95", "minimize")
    assert parse_objective("accuracy:min").direction == "minimize"
    assert parse_objective("n_rows:max").direction == "maximize"
    with pytest.raises(QueryError, match="no natural direction"):
        parse_objective("n_rows")
    with pytest.raises(QueryError, match="not max or min"):
        parse_objective("accuracy:up")


def test_command_line_values_and_schema_keys() -> None:
    assert parse_assignment("sensor=gyroscope") == ("sensor", "gyroscope")
    assert parse_assignment("rate=50") == ("rate", 50)
    assert parse_assignment("ratio=0.5") == ("ratio", 0.5)
    assert parse_assignment("wrist=true") == ("wrist", True)
    assert parse_assignment("channels=x, y") == ("channels", ["x", "y"])
    for bad in ("sensor", "=x", "sensor=", "channels=x,,y"):
        with pytest.raises(QueryError):
            parse_assignment(bad)
    query = parse_query({"resolution": "8x8", "shape": 64, "min": 0, "max": 16})
    assert query.characteristics == {"resolution": "8x8"}
    assert query.schema == InputSchema(64, None, 8, (0.0, 16.0))
    assert parse_query({"shape": "8x8"}).schema == InputSchema(64, None, 8, None)
    columns = parse_query({}, schema={"columns": "ax,ay"}).schema
    assert columns is not None and columns.columns == ("ax", "ay")
    for bad_chars in ({"Sensor": "x"}, {"sensor": ""}, {"sensor": {"a": 1}}, {"min": 3, "max": 1}):
        with pytest.raises(QueryError):
            parse_query(bad_chars)
    with pytest.raises(QueryError, match="unknown schema keys"):
        parse_query({}, schema={"dtype": "float"})


def test_every_metric_the_evaluation_records_is_known_and_every_alias_resolves(
    weak: Trained, digits: Digits
) -> None:
    recorded = evaluate_global_model(
        weak.adapter, digits.X_test[:60], digits.y_test[:60], weak.profile, model_bytes=weak.data
    )
    assert set(recorded) <= set(METRICS), set(recorded) - set(METRICS)
    assert all(alias.metric in METRICS for alias in METRIC_ALIASES.values())


# ---------------------------------------------------------------------------- grading
@pytest.mark.parametrize(
    ("wanted", "have", "score", "line"),
    [
        ("gyroscope", "gyroscope", 1.0, "sensor: gyroscope = gyroscope (1.00)"),
        ("Gyroscope", "gyroscope", 1.0, "sensor: Gyroscope = gyroscope (1.00)"),
        ("gyroscope", "accelerometer", 0.0, "sensor: gyroscope ≠ accelerometer (0.00)"),
        ("8x8", "28x28", 8 / 28, "sensor: 8x8 vs 28x28, graded 0.29"),
        ("28x28", "8x8", 8 / 28, "sensor: 28x28 vs 8x8, graded 0.29"),
        ("16x16", "8X8", 0.5, "sensor: 16x16 vs 8X8, graded 0.50"),
        (50, 100, 0.5, "sensor: 50 vs 100, graded 0.50"),
        ("1", 1, 1.0, "sensor: 1 = 1 (1.00)"),
        (-1, 1, 0.0, "sensor: -1 vs 1, graded 0.00"),
        (True, "true", 1.0, "sensor: true = true (1.00)"),
        (["x"], ["x", "y", "z"], 1 / 3, "sensor: [x] vs [x, y, z], overlap 1/3 (0.33)"),
        ("x", ["X", "y"], 0.5, "sensor: x vs [X, y], overlap 1/2 (0.50)"),
        (
            "gyroscope",
            "accelerometer+gyroscope",
            0.5,
            "sensor: gyroscope vs accelerometer+gyroscope, overlap 1/2 (0.50)",
        ),
        ("gyroscope", None, 0.5, "sensor: gyroscope wanted, not declared by the profile (0.50)"),
    ],
)
def test_characteristics_are_graded_with_a_readable_line(
    wanted: Any, have: Any, score: float, line: str
) -> None:
    got, explanation = grade("sensor", wanted, have)
    assert got == pytest.approx(score)
    assert explanation == line


def test_schema_fits_same_columns_resample_or_none() -> None:
    digits8 = _image("d8", 8).spec
    same = fit_schema(InputSchema(64), digits8)
    assert (same.kind, same.score, same.line) == (
        "same",
        1.0,
        "schema: 64 features, same shape (1.00)",
    )

    up = fit_schema(InputSchema(64, side=8), _image("d28", 28, 255).spec)
    assert (up.kind, up.source_side, up.target_side) == ("resample", 8, 28)
    assert up.target_bounds == (0.0, 255.0) and up.score == pytest.approx(8 / 28)
    down = fit_schema(InputSchema(784), digits8)  # a square width: a 28x28 image
    assert (down.kind, down.source_side, down.target_side) == ("resample", 28, 8)

    gyro = _watch("gyro", "gyroscope", "g").spec
    picked = fit_schema(InputSchema(4, ("gz_mean", "ax_mean", "gx_mean", "gy_mean")), gyro)
    assert (picked.kind, picked.indices) == ("columns", (2, 3, 0))
    assert picked.line == "schema: selects 3 of 4 columns by name (0.90)"
    lacking = fit_schema(InputSchema(2, ("gx_mean", "ax_mean")), gyro)
    assert not lacking.adaptable and lacking.line == "schema: lacks columns gy_mean, gz_mean"
    positional = fit_schema(InputSchema(3), gyro)
    assert positional.kind == "same"
    wrong = fit_schema(InputSchema(63), digits8)
    assert not wrong.adaptable and wrong.line == (
        "schema: the input (63 features) cannot feed 64 features"
    )
    undeclared = fit_schema(InputSchema(5), {"characteristics": {}})
    assert (undeclared.kind, undeclared.score) == ("same", 0.5)


# ---------------------------------------------------------------------------- ranking
def test_ranking_explains_every_score_and_checks_constraints_on_recorded_metrics() -> None:
    profiles = [
        _image("digits-28x28", 28, 255),
        _watch("watch-gyro", "gyroscope", "g"),
        _image("digits-8x8", 8),
        _image("digits-16x16", 16),
    ]
    champions = {
        "digits-8x8": _champion(
            "digits-8x8", accuracy=0.9, latency_ms_p95=0.8, model_size_bytes=2e4
        ),
        "digits-28x28": _champion(
            "digits-28x28", accuracy=0.97, latency_ms_p95=7.5, model_size_bytes=3e4
        ),
        "watch-gyro": _champion("watch-gyro", accuracy=0.99, latency_ms_p95=0.1),
    }
    query = parse_query(
        {"modality": "image", "resolution": "8x8", "language": "de"},
        schema={"shape": [64]},
        optimize="accuracy",
        require=["latency_ms<=5", "size_mb<=10"],
    )
    ranked = rank_profiles(profiles, champions, query)
    # Eligible first; then by score: 16x16 is nearer 8x8 than 28x28 is.
    assert [m.profile_id for m in ranked] == [
        "digits-8x8",
        "digits-16x16",
        "digits-28x28",
        "watch-gyro",
    ]
    best = ranked[0]
    assert best.eligible and best.score == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert best.explanation == (
        "modality: image = image (1.00)",
        "resolution: 8x8 = 8x8 (1.00)",
        "language: de wanted, not declared by the profile (0.50)",
        "schema: 64 features, same shape (1.00)",
        "score 0.88: mean of 4 components",
        "champion: round 3, sha256 abababababab (ledger)",
        "latency_ms 0.8 <= 5 ✓ (latency_ms_p95 0.8)",
        "size_mb 0.02 <= 10 ✓ (model_size_bytes 20000)",
        "optimize accuracy (maximize): 0.9",
    )
    assert (best.champion_round, best.champion_sha256) == (3, "ab" * 32)
    assert best.components == {
        "modality": 1.0,
        "resolution": 1.0,
        "language": 0.5,
        "schema": 1.0,
    }

    slow = ranked[2]  # more accurate, but too slow: listed, ineligible, with the reason
    assert not slow.eligible and slow.objective_value == 0.97
    assert slow.reasons == ("latency_ms 7.5 <= 5 ✗ (latency_ms_p95 7.5)",)
    assert "resolution: 8x8 vs 28x28, graded 0.29" in slow.explanation
    assert "schema: 8x8 image resampled to 28x28 (0.29)" in slow.explanation

    untrained = ranked[1]
    assert untrained.reasons == ("no model committed on the ledger",)
    assert "resolution: 8x8 vs 16x16, graded 0.50" in untrained.explanation

    unmeasured = rank_profiles(profiles[1:2], champions, query)[0]
    assert "size_mb <= 10: model_size_bytes not recorded ✗" in unmeasured.reasons
    json.dumps([m.to_json() for m in ranked])  # a JSON document for scripts


def test_equal_scores_are_ordered_by_the_metric_to_optimize() -> None:
    profiles = [_image("a-fast", 8), _image("b-accurate", 8), _image("c-unmeasured", 8)]
    champions = {
        "a-fast": _champion("a-fast", accuracy=0.80, latency_ms_p95=0.1),
        "b-accurate": _champion("b-accurate", accuracy=0.95, latency_ms_p95=3.0),
        "c-unmeasured": _champion("c-unmeasured"),
    }
    by_accuracy = rank_profiles(profiles, champions, parse_query({}, optimize="accuracy"))
    assert [m.profile_id for m in by_accuracy] == ["b-accurate", "a-fast", "c-unmeasured"]
    by_latency = rank_profiles(profiles, champions, parse_query({}, optimize="latency_ms"))
    assert [m.profile_id for m in by_latency] == ["a-fast", "b-accurate", "c-unmeasured"]
    unordered = rank_profiles(profiles, champions, parse_query({}))
    assert [m.profile_id for m in unordered] == ["a-fast", "b-accurate", "c-unmeasured"]
    assert all(m.score == 1.0 and math.isclose(m.score, 1.0) for m in unordered)


def test_a_sensor_query_prefers_the_matching_sensor_and_selects_its_columns() -> None:
    profiles = [_watch("watch-acc", "accelerometer", "a"), _watch("watch-gyro", "gyroscope", "g")]
    champions = {p.id: _champion(p.id, accuracy=0.8) for p in profiles}
    columns = ("ax_mean", "ay_mean", "az_mean", "gx_mean", "gy_mean", "gz_mean")
    query = parse_query({"sensor": "gyroscope"}, schema={"columns": list(columns)})
    gyro, acc = rank_profiles(profiles, champions, query)
    assert gyro.profile_id == "watch-gyro" and gyro.eligible
    assert gyro.schema_fit is not None and gyro.schema_fit.indices == (3, 4, 5)
    assert "sensor: gyroscope ≠ accelerometer (0.00)" in acc.explanation

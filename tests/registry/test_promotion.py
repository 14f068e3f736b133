"""Champion / challenger from the profile's objective: the pure rule, then the aliases."""

from __future__ import annotations

import math
from typing import Any

import pytest

import registry
from registry.profiles import Constraint, Objective
from tests.registry.conftest import MLFLOW_WARNINGS, Digits, Trained, profile_for

pytestmark = MLFLOW_WARNINGS

ACCURACY = Objective("accuracy", "maximize")
RMSE = Objective("rmse", "minimize")
FAST = Objective("accuracy", "maximize", (Constraint("latency_ms_p95", "<=", 5.0),))


@pytest.mark.parametrize(
    ("objective", "candidate", "champion", "alias"),
    [
        (ACCURACY, {"accuracy": 0.8}, None, "champion"),
        (ACCURACY, {"accuracy": 0.9}, {"accuracy": 0.8}, "champion"),
        (ACCURACY, {"accuracy": 0.8}, {"accuracy": 0.8}, "challenger"),  # a tie keeps it
        (ACCURACY, {"accuracy": 0.7}, {"accuracy": 0.8}, "challenger"),
        (ACCURACY, {"accuracy": math.nan}, None, "challenger"),
        (ACCURACY, {"accuracy": 0.7}, {}, "champion"),  # champion never measured
        (RMSE, {"rmse": 1.0}, {"rmse": 2.0}, "champion"),
        (RMSE, {"rmse": 3.0}, {"rmse": 2.0}, "challenger"),
        (FAST, {"accuracy": 0.99, "latency_ms_p95": 9.0}, {"accuracy": 0.5}, "challenger"),
        (FAST, {"accuracy": 0.99}, None, "challenger"),  # latency not measured
        (FAST, {"accuracy": 0.9, "latency_ms_p95": 0.2}, {"accuracy": 0.5}, "champion"),
    ],
)
def test_decide_alias(
    objective: Objective,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    alias: str,
) -> None:
    assert registry.decide_alias(objective, candidate, champion).alias == alias


def test_the_objective_metric_must_be_measured() -> None:
    with pytest.raises(registry.EvaluationError, match="accuracy"):
        registry.decide_alias(ACCURACY, {"f1_macro": 0.9}, None)


def test_objective_is_read_from_the_profile(base_profile: dict[str, Any]) -> None:
    objective = registry.objective_of(base_profile)
    assert objective == Objective(
        "accuracy", "maximize", (Constraint("latency_ms_p95", "<=", 5.0),)
    )


def test_promote_moves_champion_only_when_beaten(
    base_profile: dict[str, Any], weak: Trained, strong: Trained, digits: Digits
) -> None:
    profile = profile_for(base_profile, "promo-a")
    example = digits.X_test[:5]
    fast = {"latency_ms_p95": 0.5}
    with registry.round_run("promo-a", 1) as rid:
        registry.register_global_model(profile, 1, weak.data, run_id=rid, input_example=example)
    first = registry.promote(profile, weak.sha256, {"accuracy": 0.70, **fast})
    assert (first.alias, first.reason) == ("champion", "no champion yet")

    with registry.round_run("promo-a", 2) as rid:
        registry.register_global_model(profile, 2, strong.data, run_id=rid, input_example=example)
    second = registry.promote(profile, strong.sha256, {"accuracy": 0.95, **fast})
    assert second.alias == "champion" and second.champion == 0.70
    assert second.champion_version == 1
    champion = registry.champion("promo-a")
    assert champion is not None and champion.sha256 == strong.sha256
    assert champion.aliases == ("champion",) and champion.metrics["accuracy"] == 0.95

    # The old version re-evaluated: it does not beat the champion and becomes challenger.
    third = registry.promote(profile, weak.sha256, {"accuracy": 0.70, **fast})
    assert third.alias == "challenger" and "does not beat" in third.reason
    assert registry.get_version("promo-a", alias="challenger").sha256 == weak.sha256
    assert registry.get_version("promo-a", alias="champion").sha256 == strong.sha256

    # Promoting the champion again is a no-op; fresh champion metrics can be passed in.
    assert registry.promote(profile, strong.sha256, {"accuracy": 0.95, **fast}).reason == (
        "already champion"
    )
    fourth = registry.promote(
        profile, weak.sha256, {"accuracy": 0.70, **fast}, champion_metrics={"accuracy": 0.6}
    )
    assert fourth.alias == "champion" and fourth.champion == 0.6

"""A SCAFFOLD node's c_i in its private state (flows.control_variates): zeros before its first
round, each round's Δc_i applied once whatever the retries, a missed round leaving it as it
was, and a file that is not this node's c_i for this profile refused rather than used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from federated.errors import TrainingError
from fedspec.app.settings import Settings
from flows.control_variates import apply_delta, control_path, load_control
from flows.environment import NodeEnvironment

SHAPES = [(3, 2), (2,)]
PROFILE = "digits-8x8"


def _env(tmp_path: Path, node: str = "org1/node0") -> NodeEnvironment:
    return NodeEnvironment(node, Settings.load(tmp_path / "home", env={}))


def _delta(value: float) -> list[np.ndarray]:
    return [np.full(s, value) for s in SHAPES]


def test_c_i_starts_at_zero_and_takes_each_rounds_change_once(tmp_path: Path) -> None:
    env = _env(tmp_path)
    start = load_control(env, PROFILE, "torch-mlp", SHAPES)
    assert start.round_no == 0 and all(not a.any() for a in start.control)
    assert not control_path(env, PROFILE).exists()  # reading writes nothing

    apply_delta(env, PROFILE, "torch-mlp", 1, _delta(0.5))
    again = apply_delta(env, PROFILE, "torch-mlp", 1, _delta(0.5))  # a retried agent
    assert again.round_no == 1 and all(np.all(a == 0.5) for a in again.control)
    assert control_path(env, PROFILE).stat().st_mode & 0o777 == 0o600

    # Round 2 missed (not joined, excluded before training): nothing applied, c_i unchanged.
    apply_delta(env, PROFILE, "torch-mlp", 3, _delta(-0.25))
    stored = load_control(env, PROFILE, "torch-mlp", SHAPES)
    assert stored.round_no == 3 and all(np.all(a == 0.25) for a in stored.control)
    late = apply_delta(env, PROFILE, "torch-mlp", 2, _delta(100.0))  # an agent of round 2, late
    assert late.round_no == 3 and all(np.all(a == 0.25) for a in late.control)
    # Per profile and per node: another profile and another node start from zeros.
    assert load_control(env, "other", "torch-mlp", SHAPES).round_no == 0
    assert load_control(_env(tmp_path, "org2/node0"), PROFILE, "torch-mlp", SHAPES).round_no == 0


def test_a_c_i_that_is_not_this_nodes_for_this_model_is_refused(tmp_path: Path) -> None:
    env = _env(tmp_path)
    apply_delta(env, PROFILE, "torch-mlp", 1, _delta(1.0))
    with pytest.raises(TrainingError, match="shapes"):
        load_control(env, PROFILE, "torch-mlp", [(3, 2), (3,)])
    with pytest.raises(TrainingError, match="holds the control variate of"):
        load_control(env, PROFILE, "torch-cnn", SHAPES)
    other = _env(tmp_path, "org2/node0")
    control_path(other, PROFILE).write_bytes(control_path(env, PROFILE).read_bytes())
    with pytest.raises(TrainingError, match="org1/node0"):  # copied from another node
        load_control(other, PROFILE, "torch-mlp", SHAPES)
    control_path(env, PROFILE).write_bytes(b"not safetensors")
    with pytest.raises(TrainingError, match="unreadable") as refused:
        load_control(env, PROFILE, "torch-mlp", SHAPES)
    assert refused.value.code == "TRAINING_FAILED"


def test_virtual_node_simulations_refuse_a_scaffold_profile() -> None:
    """Their engines keep no node state between rounds, so no node would have its c_i."""
    from federated.datasets import load_digits_8x8
    from fedspec.demo.setup import PROFILES, profile_document
    from flows.virtual_nodes import SimulationError, build_population

    spec = profile_document(next(p for p in PROFILES if p.id == PROFILE), load_digits_8x8())
    spec["aggregation"] = {"strategy": "scaffold"}
    spec["model"]["hyperparameters"] = {"optimizer": "sgd"}
    with pytest.raises(SimulationError, match="keep a control variate") as refused:
        build_population(PROFILE, spec, nodes=3)
    assert refused.value.code == "SIMULATION_INVALID"

"""Every example profile (examples/profiles/*.yaml) parses, passes the ledger's schema, states
its privacy mode and measured cost, and has a plan the flows can train."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from federated.plan import TrainingPlan
from fedspec.app.profiles import load_profile_file

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples" / "profiles").glob("*.yaml"))


def test_there_are_example_profiles() -> None:
    assert {p.name for p in EXAMPLES} >= {"digits-8x8.yaml", "flights-delay.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_profile_is_valid_and_states_its_privacy(path: Path) -> None:
    spec = load_profile_file(path)  # parse + the chaincode's schema and value checks
    assert spec["id"] == path.stem
    plan = TrainingPlan.from_profile(spec["id"], spec)
    mode = spec["privacy"]["mode"]
    text = path.read_text()
    # The file says, in its comments, which privacy mode it uses and what was measured.
    assert f"Privacy mode: {mode}" in text
    assert "Measured" in text and "benchmarks.examples" in text
    if mode == "none":
        assert plan.privacy is None


def test_yaml_floats_in_a_profile_become_exact_decimals(tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLES[0].read_text())
    doc["privacy"] = {
        "mode": "client-dp",
        "epsilon_per_round": 2.0,
        "delta_per_round": 1.0e-5,
        "epsilon_budget": 20,
        "delta_budget": 1.0e-4,
        "clip_norm": 5.0,
    }
    private = tmp_path / "private.yaml"
    private.write_text(yaml.safe_dump(doc))
    spec = load_profile_file(private)
    assert spec["privacy"]["delta_per_round"] == "0.00001"

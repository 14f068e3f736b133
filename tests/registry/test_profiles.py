"""What the registry reads from a profile: hyper-parameters that rebuild the model, scaling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import registry
from tests.registry.conftest import profile_for


def test_hyperparameters_add_the_shape_and_drop_what_the_family_does_not_take(
    base_profile: dict[str, Any],
) -> None:
    profile = profile_for(base_profile, "hp-a")
    profile["model"]["hyperparameters"]["local_rounds"] = 3  # a flows-level setting
    params = registry.model_hyperparameters(profile)
    assert params["classes"] == list(range(10)) and params["n_features"] == 64
    assert params["hidden_sizes"] == [64] and "local_rounds" not in params
    cnn = profile_for(base_profile, "hp-b")
    cnn["model"] = {"family": "torch-cnn", "hyperparameters": {"channels": [4]}}
    assert registry.model_hyperparameters(cnn) == {
        "channels": [4],
        "classes": list(range(10)),
        "image_size": 8,
    }
    given = {"classes": [0, 1], "n_features": 64, "local_rounds": 2}
    assert registry.resolve_hyperparameters(profile, given) == {"classes": [0, 1], "n_features": 64}
    with pytest.raises(registry.InvalidModelError):
        registry.model_hyperparameters({**profile, "model": {"family": "random-forest"}})


def test_features_are_scaled_by_the_profile_bounds(base_profile: dict[str, Any]) -> None:
    X = np.array([[0.0] * 63 + [16.0], [8.0] * 63 + [32.0]])
    prepared = registry.prepare_features(base_profile, X)
    assert prepared.dtype == np.float32
    assert prepared[0, 0] == 0.0 and prepared[0, -1] == 1.0
    assert prepared[1, 0] == 0.5 and prepared[1, -1] == 1.0  # clipped to the bound

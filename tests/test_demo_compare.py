"""The demo's baselines: each profile's federated figure beside the same plan trained
centrally and a generic model of the same family on the group's pooled data."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedspec.app.settings import Settings
from fedspec.demo.compare import compare_family
from fedspec.demo.setup import ORGS, PROFILES, prepare_profile_data, profile_document

WATCH = [p for p in PROFILES if p.id.startswith("watch-")]


@pytest.fixture(scope="module")
def watch_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict]:
    settings = Settings.load(Path(tmp_path_factory.mktemp("compare")), env={})
    specs = {}
    for profile in WATCH:
        dataset = prepare_profile_data(settings, profile, ORGS, seed=0)
        specs[profile.id] = profile_document(profile, dataset)
    return settings, specs


def test_baselines_keep_each_profiles_model_family(watch_home) -> None:
    settings, specs = watch_home
    federated = {p: 0.5 for p in specs}
    rows = {c.profile: c for c in compare_family(settings, specs, federated, rounds=2)}
    assert set(rows) == set(specs)
    for profile_id, row in rows.items():
        # Same family on both sides: the comparison isolates specialization, not model class.
        assert row.family == specs[profile_id]["model"]["family"]
        assert row.federated == 0.5
        # Seven exercises: both baselines are real models, well above chance (1/7), on the
        # profile's rows and on the pooled inertial rows alike.
        assert row.centralized > 0.3 and row.generic > 0.3


def test_profiles_absent_from_the_results_are_left_out(watch_home) -> None:
    settings, specs = watch_home
    rows = compare_family(settings, specs, {"watch-gyroscope": 0.7}, rounds=1)
    assert [c.profile for c in rows] == ["watch-gyroscope"]
    assert rows[0].to_json()["federated"] == 0.7

"""A trained family of profiles for the model-access tests, built once per session.

Four organizations with one digits node each, the embedded ledger and MLflow on SQLite, as
the flows' tests build them (``tests/flows/conftest.py``); one real federated round each
for ``digits-8x8`` (MLP) and ``digits-28x28`` (CNN), small networks so that a round takes
seconds; and ``digits-16x16``, voted in but never trained: the ledger has no model for it.
About 45 s on 2 cores, most of it imports (Great Expectations, torch, MLflow) and MLflow's
migrations. Test modules share it through :func:`family_home`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from fedspec.app.settings import Settings
from tests.flows.conftest import ORGS, SCHEDULE, RoundHome

TRAINED = ("digits-8x8", "digits-28x28")
UNTRAINED = "digits-16x16"
_HYPERPARAMETERS = {
    "digits-8x8": {"hidden_sizes": [32], "epochs": 2, "learning_rate": 0.01, "batch_size": 32},
    "digits-28x28": {"channels": [4], "epochs": 1, "learning_rate": 0.003, "batch_size": 64},
}
_built: dict[str, Family] = {}


@dataclass(frozen=True)
class Family:
    home: Path
    settings: Settings

    def ledger(self, identity: str = "org1/admin") -> Any:
        from ledger_client import open_ledger

        return open_ledger(self.settings.ledger, identity)

    def configure_mlflow(self) -> None:
        import registry

        registry.configure(self.settings.mlflow_tracking_uri)


def family_home(factory: pytest.TempPathFactory) -> Family:
    """The session's family (built on first use)."""
    if "family" not in _built:
        _built["family"] = _build(factory.mktemp("model-family") / "home")
    return _built["family"]


def _build(home: Path) -> Family:
    from fedspec.demo.setup import PROFILES, setup_consortium
    from flows import tracking
    from registry.tracking import ensure_experiment

    settings = Settings.load(home, env={})
    profiles = [
        replace(p, hyperparameters=_HYPERPARAMETERS[p.id]) for p in PROFILES if p.id in TRAINED
    ]
    setup_consortium(settings, ORGS, profiles, nodes_per_org=1, schedule=SCHEDULE)
    tracking.configure(settings.mlflow_tracking_uri, settings.home / "mlflow" / "artifacts")
    for profile in profiles:
        ensure_experiment(profile.id)  # once, before the node threads race to create it
        rounds = RoundHome(home, settings, profile_id=profile.id)
        number, parent = rounds.open_round()
        rounds.agents(number, parent)
        closed = rounds.ledger().get_round(profile.id, number)
        assert closed.status == "closed", closed.failure
    family = Family(home, settings)
    _propose_untrained(family)
    return family


def _propose_untrained(family: Family) -> None:
    """``digits-16x16``: active on the ledger, no round ever run."""
    admin = family.ledger()
    spec = copy.deepcopy(admin.get_profile("digits-8x8").spec)
    spec.update(id=UNTRAINED, name="Handwritten digits at 16x16")
    spec["characteristics"]["resolution"] = "16x16"
    spec["feature_schema"]["shape"] = [256]
    spec.pop("parent", None)
    admin.propose_profile(spec)
    for org in ORGS:
        if family.ledger(f"{org}/admin").vote_profile(UNTRAINED).outcome == "active":
            break

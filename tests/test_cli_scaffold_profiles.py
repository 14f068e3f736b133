"""`fedspec profile propose` with a scaffold profile: proposed when SCAFFOLD can run it (a torch
family trained by SGD, in the clear); otherwise one line, exit code 2, and nothing signed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fedspec.app.settings import Settings
from tests.cli_scenario import height, home_settings, profile_doc, three_org_home
from tests.test_cli_bad_input import refused, run


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return three_org_home(tmp_path_factory.mktemp("scaffold-profiles"))


@pytest.fixture
def settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return home_settings(home, monkeypatch)


def _scaffold(profile_id: str, **changes: Any) -> dict[str, Any]:
    doc = profile_doc(profile_id, privacy="none")
    doc["model"] = {"family": "torch-mlp", "hyperparameters": {"optimizer": "sgd"}}
    doc["aggregation"] = {"strategy": "scaffold"}
    for key, value in changes.items():
        doc[key] = {**doc[key], **value}
    return doc


def _propose(
    settings: Settings, capsys: pytest.CaptureFixture[str], doc: dict[str, Any], tmp_path: Path
) -> tuple[int, str, str]:
    path = tmp_path / f"{doc['id']}.json"
    path.write_text(json.dumps(doc))
    return run(capsys, "--home", str(settings.home), "profile", "propose", str(path))


def test_a_scaffold_profile_of_a_torch_family_trained_by_sgd_is_proposed(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    before = height(settings)
    code, out, err = _propose(settings, capsys, _scaffold("scaffold-ok"), tmp_path)
    assert code == 0, err
    assert "scaffold-ok" in out and height(settings) == before + 1


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (
            {"model": {"family": "sklearn-linear"}},
            "model.family: scaffold corrects local SGD steps",
        ),
        ({"model": {"hyperparameters": {"optimizer": "adam"}}}, "scaffold needs optimizer sgd"),
        ({"model": {"hyperparameters": {}}}, "scaffold needs optimizer sgd"),
        ({"privacy": profile_doc("p")["privacy"]}, "privacy.mode: scaffold's control-variate"),
        ({"aggregation": {"secure": {"threshold": 2}}}, "aggregation.secure: scaffold's"),
    ],
    ids=["linear", "adam", "default-optimizer", "client-dp", "secure"],
)
def test_a_scaffold_profile_it_cannot_run_is_refused_in_one_line_before_signing(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    changes: dict[str, Any],
    fragment: str,
) -> None:
    before = height(settings)
    refused(_propose(settings, capsys, _scaffold("scaffold-bad", **changes), tmp_path), fragment)
    assert height(settings) == before

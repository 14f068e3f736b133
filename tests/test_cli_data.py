"""`fedspec data`: a member's own files become a node's data for a profile (or the profile's
evaluation set); list, show and remove them. Every bad input is refused in one line, exit
2, and leaves the home's data folder exactly as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fedspec.app.settings import Settings
from tests.cli_scenario import refused, run

ROOT = Path(__file__).resolve().parents[1]
TABULAR = "flights-delay"
IMAGES = "digits-8x8"
LABEL = "delayed"  # the flights profile's task.label_column


@pytest.fixture(autouse=True)
def _settings_from_home_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)


def flights_frame(rows: int = 200) -> pd.DataFrame:
    from federated.datasets import load_flights

    data = load_flights(rows, seed=1)
    frame = pd.DataFrame(data.X.astype(np.int64), columns=list(data.info.feature_names))
    frame[LABEL] = data.y
    frame["carrier"] = data.keys["carrier"]  # not in the profile: ignored and reported
    return frame


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three organizations, one node each; the flights and digits profiles proposed; org1's
    node already holds flights data (so a refused re-add must leave it untouched)."""
    from fedspec.app.bootstrap import init_ledger
    from fedspec.app.consortium import init_consortium
    from fedspec.app.profiles import load_profile_file
    from ledger_client import open_ledger

    home = tmp_path_factory.mktemp("data") / "home"
    settings = Settings.load(home, env={})
    init_consortium(["org1", "org2", "org3"], settings.ledger.consortium_dir, nodes_per_org=1)
    init_ledger(settings, force=True)
    admin = open_ledger(settings.ledger, "org1/admin")
    for name in ("flights-delay.yaml", "digits-8x8.yaml"):
        admin.propose_profile(load_profile_file(ROOT / "examples" / "profiles" / name))
    files = home.parent / "files"
    files.mkdir()
    flights_frame().to_csv(files / "flights.csv", index=False)
    from fedspec.app.data import add_node_data

    add_node_data(settings, "org1/node0", TABULAR, files / "flights.csv")
    return home


@pytest.fixture
def home(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(built, copy)
    return copy


def snapshot(home: Path) -> dict[str, str]:
    """Every path under the data folder with its content's hash (hidden ones included)."""
    root = home / "data"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


def _json(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run(home, capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_add_list_show_remove(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from federated.datasets import load_node_data
    from flows.environment import NodeEnvironment

    frame = flights_frame(300)
    frame.to_parquet(tmp_path / "jfk.parquet")
    added = _json(
        home, capsys, "data", "add", "--node", "org2/node0", "--profile", TABULAR,
        str(tmp_path / "jfk.parquet"),
    )  # fmt: skip
    assert added["format"] == "parquet" and added["ignored"] == ["carrier"]
    assert added["rows"]["train"] + added["rows"]["valid"] == 300
    assert added["fingerprint"]["rows"] == 300 and added["validation"]["success"]

    # The node's directory is what the node agent reads, unchanged.
    env = NodeEnvironment("org2/node0", Settings.load(home, env={}))
    data = env.local_data({"modality": "tabular", "horizon": "schedule"})
    assert data.info.name == TABULAR and data.info.feature_names[0] == "month"
    assert data.fingerprint == added["fingerprint"]
    assert load_node_data(added["directory"]).train.n_rows == added["rows"]["train"]

    listed = _json(home, capsys, "data", "list")["datasets"]
    assert [(e["node"], e["dataset"]) for e in listed] == [
        ("org1/node0", TABULAR),
        ("org2/node0", TABULAR),
    ]
    assert listed[1]["fingerprint"] == added["fingerprint"] and listed[1]["added_at"]

    shown = _json(home, capsys, "data", "show", "--node", "org2/node0", "--profile", TABULAR)
    assert sum(shown["label_counts"].values()) == 300
    assert set(shown["label_counts"]) <= {"0", "1"}
    assert shown["feature_schema"]["columns"][0]["name"] == "month"
    assert shown["validation"]["sha256"] == added["validation"]["sha256"]

    code, out, err = run(
        home, capsys, "data", "remove", "--node", "org2/node0", "--profile", TABULAR
    )
    assert code == 0, err
    assert "round volunteer flights-delay --withdraw --node org2/node0" in out
    assert not Path(added["directory"]).exists()
    assert [e["node"] for e in _json(home, capsys, "data", "list")["datasets"]] == ["org1/node0"]


def test_the_evaluation_set_and_image_files(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    flights_frame(120).to_csv(tmp_path / "eval.csv", index=False)
    added = _json(
        home,
        capsys,
        "data",
        "add",
        "--evaluation",
        "--profile",
        TABULAR,
        str(tmp_path / "eval.csv"),
    )
    assert added["node"] is None and added["rows"] == {"test": 120}
    assert (home / "data" / "evaluation" / TABULAR / "test.npz").is_file()

    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 17, size=(80, 64)), np.arange(80) % 10
    np.savez(tmp_path / "digits.npz", X=X, y=y)
    added = _json(
        home, capsys, "data", "add", "--node", "org3/node0", "--profile", IMAGES,
        str(tmp_path / "digits.npz"),
    )  # fmt: skip
    assert added["format"] == "npz" and added["fingerprint"]["rows"] == 80

    folder = tmp_path / "images"
    for i in range(70):
        (folder / str(i % 10)).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(8, 8)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / str(i % 10) / f"{i}.png")
    (folder / "0" / "notes.txt").write_text("not an image")
    added = _json(
        home, capsys, "data", "add", "--node", "org2/node0", "--profile", IMAGES, str(folder)
    )
    assert added["format"] == "images" and added["ignored"] == ["0/notes.txt"]
    shown = _json(home, capsys, "data", "show", "--node", "org2/node0", "--profile", IMAGES)
    assert shown["label_counts"] == {str(d): 7 for d in range(10)}


def _csv(tmp_path: Path, name: str, frame: pd.DataFrame) -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def _edited(**cells: Any) -> pd.DataFrame:
    frame = flights_frame().astype(object)
    for column, value in cells.items():
        frame.loc[2, column] = value  # row 3, on line 4 of the file
    return frame


def _bad_files(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """name → (arguments after `data add`, a fragment of the one-line refusal)."""
    node = ["--node", "org1/node0", "--profile", TABULAR]
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(_edited(carrier="Zé").to_csv(index=False).encode("latin-1"))
    few = flights_frame().head(20)
    text = tmp_path / "flights.txt"
    text.write_text("month\n1\n")
    return {
        "missing column": (
            [*node, _csv(tmp_path, "a.csv", flights_frame().drop(columns="distance"))],
            "missing column 'distance'",
        ),
        "missing label": (
            [*node, _csv(tmp_path, "b.csv", flights_frame().drop(columns=LABEL))],
            "missing column 'delayed'",
        ),
        "wrong type": (
            [*node, _csv(tmp_path, "c.csv", _edited(distance="far"))],
            "column 'distance' at line 4: 'far' is not a number",
        ),
        "out of bounds": (
            [*node, _csv(tmp_path, "d.csv", _edited(month=13))],
            "column 'month' at line 4: 13 is outside [1, 12]",
        ),
        "missing value": (
            [*node, _csv(tmp_path, "e.csv", _edited(day=None))],
            "column 'day' is empty at line 4",
        ),
        "unknown label": (
            [*node, _csv(tmp_path, "f.csv", _edited(delayed=2))],
            "label 2 at line 4 is not one of [0, 1]",
        ),
        "no rows": ([*node, _csv(tmp_path, "g.csv", flights_frame().head(0))], "no rows"),
        "too few rows": (
            [*node, _csv(tmp_path, "h.csv", few)],
            "the profile asks for at least 20",
        ),
        "not UTF-8": ([*node, str(latin)], "line 4 is not UTF-8 text"),
        "no such file": ([*node, str(tmp_path / "nowhere.csv")], "no such file"),
        "not a table": ([*node, str(text)], "it takes a .csv (UTF-8) or .parquet file"),
        "unknown profile": (
            ["--node", "org1/node0", "--profile", "no-such-profile", _csv(tmp_path, "i.csv", few)],
            "NOT_FOUND",
        ),
        "not this home's node": (
            ["--node", "org9/node0", "--profile", TABULAR, _csv(tmp_path, "j.csv", few)],
            "org9/node0 is not a node of this home",
        ),
        "node and evaluation": (
            [*node, "--evaluation", _csv(tmp_path, "k.csv", few)],
            "give either --node ORG/NODE or --evaluation",
        ),
        "image bounds": (
            ["--node", "org1/node0", "--profile", IMAGES, _npz(tmp_path, 17)],
            "row 1, value 0: 17 is outside [0, 16]",
        ),
        "image shape": (
            ["--node", "org1/node0", "--profile", IMAGES, _npz(tmp_path, 0, (80, 8, 8))],
            "X has shape (80, 8, 8); expected (rows, 64)",
        ),
        "image file kind": (
            ["--node", "org1/node0", "--profile", IMAGES, _csv(tmp_path, "l.csv", few)],
            "takes images: an .npz file with arrays X and y",
        ),
    }


def _npz(tmp_path: Path, first: int, shape: tuple[int, ...] = (80, 64)) -> str:
    X = np.zeros(shape)
    X.reshape(-1)[0] = first
    path = tmp_path / f"bad-{first}-{len(shape)}.npz"
    np.savez(path, X=X, y=np.arange(80) % 10)
    return str(path)


CASES = [
    "missing column",
    "missing label",
    "wrong type",
    "out of bounds",
    "missing value",
    "unknown label",
    "no rows",
    "too few rows",
    "not UTF-8",
    "no such file",
    "not a table",
    "unknown profile",
    "not this home's node",
    "node and evaluation",
    "image bounds",
    "image shape",
    "image file kind",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    args, fragment = _bad_files(tmp_path)[case]
    before = snapshot(home)
    code, out, err = run(home, capsys, "data", "add", *args)
    refused(code, err, fragment)
    assert out == ""
    assert snapshot(home) == before


def test_a_node_of_another_members_home_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = home / "consortium" / "consortium.json"
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**doc, "own": ["org1"]}))  # a member's home: org1 only
    before = snapshot(home)
    code, _, err = run(
        home, capsys, "data", "add", "--node", "org2/node0", "--profile", TABULAR,
        _csv(tmp_path, "x.csv", flights_frame()),
    )  # fmt: skip
    refused(code, err, "org2/node0 is not a node of this home (its nodes: org1/node0)")
    assert snapshot(home) == before


def test_show_and_remove_name_what_is_missing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("show", "remove"):
        code, _, err = run(
            home, capsys, "data", command, "--node", "org3/node0", "--profile", TABULAR
        )
        refused(code, err, "org3/node0 holds no data for flights-delay")
        code, _, err = run(home, capsys, "data", command, "--evaluation", "--profile", TABULAR)
        refused(code, err, "no evaluation set for flights-delay")
        before = snapshot(home)
        code, _, err = run(home, capsys, "data", command, "--evaluation", "--profile", "..")
        refused(code, err, "is not a safe directory name")
        assert snapshot(home) == before

"""`fedspec model find` and `fedspec model predict` on a family trained in real rounds:
ranked profiles with reasons, predictions equal to the registered champion's, and one line
with exit code 2 for bad input, having written nothing.

Most cases run the command in this process (``fedspec.cli.app.main``: the same code as the
console script, without paying ~15 s of imports per call); two run it as a real process."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from federated.datasets import load_digits_8x8
from fedspec.cli.app import main
from tests.registry.model_family import UNTRAINED, Family, family_home

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")


@pytest.fixture(scope="session")
def family(tmp_path_factory: pytest.TempPathFactory) -> Family:
    return family_home(tmp_path_factory)


@pytest.fixture(autouse=True)
def _settings_from_home_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "FEDSPEC_HOME", "FEDSPEC_LEDGER", "FEDSPEC_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    X = load_digits_8x8().X[:25]
    folder = tmp_path_factory.mktemp("inputs")
    paths = {name: folder / name for name in ("named.csv", "plain.csv", "rows.npy", "63.csv")}
    header = ",".join(f"px_{i}" for i in range(64))
    np.savetxt(paths["named.csv"], X, delimiter=",", fmt="%g", header=header, comments="")
    np.savetxt(paths["plain.csv"], X, delimiter=",", fmt="%g")
    np.save(paths["rows.npy"], X)
    np.savetxt(paths["63.csv"], X[:, :63], delimiter=",", fmt="%g")
    (folder / "bad.csv").write_text("1,2,3\n4,5,x\n")
    paths["bad.csv"] = folder / "bad.csv"
    return paths


def run(family: Family, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command in this process: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exited:
        main(["--home", str(family.home), *args])
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def real(family: Family, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDSPEC_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "fedspec.cli", "--home", str(family.home), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        cwd=ROOT,
        env=env,
    )


def _height(family: Family) -> int:
    with sqlite3.connect(family.settings.ledger.ledger_path) as db:
        return int(db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0])


def _registered(family: Family, X: np.ndarray) -> tuple[list[int], np.ndarray]:
    import registry

    family.configure_mlflow()
    model = registry.load_pyfunc("digits-8x8", alias="champion")
    proba = model.predict(X, params={"output": "proba"})
    return model.predict(X).tolist(), proba.to_numpy()


def test_find_prints_the_ranking_as_json_in_a_real_process(family: Family) -> None:
    proc = real(
        family,
        *("model", "find", "--char", "modality=image", "--char", "resolution=8x8"),
        *("--optimize", "accuracy", "--require", "latency_ms<=50", "--top", "2", "--json"),
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["query"]["require"] == ["latency_ms <= 50"]
    assert [m["profile"] for m in doc["matches"]] == ["digits-8x8", "digits-28x28"]
    best = doc["matches"][0]
    assert best["eligible"] and best["score"] == 1.0 and best["champion"]["round"] == 1
    assert "resolution: 8x8 = 8x8 (1.00)" in best["explanation"]
    assert any(line.startswith("latency_ms ") and "✓" in line for line in best["explanation"])


def test_find_prints_a_table_with_the_reasons(
    family: Family, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(family, capsys, "model", "find", "--char", "resolution=28x28")
    assert code == 0
    assert out.index("digits-28x28") < out.index("digits-8x8") < out.index(UNTRAINED)
    assert "resolution: 28x28 = 28x28 (1.00)" in out
    assert "no model committed on the ledger" in out


def test_predict_with_a_profile_writes_the_registered_champion_s_predictions(
    family: Family, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "predictions.csv"
    code, out, err = run(
        family,
        capsys,
        *("model", "predict", "--input", str(inputs["named.csv"]), "--profile", "digits-8x8"),
        *("--output", str(output)),
    )
    assert code == 0, err
    assert "verified against the ledger" in out and "wrote 25 rows" in out
    with output.open(newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["row", "prediction"] + [f"proba_{c}" for c in range(10)]
    labels, proba = _registered(family, load_digits_8x8().X[:25])
    assert [int(r[1]) for r in table[1:]] == labels
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in table[1:]], proba)


def test_predict_picks_the_best_profile_or_an_ensemble(
    family: Family, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    X = load_digits_8x8().X[:25]
    chars = ("--char", "modality=image", "--char", "resolution=8x8")
    code, out, err = run(
        family, capsys, "model", "predict", "--input", str(inputs["rows.npy"]), *chars, "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"]["profile"] == "digits-8x8"
    assert doc["model"]["sha256"] == family.ledger().latest_model("digits-8x8").sha256
    labels, proba = _registered(family, X)
    assert doc["predictions"] == labels
    np.testing.assert_allclose(doc["probabilities"], proba)

    code, out, err = run(
        family,
        capsys,
        *("model", "predict", "--input", str(inputs["plain.csv"]), *chars),
        *("--ensemble", "2", "--optimize", "accuracy", "--json"),
    )
    assert code == 0, err
    doc = json.loads(out)
    members = doc["ensemble"]["members"]
    assert [m["profile"] for m in members] == ["digits-8x8", "digits-28x28"]
    assert sum(m["weight"] for m in members) == pytest.approx(1.0)
    assert members[1]["fit"]["kind"] == "resample"
    np.testing.assert_allclose(np.sum(doc["probabilities"], axis=1), 1.0, rtol=1e-6)
    assert doc["classes"] == [str(c) for c in range(10)]

    code, out, _ = run(
        family, capsys, "model", "predict", "--input", str(inputs["plain.csv"]), *chars,
        "--ensemble", "2",
    )  # fmt: skip
    assert code == 0 and "→ weight" in out and "… 5 more rows" in out


BAD = [
    (["predict", "--input", "{missing}", "--profile", "digits-8x8"], "INPUT_INVALID"),
    (["predict", "--input", "{bad.csv}", "--profile", "digits-8x8"], "'x' is not a number"),
    (["predict", "--input", "{63.csv}", "--profile", "digits-8x8"], "cannot feed 64 features"),
    (["predict", "--input", "{rows.npy}", "--profile", "no-such"], "LEDGER_RECORD_MISSING"),
    (["predict", "--input", "{rows.npy}", "--profile", UNTRAINED], "no committed champion"),
    (["predict", "--input", "{rows.npy}", "--char", "x=1", "--require", "acc>1"], "QUERY_INVALID"),
    (["predict", "--input", "{rows.npy}", "--char", "Sensor=x"], "QUERY_INVALID"),
    (["predict", "--input", "{rows.npy}"], "either --profile or --char"),
    (["predict", "--input", "{rows.npy}", "--profile", "digits-8x8", "--char", "a=b"], "either"),
    (["predict", "--input", "{rows.npy}", "--profile", "digits-8x8", "--ensemble", "2"], "--char"),
    (["predict", "--input", "{rows.npy}", "--char", "a=b", "--ensemble", "0"], "--ensemble"),
    (["find", "--require", "latency_ms<=abc"], "QUERY_INVALID: 'latency_ms<=abc'"),
    (["find", "--require", "latency_ms=>5"], "unknown operator '=>'"),
    (["find", "--optimize", "n_rows"], "no natural direction"),
    (["find", "--char", "sensor"], "is not KEY=VALUE"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
    family: Family,
    inputs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    fragment: str,
) -> None:
    named = {f"{{{name}}}": str(path) for name, path in inputs.items()}
    named["{missing}"] = str(tmp_path / "missing.csv")
    argv = [named.get(a, a) for a in args]
    output = tmp_path / "out.csv"
    if argv[0] == "predict":
        argv += ["--output", str(output)]
    height = _height(family)
    code, out, err = run(family, capsys, "model", *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedspec: error: "), err
    assert fragment in lines[0], lines[0]
    assert not output.exists() and _height(family) == height


def test_an_output_outside_an_existing_folder_is_refused(
    family: Family, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "no-folder" / "out.csv"
    args = ["--input", str(inputs["rows.npy"]), "--profile", "digits-8x8", "--output"]
    code, _, err = run(family, capsys, "model", "predict", *args, str(target))
    assert code == 2 and "--output" in err and not target.parent.exists()


def test_a_registry_error_is_one_line_in_a_real_process(family: Family) -> None:
    proc = real(family, "model", "find", "--require", "size_mb<=ten")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "fedspec: error: QUERY_INVALID: 'size_mb<=ten': 'ten' is not a number"
    )

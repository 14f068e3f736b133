"""Property-based tests of the whole `fedspec` command: any argv, any profile file content.

Every invocation ends with exit code 0, 1 or 2, never a traceback and never main()'s last
resort (``internal error``); a refusal (exit 2) is one line on stderr, and a refused profile
leaves the ledger's height unchanged. Afterwards `fedspec ledger verify` finds the ledger
clean. Runs in-process (``fedspec.cli.app.main``) against a home with real rounds
(:func:`tests.cli_scenario.ledger_home`); derandomized, so CI sees the same examples each run.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedspec.app.settings import Settings
from fedspec.cli.app import app
from tests.cli_scenario import height, ledger_home, profile_doc

# Long work (training, processes, the demo, MLflow) is not fuzzed here: its bad-input paths
# are parsed by the same code as every other command's, and its own tests cover it.
EXCLUDED = {
    ("demo",),
    ("network", "up"),
    ("network", "down"),
    ("node", "up"),
    ("round", "run"),
    ("round", "node"),
    ("simulate",),  # trains; its bad input: tests/test_cli_simulate.py
    ("model", "predict"),
    ("specialize", "check"),
}
# Options that would replace the home under test, or write outside it.
NOT_FUZZED = {"--force", "--out", "--wipe"}
LONG = "a" * 300

FUZZ = settings(
    max_examples=int(os.environ.get("FEDSPEC_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _commands() -> list[tuple[tuple[str, ...], list[Any]]]:
    """Every leaf command of the Typer app, with its parameters (help excluded)."""
    found: list[tuple[tuple[str, ...], list[Any]]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        else:
            found.append((path, [p for p in cmd.params if p.name != "help"]))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()
FUZZED = [(path, params) for path, params in COMMANDS if path not in EXCLUDED]

VALUES = [
    "",
    "0",
    "-1",
    "1",
    "3",
    "99999999999999999999",
    "1e999",
    "nan",
    "-inf",
    "digits-8x8",
    "watch-gyroscope",
    "no-such-profile",
    "org1/node0",
    "org2/node1",
    "org1/admin",
    "org9/admin",
    "org1",
    "org1/",
    "/",
    "..",
    "-",
    "--",
    "--json",
    "-h",
    f"/tmp/{LONG}/x",
    LONG,
    "é/ü",
    "\u202e\u200b",
    "a\nb",
    "\t",
    "modality=image",
    "modality=",
    "=x",
    "resolution=8x8",
    "accuracy",
    "accuracy>=0.5",
    "{}",
    "[]",
    '{"a": 1}',
    "9" * 5000,
    "embedded",
    "fabric",
    "proposed",
    "ProfileProposed",
    "\udcff",
]
values = st.one_of(st.sampled_from(VALUES), st.text(max_size=24))


@st.composite
def invocations(draw: st.DrawFn) -> tuple[tuple[str, ...], list[str]]:
    path, params = draw(st.sampled_from(FUZZED))
    chosen = draw(
        st.lists(st.sampled_from(params), max_size=len(params) + 1) if params else st.just([])
    )
    argv: list[str] = []
    for param in chosen:
        opt = param.opts[0]
        if opt in NOT_FUZZED:
            continue
        if param.param_type_name == "argument":
            argv.append(draw(values))
        elif param.is_flag:
            argv.append(opt)
        else:
            value = draw(values)
            argv += [opt, value]
    if draw(st.booleans()):
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--nosuch", "x"])))
    return path, argv


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("fuzz") / "home"
    ledger_home(home)
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("FEDSPEC_"):
                mp.delenv(name)
        mp.chdir(home.parent)  # relative paths a command writes stay in the sandbox
        yield home


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    from fedspec.cli.app import main

    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    out = capsys.readouterr()
    return code, out.out, out.err


def _check(code: int, err: str, argv: list[str]) -> None:
    assert code in (0, 1, 2), (code, argv, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    errors = [line for line in err.splitlines() if line.startswith("fedspec: error: ")]
    if code == 2 and "Usage:" not in err:  # a group without its command shows its help
        assert len(err.strip().splitlines()) == 1 and len(errors) == 1, (argv, err)
    if code == 1:
        assert len(errors) == 1, (argv, err)


@FUZZ
@given(invocation=invocations())
def test_any_argv_ends_in_0_1_or_2_with_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], invocation: tuple[tuple[str, ...], list[str]]
) -> None:
    path, argv = invocation
    full = ["--home", str(home), *path, *argv]
    code, _, err = _run(capsys, full)
    _check(code, err, full)


@FUZZ
@given(home_value=st.sampled_from(["", LONG, f"x/{LONG}", "a\nb", "\udcff", "é"]))
def test_any_home_ends_in_0_1_or_2_with_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], home_value: str
) -> None:
    for command in (["ledger", "status"], ["profile", "list", "--json"], ["budget"]):
        full = ["--home", home_value, *command]
        code, _, err = _run(capsys, full)
        _check(code, err, full)


# -- profile files -----------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
numbers = st.one_of(
    st.sampled_from(["0", "-1", "1e99", "1e-99", "0.5", "2", "1e-5", "1", "abc", "NaN"]),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
)
PRIVACY_KEYS = [
    "epsilon_per_round",
    "delta_per_round",
    "epsilon_budget",
    "delta_budget",
    "clip_norm",
]
YAML_EXTRAS = [
    "when: 2024-01-02\n",
    "at: 2024-01-02T03:04:05Z\n",
    "blob: !!binary aGVsbG8=\n",
    "things: !!set {a, b}\n",
    "pairs: !!omap [a: 1]\n",
    "anchor: &x [1, 2]\nagain: *x\n",
    "self: &s [*s]\n",
    "n: .nan\n",
    "big: " + "9" * 5000 + "\n",
    "? [a, b]\n: c\n",
    "x: !!python/object:os.system ls\n",
    "---\nsecond: document\n",
]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1"]


@st.composite
def profile_files(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".json", ".yaml", ".yml", ".txt"]))
    kind = draw(st.sampled_from(["bytes", "document", "document", "document", "deep"]))
    if kind == "bytes":
        return suffix, draw(st.binary(max_size=400))
    if kind == "deep":
        levels = draw(st.sampled_from([31, 33, 200, 3000, 20000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return suffix, (f'{{"id": "x", "d": {opener * levels}1{closer * levels}}}').encode()
    doc: dict[str, Any] = profile_doc(f"fz-{draw(st.integers(0, 10**6))}")
    for key in draw(st.lists(st.sampled_from(PRIVACY_KEYS), max_size=3, unique=True)):
        doc["privacy"][key] = draw(numbers)
    if draw(st.booleans()):
        doc["privacy"]["mode"] = draw(st.sampled_from(["none", "client-dp", "dp-model", "x"]))
    if draw(st.booleans()):
        doc["model"]["hyperparameters"] = draw(json_values)
    if draw(st.booleans()):  # last: it may replace the privacy or model object itself
        field = draw(st.sampled_from([*doc, "extra"]))
        doc[field] = draw(json_values)
    if suffix == ".json" or draw(st.booleans()):
        text = json.dumps(doc)
    else:
        text = yaml.safe_dump(doc, allow_unicode=True)
        if draw(st.booleans()):
            text += draw(st.sampled_from(YAML_EXTRAS))
    encoding = draw(st.sampled_from(ENCODINGS))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()) and encoding.startswith("utf-16"):
        data = codecs.BOM_UTF16_BE + data
    return suffix, data


@FUZZ
@given(file=profile_files())
def test_any_profile_file_is_proposed_or_refused_in_one_line(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
    file: tuple[str, bytes],
) -> None:
    suffix, data = file
    path = tmp_path_factory.mktemp("profile", numbered=True) / f"profile{suffix}"
    path.write_bytes(data)
    settings_ = Settings.load(home, env={})
    before = height(settings_)
    full = ["--home", str(home), "profile", "propose", str(path)]
    code, _, err = _run(capsys, full)
    assert code in (0, 2), (code, err)
    _check(code, err, full)
    assert height(settings_) == before + (code == 0), (code, err)


def test_the_ledger_verifies_after_the_fuzzing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Last in this module: whatever the fuzzing wrote, or was refused, the ledger is clean."""
    code, out, err = _run(capsys, ["--home", str(home), "ledger", "verify", "--json"])
    assert code == 0, err
    assert json.loads(out)["ok"] is True


def test_the_walk_sees_the_whole_command_tree() -> None:
    paths = {path for path, _ in COMMANDS}
    assert {("profile", "propose"), ("ledger", "verify"), ("budget",), ("rewards",)} <= paths
    assert len(FUZZED) >= 20

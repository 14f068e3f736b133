"""Bad input to the `fedspec` command: one line, exit code 2, nothing written; never a traceback.

Each case is a traceback the CLI fuzzing found (or its neighbour): path components past the
file system's limits, profile files that are not UTF-8 or nest thousands of levels deep,
YAML values JSON has no type for, settings of the wrong type. Profile numbers the chaincode
refuses (a negative budget, ε per round past the budget) are refused here before anything is
signed, so the ledger's height is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedspec.app.settings import Settings
from fedspec.errors import ConfigError
from tests.cli_scenario import height, home_settings, profile_doc, three_org_home

LONG = "a" * 300  # past NAME_MAX (255 bytes)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from fedspec.cli.app import main

    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def refused(result: tuple[int, str, str], fragment: str, code: int = 2) -> None:
    got, _, err = result
    assert got == code, (got, err)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedspec: error: "), err
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return three_org_home(tmp_path_factory.mktemp("bad-input"))


@pytest.fixture
def settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return home_settings(home, monkeypatch)


def test_a_home_path_component_past_the_limit_names_the_option(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    refused(run(capsys, "--home", str(tmp_path / LONG), "ledger", "status"), "--home")
    refused(run(capsys, "--home", str(tmp_path / LONG), "profile", "list"), "255 bytes")


def test_a_home_from_the_environment_is_checked_the_same_way(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FEDSPEC_HOME", str(tmp_path / LONG))
    refused(run(capsys, "ledger", "status"), "--home")  # the option FEDSPEC_HOME sets
    with pytest.raises(ConfigError, match="FEDSPEC_HOME"):
        Settings.load(None, env={"FEDSPEC_HOME": str(tmp_path / LONG)})
    monkeypatch.delenv("FEDSPEC_HOME")
    monkeypatch.setenv("FEDSPEC_LEDGER_PATH", str(tmp_path / LONG / "ledger.sqlite"))
    refused(run(capsys, "--home", str(tmp_path), "ledger", "status"), "FEDSPEC_LEDGER_PATH")


def _deep_json(levels: int) -> bytes:
    return ("[" * levels + "]" * levels).encode()


def _laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


VALID = json.dumps(profile_doc("bad-input-ok"))

FILES: list[tuple[str, bytes, str]] = [
    ("utf16-bom.json", VALID.encode("utf-16"), "not UTF-8 text (UTF-16)"),
    ("utf16-no-bom.json", VALID.encode("utf-16-le"), "not UTF-8 text"),
    ("utf32.json", VALID.encode("utf-32"), "not UTF-8 text (UTF-32)"),
    ("latin1.json", VALID.replace("bad-input-ok", "caf\u00e9").encode("latin-1"), "not UTF-8"),
    ("binary.json", bytes(range(256)), "not UTF-8 text"),
    ("deep.json", _deep_json(5000), "nests deeper than"),
    ("deep.yaml", b"a: " + _deep_json(5000), "nests deeper than"),
    ("deep-block.yaml", "".join(f"{' ' * i}k:\n" for i in range(40)).encode(), "deeper"),
    ("date.yaml", b"id: x\nname: 2024-01-02\n", "name is a date"),
    ("stamp.yaml", b"id: x\nname: 2024-01-02T03:04:05Z\n", "name is a timestamp"),
    ("binary.yaml", b"id: x\nname: !!binary aGVsbG8=\n", "name is !!binary"),
    ("set.yaml", b"id: x\nname: !!set {a, b}\n", "name is !!set"),
    ("pairs.yaml", b"id: x\nname: !!omap [a: 1]\n", "name[0] is an !!omap or !!pairs entry"),
    ("key.yaml", b"id: x\n1: one\n", "not a string"),
    ("nan.yaml", b"id: x\nname: .nan\n", "not a finite number"),
    ("inf.json", b'{"id": "x", "n": 1e400}', "not a finite number"),
    ("nan.json", b'{"id": NaN}', "NaN is not a JSON number"),
    ("infinity.json", b'{"id": -Infinity}', "-Infinity is not a JSON number"),
    ("duplicate.json", b'{"id": "x", "id": "y"}', "duplicate key 'id'"),
    ("digits.json", b'{"n": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ("digits.yaml", b"n: " + b"9" * 5000 + b"\n", "not valid YAML"),
    ("recursive.yaml", b"a: &a [*a]\n", "nests deeper than"),
    ("laughs.yaml", _laughs().encode(), "values (YAML aliases"),
    ("huge.json", b'{"id": "' + b"x" * 300_000 + b'"}', "larger than"),
    ("list.json", b"[1, 2]", "not list"),
    ("objective.json", json.dumps({**json.loads(VALID), "objective": True}).encode(), "objective"),
    ("empty.yaml", b"", "not NoneType"),
    ("two.yaml", b"a: 1\n---\nb: 2\n", "not valid YAML"),
    ("tabs.yaml", b"a:\n\t- 1\n", "not valid YAML"),
]


@pytest.mark.parametrize(("name", "content", "fragment"), FILES, ids=[f[0] for f in FILES])
def test_a_profile_file_is_refused_in_one_line_and_nothing_is_written(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    content: bytes,
    fragment: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = height(settings)
    refused(run(capsys, "--home", str(settings.home), "profile", "propose", str(path)), fragment)
    assert height(settings) == before


@pytest.mark.parametrize(
    ("privacy", "fragment"),
    [
        ({"epsilon_budget": "-1"}, "privacy.epsilon_budget must be"),
        ({"epsilon_per_round": "0"}, "privacy.epsilon_per_round must be > 0"),
        ({"epsilon_per_round": "3"}, "privacy.epsilon_budget must be ≥ epsilon_per_round (3)"),
        ({"delta_per_round": "1"}, "privacy.delta_per_round must be > 0 and < 1"),
        ({"delta_budget": "1"}, "privacy.delta_budget must be"),
        ({"clip_norm": "0"}, "privacy.clip_norm must be > 0"),
        ({"epsilon_budget": "1e99"}, "privacy.epsilon_budget"),
    ],
)
def test_privacy_numbers_out_of_bounds_are_refused_before_signing(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    privacy: dict[str, str],
    fragment: str,
) -> None:
    doc = profile_doc("bad-privacy")
    doc["privacy"] = {**doc["privacy"], **privacy}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    before = height(settings)
    refused(run(capsys, "--home", str(settings.home), "profile", "propose", str(path)), fragment)
    assert height(settings) == before


def test_a_valid_profile_file_is_still_proposed(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With a UTF-8 byte-order mark, in YAML, numbers written as people write them."""
    import yaml

    doc = profile_doc("bom-ok")
    doc["privacy"] = {**doc["privacy"], "epsilon_per_round": 0.5, "delta_budget": 1e-5}
    path = tmp_path / "ok.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(doc).encode())
    before = height(settings)
    code, out, err = run(capsys, "--home", str(settings.home), "profile", "propose", str(path))
    assert code == 0, err
    assert "bom-ok" in out and height(settings) == before + 1


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        (b"\xff\xfe[\x00", "not UTF-8"),
        (b"ledger = 5\n", "[ledger] must be a table"),
        (b"[ledger]\npath = 5\n", "[ledger] path must be a string"),
        (b"[ledger]\nfabric_peers = 1\n", "[ledger.fabric_peers] must be a table"),
        (b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n", "fedspec.toml"),
        (b"[ledger]\npath = '" + LONG.encode() + b"/l.sqlite'\n", "[ledger] path"),
    ],
)
def test_settings_of_the_wrong_shape_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, toml: bytes, fragment: str
) -> None:
    (tmp_path / "fedspec.toml").write_bytes(toml)
    refused(run(capsys, "--home", str(tmp_path), "ledger", "status"), fragment)


def test_control_characters_in_an_argument_stay_on_one_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(
        run(capsys, "--home", str(settings.home), "profile", "show", "no\nsuch\x1b[31m"),
        "no\\nsuch\\x1b[31m",
    )
    refused(
        run(capsys, "--home", str(settings.home), "ledger", "tx", "\udcff"), "argument 5 (\\udcff)"
    )


# Long path components reaching code this change does not own: each needs its owner to check
# the path where it is read (fedspec.app.settings.usable_path names the option) and raise a
# typed error naming the option.
OTHER_LONG_PATHS = [
    pytest.param(["ledger", "verify", "--ledger", f"/tmp/{LONG}"], "--ledger", id="verify-ledger"),
    pytest.param(
        ["consortium", "init", "--orgs", "a", "--out", f"/tmp/{LONG}"], "--out", id="consortium-out"
    ),
    pytest.param(
        ["model", "predict", "--profile", "p", "--input", f"/tmp/{LONG}.csv"],
        "--input",
        id="predict-input",
    ),
]


@pytest.mark.parametrize(("argv", "fragment"), OTHER_LONG_PATHS)
def test_long_paths_in_other_options_are_refused_as_bad_input(
    settings: Settings, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    refused(run(capsys, "--home", str(settings.home), *argv), fragment)


def test_a_long_ledger_path_in_settings_is_refused_before_any_read(tmp_path: Path) -> None:
    from ledger_client.embedded.store import check_ledger_file
    from ledger_client.errors import LedgerFileError

    with pytest.raises(LedgerFileError, match="cannot use"):
        check_ledger_file(tmp_path / ("a" * 300))

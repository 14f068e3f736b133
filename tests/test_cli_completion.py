"""Shell completion (profile ids from the ledger, node ids and identities from the
consortium, never an error in the prompt) and the command tree's consistency: help on
every command and parameter, `--json` on every read command, one `--as`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.cli_scenario import ledger_home, real


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "home"
    ledger_home(path)
    return path


def complete(home: Path, line: str) -> Any:
    """What bash's completion function asks for `line` (the cursor at its end)."""
    words = line.split(" ")
    return real(
        None,
        env={
            "_FEDSPEC_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
            "FEDSPEC_HOME": str(home),
        },
    )


def _state(home: Path) -> list[tuple[str, bytes]]:
    with sqlite3.connect(home / "ledger.sqlite") as db:
        return db.execute("SELECT key, value FROM state ORDER BY key").fetchall()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("fedspec round status ", ["digits-8x8", "watch-gyroscope"]),
        ("fedspec profile show w", ["watch-gyroscope"]),
        ("fedspec budget --profile d", ["digits-8x8"]),
        ("fedspec model predict --profile d", ["digits-8x8"]),
        ("fedspec rewards --node org2", ["org2/node0", "org2/node1"]),
        ("fedspec round node digits-8x8 --node org4/", ["org4/node0", "org4/node1"]),
        ("fedspec rewards --as org3/", ["org3/admin", "org3/node0", "org3/node1"]),
        ("fedspec rewards --org ", ["org1", "org2", "org3", "org4"]),
        ("fedspec rou", ["round"]),
    ],
)
def test_completion_from_the_ledger_and_the_consortium(
    home: Path, line: str, expected: list[str]
) -> None:
    before = _state(home)
    proc = complete(home, line)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.split() == expected
    assert _state(home) == before  # read-only: completion never writes


def test_completion_without_a_home_is_silent(tmp_path: Path) -> None:
    for line in ("fedspec round status ", "fedspec rewards --node ", "fedspec rewards --as "):
        proc = complete(tmp_path / "nothing-here", line)
        assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "", "")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "ledger.sqlite").write_bytes(b"not a database")
    (tmp_path / "broken" / "fedspec.toml").write_text("[ledger\n")  # unreadable settings
    proc = complete(tmp_path / "broken", "fedspec round status ")
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "", "")


def test_the_bash_completion_script_is_printed_whatever_the_login_shell() -> None:
    # What `--show-completion` and `--install-completion` print, asked for bash explicitly:
    # those options detect the calling shell, and CI's is plain sh (not supported by typer).
    proc = real(None, env={"_FEDSPEC_COMPLETE": "source_bash", "SHELL": "/bin/sh"})
    assert proc.returncode == 0, proc.stderr
    assert "_FEDSPEC_COMPLETE=complete_bash" in proc.stdout
    assert "complete -o default -F _fedspec_completion fedspec" in proc.stdout


# ------------------------------------------------------------------------- consistency
# Commands that only read (or only print): each must offer --json.
WRITES_WITHOUT_JSON = {"demo"}


def _leaves() -> list[tuple[str, Any]]:
    from typer.main import get_command

    from fedspec.cli.app import app

    found = []

    def walk(command: Any, path: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            assert command.help, f"{path} has no help"
            for name, sub in subcommands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            found.append((path, command))

    walk(get_command(app), "")
    return found


def test_every_command_and_parameter_has_help_and_json() -> None:
    from fedspec.cli.options import ActAsOption, ReadAsOption

    helps_for_as = {
        ActAsOption.__metadata__[0].help,
        ReadAsOption.__metadata__[0].help,
    }
    leaves = _leaves()
    assert {"rewards", "budget", "round status", "model find", "ledger verify"} <= {
        p for p, _ in leaves
    }
    for path, command in leaves:
        assert command.help and "\n" not in command.help.split("\n\n")[0].strip(), path
        for param in command.params:
            assert getattr(param, "help", None), f"{path}: {param.name} has no help"
            assert "[default" not in param.help, f"{path}: {param.name} hides its default"
            if "--as" in param.opts:
                assert param.help in helps_for_as, f"{path}: its own --as"
        if path not in WRITES_WITHOUT_JSON:
            assert any("--json" in p.opts for p in command.params), f"{path} has no --json"


def test_version_as_json() -> None:
    import json

    from fedspec import __version__

    proc = real(None, "version", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"version": __version__}

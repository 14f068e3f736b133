"""Entry point of the ``fedspec`` command: sub-commands, settings, and one-line errors.

Every refusal prints one readable line (``fedspec: error: …``) and exits with code 2; a check
that ran and failed (``ledger verify`` finding tampering) exits with 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

try:  # Typer ≥ 0.29 vendors click; its exceptions are only importable from there.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on upstream click
    from click.exceptions import (  # type: ignore[no-redef,assignment,unused-ignore]
        ClickException,
        NoArgsIsHelpError,
        UsageError,
    )

from fedspec.cli import consortium as consortium_cmd
from fedspec.cli import data as data_cmd
from fedspec.cli import ledger as ledger_cmd
from fedspec.cli import model as model_cmd
from fedspec.cli import network as network_cmd
from fedspec.cli import node as node_cmd
from fedspec.cli import org as org_cmd
from fedspec.cli import profile as profile_cmd
from fedspec.cli import round as round_cmd
from fedspec.cli import servers as servers_cmd
from fedspec.cli import specialize as specialize_cmd
from fedspec.cli.budget import budget as budget_cmd
from fedspec.cli.context import State
from fedspec.cli.options import JsonOption
from fedspec.cli.rewards import rewards as rewards_cmd
from fedspec.cli.simulate import simulate as simulate_cmd
from fedspec.console.output import emit_json, fail, one_line
from fedspec.errors import FedspecError

app = typer.Typer(
    name="fedspec",
    help="Federated learning of a family of specialized models, audited on a permissioned ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(consortium_cmd.app, name="consortium")
app.add_typer(data_cmd.app, name="data")
app.add_typer(ledger_cmd.app, name="ledger")
app.add_typer(model_cmd.app, name="model")
app.add_typer(network_cmd.app, name="network")
app.add_typer(node_cmd.app, name="node")
app.add_typer(org_cmd.app, name="org")
app.add_typer(profile_cmd.app, name="profile")
app.add_typer(round_cmd.app, name="round")
app.add_typer(servers_cmd.app, name="servers")
app.add_typer(specialize_cmd.app, name="specialize")
app.command("rewards")(rewards_cmd)
app.command("budget")(budget_cmd)
app.command("simulate")(simulate_cmd)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="FEDSPEC_HOME",
            help="fedspec's data directory",
            show_default=".fedspec",
        ),
    ] = None,
) -> None:
    """Federated learning of a family of specialized models, audited on a permissioned ledger."""
    ctx.obj = State(home)


@app.command()
def version(json_out: JsonOption = False) -> None:
    """Print fedspec's version."""
    from fedspec import __version__

    if json_out:
        emit_json({"version": __version__})
        return
    typer.echo(__version__)


@app.command()
def demo(
    ctx: typer.Context,
    fresh: Annotated[bool, typer.Option(help="Start from an empty demo directory")] = True,
    rounds: Annotated[int, typer.Option(min=1, max=50, help="Rounds per profile")] = 3,
    ledger_only: Annotated[
        bool, typer.Option("--ledger-only", help="Only the ledger scenario (seconds, no training)")
    ] = False,
    ledger: Annotated[
        str,
        typer.Option(
            "--ledger",
            help="embedded (default) or fabric: start a Fabric network in <home>/network and "
            "commit every round on it",
        ),
    ] = "embedded",
    secure: Annotated[
        bool,
        typer.Option("--secure", help="Train digits-8x8 with secure aggregation (threshold 3)"),
    ] = False,
) -> None:
    """Run the end-to-end demo on embedded defaults: a consortium trains a family of models."""
    state: State = ctx.obj
    home = state.home_or(Path(".fedspec") / "demo")
    if ledger_only:
        # Deferred: the command line starts without it.
        from fedspec.demo.ledger_tour import run_ledger_demo

        run_ledger_demo(home, fresh=fresh)
        return
    # Deferred: the command line starts without it.
    from fedspec.demo.run import run_demo

    if ledger not in ("embedded", "fabric"):
        raise typer.BadParameter("choose embedded or fabric", param_hint="--ledger")
    report = run_demo(home, rounds=rounds, fresh=fresh, ledger=ledger, secure=secure)
    if not report["verified"]:
        raise typer.Exit(1)


def main(argv: list[str] | None = None) -> None:
    """Run the command; every error becomes one line and an exit code, decided here alone:
    2 for usage and any :class:`~fedspec.errors.FedspecError` (bad input, refused by the
    ledger, unreachable service), 130 for an interrupt, what a command asks for otherwise
    (1 for a check that ran and failed).

    Never a traceback: bad input is refused where it is read, with a typed error. Anything
    else that escapes a command is a bug; as a last resort it is one line too
    (``internal error: …``, exit 1), and the CLI fuzz test (tests/test_cli_fuzz.py) fails on it.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    _check_text(args)
    try:
        # One program name however it is started (`python -m fedspec.cli` too): usage lines
        # and the shell-completion variable (_FEDSPEC_COMPLETE) depend on it.
        result = app(args=args, prog_name="fedspec", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        raise SystemExit(2) from None
    except UsageError as exc:
        hint = f" (try `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        fail(exc.format_message().replace("\n", " ") + hint)
    except typer.Abort:
        fail("aborted", code=130)
    except ClickException as exc:
        fail(exc.format_message())
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except FedspecError as exc:
        fail(f"{exc.code}: {exc.message}")
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Exception as exc:  # the last resort: a bug, said in one line, never a traceback
        fail(f"internal error: {type(exc).__name__}: {exc} (a bug: please report it)", code=1)
    sys.exit(result if isinstance(result, int) else 0)


def _check_text(args: list[str]) -> None:
    """Every argument is UTF-8 text: bytes that are not (a Latin-1 name, a UTF-16 string)
    reach Python as lone surrogates, which no ledger argument, identity or query can hold."""
    for i, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            fail(f"argument {i} ({one_line(arg)[:80]}) is not UTF-8 text")

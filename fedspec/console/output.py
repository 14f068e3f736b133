"""How commands speak: tables for people, ``--json`` for scripts, one line for errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped or logged output (CI, `make demo | tee`) gets 120 columns, not rich's 80, so tables
# of hashes and node ids stay readable.
console = Console(width=None if sys.stdout.isatty() else 120)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(str(v) for v in r))
    console.print(t)


@contextmanager
def progress(label: str, *, enabled: bool = True) -> Iterator[Callable[[int, int | None], None]]:
    """A transient progress bar on stderr for long work; ``update(done, total)`` moves it.

    Disabled (``--json``), the update does nothing: scripts read stdout, and a bar on a
    terminal's stderr would still interleave with their output.
    """
    if not enabled:
        yield lambda done, total: None
        return
    # Deferred: loads rich only when used.
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (a newline, a tab, a terminal
    escape, a surrogate from undecodable argv bytes) escaped, so it prints as one line."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


def fail(message: str, code: int = 2) -> None:
    """One readable line on stderr, then exit (2 for bad input, 1 for a failed check)."""
    errors.print(
        f"fedspec: error: {one_line(message)}", highlight=False, soft_wrap=True, markup=False
    )
    raise SystemExit(code)


def stopped_line(stopped: Sequence[str]) -> str:
    """What `node down` and `network down` print: how many processes, and which."""
    noun = "process" if len(stopped) == 1 else "processes"
    return f"stopped {len(stopped)} {noun}" + (f" ({', '.join(stopped)})" if stopped else "")

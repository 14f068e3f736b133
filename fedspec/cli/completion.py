"""Shell completion of profile ids, node ids and identities.

Completion runs on every <TAB>, before any command: it must answer in milliseconds and never
print an error into the user's prompt. So it reads the consortium's manifest (a small JSON
file) and the embedded ledger's SQLite world state directly, read-only, without importing
the ledger client (cryptography, protobufs) or signing anything; anything that goes wrong
yields no candidates. A Fabric ledger has no local file to read: profiles do not complete.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import typer

_NS = "\x00"
_MAX_RUNE = "\U0010ffff"


def _settings(ctx: typer.Context) -> Any:
    # Deferred: loads fabric_protos, google only when used.
    from fedspec.app.settings import Settings

    # The root callback has not run during completion: read --home (or FEDSPEC_HOME, which
    # click resolves into the parameter) from the root context's parsed parameters.
    home = ctx.find_root().params.get("home")
    return Settings.load(home)


def _manifest(ctx: typer.Context) -> dict[str, Any]:
    path = Path(_settings(ctx).ledger.consortium_dir) / "consortium.json"
    doc = json.loads(path.read_text())
    return doc if isinstance(doc, dict) else {}


def _members(ctx: typer.Context) -> list[dict[str, Any]]:
    return [o for o in _manifest(ctx).get("organizations", []) if isinstance(o, dict)]


def complete_node(ctx: typer.Context, incomplete: str) -> list[str]:
    """Training nodes of the consortium (``org1/node0``…)."""
    try:
        refs = [f"{o['name']}/{n}" for o in _members(ctx) for n in o.get("nodes", ())]
    except Exception:  # completion never fails loudly
        return []
    return [r for r in refs if r.startswith(incomplete)]


def complete_identity(ctx: typer.Context, incomplete: str) -> list[str]:
    """Identities to act as: each organization's admins and nodes."""
    try:
        refs = [
            f"{o['name']}/{n}"
            for o in _members(ctx)
            for n in (*o.get("admins", ()), *o.get("nodes", ()))
        ]
    except Exception:
        return []
    return [r for r in refs if r.startswith(incomplete)]


def complete_org(ctx: typer.Context, incomplete: str) -> list[str]:
    """Member organizations."""
    try:
        names = [str(o["name"]) for o in _members(ctx)]
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def profile_ids(ledger_path: Path, incomplete: str = "") -> list[str]:
    """Profile ids in the embedded ledger's world state (``profile~{id}`` keys), by prefix."""
    if not ledger_path.is_file():
        return []
    start = f"{_NS}profile{_NS}{incomplete}"
    uri = f"{ledger_path.absolute().as_uri()}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=0.5) as db:
        rows = db.execute(
            "SELECT key FROM state WHERE key >= ? AND key < ? ORDER BY key",
            (start, f"{_NS}profile{_NS}{_MAX_RUNE}"),
        ).fetchall()
    ids = [str(key).split(_NS)[2] for (key,) in rows]
    return [i for i in ids if i.startswith(incomplete)]


def complete_profile(ctx: typer.Context, incomplete: str) -> list[str]:
    """Profiles on the embedded ledger."""
    try:
        settings = _settings(ctx)
        if settings.ledger.backend != "embedded":
            return []
        return profile_ids(Path(settings.ledger.ledger_path), incomplete)
    except Exception:
        return []

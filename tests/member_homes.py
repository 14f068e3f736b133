"""Homes of independent members on one machine: each made its own keys (`org init`), the
consortium was founded from public bundles (`consortium create`), and every home shares one
embedded ledger file, as members on one host would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedspec.app.bundles import export_bundle, load_bundle, write_bundle
from fedspec.app.consortium import create_consortium
from fedspec.app.orgs import init_org
from fedspec.app.settings import Settings

ORDERING = "ordering"


@dataclass
class Members:
    root: Path
    ledger_path: Path

    def home(self, org: str) -> Path:
        return self.root / org

    def bundle(self, org: str) -> Path:
        return self.root / f"{org}.bundle"

    def settings(self, org: str) -> Settings:
        return Settings.load(self.home(org), env={"FEDSPEC_LEDGER_PATH": str(self.ledger_path)})

    def env(self, org: str) -> dict[str, str]:
        return {"FEDSPEC_HOME": str(self.home(org)), "FEDSPEC_LEDGER_PATH": str(self.ledger_path)}

    def make_org(self, org: str, *, nodes: int = 1) -> None:
        """``fedspec org init`` and ``org export`` in ``org``'s own home."""
        consortium = self.home(org) / "consortium"
        init_org(consortium, org, nodes=nodes, orderers=1 if org == ORDERING else 0)
        write_bundle(export_bundle(consortium), self.bundle(org))

    def create(self, org: str, members: list[str]) -> None:
        """``fedspec consortium create`` in ``org``'s home from the bundles of ``members``."""
        bundles = [load_bundle(self.bundle(m)) for m in [*members, ORDERING]]
        create_consortium(self.home(org) / "consortium", bundles)


def found(root: Path, orgs: list[str]) -> Members:
    """Every organization makes its keys; every member creates the consortium from the same
    bundles; the first founds the ledger, the others join it."""
    from fedspec.app.bootstrap import init_ledger, join_ledger

    members = Members(root, root / "shared" / "ledger.sqlite")
    for org in [*orgs, ORDERING]:
        members.make_org(org)
    for org in orgs:
        members.create(org, orgs)
    init_ledger(members.settings(orgs[0]))
    for org in orgs[1:]:
        join_ledger(members.settings(org))
    return members


def private_key_files(root: Path) -> list[Path]:
    """Every file under ``root`` that holds a private key, found by content, not by name."""
    return [p for p in root.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]

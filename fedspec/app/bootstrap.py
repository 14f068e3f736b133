"""Bringing a ledger to life: genesis, the consortium record, and every node's registration."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from fedspec.app.settings import Settings
from ledger_client import Consortium, open_ledger
from ledger_client.checkpoints import FOLDER
from ledger_client.embedded.genesis import create_ledger


@dataclass(frozen=True)
class Bootstrapped:
    orgs: list[str]
    nodes: list[str]
    height: int


def init_ledger(settings: Settings, *, force: bool = False) -> Bootstrapped:
    """Create the embedded ledger (or use the Fabric channel), then record who is in it."""
    consortium = Consortium.load(settings.ledger.consortium_dir)
    if settings.ledger.backend == "embedded":
        create_ledger(
            settings.ledger.ledger_path,
            consortium,
            channel=settings.ledger.channel,
            chaincode=settings.ledger.chaincode,
            force=force,
        )
        # A new ledger, founded on purpose: the members' checkpoints of the one it replaces
        # no longer apply (kept, they would report the new ledger as a rollback).
        shutil.rmtree(settings.home / FOLDER, ignore_errors=True)
    admin = open_ledger(settings.ledger, consortium.first_admin)
    admin.init_consortium(consortium.member_ids)
    nodes = consortium.node_refs()
    for ref in nodes:
        open_ledger(settings.ledger, ref).register_node()
    return Bootstrapped(consortium.member_ids, nodes, admin.height())

"""Bringing a ledger to life: genesis, the consortium record, and every node's registration."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from fedspec.app.settings import Settings
from fedspec.errors import ConsortiumError
from ledger_client import Consortium, open_ledger
from ledger_client.backends import channel_organizations
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
    admin = open_ledger(settings.ledger, consortium.default_admin)
    admin.init_consortium(consortium.member_ids)
    nodes = _register_own_nodes(settings, consortium)
    return Bootstrapped(consortium.member_ids, nodes, admin.height())


def join_ledger(settings: Settings) -> Bootstrapped:
    """A member's first step on a ledger another member created: check that the channel's
    member organizations and their CAs are the ones this home's bundles say, then register
    this home's own nodes."""
    consortium = Consortium.load(settings.ledger.consortium_dir)
    admin = open_ledger(settings.ledger, consortium.default_admin)
    channel = channel_organizations(settings.ledger)
    if channel is not None:  # the embedded channel's configuration, as it stands now
        mine = {o.msp_id: consortium.ca_cert(o).decode() for o in consortium.members}
        theirs = {msp: roots[0] for msp, roots in channel.items()}
        differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        if differ:
            raise ConsortiumError(
                f"{settings.ledger.ledger_path}'s channel and this home disagree on "
                f"{', '.join(differ)} (a missing organization or another CA): this home's "
                "bundles are not the consortium's"
            )
    recorded = admin.consortium_orgs()
    if sorted(recorded) != sorted(consortium.member_ids):
        raise ConsortiumError(
            f"the ledger's members ({', '.join(recorded) or 'none yet'}) are not this home's "
            f"({', '.join(consortium.member_ids)})"
        )
    nodes = _register_own_nodes(settings, consortium)
    return Bootstrapped(consortium.member_ids, nodes, admin.height())


def _register_own_nodes(settings: Settings, consortium: Consortium) -> list[str]:
    """Each of this home's nodes registers itself (its certificate, issued by its own
    organization's CA, is what makes it that organization's node)."""
    nodes = [ref for ref in consortium.node_refs() if ref.partition("/")[0] in consortium.own]
    for ref in nodes:
        open_ledger(settings.ledger, ref).register_node()
    return nodes

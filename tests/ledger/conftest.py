"""A consortium and a ledger for the scenario suite, on every backend the suite supports.

The scenario tests only talk to :class:`LedgerEnv` and the domain facade, so the same tests run
against the embedded ledger now and against a Fabric network (issue "real Fabric network").
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ledger_client import Consortium, FedspecLedger, connect
from ledger_client.embedded.genesis import create_ledger
from ledger_client.embedded.peer import EmbeddedLedger
from ledger_client.records import new_seed_secret

ORGS = ["org1", "org2", "org3"]


@pytest.fixture(scope="session")
def consortium(consortium_dir: Path) -> Consortium:
    return Consortium.load(consortium_dir)


class LedgerEnv:
    """``services`` maps an organization to the Gateway its members use (on Fabric, its own
    peer); ``channel`` is the ledger (on Fabric, a channel of its own per test)."""

    def __init__(
        self,
        consortium: Consortium,
        services: Mapping[str, Any],
        ledger_path: Path | None,
        channel: str = "fedspec",
    ) -> None:
        self.consortium = consortium
        self.services = services
        self.ledger_path = ledger_path
        self.channel = channel
        self._facades: dict[str, FedspecLedger] = {}

    @property
    def service(self) -> Any:
        return self.services["org1"]

    def ledger(self, ref: str) -> FedspecLedger:
        if ref not in self._facades:
            msp = self.consortium.identity(ref)
            gateway = connect(self.services[msp.identity.msp_id], msp.identity, msp.signer)
            self._facades[ref] = FedspecLedger(
                gateway.get_network(self.channel).get_contract("fedspec")
            )
        return self._facades[ref]

    def height(self) -> int:
        return self.ledger("org1/admin").height()

    # -- scenario helpers ------------------------------------------------------------
    def bootstrap(self, register: list[str] | None = None) -> None:
        self.ledger("org1/admin").init_consortium(ORGS)
        for ref in register if register is not None else self.consortium.node_refs():
            self.ledger(ref).register_node()

    def active_profile(self, profile_id: str = "digits-8x8", **overrides: Any) -> dict[str, Any]:
        spec = profile_spec(profile_id, **overrides)
        self.ledger("org1/admin").propose_profile(spec)
        self.ledger("org1/admin").vote_profile(profile_id)
        self.ledger("org2/admin").vote_profile(profile_id)
        return spec

    def elected_round(self, profile_id: str, nodes: list[str]) -> Any:
        """Volunteer, open, join and reveal with ``nodes``; return the elected round."""
        for ref in nodes:
            self.ledger(ref).volunteer(profile_id)
        rnd = self.ledger(nodes[0]).open_round(profile_id)
        secrets = {}
        for ref in nodes:
            secret, commitment = new_seed_secret()
            secrets[ref] = secret
            self.ledger(ref).join_round(profile_id, rnd.number, commitment)
        for ref in nodes:
            self.ledger(ref).reveal_seed(profile_id, rnd.number, secrets[ref])
        return self.ledger(nodes[0]).elect_coordinator(profile_id, rnd.number)


def profile_spec(profile_id: str = "digits-8x8", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": profile_id,
        "name": f"profile {profile_id}",
        "characteristics": {"modality": "image", "resolution": "8x8"},
        "task": {"type": "classification", "labels": list(range(10))},
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "model": {"family": "torch-mlp", "hyperparameters": {"hidden": [64], "lr": 0.05}},
        "aggregation": {"strategy": "fedavg"},
        "privacy": {
            "mode": "client-dp",
            "epsilon_per_round": "1",
            "delta_per_round": "1e-5",
            "epsilon_budget": "3",
            "delta_budget": "1e-4",
            "clip_norm": "1.0",
        },
        "min_nodes": 2,
        "reward_per_round": 1000,
    }
    spec.update(overrides)
    return spec


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``env`` is the embedded ledger; a module whose scenarios hold on every backend says so
    with ``LEDGER_BACKENDS = ("embedded", "fabric")``. The attack, fuzz, concurrency and
    verification tests stay embedded: they forge envelopes, kill writers and rewrite blocks of
    the embedded block store, which a Fabric peer answers in its own (tested) ways."""
    if "env" not in metafunc.fixturenames:
        return
    backends = getattr(metafunc.module, "LEDGER_BACKENDS", ("embedded",))
    params = [pytest.param(b, marks=pytest.mark.fabric) if b == "fabric" else b for b in backends]
    metafunc.parametrize("env", params, indirect=True)


@pytest.fixture
def env(
    request: pytest.FixtureRequest, consortium: Consortium, tmp_path: Path
) -> Iterator[LedgerEnv]:
    if request.param == "embedded":
        path = create_ledger(tmp_path / "ledger.sqlite", consortium)
        service = EmbeddedLedger(path, consortium, synchronous="NORMAL")
        yield LedgerEnv(consortium, dict.fromkeys(ORGS, service), path)
        service.close()
        return
    from tests.fabric_support import new_channel

    layout = request.getfixturevalue("fabric_network")
    channel = new_channel(layout)
    services = fabric_services(layout, consortium)
    yield LedgerEnv(consortium, services, None, channel)
    for service in services.values():
        service.close()


def fabric_services(layout: Any, consortium: Consortium) -> dict[str, Any]:
    """A Gateway connection per organization to its own peer, knowing the others' peers."""
    from ledger_client.fabric import FabricGatewayService

    peers = {
        p.org: (p.address, consortium.tls_ca_cert(consortium.org(p.org))) for p in layout.peers
    }
    return {
        org: FabricGatewayService(
            address, cert, org=org, other_peers={o: v for o, v in peers.items() if o != org}
        )
        for org, (address, cert) in peers.items()
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)

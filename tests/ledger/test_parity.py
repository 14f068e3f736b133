"""The same scenario on the embedded ledger and on Fabric ends in the same world state.

One scenario (members, nodes, a profile voted in, a full round with fixed election
secrets, a model, rewards, a second profile rejected) runs on both backends; then every
query of the contract is read back from each and compared, with what legitimately differs
between two ledgers (transaction times and ids, block numbers) left out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger_client import Consortium, ModelCommitment
from ledger_client.embedded.genesis import create_ledger
from ledger_client.embedded.peer import EmbeddedLedger

from .conftest import ORGS, LedgerEnv, fabric_services, profile_spec
from .test_scenarios import NODES, update_for

pytestmark = [pytest.mark.fabric, pytest.mark.integration]

# Keys whose values are times, transaction ids or block numbers: they differ between any two
# ledgers, whatever their backend.
VOLATILE = re.compile(r"(^at|_at|_deadline|deadline|timestamp|tx_id|transaction_id|block)$")


def _scenario(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    admin = env.ledger("org1/admin")
    admin.propose_profile(profile_spec("rejected-one"))
    admin.vote_profile("rejected-one", approve=False)
    env.ledger("org3/admin").vote_profile("rejected-one", approve=False)
    for ref in NODES:
        env.ledger(ref).volunteer("digits-8x8")
    rnd = env.ledger(NODES[0]).open_round("digits-8x8")
    secrets = {ref: hashlib.sha256(ref.encode()).digest() for ref in NODES}  # fixed: same draw
    for ref, secret in secrets.items():
        env.ledger(ref).join_round("digits-8x8", rnd.number, hashlib.sha256(secret).hexdigest())
    for ref, secret in secrets.items():
        env.ledger(ref).reveal_seed("digits-8x8", rnd.number, secret.hex())
    elected = env.ledger(NODES[0]).elect_coordinator("digits-8x8", rnd.number)
    for ref in NODES:
        env.ledger(ref).submit_update("digits-8x8", rnd.number, update_for(ref))
    coordinator = env.ledger(elected.coordinator)
    coordinator.commit_model(
        "digits-8x8",
        rnd.number,
        ModelCommitment(
            sha256=hashlib.sha256(b"parity").hexdigest(),
            uri="models:/digits-8x8/1",
            metrics={"accuracy": 900_000},
            inclusion={ref: update_for(ref).sha256 for ref in NODES},
            contributions={ref: i + 1 for i, ref in enumerate(NODES)},
        ),
    )
    coordinator.mint_rewards("digits-8x8", rnd.number)
    env.ledger("org2/node0").transfer("org3/node0", 10)


def _world(env: LedgerEnv) -> dict[str, Any]:
    reader = env.ledger("org2/admin")
    nodes = [n.id for n in reader.list_nodes()]
    profiles = sorted(p.id for p in reader.list_profiles())
    return _stable(
        {
            "profiles": {pid: reader.evaluate("GetProfile", pid) for pid in profiles},
            "nodes": {n: reader.get_node(n).to_json() for n in nodes},
            "volunteers": reader.volunteers("digits-8x8"),
            "rounds": [r.to_json() for r in reader.list_rounds("digits-8x8")],
            "round": reader.evaluate("GetRound", "digits-8x8", "1"),
            "updates": [u.to_json() for u in reader.list_updates("digits-8x8", 1)],
            "model": reader.evaluate("GetModel", "digits-8x8", "1"),
            "history": reader.profile_history("digits-8x8").to_json(),
            "budgets": {n: reader.budget(n, "digits-8x8").to_json() for n in NODES},
            "balances": reader.balances().to_json(),
        }
    )


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in sorted(set(a) | set(b))
            for d in _differences(a.get(k), b.get(k), f"{path}.{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in sorted(value.items()) if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


@pytest.fixture
def embedded(consortium: Consortium, tmp_path: Path) -> Iterator[LedgerEnv]:
    path = create_ledger(tmp_path / "ledger.sqlite", consortium)
    service = EmbeddedLedger(path, consortium, synchronous="NORMAL")
    yield LedgerEnv(consortium, dict.fromkeys(ORGS, service), path)
    service.close()


def test_the_same_scenario_ends_in_the_same_world_state_on_both_backends(
    embedded: LedgerEnv, request: pytest.FixtureRequest
) -> None:
    fabric = _fabric_env(request)
    _scenario(embedded)
    _scenario(fabric)
    on_embedded, on_fabric = _world(embedded), _world(fabric)
    assert on_fabric == on_embedded, _differences(on_embedded, on_fabric)
    # Not vacuous: the round closed with a model and minted its reward on both.
    assert on_fabric["model"]["sha256"] == hashlib.sha256(b"parity").hexdigest()
    assert on_fabric["balances"]["total"] == 1000
    assert on_fabric["profiles"]["rejected-one"]["status"] == "rejected"


def _fabric_env(request: pytest.FixtureRequest) -> LedgerEnv:
    from tests.fabric_support import new_channel

    consortium: Consortium = request.getfixturevalue("consortium")
    layout = request.getfixturevalue("fabric_network")
    services = fabric_services(layout, consortium)
    request.addfinalizer(lambda: [s.close() for s in services.values()])
    return LedgerEnv(consortium, services, None, new_channel(layout))

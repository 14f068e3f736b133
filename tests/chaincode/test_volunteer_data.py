"""`VolunteerWithData`: a node volunteers with its data's fingerprint (hashes and a row
count, never rows), checked strictly; `GetVolunteer` reads the record back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaincode import keys
from chaincode.contract import invoke
from chaincode.errors import FailedPrecondition, Forbidden, InvalidArgument, NotFound
from ledger_client.embedded.simulator import drive

from .fake_stub import FakeStub

FINGERPRINT = {"sha256": "ab" * 32, "rows": 851, "schema_sha256": "cd" * 32}


def _stub(state: dict[str, bytes], ref: str, consortium_dir: Path, ts: int = 1_000) -> FakeStub:
    from ledger_client import Consortium

    msp = Consortium.load(consortium_dir).identity(ref)
    return FakeStub(state, mspid=msp.identity.msp_id, cert=msp.identity.credentials, ts=ts)


def _call(stub: FakeStub, name: str, *args: str) -> Any:
    return json.loads(drive(invoke(stub, name, list(args))))


@pytest.fixture
def state(consortium_dir: Path) -> dict[str, bytes]:
    """Two members, org1/node0 registered, profile p1 active."""
    from tests.ledger.conftest import profile_spec

    state: dict[str, bytes] = {}
    admin = _stub(state, "org1/admin", consortium_dir)
    _call(admin, "InitConsortium", json.dumps(["org1", "org2"]))
    _call(_stub(state, "org1/node0", consortium_dir), "RegisterNode")
    _call(admin, "ProposeProfile", json.dumps(profile_spec("p1")))
    for org in ("org1", "org2"):
        vote = _call(
            _stub(state, f"{org}/admin", consortium_dir), "VoteProfile", "p1", "activate", "true"
        )
        if vote["status"] == "active":
            break
    return state


def test_the_fingerprint_is_recorded_and_replaced_when_the_data_changes(
    state: dict[str, bytes], consortium_dir: Path
) -> None:
    node = _stub(state, "org1/node0", consortium_dir)
    record = _call(node, "VolunteerWithData", "p1", json.dumps(FINGERPRINT))
    assert record["dataset"] == FINGERPRINT and record["node"] == "org1/node0"
    assert node.events[-1][0] == "NodeVolunteered"
    assert _call(node, "GetVolunteer", "p1", "org1/node0") == record
    assert _call(node, "ListVolunteers", "p1") == ["org1/node0"]

    again = _stub(state, "org1/node0", consortium_dir, ts=2_000)
    assert _call(again, "VolunteerWithData", "p1", json.dumps(FINGERPRINT)) == record
    assert again.events == []  # the same data: nothing written
    changed = {**FINGERPRINT, "rows": 900}
    updated = _call(again, "VolunteerWithData", "p1", json.dumps(changed))
    assert updated["dataset"] == changed and updated["since"] == record["since"]
    assert updated["dataset_at"] != record["dataset_at"]
    # Plain Volunteer keeps the record as it is.
    assert _call(again, "Volunteer", "p1") == updated


def test_a_volunteer_without_data_has_no_fingerprint(
    state: dict[str, bytes], consortium_dir: Path
) -> None:
    node = _stub(state, "org1/node0", consortium_dir)
    _call(node, "Volunteer", "p1")
    assert "dataset" not in _call(node, "GetVolunteer", "p1", "org1/node0")
    with pytest.raises(NotFound):
        _call(node, "GetVolunteer", "p1", "org2/node0")
    with pytest.raises(InvalidArgument):
        _call(node, "GetVolunteer", "p1", "not a node")


@pytest.mark.parametrize(
    "dataset",
    [
        {**FINGERPRINT, "rows": 0},
        {**FINGERPRINT, "rows": -1},
        {**FINGERPRINT, "rows": 1.5},
        {**FINGERPRINT, "rows": True},
        {**FINGERPRINT, "rows": "851"},
        {**FINGERPRINT, "rows": 10**13},
        {**FINGERPRINT, "sha256": "ab" * 31},
        {**FINGERPRINT, "sha256": "AB" * 32},
        {**FINGERPRINT, "schema_sha256": "zz" * 32},
        {**FINGERPRINT, "schema_sha256": None},
        {**FINGERPRINT, "values": [1, 2, 3]},  # no other keys: never rows
        {k: v for k, v in FINGERPRINT.items() if k != "rows"},
        [FINGERPRINT],
        "ab" * 32,
    ],
)
def test_a_malformed_fingerprint_is_refused_and_nothing_written(
    state: dict[str, bytes], consortium_dir: Path, dataset: Any
) -> None:
    node = _stub(state, "org1/node0", consortium_dir)
    before = dict(state)
    with pytest.raises(InvalidArgument):
        _call(node, "VolunteerWithData", "p1", json.dumps(dataset))
    assert state == before and keys.volunteer("p1", "org1/node0") not in state


def test_the_profile_must_be_active_and_the_caller_a_node(
    state: dict[str, bytes], consortium_dir: Path
) -> None:
    node = _stub(state, "org1/node0", consortium_dir)
    with pytest.raises(NotFound):
        _call(node, "VolunteerWithData", "nope", json.dumps(FINGERPRINT))
    with pytest.raises(InvalidArgument):
        _call(node, "VolunteerWithData", "p1")  # the fingerprint is required here
    admin = _stub(state, "org1/admin", consortium_dir)
    with pytest.raises(Forbidden):  # an admin is not a training node
        _call(admin, "VolunteerWithData", "p1", json.dumps(FINGERPRINT))
    from tests.ledger.conftest import profile_spec

    _call(admin, "ProposeProfile", json.dumps(profile_spec("p2")))
    with pytest.raises(FailedPrecondition):  # proposed, not active
        _call(node, "VolunteerWithData", "p2", json.dumps(FINGERPRINT))

"""The facade's `volunteer(profile, dataset)`: the fingerprint travels in `VolunteerWithData`,
committed like any write, and `volunteer_record` reads it back; without one, `Volunteer`."""

from __future__ import annotations

import pytest

from ledger_client import EndorseError

from .conftest import LedgerEnv

LEDGER_BACKENDS = ("embedded", "fabric")
FINGERPRINT = {"sha256": "0f" * 32, "rows": 120, "schema_sha256": "e1" * 32}


def test_a_volunteer_record_carries_the_data_fingerprint(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile("digits-8x8")
    before = env.height()
    env.ledger("org1/node0").volunteer("digits-8x8", FINGERPRINT)
    env.ledger("org2/node0").volunteer("digits-8x8")
    assert env.height() == before + 2
    reader = env.ledger("org3/admin")
    assert reader.volunteers("digits-8x8") == ["org1/node0", "org2/node0"]
    assert reader.volunteer_record("digits-8x8", "org1/node0")["dataset"] == FINGERPRINT
    assert "dataset" not in reader.volunteer_record("digits-8x8", "org2/node0")

    env.ledger("org1/node0").volunteer("digits-8x8", FINGERPRINT)  # the same: nothing new
    with pytest.raises(EndorseError) as refused:
        env.ledger("org2/node0").volunteer("digits-8x8", {**FINGERPRINT, "rows": 0})
    assert refused.value.code == "INVALID_ARGUMENT"
    assert "dataset" not in reader.volunteer_record("digits-8x8", "org2/node0")

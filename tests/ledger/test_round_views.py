"""The views of a round that node agents ask of their shared read each time an event wakes
them (ledger_client.records.Round): right, and computed once per read."""

from __future__ import annotations

from tests.round_records import round_record


def test_views_say_who_joined_revealed_and_whether_the_round_can_be_elected() -> None:
    joining = round_record(
        status="joining", phase="revealing", joined=["org2/n0", "org1/n0"], revealed=["org2/n0"]
    )
    assert joining.first_joined == "org1/n0"
    assert joining.joined_set == {"org1/n0", "org2/n0"}
    assert joining.revealed_set == {"org2/n0"}
    assert not joining.all_revealed

    everyone = round_record(
        status="joining",
        phase="revealing",
        joined=["org2/n0", "org1/n0"],
        revealed=["org1/n0", "org2/n0"],
    )
    assert everyone.all_revealed
    # Still joining: the same nodes revealed proves nothing until joining closed.
    assert not round_record(
        status="joining", phase="joining", joined=["org1/n0"], revealed=["org1/n0"]
    ).all_revealed
    assert round_record(status="joining", joined=[], revealed=[]).first_joined == ""
    assert not round_record(status="joining", phase="revealing", joined=[]).all_revealed


def test_views_are_computed_once_per_read() -> None:
    rnd = round_record(status="joining", phase="revealing", joined=["b", "a"], revealed=["a"])
    assert rnd.joined_set is rnd.joined_set
    assert rnd.revealed_set is rnd.revealed_set
    # Not fields: records compare (and print) as the ledger's JSON says, views aside.
    assert rnd == round_record(
        status="joining", phase="revealing", joined=["b", "a"], revealed=["a"]
    )

"""The ledger scenario suite: written against the ledger client only, run on every backend."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from chaincode.election import draw, seed_from_reveals
from ledger_client import (
    EndorseError,
    EpsilonDelta,
    ModelCommitment,
    ModelSource,
    UpdateCommitment,
    UpdateValidation,
    protocol,
)
from ledger_client.records import new_seed_secret

from .conftest import LedgerEnv, profile_spec

# The same scenarios, unchanged, on the embedded ledger and on a real Fabric network.
LEDGER_BACKENDS = ("embedded", "fabric")

NODES = ["org1/node0", "org2/node0", "org3/node0"]


def update_for(ref: str, n: int = 1, eps: str = "1", delta: str = "1e-5") -> UpdateCommitment:
    return UpdateCommitment(
        sha256=hashlib.sha256(f"{ref}:{n}".encode()).hexdigest(),
        num_samples=100,
        validation_sha256=hashlib.sha256(b"suite").hexdigest(),
        epsilon=eps,
        delta=delta,
        metrics={"loss": 123_000},
    )


def test_profile_is_activated_by_a_majority_of_organizations(env: LedgerEnv) -> None:
    env.bootstrap()
    proposed = env.ledger("org3/node1").propose_profile(profile_spec("gyro"))
    assert proposed.status == "proposed"
    first = env.ledger("org1/admin").vote_profile("gyro")
    assert first.outcome == "pending" and first.approvals == 1 and first.status == "proposed"
    assert first.commit is not None and first.commit.transaction_id
    second = env.ledger("org3/admin").vote_profile("gyro")
    assert second.outcome == "active" and second.status == "active" and second.members == 3
    profile = env.ledger("org2/node1").get_profile("gyro")
    assert profile.status == "active"
    assert sorted(v["org"] for v in profile.votes) == ["org1", "org3"]
    assert [p.id for p in env.ledger("org2/node0").list_profiles("active")] == ["gyro"]
    assert [p.id for p in env.ledger("org2/node0").query_profiles({"resolution": "8x8"})] == [
        "gyro"
    ]
    assert env.ledger("org2/node0").query_profiles({"resolution": "28x28"}) == []


def test_profile_is_rejected_when_a_majority_refuses_and_can_be_retired(env: LedgerEnv) -> None:
    env.bootstrap([])
    env.ledger("org1/admin").propose_profile(profile_spec("bad"))
    env.ledger("org1/admin").vote_profile("bad", approve=False)
    outcome = env.ledger("org2/admin").vote_profile("bad", approve=False)
    assert outcome.outcome == "rejected" and outcome.rejections == 2
    env.active_profile("good")
    env.ledger("org1/admin").vote_profile("good", action="retire")
    assert env.ledger("org2/admin").vote_profile("good", action="retire").outcome == "retired"
    assert env.ledger("org1/admin").get_profile("good").status == "retired"


def test_a_full_round_commits_a_model_and_mints_exactly_the_reward(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round("digits-8x8", NODES)
    assert rnd.status == "training" and rnd.participants == sorted(NODES)
    assert rnd.coordinator in NODES
    for ref in NODES:
        env.ledger(ref).submit_update("digits-8x8", 1, update_for(ref))
    coordinator = env.ledger(rnd.coordinator)
    model = ModelCommitment(
        sha256=hashlib.sha256(b"model-1").hexdigest(),
        uri="models:/digits-8x8/1",
        metrics={"accuracy": 912_345},
        inclusion={ref: update_for(ref).sha256 for ref in NODES},
        contributions={"org1/node0": 5, "org2/node0": 3, "org3/node0": 3},
        receipt={"code_version": "test", "seeds": [1, 2, 3]},
    )
    record = coordinator.commit_model("digits-8x8", 1, model)
    assert record.coordinator == rnd.coordinator and record.sha256 == model.sha256
    # The commit comes back with the record that the write returned.
    assert record.commit is not None and record.commit.block_number > 0
    latest = env.ledger("org2/node1").latest_model("digits-8x8")
    assert latest.sha256 == model.sha256 and latest.commit is None  # a read
    assert latest == record  # the commit is where it landed, not part of the record
    minted = coordinator.mint_rewards("digits-8x8", 1)
    # 1000 · (5, 3, 3) / 11 = 454.5, 272.7, 272.7 → floors 454, 272, 272 (sum 998); the two
    # units left go to the largest remainders (.72, .72 beat .54), ties by node id.
    assert minted.amounts == {"org1/node0": 454, "org2/node0": 273, "org3/node0": 273}
    assert minted.total == 1000 and minted.commit is not None
    again = coordinator.mint_rewards("digits-8x8", 1)
    assert again.amounts == minted.amounts and again.total == 1000  # idempotent
    balances = env.ledger("org1/node1").balances()
    assert balances.total == 1000 and balances.orgs == {"org1": 454, "org2": 273, "org3": 273}
    assert env.ledger("org1/node1").balance("org1/node0").by_kind == {"reward": 454}
    history = env.ledger("org1/node1").profile_history("digits-8x8")
    assert history.rounds[0].model is not None
    assert history.rounds[0].model.sha256 == model.sha256
    assert history.rounds[0].rewards == minted.amounts and history.parent is None
    budget = env.ledger("org1/node0").budget("org1/node0", "digits-8x8")
    assert budget.spent == EpsilonDelta("1", "0.00001") and budget.rounds == 1
    assert budget.remaining == EpsilonDelta("2", "0.00009") and not budget.exhausted
    rounds = env.ledger("org1/node0").list_rounds("digits-8x8")
    assert [(r.number, r.status, r.coordinator) for r in rounds] == [(1, "closed", rnd.coordinator)]
    assert env.ledger("org1/node0").round_status("digits-8x8").status == "closed"


def test_the_election_is_the_deterministic_draw_from_the_reveals(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    for ref in NODES:
        env.ledger(ref).volunteer("digits-8x8")
    n = env.ledger("org1/node0").open_round("digits-8x8").number
    secrets = {ref: new_seed_secret() for ref in NODES}
    for ref, (_, commitment) in secrets.items():
        env.ledger(ref).join_round("digits-8x8", n, commitment)
    assert (
        env.ledger("org1/node0").get_round("digits-8x8", n).phase == "revealing"
    )  # every volunteer joined
    for ref, (secret, _) in secrets.items():
        env.ledger(ref).reveal_seed("digits-8x8", n, secret)
    rnd = env.ledger("org3/node0").elect_coordinator("digits-8x8", n)
    seed = seed_from_reveals({ref: secret for ref, (secret, _) in secrets.items()})
    assert rnd.seed == seed
    assert rnd.coordinator == draw(seed, dict.fromkeys(NODES, 100))


def test_a_coordinator_that_misses_its_deadline_is_replaced_and_penalized(
    env: LedgerEnv, tx_clock: TxClock
) -> None:
    env.bootstrap()
    env.active_profile(schedule={"coordinator_window_s": 3})
    rnd = env.elected_round("digits-8x8", NODES)
    other = next(r for r in NODES if r != rnd.coordinator)
    with pytest.raises(EndorseError) as early:
        env.ledger(other).replace_coordinator("digits-8x8", rnd.number)
    assert early.value.code == "FAILED_PRECONDITION"
    tx_clock.pass_deadline(rnd.coordinator_deadline)
    replaced = env.ledger(other).replace_coordinator("digits-8x8", rnd.number)
    assert replaced.coordinator != rnd.coordinator and replaced.coordinator in NODES
    assert env.ledger(other).get_node(rnd.coordinator).reputation == 75
    with pytest.raises(EndorseError) as late:
        env.ledger(rnd.coordinator).commit_model("digits-8x8", rnd.number, _model(NODES[:2]))
    assert late.value.code == "FORBIDDEN"


class TxClock:
    """The time the ledger client stamps on its proposals: the chaincode's clock (ledger
    deadlines are whole seconds of transaction time). It stands still, so a step meant to
    come before a deadline does however slow the machine, and a test moves it to a deadline
    instead of sleeping until one has passed."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def pass_deadline(self, deadline: int) -> None:
        self.now = max(self.now, float(deadline))

    def __getattr__(self, name: str) -> Any:  # the rest of the time module, unchanged
        return getattr(time, name)


@pytest.fixture
def tx_clock(monkeypatch: pytest.MonkeyPatch) -> TxClock:
    clock = TxClock()
    monkeypatch.setattr(protocol, "time", clock)
    return clock


def test_a_node_that_withholds_its_reveal_is_excluded_and_penalized(
    env: LedgerEnv, tx_clock: TxClock
) -> None:
    env.bootstrap()
    env.active_profile(schedule={"join_window_s": 3, "reveal_window_s": 5})
    rnd = env.ledger("org1/node0").open_round("digits-8x8")  # no volunteers: the window decides
    secrets = {ref: new_seed_secret() for ref in NODES}
    for ref, (_, commitment) in secrets.items():
        env.ledger(ref).join_round("digits-8x8", rnd.number, commitment)
    tx_clock.pass_deadline(rnd.join_deadline)
    for ref in NODES[:2]:
        env.ledger(ref).reveal_seed("digits-8x8", rnd.number, secrets[ref][0])
    with pytest.raises(EndorseError) as early:
        env.ledger("org1/node0").elect_coordinator("digits-8x8", rnd.number)
    assert early.value.code == "FAILED_PRECONDITION"  # one participant has not revealed yet
    tx_clock.pass_deadline(rnd.reveal_deadline)
    elected = env.ledger("org1/node0").elect_coordinator("digits-8x8", rnd.number)
    assert elected.participants == sorted(NODES[:2])
    assert elected.raw["withheld"] == [NODES[2]]
    assert env.ledger("org1/node0").get_node(NODES[2]).reputation == 90


def test_too_few_reveals_fail_the_round_cleanly_and_a_new_round_can_open(
    env: LedgerEnv, tx_clock: TxClock
) -> None:
    env.bootstrap()
    env.active_profile(schedule={"join_window_s": 3, "reveal_window_s": 2}, min_nodes=3)
    rnd = env.ledger("org1/node0").open_round("digits-8x8")
    n = rnd.number
    _secret, commitment = new_seed_secret()
    env.ledger("org1/node0").join_round("digits-8x8", n, commitment)
    tx_clock.pass_deadline(rnd.reveal_deadline)
    rnd = env.ledger("org1/node0").elect_coordinator("digits-8x8", n)
    assert (
        rnd.status == "failed"
        and rnd.failure is not None
        and rnd.failure["code"] == "QUORUM_NOT_MET"
    )
    assert env.ledger("org1/node0").open_round("digits-8x8").number == n + 1


def test_an_update_over_the_privacy_budget_is_refused(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile(
        privacy={
            "mode": "client-dp",
            "epsilon_per_round": "1",
            "delta_per_round": "1e-5",
            "epsilon_budget": "1.5",
            "delta_budget": "1e-4",
            "clip_norm": "1",
        }
    )
    rnd = env.elected_round("digits-8x8", NODES)
    env.ledger("org1/node0").submit_update(
        "digits-8x8", rnd.number, update_for("org1/node0", eps="1")
    )
    coordinator = env.ledger(rnd.coordinator)
    committed = [r for r in NODES if r != "org3/node0"]
    if rnd.coordinator != "org1/node0":
        env.ledger(rnd.coordinator).submit_update(
            "digits-8x8", rnd.number, update_for(rnd.coordinator)
        )
        committed = sorted({"org1/node0", rnd.coordinator})
    else:
        env.ledger("org2/node0").submit_update("digits-8x8", rnd.number, update_for("org2/node0"))
        committed = ["org1/node0", "org2/node0"]
    coordinator.commit_model("digits-8x8", rnd.number, _model(committed))
    rnd2 = env.elected_round("digits-8x8", NODES)
    before = env.height()
    with pytest.raises(EndorseError) as refused:
        env.ledger("org1/node0").submit_update(
            "digits-8x8", rnd2.number, update_for("org1/node0", n=2, eps="1")
        )
    assert refused.value.code == "BUDGET_EXCEEDED"
    assert env.height() == before
    spent = env.ledger("org1/node0").budget("org1/node0", "digits-8x8")
    assert spent.spent.epsilon == "1"
    assert spent.remaining is not None and spent.remaining.epsilon == "0.5"
    # A smaller spend that would fit is no way around it: an update declares exactly the
    # profile's per-round spend (INVALID_ARGUMENT names the expected and the given).
    with pytest.raises(EndorseError) as partial:
        env.ledger("org1/node0").submit_update(
            "digits-8x8", rnd2.number, update_for("org1/node0", n=2, eps="0.5")
        )
    assert partial.value.code == "INVALID_ARGUMENT" and "prescribes" in partial.value.message
    assert env.height() == before


def test_a_retried_update_is_idempotent_and_a_different_one_conflicts(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round("digits-8x8", NODES)
    node = env.ledger("org2/node0")
    first = node.submit_update("digits-8x8", rnd.number, update_for("org2/node0"))
    again = node.submit_update("digits-8x8", rnd.number, update_for("org2/node0"))  # same: fine
    assert again == first and again.commit != first.commit  # two transactions, one record
    assert node.budget("org2/node0", "digits-8x8").spent.epsilon == "1"  # counted once
    with pytest.raises(EndorseError) as conflict:
        node.submit_update("digits-8x8", rnd.number, update_for("org2/node0", n=9))
    assert conflict.value.code == "CONFLICT"


def test_a_failed_validation_is_recorded_as_an_exclusion_without_spend(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round("digits-8x8", NODES)
    excluded = UpdateCommitment(
        sha256="",
        num_samples=80,
        validation_sha256="ab" * 32,
        validation_passed=False,
        validation_reason="label outside the label set",
    )
    env.ledger("org3/node0").submit_update("digits-8x8", rnd.number, excluded)
    record = env.ledger("org1/node0").get_update("digits-8x8", rnd.number, "org3/node0")
    assert record.validation == UpdateValidation(
        summary_sha256="ab" * 32, passed=False, reason="label outside the label set"
    )
    assert record.sha256 == "" and record.privacy == EpsilonDelta("0", "0")
    assert record.node == "org3/node0" and record.num_samples == 80
    with pytest.raises(EndorseError) as bad:
        env.ledger(rnd.coordinator).commit_model(
            "digits-8x8", rnd.number, _model(["org3/node0", "org1/node0"])
        )
    assert bad.value.code in {"FAILED_PRECONDITION", "NOT_FOUND", "CONFLICT"}


def _model(nodes: list[str]) -> ModelCommitment:
    return ModelCommitment(
        sha256=hashlib.sha256(",".join(nodes).encode()).hexdigest(),
        uri="models:/digits-8x8/x",
        metrics={"accuracy": 800_000},
        inclusion={ref: update_for(ref).sha256 for ref in nodes},
        contributions=dict.fromkeys(nodes, 1),
    )


def test_events_resume_from_a_checkpoint(env: LedgerEnv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ledger_client import FileCheckpoint

    env.bootstrap()
    network = env.ledger("org1/admin").contract.network
    checkpoint = FileCheckpoint(tmp_path / "checkpoint.json")
    seen = []
    for event in network.get_chaincode_events(
        "fedspec", start_block=0, checkpoint=checkpoint, timeout=2.0
    ):
        seen.append(event)
        if len(seen) == 3:
            break
    assert [e.name for e in seen] == ["ConsortiumInitialized", "NodeRegistered", "NodeRegistered"]
    assert seen[1].json()["id"] == "org1/node0"
    env.active_profile("late")
    resumed = FileCheckpoint(tmp_path / "checkpoint.json")  # a new listener, same file
    rest = [
        e.name for e in network.get_chaincode_events("fedspec", checkpoint=resumed, timeout=2.0)
    ]
    assert rest[: len(NODES) * 2 - 3] == ["NodeRegistered"] * (len(NODES) * 2 - 3)
    assert rest[-3:] == ["ProfileProposed", "ProfileVoted", "ProfileActivated"]
    assert seen[2].transaction_id not in [e.transaction_id for e in seen[:2]]


def test_submit_async_reports_block_and_status(env: LedgerEnv) -> None:
    env.bootstrap(["org1/node0"])
    contract = env.ledger("org1/node0").contract
    submitted = contract.submit_async("RegisterNode")
    status = submitted.get_status()
    assert (
        status.successful
        and status.code_name == "VALID"
        and status.block_number == env.height() - 1
    )
    assert status.transaction_id == submitted.transaction_id
    tx = env.ledger("org1/node0").transaction(submitted.transaction_id)
    assert tx.validationCode == 0


def test_volunteers_are_listed_per_profile_and_withdraw_removes_them(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile("digits-8x8")
    env.ledger("org1/node0").volunteer("digits-8x8")
    env.ledger("org2/node0").volunteer("digits-8x8")
    assert env.ledger("org3/node0").volunteers("digits-8x8") == ["org1/node0", "org2/node0"]
    env.ledger("org1/node0").withdraw("digits-8x8")
    assert env.ledger("org3/node0").volunteers("digits-8x8") == ["org2/node0"]
    assert env.ledger("org3/node0").volunteers("other") == []


def test_the_next_round_trains_from_the_champion_not_from_a_challenger(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    digests = []
    for n, alias in ((1, "champion"), (2, "challenger"), (3, "champion")):
        rnd = env.elected_round("digits-8x8", NODES)
        for ref in NODES:
            env.ledger(ref).submit_update("digits-8x8", n, update_for(ref, n))
        digest = hashlib.sha256(f"model-{n}".encode()).hexdigest()
        digests.append(digest)
        record = env.ledger(rnd.coordinator).commit_model(
            "digits-8x8",
            n,
            ModelCommitment(
                sha256=digest,
                uri=f"models:/digits-8x8/{n}",
                metrics={"accuracy": 900_000},
                inclusion={ref: update_for(ref, n, eps="0.1").sha256 for ref in NODES},
                contributions=dict.fromkeys(NODES, 1),
                alias=alias,
            ),
        )
        assert record.alias == alias
        if n == 1:
            assert rnd.base_model == ""
        else:  # round 2 and 3 both start from round 1's model: round 2's was a challenger
            assert rnd.base_model == digests[0]
    assert env.ledger("org1/node1").latest_model("digits-8x8").sha256 == digests[2]
    bad = ModelCommitment(
        sha256=digests[0],
        uri="",
        metrics={},
        inclusion={NODES[0]: update_for(NODES[0], 3, eps="0.1").sha256},
        contributions={NODES[0]: 1},
        alias="best",
    )
    with pytest.raises(EndorseError) as info:
        env.ledger(NODES[0]).commit_model("digits-8x8", 3, bad)
    assert info.value.code == "INVALID_ARGUMENT" and "alias" in info.value.message


def _close_round(env: LedgerEnv, profile_id: str, tag: str, rnd: Any = None) -> str:
    """Run one round of ``profile_id`` (the elected ``rnd``, or a new one) with every node to
    a committed champion; its sha256."""
    rnd = rnd or env.elected_round(profile_id, NODES)
    for ref in NODES:
        env.ledger(ref).submit_update(profile_id, rnd.number, update_for(ref, rnd.number))
    digest = hashlib.sha256(f"{profile_id}:{tag}".encode()).hexdigest()
    env.ledger(rnd.coordinator).commit_model(
        profile_id,
        rnd.number,
        ModelCommitment(
            sha256=digest,
            uri=f"models:/{profile_id}/{rnd.number}",
            metrics={"accuracy": 900_000},
            inclusion={ref: update_for(ref, rnd.number).sha256 for ref in NODES},
            contributions=dict.fromkeys(NODES, 1),
        ),
    )
    return digest


def test_a_child_s_first_round_starts_from_its_parent_s_champion_when_compatible(
    env: LedgerEnv,
) -> None:
    env.bootstrap()
    parent = env.active_profile("digits")
    early = env.active_profile("early", parent="digits", characteristics={"resolution": "8x8"})
    rnd = env.elected_round("early", NODES)  # the parent has no champion yet
    assert (rnd.base_model, rnd.base_source) == ("", "initial")
    assert "parent digits has no champion yet" in rnd.base_reason
    assert early["parent"] == "digits"

    parent_model = _close_round(env, "digits", "parent-1")
    child_hp = {**parent["model"]["hyperparameters"], "lr": 0.01, "epochs": 3}  # training only
    env.active_profile(
        "digits-scanner",
        parent="digits",
        characteristics={"modality": "image", "resolution": "8x8", "source": "scanner"},
        model={"family": "torch-mlp", "hyperparameters": {**child_hp, "lr": 0.05}},
    )
    first = env.elected_round("digits-scanner", NODES)
    assert (first.base_model, first.base_profile, first.base_source) == (
        parent_model,
        "digits",
        "parent",
    )
    assert first.base_round == 1 and "starts from parent digits's champion" in first.base_reason
    child_model = _close_round(env, "digits-scanner", "child-1", first)
    record = env.ledger("org1/node1").get_model("digits-scanner", 1)
    assert record.raw["base_model"] == parent_model and record.raw["base_profile"] == "digits"
    history = env.ledger("org1/node1").profile_history("digits-scanner")
    assert history.rounds[0].base == ModelSource(parent_model, "digits", "parent")
    assert history.parent == "digits" and history.raw["parent"] == "digits"
    second = env.elected_round("digits-scanner", NODES)  # from then on, its own lineage
    assert (second.base_model, second.base_profile, second.base_source) == (
        child_model,
        "digits-scanner",
        "own",
    )

    env.active_profile(
        "digits-wide",
        parent="digits",
        model={"family": "torch-mlp", "hyperparameters": {"hidden": [256], "lr": 0.05}},
    )
    wide = env.elected_round("digits-wide", NODES)
    assert (wide.base_model, wide.base_source) == ("", "initial")
    assert "hyper-parameters that shape the model differ" in wide.base_reason
    assert "hidden" in wide.base_reason


def test_demand_is_counted_per_characteristic_set_and_requester(env: LedgerEnv) -> None:
    env.bootstrap()
    wanted = {"modality": "image", "resolution": "16x16", "channels": ["y", "x"]}
    env.ledger("org1/admin").record_demand(wanted)
    env.ledger("org1/admin").record_demand(wanted)
    same = {"modality": "Image ", "resolution": "16X16", "channels": ["x", "y", "x"]}
    mine = env.ledger("org2/node0").record_demand(same)
    assert mine.requests == 1 and mine.characteristics["channels"] == ["x", "y"]
    assert mine.requester == "org2/node0" and mine.org == "org2" and mine.commit is not None
    env.ledger("org3/node1").record_demand({"sensor": "magnetometer"})
    groups = env.ledger("org2/admin").list_demand()
    assert [g.requests for g in groups] == [3, 1]
    top = groups[0]
    assert top.signature == mine.signature
    assert top.requesters == ["org1/admin", "org2/node0"] and top.orgs == ["org1", "org2"]
    assert top.characteristics == {
        "channels": ["x", "y"],
        "modality": "image",
        "resolution": "16x16",
    }
    assert top.profiles == []
    assert [g.requests for g in env.ledger("org2/admin").list_demand(3, 2)] == [3]
    assert env.ledger("org2/admin").list_demand(1, 3) == []

    env.ledger("org1/admin").propose_profile(
        profile_spec("digits-16x16", characteristics={**top.characteristics, "extra": 1})
    )
    assert env.ledger("org2/admin").list_demand(3, 2)[0].profiles == ["digits-16x16"]

    before = env.height()
    for bad in ({"Bad Key": "x"}, {"rate": 1.5}, {}, {"k": "x" * 300}, ["a"], "x" * 9000):
        with pytest.raises(EndorseError) as refused:
            env.ledger("org1/admin").submit("RecordDemand", json.dumps(bad))
        assert refused.value.code == "INVALID_ARGUMENT", bad
    assert env.height() == before


def test_a_node_advertises_its_data_characteristics_with_its_update(env: LedgerEnv) -> None:
    env.bootstrap()
    env.active_profile()
    rnd = env.elected_round("digits-8x8", NODES)
    chars = {"modality": "image", "resolution": "8x8", "source": "scanner-a"}
    update = UpdateCommitment(**{**update_for("org1/node0").__dict__, "characteristics": chars})
    submitted = env.ledger("org1/node0").submit_update("digits-8x8", rnd.number, update)
    record = env.ledger("org2/node0").get_update("digits-8x8", rnd.number, "org1/node0")
    assert record.characteristics == chars and record == submitted
    assert record.metrics == {"loss": 123_000} and record.privacy == EpsilonDelta("1", "0.00001")
    assert [u.node for u in env.ledger("org2/node0").list_updates("digits-8x8", rnd.number)] == [
        "org1/node0"
    ]
    bad = UpdateCommitment(**{**update_for("org2/node0").__dict__, "characteristics": {"X": 1}})
    with pytest.raises(EndorseError) as refused:
        env.ledger("org2/node0").submit_update("digits-8x8", rnd.number, bad)
    assert refused.value.code == "INVALID_ARGUMENT" and "characteristics" in refused.value.message

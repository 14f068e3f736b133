"""Rounds of one profile: open → join (commit) → reveal → elect → train → commit model.

Deadlines come from transaction timestamps. Joining closes at the join deadline, or as soon
as every node that volunteered for the profile has joined (so a round need not wait for its
window when everyone is there). Reveals open when joining closes, and no join is accepted once
a reveal exists.

Read sets are chosen so that the many nodes of one round never invalidate each other (on
Fabric and on the embedded ledger alike, a transaction is invalid at commit when a key or range
it read changed since its endorsement): a join reads no other node's join key, a reveal no
other node's reveal. Deciding "every volunteer joined" compares two range scans (volunteers,
joins) rather than reading each volunteer's join key.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from chaincode import election, keys
from chaincode.common import (
    check_node_id,
    check_profile_id,
    check_sha256,
    load_profile,
    parse_int,
    require_active_profile,
    require_member,
    require_node,
)
from chaincode.context import Tx
from chaincode.errors import FailedPrecondition, Forbidden, InvalidArgument, NotFound
from chaincode.lineage import starting_point
from chaincode.nodes import add_penalty, list_volunteers, reputation

WITHHELD_REVEAL_PENALTY = 10
MISSED_DEADLINE_PENALTY = 25
FAIL_CODES = ("QUORUM_NOT_MET", "AGGREGATION_FAILED", "EVALUATION_FAILED", "ABORTED")


async def load_round(tx: Tx, profile_id: str, n: int) -> dict[str, Any]:
    record = await tx.get(keys.round_(check_profile_id(profile_id), n))
    if record is None:
        raise NotFound(f"round {n} of profile {profile_id} does not exist")
    return record


async def _require_opener(tx: Tx) -> None:
    await require_member(tx)
    if tx.creator.role == "client":
        await require_node(tx)
    elif tx.creator.role != "admin":
        raise Forbidden(f"{tx.creator.id} ({tx.creator.role}) may not run rounds")


async def open_round(tx: Tx, profile_id: str) -> dict[str, Any]:
    """Open the profile's next round (the previous one must be closed or failed)."""
    await _require_opener(tx)
    profile = await require_active_profile(tx, profile_id)
    pointer = await tx.get(keys.round_pointer(profile_id))
    n = 1
    if pointer is not None:
        previous = await load_round(tx, profile_id, pointer["round"])
        if previous["status"] not in ("closed", "failed"):
            raise FailedPrecondition(
                f"round {previous['round']} of {profile_id} is still {previous['status']}",
                round=previous["round"],
            )
        n = pointer["round"] + 1
    start = await starting_point(tx, profile)
    schedule = profile["spec"]["schedule"]
    join_deadline = tx.timestamp + int(schedule["join_window_s"])
    record: dict[str, Any] = {
        "profile": profile_id,
        "round": n,
        "status": "joining",
        "opened_by": tx.creator.id,
        "opened_at": tx.timestamp,
        "join_deadline": join_deadline,
        "reveal_deadline": join_deadline + int(schedule["reveal_window_s"]),
        "min_nodes": int(profile["spec"]["min_nodes"]),
        # Which model the round trains from, in which profile's lineage, and why.
        "base_model": start["sha256"],
        "base_round": start["round"],
        "base_profile": start["profile"],
        "base_source": start["source"],
        "base_reason": start["reason"],
        "participants": [],
        "withheld": [],
        "coordinator": "",
        "coordinator_deadline": 0,
        "replaced": [],
        "seed": "",
        "failure": None,
        "rewards": None,
    }
    await tx.put(keys.round_(profile_id, n), record)
    await tx.put(keys.round_pointer(profile_id), {"round": n})
    tx.emit("RoundOpened", _summary(record))
    return record


def _everyone_joined(volunteers: Collection[str], joined: Collection[str]) -> bool:
    """Whether every volunteer of the profile has joined; no volunteers never closes joining
    early (only the deadline does)."""
    return bool(volunteers) and set(volunteers) <= set(joined)


async def _joined(tx: Tx, record: dict[str, Any]) -> list[str]:
    """The nodes that joined the round: one range scan of its join keys."""
    n8 = keys.round_no(record["round"])
    return [attrs[2] for attrs, _ in await tx.scan("join", record["profile"], n8)]


async def _any_reveal(tx: Tx, record: dict[str, Any]) -> bool:
    n8 = keys.round_no(record["round"])
    return bool(await tx.scan("reveal", record["profile"], n8))


async def _joining_closed(
    tx: Tx,
    record: dict[str, Any],
    joined: Collection[str] | None = None,
    revealed: Collection[str] | None = None,
) -> bool:
    """Whether the join deadline passed, every volunteer joined, or a reveal exists (a reveal
    was only accepted once joining had closed, and a volunteer added since must not reopen
    it: :func:`_open_to` refuses its join). ``joined``/``revealed``: the round's joined and
    revealed nodes when the caller has scanned them already (otherwise scanned here, and the
    reveals only when the other rules left joining open, so that the usual read set of a
    reveal holds no other node's reveal)."""
    if tx.timestamp >= record["join_deadline"] or revealed:
        return True
    volunteers = await list_volunteers(tx, record["profile"])
    if joined is None:
        joined = await _joined(tx, record) if volunteers else []
    if _everyone_joined(volunteers, joined):
        return True
    return revealed is None and await _any_reveal(tx, record)


async def _open_to(tx: Tx, record: dict[str, Any], node_id: str) -> bool:
    """Whether ``node_id`` (which has not joined yet) may join the round now.

    Never reads another node's join key: two nodes joining in the same block would otherwise
    read each other's absent key and write their own, and the second would be invalidated (an
    MVCC read conflict per pair of concurrent joiners)."""
    if record["status"] != "joining" or tx.timestamp >= record["join_deadline"]:
        return False
    # Commit-reveal: once a secret is revealed, a late join could choose its own secret
    # knowing it. Reveals are written only after joining closed, so concurrent joins never
    # write into this range; a reveal committed before this join invalidates it at commit (a
    # phantom read), as it should.
    if await _any_reveal(tx, record):
        return False
    if await tx.get(keys.volunteer(record["profile"], node_id)) is not None:
        # A volunteer that has not joined: "every volunteer joined" is false by definition,
        # so only the status and the deadline decide.
        return True
    # A node that does not volunteer: exact, reading joins only up to the first volunteer
    # that has not joined (the one key a concurrent join can invalidate this read on).
    profile_id, n = record["profile"], record["round"]
    volunteers = await list_volunteers(tx, profile_id)
    for volunteer_id in volunteers:
        if await tx.get(keys.join(profile_id, n, volunteer_id)) is None:
            return True
    return not volunteers


async def join_round(tx: Tx, profile_id: str, round_text: str, commitment: str) -> dict[str, Any]:
    """A node joins a round with the sha256 commitment of its election secret."""
    return await join_with(tx, profile_id, round_text, commitment, None)


async def join_with(
    tx: Tx,
    profile_id: str,
    round_text: str,
    commitment: str,
    public_keys: dict[str, str] | None,
) -> dict[str, Any]:
    """The join itself; ``public_keys`` (secure aggregation's, :mod:`chaincode.secagg`) are
    part of the signed entry, so a second join with other keys is a ``Conflict``."""
    node = await require_node(tx)
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    check_sha256(commitment, "seed commitment")
    profile = await load_profile(tx, profile_id)
    if "secure" in profile["spec"]["aggregation"] and public_keys is None:
        raise FailedPrecondition(
            f"profile {profile_id} uses secure aggregation: join with JoinRoundWithKeys and "
            "this round's public keys"
        )
    key = keys.join(profile_id, n, node["id"])
    entry: dict[str, Any] = {"node": node["id"], "commitment": commitment}
    if public_keys is not None:
        entry["secagg_keys"] = public_keys
    if await tx.get(key) is not None:
        await tx.put_once(key, entry, f"{node['id']}'s commitment for round {n}")
        return entry  # retried join: same commitment, nothing written
    if not await _open_to(tx, record, node["id"]):
        raise FailedPrecondition(f"joining round {n} of {profile_id} is closed")
    await tx.put(key, entry)
    tx.emit("RoundJoined", {"profile": profile_id, "round": n, "node": node["id"]})
    return entry


async def reveal_seed(tx: Tx, profile_id: str, round_text: str, secret: str) -> dict[str, Any]:
    """A node reveals its election secret once joining has closed."""
    return await _reveal(tx, profile_id, round_text, secret, "")


async def reveal_seed_after(
    tx: Tx, profile_id: str, round_text: str, secret: str, revealed_node: str
) -> dict[str, Any]:
    """A reveal that names a node whose reveal is on the ledger already: that reveal proves
    joining closed (reveals are accepted only then) with one key read. Without it a reveal
    before the join deadline proves "every volunteer joined" by scanning the volunteers and
    the joins: O(N) keys in each of N reveals' read sets, O(N^2) bytes a round (at 200 nodes
    18 KB of each reveal's 25 KB, benchmarks/scale.py). A named node that has not revealed
    is no proof: the usual rules decide then."""
    check_node_id(revealed_node, "revealed_node")
    return await _reveal(tx, profile_id, round_text, secret, revealed_node)


async def _reveal(
    tx: Tx, profile_id: str, round_text: str, secret: str, revealed_node: str
) -> dict[str, Any]:
    node = await require_node(tx)
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    joined = await tx.get(keys.join(profile_id, n, node["id"]))
    if joined is None:
        raise Forbidden(f"{node['id']} did not join round {n} of {profile_id}")
    if not isinstance(secret, str) or len(secret) != 64:
        raise InvalidArgument("the secret must be 32 bytes as 64 hex characters")
    try:
        secret_bytes = bytes.fromhex(secret)
    except ValueError as exc:
        raise InvalidArgument("the secret must be hex") from exc
    if election.commitment(secret_bytes) != joined["commitment"]:
        raise InvalidArgument("the secret does not match the node's commitment")
    key = keys.reveal(profile_id, n, node["id"])
    entry = {"node": node["id"], "secret": secret.lower()}
    if await tx.get(key) is not None:
        await tx.put_once(key, entry, f"{node['id']}'s reveal for round {n}")
        return entry
    if record["status"] != "joining":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    witnessed = bool(revealed_node) and tx.timestamp < record["join_deadline"]
    if witnessed:
        witnessed = await tx.get(keys.reveal(profile_id, n, revealed_node)) is not None
    if not witnessed and not await _joining_closed(tx, record):
        raise FailedPrecondition(f"reveals of round {n} open when joining closes")
    if tx.timestamp >= record["reveal_deadline"]:
        raise FailedPrecondition(f"the reveal deadline of round {n} has passed")
    await tx.put(key, entry)
    tx.emit("SeedRevealed", {"profile": profile_id, "round": n, "node": node["id"]})
    return entry


async def elect_coordinator(tx: Tx, profile_id: str, round_text: str) -> dict[str, Any]:
    """Draw the coordinator from the revealed seeds, weighted by reputation."""
    n = parse_int(round_text, "round", minimum=1)
    await _require_opener(tx)
    record = await load_round(tx, profile_id, n)
    if record["status"] != "joining":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    joins = {attrs[2]: r for attrs, r in await tx.scan("join", profile_id, keys.round_no(n))}
    reveals = {
        attrs[2]: r["secret"] for attrs, r in await tx.scan("reveal", profile_id, keys.round_no(n))
    }
    if tx.creator.role == "client" and tx.creator.id not in joins:
        raise Forbidden(f"{tx.creator.id} did not join round {n}")
    # Every participant revealed: then a reveal exists, so joining has closed (_joining_closed).
    everyone_revealed = bool(joins) and set(reveals) == set(joins)
    if not (everyone_revealed or tx.timestamp >= record["reveal_deadline"]):
        raise FailedPrecondition(
            f"round {n} elects once every participant revealed or at its reveal deadline"
        )
    withheld = sorted(set(joins) - set(reveals))
    for node_id in withheld:
        ref = f"reveal:{profile_id}:{keys.round_no(n)}"
        await add_penalty(tx, node_id, ref, WITHHELD_REVEAL_PENALTY, "withheld its seed reveal")
    participants = sorted(reveals)
    record = {**record, "participants": participants, "withheld": withheld}
    if len(participants) < record["min_nodes"]:
        return await _fail(
            tx,
            record,
            "QUORUM_NOT_MET",
            f"{len(participants)} revealed, the profile needs {record['min_nodes']}",
        )
    profile = await load_profile(tx, profile_id)
    secure = profile["spec"]["aggregation"].get("secure")
    if secure is not None:
        # The cohort is known now: a threshold past it, or not a majority of it, is refused
        # (federated.secagg.check_threshold says why a majority).
        t, cohort = int(secure["threshold"]), len(participants)
        if t > cohort or 2 * t <= cohort:
            return await _fail(
                tx,
                record,
                "SECAGG_THRESHOLD_INVALID",
                f"secure aggregation threshold {t} must be a majority of the cohort of "
                f"{cohort} and at most {cohort}",
            )
    weights = {node_id: await reputation(tx, node_id) for node_id in participants}
    seed = election.seed_from_reveals(reveals)
    coordinator = election.draw(seed, weights)
    window = int(profile["spec"]["schedule"]["coordinator_window_s"])
    record = {
        **record,
        "status": "training",
        "seed": seed,
        "weights": weights,
        "coordinator": coordinator,
        "elected_at": tx.timestamp,
        "coordinator_deadline": tx.timestamp + window,
    }
    await tx.put(keys.round_(profile_id, n), record)
    tx.emit("CoordinatorElected", _summary(record))
    return record


async def replace_coordinator(tx: Tx, profile_id: str, round_text: str) -> dict[str, Any]:
    """After the coordinator's deadline, any participant (or an admin) elects a replacement."""
    n = parse_int(round_text, "round", minimum=1)
    await _require_opener(tx)
    record = await load_round(tx, profile_id, n)
    if record["status"] != "training":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    if tx.creator.role == "client" and tx.creator.id not in record["participants"]:
        raise Forbidden(f"{tx.creator.id} is not a participant of round {n}")
    if tx.timestamp < record["coordinator_deadline"]:
        raise FailedPrecondition(
            f"the coordinator of round {n} has until {record['coordinator_deadline']}"
        )
    old = record["coordinator"]
    replaced = [*record["replaced"], old]
    ref = f"coordinator:{profile_id}:{keys.round_no(n)}:{len(replaced)}"
    await add_penalty(tx, old, ref, MISSED_DEADLINE_PENALTY, "missed its coordinator deadline")
    weights = {node_id: await reputation(tx, node_id) for node_id in record["participants"]}
    new = election.draw(election.reseed(record["seed"], len(replaced)), weights, exclude=replaced)
    record = {**record, "replaced": replaced, "weights": weights}
    if new is None:
        return await _fail(tx, record, "ABORTED", "no participant is left to coordinate")
    profile = await load_profile(tx, profile_id)
    window = int(profile["spec"]["schedule"]["coordinator_window_s"])
    record = {**record, "coordinator": new, "coordinator_deadline": tx.timestamp + window}
    await tx.put(keys.round_(profile_id, n), record)
    tx.emit("CoordinatorReplaced", {**_summary(record), "previous": old})
    return record


async def fail_round(
    tx: Tx, profile_id: str, round_text: str, code: str, reason: str
) -> dict[str, Any]:
    """The coordinator ends a round that cannot produce a model (e.g. too few good updates)."""
    node = await require_node(tx)
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    if record["status"] != "training":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    if record["coordinator"] != node["id"]:
        raise Forbidden(f"only the coordinator {record['coordinator']} may fail round {n}")
    if code not in FAIL_CODES:
        raise InvalidArgument(f"code must be one of {list(FAIL_CODES)}")
    if not isinstance(reason, str) or not 1 <= len(reason) <= 1000:
        raise InvalidArgument("reason must be 1 to 1000 characters")
    return await _fail(tx, record, code, reason)


async def _fail(tx: Tx, record: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
    record = {
        **record,
        "status": "failed",
        "failure": {"code": code, "reason": reason},
        "closed_at": tx.timestamp,
    }
    await tx.put(keys.round_(record["profile"], record["round"]), record)
    tx.emit("RoundFailed", {**_summary(record), "failure": record["failure"]})
    return record


async def get_round(tx: Tx, profile_id: str, round_text: str) -> dict[str, Any]:
    """A round with its phase, joined and revealed nodes."""
    n = parse_int(round_text, "round", minimum=1)
    return await _with_phase(tx, await load_round(tx, profile_id, n))


async def round_status(tx: Tx, profile_id: str) -> dict[str, Any]:
    """The profile's latest round."""
    await load_profile(tx, profile_id)
    pointer = await tx.get(keys.round_pointer(profile_id))
    if pointer is None:
        raise NotFound(f"profile {profile_id} has no rounds yet")
    return await _with_phase(tx, await load_round(tx, profile_id, pointer["round"]))


async def list_rounds(tx: Tx, profile_id: str) -> list[dict[str, Any]]:
    """Every round of a profile, oldest first."""
    await load_profile(tx, profile_id)
    return [_summary(r) | {"failure": r["failure"]} for _, r in await tx.scan("round", profile_id)]


async def _with_phase(tx: Tx, record: dict[str, Any]) -> dict[str, Any]:
    n8 = keys.round_no(record["round"])
    joined = sorted(a[2] for a, _ in await tx.scan("join", record["profile"], n8))
    revealed = sorted(a[2] for a, _ in await tx.scan("reveal", record["profile"], n8))
    phase = record["status"]
    if phase == "joining" and await _joining_closed(tx, record, joined, revealed):
        phase = "revealing"
    return {**record, "phase": phase, "joined": joined, "revealed": revealed}


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    fields = (
        "profile",
        "round",
        "status",
        "coordinator",
        "coordinator_deadline",
        "join_deadline",
        "reveal_deadline",
        "participants",
        "base_model",
    )
    summary = {f: record[f] for f in fields}
    if "base_profile" in record:  # rounds opened before lineage was recorded lack it
        summary["base_profile"] = record["base_profile"]
    return summary

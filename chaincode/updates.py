"""Update commitments: a node's signed record of the update it trained, and its privacy spend."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from chaincode import keys, rdp
from chaincode.common import (
    check_int_map,
    check_node_id,
    check_sha256,
    load_profile,
    parse_int,
    require_node,
)
from chaincode.context import Tx, canonical
from chaincode.errors import (
    BudgetExceeded,
    Conflict,
    FailedPrecondition,
    Forbidden,
    InvalidArgument,
    NotFound,
)
from chaincode.rounds import load_round
from chaincode.schema import (
    decimal,
    decimal_text,
    dp_sgd_round_rdp,
    parse_json_argument,
    per_round_spend,
    validate_characteristics,
)

_FIELDS = {"sha256", "num_samples", "validation", "privacy", "metrics", "uri", "characteristics"}


def _parse_update(text: str) -> dict[str, Any]:
    doc = parse_json_argument(text, "update", max_bytes=16 * 1024)
    if (
        not isinstance(doc, dict)
        or set(doc) - _FIELDS
        or not {"num_samples", "validation"} <= set(doc)
    ):
        raise InvalidArgument(f"update must be an object with fields {sorted(_FIELDS)}")
    validation = doc["validation"]
    if not isinstance(validation, dict) or not isinstance(validation.get("passed"), bool):
        raise InvalidArgument("update.validation must hold summary_sha256 and passed")
    check_sha256(validation.get("summary_sha256"), "update.validation.summary_sha256")
    reason = validation.get("reason", "")
    if (
        not isinstance(reason, str)
        or len(reason) > 1000
        or set(validation) - {"summary_sha256", "passed", "reason"}
    ):
        raise InvalidArgument("update.validation.reason must be at most 1000 characters")
    num = doc["num_samples"]
    if not isinstance(num, int) or isinstance(num, bool) or not 0 <= num <= 10**12:
        raise InvalidArgument("update.num_samples must be an integer ≥ 0")
    privacy = doc.get("privacy", {"epsilon": "0", "delta": "0"})
    if not isinstance(privacy, dict) or set(privacy) != {"epsilon", "delta"}:
        raise InvalidArgument("update.privacy must hold epsilon and delta as decimal strings")
    eps = decimal(privacy["epsilon"], "update.privacy.epsilon")
    delta = decimal(privacy["delta"], "update.privacy.delta")
    if eps < 0 or delta < 0 or delta >= 1:
        raise InvalidArgument("update.privacy: epsilon ≥ 0 and 0 ≤ delta < 1")
    uri = doc.get("uri", "")
    if not isinstance(uri, str) or len(uri) > 1000:
        raise InvalidArgument("update.uri must be at most 1000 characters")
    if validation["passed"]:
        check_sha256(doc.get("sha256"), "update.sha256")
        if num < 1:
            raise InvalidArgument("an update trained on validated data has num_samples ≥ 1")
    elif doc.get("sha256", "") != "" or eps != 0 or delta != 0:
        # Data that failed validation is never trained on: the record states the exclusion.
        raise InvalidArgument(
            "an update whose data failed validation carries no sha256 and no spend"
        )
    parsed: dict[str, Any] = {
        "sha256": doc.get("sha256", ""),
        "num_samples": num,
        "validation": {
            "summary_sha256": validation["summary_sha256"],
            "passed": validation["passed"],
            "reason": reason,
        },
        "privacy": {"epsilon": decimal_text(eps), "delta": decimal_text(delta)},
        "metrics": check_int_map(doc.get("metrics", {}), "update.metrics"),
        "uri": uri,
    }
    if "characteristics" in doc:
        # What the node's data is (resolution, sensor…), never the data: what lets a
        # coordinator name the groups of a profile whose nodes' updates diverge.
        parsed["characteristics"] = validate_characteristics(
            doc["characteristics"], "update.characteristics"
        )
    return parsed


def _check_spend(
    profile_id: str, privacy: dict[str, Any], update: dict[str, Any], eps: Fraction, delta: Fraction
) -> None:
    """An update declares exactly the spend its profile prescribes: the per-round (ε, δ) when
    it trained under a DP mode, (0, 0) under ``none``, and (0, 0) when its data failed
    validation (never trained on; :func:`_parse_update`). Any other value (ε = 0 on a DP
    profile, a smaller ε, a larger one) is refused, naming what was expected and given."""
    if not update["validation"]["passed"]:
        return
    want_eps, want_delta = per_round_spend(privacy)
    if (eps, delta) != (want_eps, want_delta):
        expected = f"ε={decimal_text(want_eps)}, δ={decimal_text(want_delta)}"
        given = f"ε={decimal_text(eps)}, δ={decimal_text(delta)}"
        raise InvalidArgument(
            f"update.privacy: profile {profile_id} (privacy mode {privacy['mode']}) prescribes "
            f"{expected} per round; the update declares {given}",
            field="update.privacy",
            expected={"epsilon": decimal_text(want_eps), "delta": decimal_text(want_delta)},
            given={"epsilon": decimal_text(eps), "delta": decimal_text(delta)},
        )


async def submit_update(
    tx: Tx, profile_id: str, round_text: str, update_json: str
) -> dict[str, Any]:
    """A participant commits its update's hash, validation verdict and privacy spend."""
    node = await require_node(tx)
    n = parse_int(round_text, "round", minimum=1)
    record = await load_round(tx, profile_id, n)
    if node["id"] not in record["participants"]:
        raise Forbidden(f"{node['id']} is not a participant of round {n} of {profile_id}")
    update = {"profile": profile_id, "round": n, "node": node["id"], **_parse_update(update_json)}
    key = keys.update(profile_id, n, node["id"])
    existing = await tx.get(key)
    if existing is not None:
        if canonical(existing) == canonical(update):
            return existing  # a retried submit: its spend is not counted twice
        raise Conflict(f"{node['id']} already committed a different update for round {n}")
    if record["status"] != "training":
        raise FailedPrecondition(f"round {n} of {profile_id} is {record['status']}")
    profile = await load_profile(tx, profile_id)
    spend_eps = Fraction(update["privacy"]["epsilon"])
    spend_delta = Fraction(update["privacy"]["delta"])
    privacy = profile["spec"]["privacy"]
    _check_spend(profile_id, privacy, update, spend_eps, spend_delta)
    if privacy["mode"] == "dp-sgd":
        if update["validation"]["passed"]:
            await _spend_rdp(tx, node["id"], profile_id, privacy, n)
    elif privacy["mode"] != "none":
        budget_key = keys.budget(node["id"], profile_id)
        spent = await tx.get(budget_key) or {"epsilon": "0", "delta": "0", "rounds": 0}
        total_eps = Fraction(spent["epsilon"]) + spend_eps
        total_delta = Fraction(spent["delta"]) + spend_delta
        cap_eps = decimal(privacy["epsilon_budget"], "epsilon_budget")
        cap_delta = decimal(privacy["delta_budget"], "delta_budget")
        if total_eps > cap_eps or total_delta > cap_delta:
            raise BudgetExceeded(
                f"{node['id']} would spend ε={decimal_text(total_eps)}, δ={decimal_text(total_delta)} "
                f"on {profile_id}; the budget is ε={privacy['epsilon_budget']}, δ={privacy['delta_budget']}",
                spent_epsilon=spent["epsilon"],
                spent_delta=spent["delta"],
            )
        if spend_eps or spend_delta:
            await tx.put(
                budget_key,
                {
                    "epsilon": decimal_text(total_eps),
                    "delta": decimal_text(total_delta),
                    "rounds": int(spent["rounds"]) + 1,
                    "last_round": n,
                },
            )
    await tx.put(key, update)
    tx.emit(
        "UpdateCommitted",
        {
            "profile": profile_id,
            "round": n,
            "node": node["id"],
            "sha256": update["sha256"],
            "passed": update["validation"]["passed"],
        },
    )
    return update


async def get_update(tx: Tx, profile_id: str, round_text: str, node_id: str) -> dict[str, Any]:
    """One node's update commitment in a round."""
    n = parse_int(round_text, "round", minimum=1)
    record = await tx.get(keys.update(profile_id, n, check_node_id(node_id)))
    if record is None:
        raise NotFound(f"{node_id} has no update for round {n} of {profile_id}")
    return record


async def list_updates(tx: Tx, profile_id: str, round_text: str) -> list[dict[str, Any]]:
    """All update commitments of a round."""
    n = parse_int(round_text, "round", minimum=1)
    await load_round(tx, profile_id, n)
    return [r for _, r in await tx.scan("update", profile_id, keys.round_no(n))]


async def get_budget(tx: Tx, node_id: str, profile_id: str) -> dict[str, Any]:
    """A node's privacy spend and what is left of its budget for a profile."""
    profile = await load_profile(tx, profile_id)
    privacy = profile["spec"]["privacy"]
    spent = await tx.get(keys.budget(check_node_id(node_id), profile_id)) or {
        "epsilon": "0",
        "delta": "0",
        "rounds": 0,
    }
    out: dict[str, Any] = {
        "node": node_id,
        "profile": profile_id,
        "mode": privacy["mode"],
        "spent": {"epsilon": spent["epsilon"], "delta": spent["delta"]},
        "rounds": spent["rounds"],
    }
    if privacy["mode"] == "dp-sgd":
        return {**out, **await _rdp_view(tx, check_node_id(node_id), profile_id, privacy)}
    if privacy["mode"] != "none":
        cap_eps = decimal(privacy["epsilon_budget"], "epsilon_budget")
        cap_delta = decimal(privacy["delta_budget"], "delta_budget")
        out["budget"] = {"epsilon": privacy["epsilon_budget"], "delta": privacy["delta_budget"]}
        out["remaining"] = {
            "epsilon": decimal_text(max(Fraction(0), cap_eps - Fraction(spent["epsilon"]))),
            "delta": decimal_text(max(Fraction(0), cap_delta - Fraction(spent["delta"]))),
        }
    return out


# ---------------------------------------------------------------- record-level (dp-sgd)
async def rdp_standing(
    tx: Tx, node_id: str, profile_id: str, privacy: dict[str, Any]
) -> rdp.Standing:
    """The node's spends as the RDP accountant composes them for a dp-sgd profile: this
    profile's curve, the sum of its curves in every dp-sgd profile, and its (ε, δ) spends
    in the older modes (one budget record per profile the node trained in: a short scan)."""
    profile_curve = family_curve = rdp.zero()
    other_eps = other_delta = Fraction(0)
    for attrs, record in await tx.scan("budget", node_id):
        if "rdp" in record:
            curve = rdp.from_text(record["rdp"])
            family_curve = rdp.add(family_curve, curve)
            if attrs[-1] == profile_id:
                profile_curve = curve
        else:
            other_eps += Fraction(record["epsilon"])
            other_delta += Fraction(record["delta"])
    return rdp.Standing(
        profile_curve,
        family_curve,
        other_eps,
        other_delta,
        delta=decimal(privacy["delta_budget"], "delta_budget"),
        epsilon_budget=decimal(privacy["epsilon_budget"], "epsilon_budget"),
    )


async def _spend_rdp(
    tx: Tx, node_id: str, profile_id: str, privacy: dict[str, Any], n: int
) -> None:
    """Compose one round's RDP curve into the node's record; refuse (nothing written) when
    the family total would pass the profile's budget at its δ."""
    standing = await rdp_standing(tx, node_id, profile_id, privacy)
    curve = dp_sgd_round_rdp(privacy)
    refusal = standing.refusal(curve)
    if refusal is not None:
        raise BudgetExceeded(
            f"{node_id} on {profile_id}: {refusal}",
            spent_epsilon=str(standing.profile_epsilon),
            family_epsilon=str(standing.family_epsilon),
        )
    after = standing.with_round(curve)
    key = keys.budget(node_id, profile_id)
    previous = await tx.get(key) or {"rounds": 0}
    await tx.put(
        key,
        {
            "accountant": "rdp",
            "rdp": rdp.to_text(after.profile_curve),
            "epsilon": decimal_text(Fraction(after.profile_epsilon)),
            "delta": decimal_text(standing.delta),
            "rounds": int(previous["rounds"]) + 1,
            "last_round": n,
        },
    )


async def _rdp_view(
    tx: Tx, node_id: str, profile_id: str, privacy: dict[str, Any]
) -> dict[str, Any]:
    """GetBudget's fields for a dp-sgd profile: ε at the profile's δ, spent in the profile
    and over the family, what is left, how many more rounds fit, and the curves themselves
    (so that a node checks a round with this very arithmetic before training)."""
    standing = await rdp_standing(tx, node_id, profile_id, privacy)
    curve = dp_sgd_round_rdp(privacy)
    family = standing.family_epsilon
    delta = decimal_text(standing.delta)
    spent_any = any(standing.profile_curve)
    left = (
        Fraction(0)
        if family is None
        else max(Fraction(0), standing.epsilon_budget - Fraction(family))
    )
    return {
        "accountant": "rdp",
        "spent": {
            "epsilon": decimal_text(Fraction(standing.profile_epsilon)),
            "delta": delta if spent_any else "0",
        },
        "budget": {"epsilon": privacy["epsilon_budget"], "delta": privacy["delta_budget"]},
        "family": {
            "epsilon": "inf" if family is None else decimal_text(Fraction(family)),
            "delta": delta,
        },
        "remaining": {"epsilon": decimal_text(left), "delta": delta if family is not None else "0"},
        "round": {
            "epsilon": decimal_text(Fraction(rdp.epsilon(curve, standing.delta))),
            "delta": delta,
        },
        "rounds_left": standing.rounds_left(curve),
        "rdp": {
            "orders": list(rdp.ORDERS),
            "profile": rdp.to_text(standing.profile_curve),
            "family": rdp.to_text(standing.family_curve),
            "other": {
                "epsilon": decimal_text(standing.other_epsilon),
                "delta": decimal_text(standing.other_delta),
            },
        },
    }

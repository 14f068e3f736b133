"""Where a round starts: the profile's own champion, its parent's champion, or scratch.

A profile proposed with a ``parent`` (a specialization of it) has no model of its own until
its first round closes. That round may start from the parent's champion instead of random
weights, but only when the parent's model can be the child's: the same model family, the
same task and labels, the same feature schema (shape, columns, value bounds: the inputs are
scaled by them) and the same hyper-parameters that shape the model. Hyper-parameters that
only steer training (:data:`TRAINING_ONLY`) may differ. Otherwise the round starts from
scratch and the round record says why.

Every comparison is of canonical JSON text, so every peer decides the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaincode import keys
from chaincode.context import Tx, canonical

# Hyper-parameters that change how a model is trained, not what it is: a child may train
# its parent's model with other values.
TRAINING_ONLY = frozenset(
    {
        "epochs",
        "learning_rate",
        "batch_size",
        "local_rounds",
        "weight_decay",
        "momentum",
        "num_threads",
        "proximal_mu",
        "random_state",
    }
)


def incompatibility(child: Mapping[str, Any], parent: Mapping[str, Any]) -> str:
    """Why ``parent``'s model cannot start ``child``'s lineage (profile documents), or ``""``."""
    child_family, parent_family = child["model"]["family"], parent["model"]["family"]
    if child_family != parent_family:
        return f"model family {child_family} differs from the parent's {parent_family}"
    if canonical(child["task"].get("type")) != canonical(parent["task"].get("type")):
        return f"task {child['task']['type']} differs from the parent's {parent['task']['type']}"
    if canonical(child["task"].get("labels")) != canonical(parent["task"].get("labels")):
        return "the task's labels differ from the parent's"
    child_schema = child.get("feature_schema") or {}
    parent_schema = parent.get("feature_schema") or {}
    if canonical(child_schema) != canonical(parent_schema):
        return "the feature schema (shape, columns or bounds) differs from the parent's"
    child_hp, parent_hp = _shaping(child), _shaping(parent)
    if canonical(child_hp) != canonical(parent_hp):
        names = sorted(
            k for k in set(child_hp) | set(parent_hp) if child_hp.get(k) != parent_hp.get(k)
        )
        return f"hyper-parameters that shape the model differ from the parent's: {', '.join(names)}"
    return ""


def _shaping(spec: Mapping[str, Any]) -> dict[str, Any]:
    hp = spec["model"].get("hyperparameters") or {}
    return {k: v for k, v in hp.items() if k not in TRAINING_ONLY}


async def starting_point(tx: Tx, profile: Mapping[str, Any]) -> dict[str, Any]:
    """The model a new round of ``profile`` (its ledger record) trains from, and why.

    ``source`` is ``own`` (the profile's champion, or its latest model when it never had a
    champion), ``parent`` (the parent's champion) or ``initial`` (seeded initial weights);
    ``profile`` is the profile whose lineage holds the model (the registry finds it there).
    """
    profile_id = str(profile["id"])
    # A round trains from the profile's champion (a challenger is recorded, not built on).
    own = await tx.get(keys.champion_pointer(profile_id)) or await tx.get(
        keys.model_pointer(profile_id)
    )
    if own is not None:
        return _start(profile_id, own, "own", f"{profile_id}'s model of round {own['round']}")
    parent_id = profile["spec"].get("parent")
    if not parent_id:
        return _scratch(profile_id, "no model yet: seeded initial weights")
    parent = await tx.get(keys.profile(str(parent_id)))
    pointer = await tx.get(keys.champion_pointer(str(parent_id)))
    if parent is None or pointer is None:
        return _scratch(
            profile_id, f"parent {parent_id} has no champion yet: seeded initial weights"
        )
    why = incompatibility(profile["spec"], parent["spec"])
    if why:
        return _scratch(
            profile_id,
            f"parent {parent_id}'s champion cannot start this profile ({why}): seeded initial weights",
        )
    return _start(
        str(parent_id),
        pointer,
        "parent",
        f"no model of its own: starts from parent {parent_id}'s champion of round {pointer['round']}",
    )


def _start(profile_id: str, pointer: Mapping[str, Any], source: str, reason: str) -> dict[str, Any]:
    return {
        "profile": profile_id,
        "round": int(pointer["round"]),
        "sha256": str(pointer["sha256"]),
        "source": source,
        "reason": reason,
    }


def _scratch(profile_id: str, reason: str) -> dict[str, Any]:
    return {"profile": profile_id, "round": 0, "sha256": "", "source": "initial", "reason": reason}

"""Read, check and extend XGBoost models as JSON documents (bytes in and out are UBJSON).

XGBoost does the UBJSON ↔ JSON conversion itself (``Booster.load_model`` /
``save_raw``); this module only edits the document: which trees exist, in which
iterations, and the learner settings that must agree before trees from two models can be
joined.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from federated.errors import InvalidUpdateError

# Settings two models must share before one's trees may be appended to the other.
_SIGNATURE_PARAMS = ("base_score", "num_class", "num_feature", "num_target")


def load_booster(data: bytes, *, node_id: str | None = None) -> Any:
    """An ``xgboost.Booster`` from UBJSON or JSON bytes; :class:`InvalidUpdateError` if not."""
    # Deferred: loads xgboost only when used.
    import xgboost as xgb

    # XGBoost 3.2 aborts the whole process (std::terminate) on an empty buffer, so short
    # input never reaches it.
    if not isinstance(data, bytes | bytearray) or len(data) < 16:
        raise InvalidUpdateError("model bytes are empty or truncated", node_id=node_id)
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgb.core.XGBoostError as exc:
        raise InvalidUpdateError(f"not an XGBoost model: {exc}", node_id=node_id) from exc
    return booster


def to_document(data: bytes, *, node_id: str | None = None) -> dict[str, Any]:
    """The model as a JSON document (via XGBoost's own UBJSON reader)."""
    booster = load_booster(data, node_id=node_id)
    document: dict[str, Any] = json.loads(bytes(booster.save_raw(raw_format="json")))
    try:
        model = _model(document)
        if document["learner"]["gradient_booster"]["name"] != "gbtree":
            raise InvalidUpdateError("only gbtree boosters can be bagged", node_id=node_id)
        if len(model["trees"]) != model["iteration_indptr"][-1]:
            raise InvalidUpdateError("tree count and iteration index disagree", node_id=node_id)
    except (KeyError, IndexError, TypeError) as exc:
        raise InvalidUpdateError(f"unexpected model layout: {exc}", node_id=node_id) from exc
    return document


def from_document(document: dict[str, Any]) -> bytes:
    """UBJSON bytes of a JSON document (checked by XGBoost as it loads it)."""
    booster = load_booster(json.dumps(document).encode("utf-8"))
    return bytes(booster.save_raw(raw_format="ubj"))


def _model(document: dict[str, Any]) -> dict[str, Any]:
    model: dict[str, Any] = document["learner"]["gradient_booster"]["model"]
    return model


def num_trees(document: dict[str, Any]) -> int:
    return len(_model(document)["trees"])


def num_iterations(document: dict[str, Any]) -> int:
    return len(_model(document)["iteration_indptr"]) - 1


def signature(document: dict[str, Any]) -> dict[str, Any]:
    """Objective and model parameters that must match for trees to be interchangeable."""
    learner = document["learner"]
    params = learner["learner_model_param"]
    return {
        "objective": learner["objective"]["name"],
        "feature_names": list(learner.get("feature_names", [])),
        **{key: params.get(key) for key in _SIGNATURE_PARAMS},
        "num_parallel_tree": _model(document)["gbtree_model_param"]["num_parallel_tree"],
    }


def append_iterations(target: dict[str, Any], source: dict[str, Any]) -> int:
    """Append every boosting iteration of ``source`` to ``target`` (in place), renumbering
    tree ids; returns the number of trees appended. Signatures must already match."""
    into, from_ = _model(target), _model(source)
    indptr = from_["iteration_indptr"]
    next_id = len(into["trees"])
    for start, stop in itertools.pairwise(indptr):
        for offset in range(start, stop):
            tree = dict(from_["trees"][offset])
            tree["id"] = next_id
            next_id += 1
            into["trees"].append(tree)
            into["tree_info"].append(from_["tree_info"][offset])
        into["iteration_indptr"].append(into["iteration_indptr"][-1] + (stop - start))
    into["gbtree_model_param"]["num_trees"] = str(len(into["trees"]))
    return int(indptr[-1])


def scale_leaves(document: dict[str, Any], factor: float) -> None:
    """Multiply every leaf value of every tree by ``factor`` (in place).

    A leaf's output is ``split_conditions`` at a node without children (XGBoost keeps the
    leaf value there); ``base_weights`` (every node's weight, which prediction does not read
    for a scalar leaf but a vector leaf does) are scaled alike so the document stays
    consistent.
    """
    for tree in _model(document)["trees"]:
        tree["base_weights"] = [float(w) * factor for w in tree["base_weights"]]
        tree["split_conditions"] = [
            float(value) * factor if left == -1 else value
            for value, left in zip(tree["split_conditions"], tree["left_children"], strict=True)
        ]

"""Child profiles for the groups of nodes a profile splits into (pure: no ledger, no I/O).

A group is named by what its nodes advertise about their data with their updates
(:func:`flows.node_agent.advertised_characteristics`): the characteristics every node of the
group shares and the other group does not have, or has with another value. Those go into
the child's ``characteristics`` beside the parent's, so each child matches its own group's
data and not the other's, and the child's id says what it is for
(``digits-8x8-sklearn.load_digits``). If either group has no such characteristic the split
cannot be named, and nothing is proposed: a child that matched both groups' data would
simply be the parent again.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{1,62}")  # as in the profile schema


@dataclass(frozen=True)
class Child:
    """One proposed child: which nodes it is for, what sets their data apart, its document."""

    id: str
    nodes: tuple[str, ...]
    distinguishing: Mapping[str, Any]
    document: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "nodes": list(self.nodes),
            "distinguishing": dict(self.distinguishing),
            "characteristics": dict(self.document["characteristics"]),
        }


@dataclass(frozen=True)
class ChildPlan:
    """The children of one split, or why the split cannot be named (``children`` empty)."""

    children: tuple[Child, ...]
    reason: str


def shared_characteristics(
    nodes: Sequence[str], advertised: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The characteristics every node of ``nodes`` advertises with the same value."""
    if not nodes or any(n not in advertised for n in nodes):
        return {}
    first = advertised[nodes[0]]
    return {
        key: value
        for key, value in first.items()
        if all(_same(advertised[n].get(key), value) for n in nodes[1:])
    }


def distinguishing(own: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """What ``own`` says that ``other`` does not say, or says otherwise."""
    return {k: v for k, v in sorted(own.items()) if k not in other or not _same(other[k], v)}


def plan_children(
    parent_id: str,
    parent_spec: Mapping[str, Any],
    groups: Sequence[Sequence[str]],
    advertised: Mapping[str, Mapping[str, Any]],
    why: str,
) -> ChildPlan:
    """A child profile document per group of a bipartition of ``parent_id``'s nodes.

    ``advertised`` maps each node to the characteristics it advertised with its updates;
    ``why`` (the evidence) goes into each child's description."""
    if len(groups) != 2:
        raise ValueError("a split has two groups")
    silent = sorted(n for g in groups for n in g if n not in advertised or not advertised[n])
    if silent:
        return ChildPlan((), f"{', '.join(silent)} advertised no data characteristics")
    shared = [shared_characteristics(list(g), advertised) for g in groups]
    parent_chars = dict(parent_spec.get("characteristics") or {})
    marks = [
        {
            k: v
            for k, v in distinguishing(shared[i], shared[1 - i]).items()
            if not _same(parent_chars.get(k), v)
        }
        for i in range(2)
    ]
    for group, mark in zip(groups, marks, strict=True):
        if not mark:
            return ChildPlan(
                (),
                f"the nodes {', '.join(group)} share no data characteristic that sets them "
                "apart from the others: the split cannot be named",
            )
    ids = _child_ids(parent_id, marks)
    children = tuple(
        Child(
            id=ids[i],
            nodes=tuple(sorted(groups[i])),
            distinguishing=marks[i],
            document=child_document(parent_id, parent_spec, ids[i], marks[i], len(groups[i]), why),
        )
        for i in range(2)
    )
    return ChildPlan(children, "")


def child_document(
    parent_id: str,
    parent_spec: Mapping[str, Any],
    child_id: str,
    mark: Mapping[str, Any],
    group_size: int,
    why: str,
) -> dict[str, Any]:
    """The parent's document with the group's characteristics, a new id and the parent as
    ``parent``: the same model, data schema and objective, so its first round may start
    from the parent's champion (``chaincode.lineage``)."""
    spec = copy.deepcopy(dict(parent_spec))
    spec["id"] = child_id
    spec["characteristics"] = {**(spec.get("characteristics") or {}), **dict(mark)}
    shown = ", ".join(f"{k}={_text(v)}" for k, v in sorted(mark.items()))
    spec["name"] = f"{spec.get('name', parent_id)} ({shown})"[:120]
    spec["description"] = (
        f"Split from {parent_id}: its nodes' updates diverge ({why}). For the data of {shown}."
    )[:2000]
    spec["parent"] = parent_id
    # A child federates its group only: a quorum larger than the group could never be met.
    spec["min_nodes"] = max(1, min(int(spec.get("min_nodes", group_size)), group_size))
    return spec


def _child_ids(parent_id: str, marks: Sequence[Mapping[str, Any]]) -> list[str]:
    # A key both groups have with different values names both children alike (``source``);
    # otherwise each child is named by all its distinguishing values.
    common = sorted(set(marks[0]) & set(marks[1]))
    parts = [[_text(m[common[0]])] if common else [_text(v) for v in m.values()] for m in marks]
    ids = [_profile_id(parent_id, p) for p in parts]
    if ids[0] == ids[1]:  # two values that slug alike
        ids = [f"{ids[0][:60].rstrip('-._')}-{i + 1}" for i in range(2)]
    return ids


def _profile_id(parent_id: str, parts: Sequence[str]) -> str:
    suffix = "-".join(s for s in (_slug(p) for p in parts) if s)
    text = f"{parent_id}-{suffix}"[:63].rstrip("-._")
    if not ID_PATTERN.fullmatch(text):
        raise ValueError(f"cannot make a profile id of {parent_id} and {parts}")
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-._")


def _text(value: Any) -> str:
    return "+".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

"""Validation of profile documents against ``profile.schema.json`` (JSON Schema draft 7).

The same schema validates on the client (for a readable error before anything is signed)
and in the chaincode (which is what counts). fastjsonschema compiles the schema to Python
once; it validates a profile in ~35 µs where the jsonschema package took ~440 µs, and it
checks keywords in schema order, so the reported problem is deterministic.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from typing import Any

import fastjsonschema

from chaincode import rdp
from chaincode.errors import InvalidArgument

MAX_DOCUMENT_BYTES = 64 * 1024
# A ledger document nests a few levels (profile → model → hyperparameters → a list); the
# parser and canonical JSON recurse, so a document nested deeper is refused, never parsed
# until the interpreter's recursion limit.
MAX_DOCUMENT_DEPTH = 32

# Sane bounds of a profile's privacy numbers (exact decimals, compared as Fractions): an ε
# past these protects nothing, and a clip norm past this clips nothing.
MAX_EPSILON_PER_ROUND = Fraction(100)
MAX_EPSILON_BUDGET = Fraction(10_000)
MAX_CLIP_NORM = Fraction(10**6)
# DP-SGD's mechanism: below σ = 0.3 a step leaks nearly everything (and exp((k²−k)/2σ²) at
# order 256 outgrows any context); a round of more than 100 000 steps is no federated round.
MIN_NOISE_MULTIPLIER = Fraction(3, 10)
MAX_NOISE_MULTIPLIER = Fraction(1000)
MAX_STEPS_PER_ROUND = 100_000
PRIVACY_NUMBERS = (
    "epsilon_per_round",
    "delta_per_round",
    "epsilon_budget",
    "delta_budget",
    "clip_norm",
    "noise_multiplier",
    "sample_rate",
    "epochs_per_round",
)
# Client-level DP (Gaussian noise on each node's whole update) under its clear name and the
# name ledgers written before record-level DP-SGD use; both mean the same thing.
CLIENT_LEVEL_MODES = ("client-level-dp", "client-dp")
DP_SGD_ONLY = ("noise_multiplier", "sample_rate", "epochs_per_round")


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("chaincode").joinpath("profile.schema.json").read_text("utf-8")


def profile_schema() -> dict[str, Any]:
    """A fresh copy of the schema: the compiler rewrites the references of what it is given."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


@lru_cache(maxsize=1)
def _validator() -> Any:
    return fastjsonschema.compile(profile_schema())


def validate_profile(document: Any) -> None:
    """Raise :class:`InvalidArgument` naming the first problem and the field it is in."""
    try:
        _validator()(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = ".".join(str(p) for p in exc.path[1:]) or "(document)"
        message = exc.message.removeprefix("data.").removeprefix("data ")
        raise InvalidArgument(f"profile {message}", field=where) from None
    if document.get("parent") == document["id"]:
        raise InvalidArgument("profile parent: a profile cannot be its own parent", field="parent")
    validate_privacy(document["privacy"])
    validate_secure_aggregation(document["aggregation"])
    validate_scaffold(document)


def _privacy_number(privacy: dict[str, Any], key: str) -> Fraction:
    return decimal(privacy[key], f"profile privacy.{key}")


def _refuse(key: str, rule: str, value: Fraction) -> InvalidArgument:
    return InvalidArgument(
        f"profile privacy.{key} must be {rule}, got {decimal_text(value)}", field=f"privacy.{key}"
    )


def validate_privacy(privacy: dict[str, Any]) -> None:
    """The privacy numbers of a schema-valid profile, checked exactly (Fractions, no floats).

    - ``none``: spends nothing, so it carries no ε, δ, budget or clip norm.
    - ``client-level-dp`` (or its old name ``client-dp``; Gaussian mechanism on each node's
      whole update): 0 < ε per round ≤ 100, 0 < δ per round < 1, ε per round ≤ ε budget
      ≤ 10 000, δ per round ≤ δ budget < 1, 0 < clip norm ≤ 10⁶.
    - ``dp-model`` (an ε-DP estimator): 0 < ε per round ≤ 100, δ per round = 0,
      ε per round ≤ ε budget ≤ 10 000, 0 ≤ δ budget < 1, a clip norm (if given) as above.
    - ``dp-sgd`` (record-level DP-SGD, Rényi-DP accounted, :mod:`chaincode.rdp`):
      0.3 ≤ noise multiplier ≤ 1000, 0 < sample rate ≤ 1, 0 < epochs per round with at
      most 100 000 steps (⌈epochs / sample rate⌉) per round, 0 < clip norm (per sample)
      ≤ 10⁶, 0 < ε budget ≤ 10 000 and 0 < δ budget < 1 (the δ at which ε is accounted),
      and no per-round ε or δ: the ledger derives them from the mechanism.
    """
    mode = privacy["mode"]
    if mode == "none":
        _refuse_present(privacy, PRIVACY_NUMBERS, "privacy mode none spends no budget")
        return
    if mode == "dp-sgd":
        _validate_dp_sgd(privacy)
        return
    _refuse_present(privacy, DP_SGD_ONLY, "only privacy mode dp-sgd takes it")
    eps = _privacy_number(privacy, "epsilon_per_round")
    delta = _privacy_number(privacy, "delta_per_round")
    eps_budget = _privacy_number(privacy, "epsilon_budget")
    delta_budget = _privacy_number(privacy, "delta_budget")
    if not 0 < eps <= MAX_EPSILON_PER_ROUND:
        raise _refuse("epsilon_per_round", f"> 0 and ≤ {MAX_EPSILON_PER_ROUND}", eps)
    if mode in CLIENT_LEVEL_MODES and not 0 < delta < 1:
        raise _refuse("delta_per_round", f"> 0 and < 1 ({mode} is (ε, δ)-DP)", delta)
    if mode == "dp-model" and delta != 0:
        raise _refuse("delta_per_round", "0 (dp-model trains an ε-DP estimator)", delta)
    if not eps <= eps_budget <= MAX_EPSILON_BUDGET:
        raise _refuse(
            "epsilon_budget",
            f"≥ epsilon_per_round ({decimal_text(eps)}) and ≤ {MAX_EPSILON_BUDGET}",
            eps_budget,
        )
    if not delta <= delta_budget < 1:
        raise _refuse(
            "delta_budget", f"≥ delta_per_round ({decimal_text(delta)}) and < 1", delta_budget
        )
    if "clip_norm" in privacy:
        clip = _privacy_number(privacy, "clip_norm")
        if not 0 < clip <= MAX_CLIP_NORM:
            raise _refuse("clip_norm", f"> 0 and ≤ {MAX_CLIP_NORM}", clip)


def _refuse_present(privacy: dict[str, Any], names: tuple[str, ...], why: str) -> None:
    for key in names:
        if key in privacy:
            raise InvalidArgument(
                f"profile privacy.{key}: {why}; remove it", field=f"privacy.{key}"
            )


def _validate_dp_sgd(privacy: dict[str, Any]) -> None:
    _refuse_present(
        privacy,
        ("epsilon_per_round", "delta_per_round"),
        "dp-sgd derives each round's spend from its mechanism (noise_multiplier, …)",
    )
    sigma = _privacy_number(privacy, "noise_multiplier")
    rate = _privacy_number(privacy, "sample_rate")
    epochs = _privacy_number(privacy, "epochs_per_round")
    clip = _privacy_number(privacy, "clip_norm")
    eps_budget = _privacy_number(privacy, "epsilon_budget")
    delta_budget = _privacy_number(privacy, "delta_budget")
    if not MIN_NOISE_MULTIPLIER <= sigma <= MAX_NOISE_MULTIPLIER:
        raise _refuse(
            "noise_multiplier",
            f"≥ {decimal_text(MIN_NOISE_MULTIPLIER)} and ≤ {MAX_NOISE_MULTIPLIER}",
            sigma,
        )
    if not 0 < rate <= 1:
        raise _refuse("sample_rate", "> 0 and ≤ 1", rate)
    if not (epochs > 0 and epochs / rate <= MAX_STEPS_PER_ROUND):
        raise _refuse(
            "epochs_per_round",
            f"> 0 with at most {MAX_STEPS_PER_ROUND} steps (epochs / sample_rate) per round",
            epochs,
        )
    if not 0 < clip <= MAX_CLIP_NORM:
        raise _refuse("clip_norm", f"> 0 and ≤ {MAX_CLIP_NORM}", clip)
    if not 0 < eps_budget <= MAX_EPSILON_BUDGET:
        raise _refuse("epsilon_budget", f"> 0 and ≤ {MAX_EPSILON_BUDGET}", eps_budget)
    if not 0 < delta_budget < 1:
        raise _refuse("delta_budget", "> 0 and < 1 (dp-sgd states ε at this δ)", delta_budget)


# Aggregators that need each node's update: under secure aggregation the coordinator has
# only the sum (chaincode.secagg, docs/privacy.md "Secure aggregation").
NEEDS_INDIVIDUAL_UPDATES = ("median", "trimmed-mean", "multi-krum", "xgb-histogram", "xgb-bagging")


def validate_secure_aggregation(aggregation: dict[str, Any]) -> None:
    """``aggregation.secure`` only with an aggregator that needs the sum alone (FedAvg,
    FedProx, FedAdam, FedYogi). The threshold is checked against the cohort when the cohort
    is known, at the election (:mod:`chaincode.secagg`)."""
    strategy = aggregation["strategy"]
    if "secure" in aggregation and strategy in NEEDS_INDIVIDUAL_UPDATES:
        raise InvalidArgument(
            f"profile aggregation.secure: strategy {strategy} needs each node's update, and "
            "secure aggregation gives the coordinator only their sum; use fedavg, fedprox, "
            "fedadam or fedyogi",
            field="aggregation.secure",
        )


# SCAFFOLD corrects the gradients of local SGD steps: only the torch families take them
# (federated.strategies.scaffold.TORCH_FAMILIES; the chaincode imports nothing of federated).
SCAFFOLD_FAMILIES = ("torch-mlp", "torch-cnn")


def validate_scaffold(document: dict[str, Any]) -> None:
    """A ``scaffold`` profile trains what SCAFFOLD can correct, in the clear:

    - a torch family (``torch-mlp``, ``torch-cnn``): the correction ``c − c_i`` is added to
      the gradients of local steps, which the other families do not take;
    - ``model.hyperparameters.optimizer: sgd``, stated (the torch families default to Adam):
      a node's ``c_i⁺ = c_i − c + (x − y)/(K·η)`` is a gradient only after SGD steps;
    - privacy mode ``none``: ``Δc_i`` is a second, un-noised release of the node's gradients;
    - no ``aggregation.secure``: the masked vector carries the weights ``[n·w, n]`` only, so
      the coordinator would see each node's ``Δc_i`` in the clear (docs/strategies.md)."""
    aggregation = document["aggregation"]
    if aggregation["strategy"] != "scaffold":
        return
    model = document["model"]
    if model["family"] not in SCAFFOLD_FAMILIES:
        raise InvalidArgument(
            f"profile model.family: scaffold corrects local SGD steps, which {model['family']} "
            f"does not take; use {' or '.join(SCAFFOLD_FAMILIES)}",
            field="model.family",
        )
    optimizer = (model.get("hyperparameters") or {}).get("optimizer")
    if optimizer != "sgd":
        raise InvalidArgument(
            "profile model.hyperparameters.optimizer: scaffold needs optimizer sgd (its "
            f"control variates are SGD gradients), got {optimizer!r}",
            field="model.hyperparameters.optimizer",
        )
    if document["privacy"]["mode"] != "none":
        raise InvalidArgument(
            "profile privacy.mode: scaffold's control-variate change is a second, un-noised "
            f"release of each node's gradients; it runs with privacy mode none only, not "
            f"{document['privacy']['mode']}",
            field="privacy.mode",
        )
    if "secure" in aggregation:
        raise InvalidArgument(
            "profile aggregation.secure: scaffold's control-variate changes would reach the "
            "coordinator unmasked (secure aggregation masks the weights only); use fedavg, "
            "fedprox, fedadam or fedyogi",
            field="aggregation.secure",
        )


def dp_sgd_round_rdp(privacy: dict[str, Any]) -> tuple[Decimal, ...]:
    """The Rényi-DP curve (:data:`chaincode.rdp.ORDERS`) of one round of a ``dp-sgd``
    profile: ⌈epochs_per_round / sample_rate⌉ Poisson-subsampled Gaussian steps."""
    rate = decimal(privacy["sample_rate"], "sample_rate")
    steps = rdp.steps_per_round(rate, decimal(privacy["epochs_per_round"], "epochs_per_round"))
    return rdp.round_rdp(decimal(privacy["noise_multiplier"], "noise_multiplier"), rate, steps)


def per_round_spend(privacy: dict[str, Any]) -> tuple[Fraction, Fraction]:
    """The (ε, δ) a profile prescribes for every update trained in a round: its per-round
    spend under a DP mode (under ``dp-sgd``: the round's own ε at the profile's δ budget),
    (0, 0) under ``none``."""
    if privacy["mode"] == "none":
        return Fraction(0), Fraction(0)
    if privacy["mode"] == "dp-sgd":
        # What the round alone costs at the profile's δ; the budget composes RDP curves.
        delta = decimal(privacy["delta_budget"], "delta_budget")
        return Fraction(rdp.epsilon(dp_sgd_round_rdp(privacy), delta)), delta
    return (
        decimal(privacy["epsilon_per_round"], "epsilon_per_round"),
        decimal(privacy["delta_per_round"], "delta_per_round"),
    )


@lru_cache(maxsize=1)
def _characteristics_validator() -> Any:
    # The profile schema's own definition, so that a demand or a node's advertised data is
    # held to exactly the rules a profile's characteristics are.
    schema = profile_schema()
    return fastjsonschema.compile(
        {
            "$schema": schema["$schema"],
            # Local references resolve against this id; without one the compiler goes online.
            "$id": schema["$id"].replace("profile-", "characteristics-"),
            **schema["properties"]["characteristics"],
            "definitions": schema["definitions"],
        }
    )


def validate_characteristics(document: Any, what: str) -> dict[str, Any]:
    """Data characteristics (``{"sensor": "gyroscope"}``) checked as a profile's are;
    :class:`InvalidArgument` names the first problem. Floats are refused: integers and
    strings only, as everywhere in ledger state."""
    try:
        _characteristics_validator()(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = ".".join(str(p) for p in exc.path[1:]) or "(document)"
        message = exc.message.removeprefix("data.").removeprefix("data ")
        raise InvalidArgument(f"{what} {message}", field=where) from None
    for key, value in document.items():
        if isinstance(value, float):
            raise InvalidArgument(f"{what}.{key} must be an integer or a string, not a float")
    return dict(document)


def parse_json_argument(text: str, what: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InvalidArgument(f"{what} is larger than {max_bytes} bytes")
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidArgument(f"{what} nests deeper than {MAX_DOCUMENT_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from exc
    if nesting_depth(document, MAX_DOCUMENT_DEPTH) > MAX_DOCUMENT_DEPTH:
        raise InvalidArgument(f"{what} nests deeper than {MAX_DOCUMENT_DEPTH} levels")
    return document


def nesting_depth(document: Any, limit: int) -> int:
    """How deep ``document`` nests (a scalar is 0, ``[]`` is 1), counted without recursion
    and without looking past ``limit`` (so a cycle or a huge document returns ``limit + 1``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decimal(text: Any, what: str) -> Fraction:
    """An exact decimal string as a Fraction: budgets are compared exactly, never in floats."""
    if not isinstance(text, str):
        raise InvalidArgument(f'{what} must be a decimal string such as "0.5" or "1e-5"')

    if not re.fullmatch(r"-?(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?([eE]-?[0-9]{1,2})?", text):
        raise InvalidArgument(f'{what} must be a decimal string such as "0.5" or "1e-5"')
    return Fraction(text)


def decimal_text(value: Fraction) -> str:
    """Exact decimal text for a Fraction whose denominator divides a power of ten."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:  # only sums of decimals reach here, so this cannot happen
        raise InvalidArgument("value is not a finite decimal")
    places = max(twos, fives)
    scaled = value * 10**places
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")
    return sign + text

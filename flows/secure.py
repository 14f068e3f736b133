"""Secure aggregation in a round (a profile with ``aggregation.secure``): the node's side
(:class:`SecureNode`) and the coordinator's (:class:`SecureAggregation`).

The steps, as ledger transactions (:mod:`chaincode.secagg`) and MLflow artifacts:

1. join: the node's two public keys for the round in its signed join (``JoinRoundWithKeys``);
2. after the election: its encrypted share bundle in MLflow, the hash on the ledger
   (``SubmitShares``); ``CloseSharing`` fixes the dealers;
3. after training: the masked vector ``[n·w, n] + masks`` in MLflow as the node's update
   (``[w, 1]`` under client-level DP, whose noise the nodes share: :func:`equal_weights`),
   its hash in ``SubmitUpdate``; the plain update never leaves the node's private state;
4. the coordinator accepts masked vectors, names the survivors (``RequestUnmask``), each
   survivor answers once (``SubmitUnmaskShares``), the coordinator unmasks the sum, records
   who was recovered (``RecordUnmasked``), divides by ``Σ n`` and hands the mean to the
   profile's strategy (FedAvg, FedProx, FedAdam, FedYogi) as one aggregate.

Every node's secrets for the round (keys, self-mask seed, Shamir randomness, nonces) come from
one 32-byte secret in its private state (:func:`~federated.secagg.context.derived_entropy`),
so a retried agent re-publishes byte-identical messages.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from federated.errors import (
    FederatedError,
    QuorumNotMetError,
    SecAggProtocolError,
    TooFewRespondersError,
)
from federated.exchange import decode_update, sha256_hex
from federated.secagg import (
    KeyDirectory,
    MaskedInput,
    NodeKeys,
    PublicKeys,
    SecAggClient,
    SecAggParams,
    ShareBundle,
    UnmaskResponse,
    check_masked,
    unmask,
)
from federated.secagg.context import derived_entropy
from federated.secagg.wire import (
    WEIGHTED,
    bundle_bytes,
    dimension,
    masked_bytes,
    parse_bundle,
    parse_masked,
    parse_response,
    response_bytes,
    weighted_mean,
    weighted_vector,
)
from federated.types import AggregateResult, FitFailure, FitResult, GlobalModel, Scalar
from fedspec.errors import ErrorCode
from flows import tracking
from flows.updates import base_model
from ledger_client import EndorseError, Round, UpdateRecord
from registry import ArtifactIntegrityError, ArtifactMissingError

if TYPE_CHECKING:
    from federated.plan import TrainingPlan
    from flows.environment import NodeEnvironment
    from ledger_client import FedspecLedger

log = logging.getLogger("fedspec.secure")
SECRET_STATE = "secagg-secret"
POLL_S = 0.1
TOTAL_TOKENS = 1_000_000


def secure_threshold(plan: TrainingPlan) -> int | None:
    """The profile's secure-aggregation threshold, or ``None`` without secure aggregation."""
    secure = plan.spec["aggregation"].get("secure")
    return None if secure is None else int(secure["threshold"])


def equal_weights(plan: TrainingPlan) -> bool:
    """Whether nodes enter the sum with weight 1 instead of their example count: under
    client-level DP with distributed noise, one node's whole contribution must move the sum
    by at most the clip norm C (a weight n would make it n·C), so FedAvg weighs equally."""
    return plan.privacy is not None and plan.privacy.noise_shares > 1


def secagg_state(ledger: FedspecLedger, profile_id: str, round_no: int) -> dict[str, Any]:
    """The round's secure-aggregation record (``GetSecureAggregation``)."""
    state: dict[str, Any] = ledger.evaluate("GetSecureAggregation", profile_id, str(round_no))
    return state


def _directory(state: Mapping[str, Any], cohort: Sequence[str]) -> KeyDirectory:
    """The cohort's public keys as the ledger holds them (each signed by its node)."""
    directory = KeyDirectory()
    for node in cohort:
        keys = state["keys"].get(node)
        if keys is None:
            raise SecAggProtocolError("no keys on the ledger", node_id=node)
        public = PublicKeys(
            node, bytes.fromhex(keys["mask_key"]), bytes.fromhex(keys["cipher_key"])
        )
        directory.register(public, registrant=node)
    return directory


def _params(plan: TrainingPlan, rnd: Round, state: Mapping[str, Any], size: int) -> SecAggParams:
    return SecAggParams.create(
        plan.profile_id,
        rnd.number,
        rnd.participants,
        threshold=int(state["threshold"]),
        dimension=size,
        encoding=WEIGHTED,
    )


def _fetch(entry: Mapping[str, str]) -> bytes:
    data: bytes = tracking.fetch_bytes(entry["uri"], sha256=entry["sha256"])
    return data


def _submit(ledger: FedspecLedger, name: str, *args: str) -> Any:
    """A write that may already be done (a retry, or a peer closed sharing first)."""
    try:
        return ledger.submit(name, *args).result
    except EndorseError as exc:
        if exc.code != ErrorCode.FAILED_PRECONDITION:
            raise
        return None


class SecureNode:
    """One node's secure aggregation in one round."""

    def __init__(self, env: NodeEnvironment, plan: TrainingPlan, round_no: int) -> None:
        self.env = env
        self.plan = plan
        self.round_no = round_no
        self.ledger = env.ledger
        self._client: SecAggClient | None = None
        self._next_check = 0.0
        self._answered = False

    def _secret(self) -> bytes:
        stored = self.env.read_state(self.plan.profile_id, self.round_no, SECRET_STATE)
        if stored is None:
            stored = os.urandom(32)
            self.env.write_state(self.plan.profile_id, self.round_no, SECRET_STATE, stored)
        return stored

    def join(self, commitment: str) -> None:
        """Join with this round's public keys (the first two keys the secret derives)."""
        public = NodeKeys.generate(self.env.node, entropy=derived_entropy(self._secret())).public()
        keys = {"mask_key": public.mask_key.hex(), "cipher_key": public.cipher_key.hex()}
        self.ledger.submit(
            "JoinRoundWithKeys",
            self.plan.profile_id,
            str(self.round_no),
            commitment,
            json.dumps(keys, sort_keys=True),
        )

    def _state(self) -> dict[str, Any]:
        return secagg_state(self.ledger, self.plan.profile_id, self.round_no)

    def _dealt(self, rnd: Round) -> tuple[SecAggClient, ShareBundle]:
        """The client rebuilt from the secret, and the bundle it deals (the same bytes every
        time: keys, seed, shares and nonces all come from the secret, in the same order)."""
        state = self._state()
        size = dimension(_arrays(base_model(self.plan, rnd).parameters))
        params = _params(self.plan, rnd, state, size)
        client = SecAggClient(params, self.env.node, entropy=derived_entropy(self._secret()))
        bundle = client.share_keys(_directory(state, params.cohort))
        return client, bundle

    def deal(self, rnd: Round, run_id: str) -> None:
        """Message 2: the encrypted share bundle in MLflow, its hash on the ledger."""
        self._client, bundle = self._dealt(rnd)
        data = bundle_bytes(bundle)
        uri = tracking.log_bytes(run_id, "secagg/shares.json", data)
        try:
            self.ledger.submit(
                "SubmitShares",
                self.plan.profile_id,
                str(self.round_no),
                json.dumps({"sha256": sha256_hex(data), "uri": uri}),
            )
        except EndorseError as exc:
            if exc.code != ErrorCode.FAILED_PRECONDITION:
                raise
            # Sharing closed without this node (or the round ended): it cannot take part.
            raise SecAggProtocolError(exc.message, node_id=self.env.node) from exc

    def _dealers(self, rnd: Round) -> dict[str, Any]:
        """The round's record once sharing is closed (closing it when it may be)."""
        while True:
            state = self._state()
            if state["dealers"] is not None:
                return state
            now = self.ledger.get_round(self.plan.profile_id, self.round_no)
            if now.status != "training":
                raise SecAggProtocolError(f"the round is {now.status}", node_id=self.env.node)
            everyone = set(state["shares"]) >= set(rnd.participants)
            if everyone or time.time() >= state["share_deadline"]:
                closed = _submit(
                    self.ledger, "CloseSharing", self.plan.profile_id, str(self.round_no)
                )
                if closed is not None:
                    continue
            time.sleep(POLL_S)  # refused: the ledger's clock has not reached the deadline yet

    def _receive(self, rnd: Round, state: Mapping[str, Any]) -> SecAggClient:
        """The client holding every dealer's shares for this node."""
        client = self._client
        if client is None:
            client, _ = self._dealt(rnd)
        me = self.env.node
        if me not in state["dealers"]:
            raise SecAggProtocolError("sharing closed before this node dealt", node_id=me)
        for dealer in state["dealers"]:
            if dealer != me and not client.holds(dealer):
                data = _fetch(state["shares"][dealer])
                client.receive(parse_bundle(data, dealer))
        self._client = client
        return client

    def mask(self, rnd: Round, stored: bytes) -> bytes:
        """Message 3: the update (``encode_update`` bytes) as the masked ``[n·w, n]``
        (``[w, 1]`` under :func:`equal_weights`)."""
        result, _ = decode_update(stored)
        state = self._dealers(rnd)
        client = self._receive(rnd, state)
        weight = 1 if equal_weights(self.plan) else result.num_examples
        vector = weighted_vector(_arrays(result.parameters), weight)
        return masked_bytes(client.mask(vector))

    def answer_if_asked(self, rnd: Round, run_id: str) -> bool:
        """Message 5, once: this survivor's shares for the coordinator's survivor list.
        Checks the ledger at most every ``POLL_S`` seconds; True once answered."""
        if self._answered or time.monotonic() < self._next_check:
            return self._answered
        self._next_check = time.monotonic() + POLL_S
        state = self._state()
        me = self.env.node
        survivors = state.get("survivors") or []
        if me not in survivors or me in state["answers"]:
            self._answered = me in state["answers"]
            return self._answered
        client = self._receive(rnd, state)
        data = response_bytes(client.unmask_response(survivors))
        uri = tracking.log_bytes(run_id, f"secagg/unmask-{_safe(me)}.json", data)
        _submit(
            self.ledger,
            "SubmitUnmaskShares",
            self.plan.profile_id,
            str(self.round_no),
            json.dumps({"sha256": sha256_hex(data), "uri": uri}),
        )
        self._answered = True
        return True


class SecureAggregation:
    """The coordinator's side: accept masked vectors, unmask their sum, and run the
    profile's strategy on the mean. A strategy in shape (``aggregate_fit``), with I/O."""

    def __init__(
        self,
        env: NodeEnvironment,
        plan: TrainingPlan,
        rnd: Round,
        run_id: str,
        *,
        answer_window_s: float,
    ) -> None:
        self.env = env
        self.plan = plan
        self.rnd = rnd
        self.run_id = run_id
        self.ledger = env.ledger
        self.answer_window_s = answer_window_s
        self.masked: dict[str, MaskedInput] = {}
        self.masked_bytes: dict[str, bytes] = {}
        self.samples: dict[str, int] = {}
        self.unmasked: dict[str, Any] = {}
        self._base: GlobalModel | None = None

    # ------------------------------------------------------------------ Strategy's shape
    def node_config(self, server_round: int) -> dict[str, Scalar]:
        return self.plan.strategy().node_config(server_round)

    def unwrapped(self) -> SecureAggregation:
        return self

    # ------------------------------------------------------------------ steps
    def _state(self) -> dict[str, Any]:
        return secagg_state(self.ledger, self.plan.profile_id, self.rnd.number)

    def _params(self, state: Mapping[str, Any]) -> SecAggParams:
        if self._base is None:
            self._base = base_model(self.plan, self.rnd)
        return _params(self.plan, self.rnd, state, dimension(_arrays(self._base.parameters)))

    def _closed(self) -> dict[str, Any]:
        deadline = self.rnd.coordinator_deadline
        while True:
            state = self._state()
            if state["dealers"] is not None or time.time() >= deadline:
                return state
            now = self.ledger.get_round(self.plan.profile_id, self.rnd.number)
            if now.status != "training":  # e.g. too few dealers failed it
                return state
            _submit(self.ledger, "CloseSharing", self.plan.profile_id, str(self.rnd.number))
            time.sleep(POLL_S)

    def verified(
        self, records: Mapping[str, UpdateRecord]
    ) -> tuple[list[FitResult], list[FitFailure]]:
        """Each participant's masked vector, fetched against its ledger hash and checked
        against the round (a dealer's, of the round's length and modulus), or why not. The
        results carry no parameters: only the sum is ever unmasked."""
        state = self._closed()
        dealers = set(state["dealers"] or [])
        params = self._params(state)
        results: list[FitResult] = []
        failures: list[FitFailure] = []
        for node in self.rnd.participants:
            record = records.get(node)
            if record is None:
                failures.append(
                    FitFailure(node, "TIMEOUT", "no update committed before the deadline")
                )
                continue
            if not record.validation.passed:
                reason = record.validation.reason or "data validation failed"
                code = reason.split(":")[0] if ":" in reason else "EXCLUDED"
                failures.append(FitFailure(node, code, reason))
                continue
            try:
                data = _fetch({"uri": record.uri, "sha256": record.sha256})
                masked = parse_masked(data, node)
                check_masked(params, masked, dealers)
            except (ArtifactIntegrityError, ArtifactMissingError) as exc:
                failures.append(FitFailure(node, exc.code, str(exc)))
                continue
            except FederatedError as exc:
                failures.append(FitFailure(node, exc.code, exc.message))
                continue
            self.masked[node] = masked
            self.masked_bytes[node] = data
            self.samples[node] = record.num_samples
            results.append(FitResult(node, [], record.num_samples, {}))
        return results, failures

    def aggregate_fit(
        self,
        server_round: int,
        current: GlobalModel,
        results: Sequence[FitResult],
        failures: Sequence[FitFailure],
    ) -> AggregateResult:
        """Unmask the survivors' sum, then the profile's strategy on their mean."""
        survivors = sorted(r.node_id for r in results)
        if len(survivors) < self.plan.min_nodes:
            left_out = "; ".join(f"{f.node_id}: {f.reason}" for f in failures)
            raise QuorumNotMetError(
                f"round {server_round}: {len(survivors)} usable masked updates, the profile "
                f"needs at least {self.plan.min_nodes}. Left out: {left_out}."
            )
        state = self._state()
        params = self._params(state)
        survivors = self._request(survivors, state)
        SecureNode(self.env, self.plan, self.rnd.number).answer_if_asked(self.rnd, self.run_id)
        state = self._answers(survivors)
        dealers = state["dealers"]
        bundles = {d: parse_bundle(_fetch(state["shares"][d]), d) for d in dealers}
        responses: dict[str, UnmaskResponse] = {}
        for node, entry in state["answers"].items():
            if node in survivors:
                responses[node] = parse_response(_fetch(entry), node)
        directory = _directory(state, params.cohort)
        result = unmask(
            params, directory, bundles, {s: self.masked[s] for s in survivors}, responses
        )
        rejected = [
            {"dealer": r.dealer, "holder": r.recipient, "kind": r.kind} for r in result.rejected
        ]
        self.unmasked = {
            "recovered": list(result.recovered),
            "responders": list(result.responders),
            "rejected": rejected,
        }
        self._write("RecordUnmasked", json.dumps(self.unmasked, sort_keys=True))
        base = _arrays(current.parameters)
        mean, count = weighted_mean(result.total, base)
        declared = sum(self.samples[s] for s in survivors)
        weights = len(survivors) if equal_weights(self.plan) else declared
        if round(count) != weights:
            raise SecAggProtocolError(
                f"the masked weights sum to {count:g}, the ledger's updates to {weights}"
            )
        inner = self.plan.strategy().unwrapped()
        aggregate = FitResult("secure-aggregate", mean, declared, {})
        model = inner.aggregate_fit(server_round, current, [aggregate], []).model
        left = [f for f in failures if f.node_id not in survivors]
        metrics: dict[str, Scalar] = {
            "num_included": len(survivors),
            "num_excluded": len(left),
            "secagg_recovered": len(result.recovered),
            "num_examples": declared,
        }
        return AggregateResult(
            model,
            metrics=metrics,
            included=tuple(survivors),
            failures=tuple(left),
            reason="" if model is not None else "no model",
        )

    def _request(self, survivors: list[str], state: Mapping[str, Any]) -> list[str]:
        """Fix the survivors on the ledger, or take the ones an earlier coordinator fixed
        (nodes answer once): refused if this coordinator lacks one of their vectors."""
        fixed = state.get("survivors")
        if fixed is None:
            fixed = self._write("RequestUnmask", json.dumps(survivors))["survivors"]
        missing = sorted(set(fixed) - set(self.masked))
        if missing:
            raise SecAggProtocolError(
                f"the survivors fixed earlier include {missing}, whose vectors are not usable"
            )
        return list(fixed)

    def _write(self, name: str, document: str) -> Any:
        """A coordinator's write; refused (this coordinator was replaced, the round ended,
        the ledger disagrees) it fails the aggregation with the ledger's reason, and the
        coordinator then fails the round or finds it was superseded."""
        try:
            return self.ledger.submit(
                name, self.plan.profile_id, str(self.rnd.number), document
            ).result
        except EndorseError as exc:
            raise SecAggProtocolError(f"{name} refused: {exc.message}") from exc

    def _answers(self, survivors: list[str]) -> dict[str, Any]:
        """The round's record once every survivor answered, or at least the threshold did
        when the answer window ends."""
        deadline = time.monotonic() + self.answer_window_s
        while True:
            state = self._state()
            answered = set(state["answers"]) & set(survivors)
            if answered == set(survivors):
                return state
            if time.monotonic() >= deadline:
                if len(answered) >= int(state["threshold"]):
                    return state
                raise TooFewRespondersError(
                    f"{len(answered)} survivors answered the unmasking request, fewer than "
                    f"the threshold {state['threshold']}",
                    responders=sorted(answered),
                )
            time.sleep(POLL_S)

    def tokens(self, included: Sequence[FitResult]) -> dict[str, int]:
        """Rewards by example count: per-node contribution scores (Shapley values, quality
        reports) need individual updates, which no one has under secure aggregation."""
        weights = {r.node_id: max(1, r.num_examples) for r in included}
        total = sum(weights.values())
        return {n: max(1, TOTAL_TOKENS * w // total) for n, w in weights.items()} or {}


def _arrays(parameters: Any) -> list[Any]:
    if isinstance(parameters, bytes):
        raise SecAggProtocolError("secure aggregation needs array parameters, not a tree model")
    return [np.asarray(p) for p in parameters]


def _safe(node: str) -> str:
    return node.replace("/", "-")

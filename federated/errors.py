"""Exceptions of the federated-learning core.

Every error carries a stable ``code`` (a short upper-case string that scripts and the ledger
can rely on) and, where it concerns one node's contribution, that node's id.

Hierarchy (under :class:`fedspec.errors.FedspecError`, codes from :class:`~fedspec.errors.ErrorCode`)::

    FederatedError
    ├── InvalidUpdateError        an update is malformed: wrong shape, NaN/inf, wrong family
    │   └── PrivacyCheckError     an update breaks the profile's clipping/noise bounds
    ├── InvalidInputError         bad features, labels or hyper-parameter values (a ValueError)
    ├── NotFittedError            a model was used before it was trained (a ValueError)
    ├── IncompatibleModelError    model family or feature schema does not match the profile
    ├── EmptyPartitionError       a node has no rows to train on
    ├── QuorumNotMetError         fewer usable updates than the profile's minimum
    ├── PrivacyBudgetError        a round would exceed a node's privacy budget
    ├── DataValidationError       local data failed its expectation suite (carries GE's result)
    ├── DatasetError              a dataset cannot be loaded or partitioned
    ├── ContributionError         contribution scores cannot be computed (no node scored, budget)
    ├── PredictionError           a model's outputs are not finite probabilities (NaN weights)
    ├── TrainingError             a node's or a federated training run failed or timed out
    └── SecureAggregationError    secure aggregation (federated.secagg) cannot proceed
        ├── SecAggParameterError      bad encoding, cohort or dimension
        │   ├── ThresholdError        threshold above the cohort or not above half of it
        │   └── EncodingOverflowError N·clip·scale does not fit in 2^(k−1)
        ├── SecAggKeyError            a key registered twice, for another node, or unusable
        ├── ShareVerificationError    a share does not match its commitment (names dealer, holder)
        ├── MaskedVectorError         a masked vector of the wrong length or modulus
        ├── TooFewRespondersError     fewer than t nodes answered (or shares left valid)
        └── SecAggProtocolError       a message out of order or inconsistent with the round
"""

from __future__ import annotations

from typing import Any

from fedspec.errors import ErrorCode, FedspecError


class FederatedError(FedspecError):
    """Root of every error raised by :mod:`federated`."""

    code = ErrorCode.FEDERATED_ERROR

    def __init__(self, message: str, *, node_id: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.node_id = node_id

    def __str__(self) -> str:
        return f"node {self.node_id}: {self.message}" if self.node_id else self.message


class InvalidUpdateError(FederatedError):
    code = ErrorCode.INVALID_UPDATE


class IncompatibleModelError(FederatedError):
    code = ErrorCode.INCOMPATIBLE_MODEL


class EmptyPartitionError(FederatedError):
    code = ErrorCode.EMPTY_PARTITION


class QuorumNotMetError(FederatedError):
    code = ErrorCode.QUORUM_NOT_MET


class PrivacyBudgetError(FederatedError):
    code = ErrorCode.BUDGET_EXCEEDED


class DataValidationError(FederatedError):
    """Local data failed validation; ``result`` is Great Expectations' result (JSON-able)."""

    code = ErrorCode.DATA_VALIDATION_FAILED

    def __init__(self, message: str, *, result: dict[str, Any], node_id: str | None = None) -> None:
        super().__init__(message, node_id=node_id)
        self.result = result


class DatasetError(FederatedError):
    code = ErrorCode.DATASET_ERROR


class InvalidInputError(FederatedError, ValueError):
    """Data or hyper-parameters given to a model are unusable (NaN, unknown label, bad value).

    Also a ``ValueError``, so scikit-learn style callers that catch that keep working.
    """

    code = ErrorCode.INVALID_INPUT


class NotFittedError(FederatedError, ValueError):
    """A model was asked to predict, evaluate or serialize before it had parameters."""

    code = ErrorCode.NOT_FITTED


class PrivacyCheckError(InvalidUpdateError):
    """An update's distance from the global model is outside what the profile's DP allows.

    Too far: the node did not clip to the clip norm. Too close: it did not add the noise.
    """

    code = ErrorCode.PRIVACY_CHECK_FAILED


class ContributionError(FederatedError):
    """Contribution scores cannot be computed: no node scored, or an evaluation budget or
    callback failed."""

    code = ErrorCode.CONTRIBUTION_ERROR


class TrainingError(FederatedError):
    """Local or federated training did not finish: a node process failed, the federated
    server did not start, or the run passed its deadline."""

    code = ErrorCode.TRAINING_FAILED


class SecureAggregationError(FederatedError):
    """Root of secure aggregation's refusals (:mod:`federated.secagg`)."""

    code = ErrorCode.SECAGG_FAILED


class SecAggParameterError(SecureAggregationError):
    """A round's secure-aggregation parameters are unusable (encoding, cohort, dimension)."""

    code = ErrorCode.SECAGG_PARAMETERS_INVALID


class ThresholdError(SecAggParameterError):
    """The Shamir threshold is larger than the cohort or not larger than half of it."""

    code = ErrorCode.SECAGG_THRESHOLD_INVALID


class EncodingOverflowError(SecAggParameterError):
    """The sum of the cohort's encoded inputs could wrap around the modulus."""

    code = ErrorCode.SECAGG_OVERFLOW


class SecAggKeyError(SecureAggregationError):
    """A public key registered twice, registered for another node, or not a usable key."""

    code = ErrorCode.SECAGG_KEY_INVALID


class ShareVerificationError(SecureAggregationError):
    """A secret share does not match the commitment its dealer published (or cannot be
    decrypted); ``dealer`` made the share, ``recipient`` held it (``None`` when unknown)."""

    code = ErrorCode.SECAGG_SHARE_INVALID

    def __init__(self, message: str, *, dealer: str, recipient: str | None, **details: Any) -> None:
        super().__init__(message, dealer=dealer, recipient=recipient, **details)
        self.dealer = dealer
        self.recipient = recipient


class MaskedVectorError(SecureAggregationError):
    """A masked vector has the wrong length or modulus, or comes from outside the cohort."""

    code = ErrorCode.SECAGG_VECTOR_INVALID


class TooFewRespondersError(SecureAggregationError):
    """Fewer than the threshold of nodes survived or answered the unmasking request."""

    code = ErrorCode.SECAGG_TOO_FEW_RESPONDERS


class SecAggProtocolError(SecureAggregationError):
    """A message that the protocol forbids at this point: a node both dropped and surviving,
    a second, different unmasking request, a node outside the cohort."""

    code = ErrorCode.SECAGG_PROTOCOL_VIOLATION


class PredictionError(FederatedError):
    """A model cannot produce finite probabilities (or values) for some rows: its weights or
    outputs hold NaN or inf. Simulations record it in the round; flows fail the round's
    evaluation instead of crashing."""

    code = ErrorCode.PREDICTION_FAILED

"""What the coordinator and the specialization check share about nodes' updates: the
round's base model, fetching updates in parallel (each verified against its ledger hash), and
whether an update was trained for this round from this round's base model.

Updates fetched and verified are kept by their hash for the process (``UPDATES``): where
the coordinator and the round flow share a process (the local dispatch), the specialization
check after the round reads the updates the coordinator fetched instead of downloading each
again (benchmarks/round_time.py); every load checks the hash again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from federated.exchange import decode_global_model
from federated.plan import TrainingPlan
from federated.types import FitResult, GlobalModel
from flows import tracking
from ledger_client import Round
from registry.models import fetch_model_bytes
from registry.verified_bytes import VerifiedBytes

# Metric keys a node adds to its update, so a coordinator can refuse a stale one.
TRAINED_ROUND = "trained_round"
TRAINED_FROM = "trained_from"
UPDATES = VerifiedBytes(max_bytes=128 * 1024 * 1024)


def base_model(plan: TrainingPlan, rnd: Round) -> GlobalModel:
    """The model ``rnd`` trains from, verified against its ledger hash (also what
    :mod:`flows.specialization` measures the nodes' updates against)."""
    if not rnd.base_model:
        return plan.initial_model()
    # A child profile's first round starts from its parent's champion (the ledger says
    # whose lineage holds the base model).
    return decode_global_model(fetch_model_bytes(rnd.base_profile, rnd.base_model, shared=True))


def keep_uploaded(uris: Mapping[str, bytes]) -> None:
    """Keep the files a node agent of this process has just uploaded (``{runs:/ uri: bytes}``)
    for the coordinator, should it run here: see ``VerifiedBytes.put``."""
    for uri, data in uris.items():
        UPDATES.put(uri, data)


def prefetch(wanted: list[tuple[str, str]]) -> Callable[[str, str], bytes]:
    """Fetch every ``(uri, sha256)`` at once (downloads overlap; each is still verified
    against its hash), and return a lookup that gives the bytes or raises what the fetch
    raised."""

    def fetch(item: tuple[str, str]) -> bytes | Exception:
        uri, sha256 = item
        try:
            return UPDATES.get(uri, sha256, lambda: tracking.fetch_bytes(uri, sha256=sha256))
        except Exception as exc:  # re-raised by the lookup, in the caller's order
            return exc

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="fetch") as pool:
        done = dict(zip(wanted, pool.map(fetch, wanted), strict=True)) if wanted else {}

    def lookup(uri: str, sha256: str) -> bytes:
        value = done.get((uri, sha256))
        if value is None:
            value = fetch((uri, sha256))
        if isinstance(value, Exception):
            raise value
        return value

    return lookup


def staleness(result: FitResult, rnd: Round) -> str:
    """Why an update was not trained for this round from this round's base model, or ""."""
    trained_round = result.metrics.get(TRAINED_ROUND)
    trained_from = result.metrics.get(TRAINED_FROM)
    if trained_round != rnd.number:
        return f"trained for round {trained_round}, not round {rnd.number}"
    if trained_from != (rnd.base_model or "initial"):
        return f"trained from {str(trained_from)[:12]}, not the round's base model"
    return ""

"""Model bytes shared by the node agents of one process (registry.verified_bytes): one fetch
per model, checked against its hash on every load, and never more than the bound kept."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import pytest

from registry.errors import ArtifactIntegrityError
from registry.verified_bytes import VerifiedBytes


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def test_concurrent_loads_share_one_fetch() -> None:
    cache, data = VerifiedBytes(), b"model bytes" * 1000
    started, release = threading.Event(), threading.Event()

    def fetch() -> bytes:
        started.set()
        assert release.wait(timeout=60)
        return data

    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("p", _sha(data), fetch)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    assert started.wait(timeout=60)
    release.set()
    for t in threads:
        t.join(timeout=60)
    assert results == [data] * 8 and cache.fetches == 1
    assert cache._fetching == {}  # no lock kept once nothing is in flight


def test_bytes_that_do_not_hash_to_the_ledger_s_hash_are_refused_and_not_kept() -> None:
    cache, data = VerifiedBytes(), b"registered"
    with pytest.raises(ArtifactIntegrityError) as caught:
        cache.get("p", _sha(b"what the ledger committed"), lambda: data)
    assert caught.value.code == "ARTIFACT_INTEGRITY"
    assert cache.get("p", _sha(data), lambda: data) == data
    assert cache.fetches == 2  # the refused bytes were not kept


def test_a_kept_copy_is_checked_again_on_every_load() -> None:
    cache, data = VerifiedBytes(), b"weights"
    digest = _sha(data)
    assert cache.get("p", digest, _const(data)) == data
    cache._kept[("p", digest)] = b"weighty"  # the copy in memory changed
    with pytest.raises(ArtifactIntegrityError):
        cache.get("p", digest, _const(data))
    assert cache.get("p", digest, _const(data)) == data  # forgotten, fetched again
    assert cache.fetches == 2


def test_least_recently_used_models_leave_past_the_bound() -> None:
    cache = VerifiedBytes(max_bytes=25)
    a, b, c = b"a" * 10, b"b" * 10, b"c" * 10
    for data in (a, b):
        cache.get("p", _sha(data), _const(data))
    cache.get("p", _sha(a), lambda: a)  # a is used again: b is now the oldest
    cache.get("p", _sha(c), lambda: c)
    assert cache.fetches == 3
    cache.get("p", _sha(a), lambda: a)
    assert cache.fetches == 3  # a stayed
    cache.get("p", _sha(b), lambda: b)
    assert cache.fetches == 4  # b had left


def test_bytes_this_process_stored_are_served_by_their_own_hash_only() -> None:
    cache, data = VerifiedBytes(), b"an update" * 100
    fetched: list[bytes] = []

    def fetch(found: bytes) -> Callable[[], bytes]:
        def download() -> bytes:
            fetched.append(found)
            return found

        return download

    assert cache.put("runs:/r/update.safetensors", data) == _sha(data)
    assert cache.get("runs:/r/update.safetensors", _sha(data), fetch(data)) == data
    assert fetched == [] and cache.fetches == 0  # written through: no download
    # Bytes stored that differ from what the ledger names (tampered on their way out) are
    # never served for the ledger's hash: that load goes to the store, which decides.
    honest = b"the committed update"
    cache.put("runs:/s/update.safetensors", b"tampered")
    assert cache.get("runs:/s/update.safetensors", _sha(honest), fetch(honest)) == honest
    assert fetched == [honest] and cache.fetches == 1

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

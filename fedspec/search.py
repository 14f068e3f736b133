"""Searches shared by the layers that must not import each other (chaincode, federated)."""

from __future__ import annotations

from collections.abc import Callable


def most_that_fit(fits: Callable[[int], bool], limit: int) -> int:
    """The largest ``count`` in ``[0, limit]`` with ``fits(count)``, for a ``fits`` that
    holds up to some count and never after (a budget's rounds left, say): exponential then
    binary search, O(log count) calls. ``fits(0)`` is assumed true."""
    low, high = 0, 1
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low

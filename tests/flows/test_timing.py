"""The round benchmark's timeline: overlapping spans go to the most important category."""

from __future__ import annotations

import pytest

from flows.timing import TimedProxy, breakdown, recording, span


def test_each_instant_goes_to_the_most_important_active_category() -> None:
    spans = [
        ("ledger", 0.0, 1.0),
        ("training", 0.5, 3.0),  # covers the ledger's second half and the MLflow span
        ("mlflow", 2.0, 4.0),
        ("training", 2.5, 2.8),  # nested in another node's training: counted once
    ]
    totals = breakdown(spans, start=0.0, end=5.0)
    assert totals["ledger"] == pytest.approx(0.5)
    assert totals["training"] == pytest.approx(2.5)
    assert totals["mlflow"] == pytest.approx(1.0)
    assert totals["orchestration"] == pytest.approx(1.0)
    assert sum(totals.values()) == pytest.approx(5.0)


def test_spans_outside_the_window_are_clipped_and_nothing_is_recorded_when_off() -> None:
    assert breakdown([("training", -2.0, 1.0)], 0.0, 2.0)["training"] == pytest.approx(1.0)
    with span("training"):
        pass  # not recording: no effect, no error
    with recording() as spans:
        calls = TimedProxy({"a": 1}, "ledger")
        assert calls.get("a") == 1
    assert [s[0] for s in spans] == ["ledger"]

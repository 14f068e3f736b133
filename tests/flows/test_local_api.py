"""Prefect's temporary local API started ahead by the command line (flows.local_api): a real
server process on 127.0.0.1 that the flow settings point Prefect at, stopped by its handle."""

from __future__ import annotations

import urllib.request

import pytest

from flows.local_api import LocalApi, start_local_api
from flows.rounds import local_api_settings


def test_a_configured_server_is_used_and_none_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert start_local_api() is None


def test_the_flows_use_the_api_started_ahead_and_it_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, PREFECT_UI_URL

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    api = start_local_api()
    assert isinstance(api, LocalApi)
    process = api.process
    assert process is not None
    try:
        with local_api_settings(api):
            assert PREFECT_API_URL.value() == api.url
            assert not PREFECT_UI_URL.value()  # no links to a UI the API does not serve
            # Runs that start together retry their colliding SQLite inserts for minutes.
            assert PREFECT_CLIENT_MAX_RETRIES.value() >= 8
            with urllib.request.urlopen(f"{api.url}/health", timeout=10) as response:
                assert response.status == 200
    finally:
        api.stop()
    assert process.returncode is not None  # terminated and reaped
    assert api.process is None
    api.stop()  # a second stop (the exit hook's) is a no-op

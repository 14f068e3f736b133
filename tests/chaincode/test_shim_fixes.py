"""The chaincode server's one workaround module drops the shim's per-message debug line and
nothing else (chaincode.shim_fixes)."""

from __future__ import annotations

import logging

import pytest

from chaincode import shim_fixes


def test_the_per_message_look_out_line_is_dropped_and_other_warnings_stay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import grpc.aio
    from fabric_chaincode_python.fabric_shim import handler as shim_handler
    from fabric_chaincode_python.fabric_shim import logging as shim_logging
    from fabric_chaincode_python.fabric_shim import server as shim_server

    shim_logger = logging.getLogger(shim_logging.LOGGER.name)
    saved_level, saved_filters = shim_logger.level, list(shim_logger.filters)
    # apply() patches the shim of this process: put it back for the other tests.
    saved = (shim_handler.ChaincodeStub, shim_server.Handler, grpc.aio.server)
    try:
        shim_fixes.apply()
        shim_fixes.apply()  # twice: one filter
        assert shim_logger.filters.count(shim_fixes._not_look_out) == 1
        with caplog.at_level(logging.WARNING, logger=shim_logger.name):
            shim_logger.warning(shim_fixes.LOOK_OUT)
            shim_logger.warning("No queued message for transaction")
        assert [r.getMessage() for r in caplog.records] == ["No queued message for transaction"]
    finally:
        shim_logger.setLevel(saved_level)
        shim_logger.filters[:] = saved_filters
        shim_handler.ChaincodeStub, shim_server.Handler, grpc.aio.server = saved

"""Log lines never carry a traceback or an exception's message."""

from __future__ import annotations

import logging

import pytest

from cli.logs import NoTracebacks


def test_exception_logs_keep_type_and_site_but_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tokenrelay.test.logs")
    caplog.handler.addFilter(NoTracebacks())
    try:
        raise ValueError("sk-secret-key-in-a-message")
    except ValueError:
        logger.exception("provider call failed for %s", "gen_1")
    (record,) = caplog.records
    text = caplog.text
    assert "provider call failed for gen_1" in text
    assert "ValueError at test_logs.py:" in text
    assert "Traceback" not in text
    assert "sk-secret" not in text
    assert record.exc_info is None

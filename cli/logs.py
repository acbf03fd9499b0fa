"""Process logging: one handler on the root logger, and no tracebacks in any log line.

The contract forbids tracebacks in logs (they leak code paths, and sometimes
request data or secrets held in local variables of the frames they print). Every
record, ours, uvicorn's and arq's alike, passes through `NoTracebacks`, which
replaces the traceback by the exception's type and the file and line where it
was raised: enough to find the bug, nothing that should leave the process.
Exception messages are left out too: provider errors may quote credentials.

`RedactCredentials` takes viewer tokens out of every line: a shared link carries
one in `?token=`, and uvicorn's access log writes each request's full URL.
"""

from __future__ import annotations

import logging
import os
import re
from types import TracebackType


def _raise_site(traceback: TracebackType | None) -> str:
    if traceback is None:
        return "unknown location"
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code
    return f"{os.path.basename(code.co_filename)}:{traceback.tb_lineno} in {code.co_name}"


class NoTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            if exc is not None:
                where = _raise_site(exc.__traceback__)
                record.msg = f"{record.getMessage()} [{type(exc).__name__} at {where}]"
                record.args = ()
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


_CREDENTIAL = re.compile(r"((?:[?&;]|\b)(?:token|api_key|key)=)[^&\s\"']+|(Bearer\s+)\S+", re.I)


class RedactCredentials(logging.Filter):
    """`token=…` (and `api_key=`, `key=`, `Bearer …`) become `[redacted]` in every line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _CREDENTIAL.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", message)
        if redacted != message:
            record.msg = redacted
            record.args = ()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(NoTracebacks())
    handler.addFilter(RedactCredentials())
    logging.basicConfig(level=level, handlers=[handler], force=True)

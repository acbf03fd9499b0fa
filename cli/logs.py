"""Process logging: one handler on the root logger, and no tracebacks in any log line.

The contract forbids tracebacks in logs (they leak code paths, and sometimes
request data or secrets held in local variables of the frames they print). Every
record, ours, uvicorn's and arq's alike, passes through `NoTracebacks`, which
replaces the traceback by the exception's type and the file and line where it
was raised: enough to find the bug, nothing that should leave the process.
Exception messages are left out too: provider errors may quote credentials.
"""

from __future__ import annotations

import logging
import os
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


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(NoTracebacks())
    logging.basicConfig(level=level, handlers=[handler], force=True)

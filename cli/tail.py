"""`tokenrelay tail ID`: a generation's text, live in a terminal, resuming by itself.

Built on the Python client (clients/python), so it survives what the client
survives: an API replica killed or restarted, a drain, a dropped network. The
text goes to stdout; what happens to the stream (a resume, a `reset` that voids
the text already printed, a `resync`) goes to stderr, so `tokenrelay tail ID >
answer.txt` keeps the text of the attempt that counted only when there was a
single attempt. The exit code is the outcome: 0 completed, 1 failed (or the
stream could not be followed), 3 cancelled.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

EXIT_CODES = {"completed": 0, "failed": 1, "cancelled": 3}


def run_tail(
    generation_id: str,
    *,
    url: str | None,
    key: str | None,
    token: str | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    try:
        from tokenrelay_client import APIStatusError, TokenRelay, TokenRelayError
    except ImportError:
        err.write("tokenrelay tail needs the Python client: pip install ./clients/python\n")
        return 1
    base_url = url or os.environ.get("TOKENRELAY_URL") or "http://127.0.0.1:8000"
    if key is None and token is None:
        key = os.environ.get("TOKENRELAY_API_KEY") or None
    try:
        with (
            TokenRelay(base_url=base_url, api_key=key, token=token) as tr,
            tr.generations.stream(generation_id) as stream,
        ):
            reconnects = 0
            for event in stream:
                if stream.reconnects != reconnects:
                    reconnects = stream.reconnects
                    err.write(f"\n[tail: reconnected, resumed after {stream.last_event_id}]\n")
                if event.type == "delta" and event.text:
                    out.write(event.text)
                    out.flush()
                elif event.type == "reset":
                    err.write(
                        f"\n[tail: attempt {event.attempt} ({event.reason}): "
                        "the text above is void, it restarts]\n"
                    )
                elif event.type == "resync":
                    err.write("\n[tail: part of the stream expired; the stored text follows]\n")
                    out.write(stream.text)
                elif event.type == "error":
                    err.write(f"\n[tail: failed: {event.error_type}: {event.message}]\n")
                elif event.type == "cancelled":
                    err.write("\n[tail: cancelled]\n")
            out.write("\n")
            out.flush()
            return EXIT_CODES.get(stream.status, 1)
    except APIStatusError as error:
        err.write(f"tokenrelay tail: {error.status_code} {error.type}: {error.message}\n")
    except TokenRelayError as error:
        err.write(f"tokenrelay tail: {error}\n")
    except KeyboardInterrupt:
        err.write("\n")
        return 130
    return 1

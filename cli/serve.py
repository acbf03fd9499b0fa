"""Running the API under uvicorn with a drain phase on SIGTERM/SIGINT.

uvicorn waits for open responses before it runs the lifespan shutdown, and SSE
responses never end by themselves, so the app must learn of the signal first.
`DrainingServer` sets the app's `draining` event when the signal arrives: readiness
turns 503 at once, new streams are refused with 503, open streams send a short
`retry:` and close. The listener stays open until the streams are gone (at most
the grace period, at least `shutdown_delay_s`, so a load balancer polling
`/readyz` sees the 503 rather than a refused connection); then uvicorn runs its
own graceful shutdown. A second signal stops at once. This is a subclass in our
launcher, not a patch of uvicorn's process-wide state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from api.cors import with_cors
from api.events_fast_path import EventsFastPath
from api.main import create_app
from api.state import AppState
from cli.http_protocol import bounded_http_protocol
from services.config import Settings

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app  # whose state to drain, whatever wraps it in `config.app`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_started = False
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = getattr(self._app.state, "tokenrelay", None)
        if self._drain_started or state is None or self._loop is None:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        self._drain_started = True
        log.info("shutdown signal: draining open streams")
        self._loop.call_soon_threadsafe(self._begin_drain, state, sig, frame)

    def _begin_drain(self, state: AppState, sig: int, frame: FrameType | None) -> None:
        state.draining.set()
        self._drain_task = asyncio.get_running_loop().create_task(self._drain(state, sig, frame))

    async def _drain(self, state: AppState, sig: int, frame: FrameType | None) -> None:
        """Keep serving (readyz 503, new streams 503) until the open streams have closed
        (they were just told to reconnect) or the grace period is over, and at least
        `shutdown_delay_s` so load balancers see the 503; then let uvicorn stop."""
        settings = state.settings
        loop = asyncio.get_running_loop()
        started = loop.time()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settings.shutdown_grace_s):
                await state.gate.wait_idle()
        remaining = settings.shutdown_delay_s - (loop.time() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        log.info("drained: %d stream(s) still open; stopping", state.gate.open)
        super().handle_exit(sig, frame)


def run_api(settings: Settings, host: str, port: int) -> None:
    app = create_app(settings)
    config = uvicorn.Config(
        # CORS outermost, so the event streams of the fast path carry it too.
        with_cors(EventsFastPath(app), settings),
        host=host,
        port=port,
        # httptools, as uvicorn would pick, with a bound on each request's head. The
        # other limits stay uvicorn's: idle kept-alive sockets close after 5 s
        # (timeout_keep_alive); limit_concurrency stays off, as it counts open streams
        # and idle sockets alike and answers plain text, while streams have their own
        # cap (TOKENRELAY_MAX_SSE_CONNECTIONS) and bodies theirs (BodySizeLimit).
        http=bounded_http_protocol(settings.max_header_bytes, settings.header_timeout_s),
        lifespan="on",
        interface="asgi3",  # EventsFastPath is a plain callable returning an awaitable
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        proxy_headers=True,
        server_header=False,
        log_level="info",
        log_config=None,  # uvicorn's loggers propagate to ours (cli/logs.py)
    )
    DrainingServer(config, app).run()

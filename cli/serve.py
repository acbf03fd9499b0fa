"""Running the API under uvicorn with a drain phase on SIGTERM/SIGINT.

uvicorn waits for open responses before it runs the lifespan shutdown, and SSE
responses never end by themselves, so the app must learn of the signal first.
`DrainingServer` sets the app's `draining` event when the signal arrives; open
streams then send a short `retry:` and close, readiness turns 503, and uvicorn
finishes its own graceful shutdown. This is a subclass in our launcher, not a
patch of uvicorn's process-wide state.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

import uvicorn

from api.main import create_app
from services.config import Settings

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, draining: asyncio.Event | None = None) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.app
        state = getattr(getattr(app, "state", None), "tokenrelay", None)
        if state is not None and self._loop is not None:
            log.info("shutdown signal: draining open streams")
            self._loop.call_soon_threadsafe(state.draining.set)
        super().handle_exit(sig, frame)


def run_api(settings: Settings, host: str, port: int) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        proxy_headers=True,
        server_header=False,
        log_level="info",
        log_config=None,  # uvicorn's loggers propagate to ours (cli/logs.py)
    )
    DrainingServer(config).run()

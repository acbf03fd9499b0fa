"""Cancel requests reach the worker that runs the generation, wherever it is.

One pub/sub subscription per worker process listens on the cancel channel and
sets the `asyncio.Event` of the generation it names, if this process runs it.
The store's write script refuses writes after a cancel too, so a message missed
while reconnecting still stops the generation at its next write; and after every
(re)subscription the listener reads the cancel flag of each generation it runs,
so a cancel sent during a Redis outage also stops a generation that is silent.
The subscription is pinged (services.redis_connections.live_messages), so a
half-open connection is noticed within the reply timeout and resubscribed,
instead of leaving every cancel of this process unheard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from services.background import BackgroundLoop, Backoff
from services.redis_connections import is_redis_failure, live_messages
from services.store import GenerationStore

log = logging.getLogger(__name__)


class CancelListener:
    def __init__(self, store: GenerationStore, *, reply_timeout_s: float = 5.0) -> None:
        self._store = store
        self._reply_timeout_s = reply_timeout_s
        self._watched: dict[str, asyncio.Event] = {}
        self._task = BackgroundLoop("cancel-listener", self._listen)
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout=5)

    async def stop(self) -> None:
        await self._task.stop()

    @contextlib.contextmanager
    def watching(self, gen_id: str) -> Iterator[asyncio.Event]:
        """An event set when a cancel for `gen_id` arrives, for the duration of the block."""
        event = asyncio.Event()
        self._watched[gen_id] = event
        try:
            yield event
        finally:
            self._watched.pop(gen_id, None)

    async def _catch_up(self) -> None:
        """Set the events of watched generations whose cancel came while unsubscribed."""
        for gen_id, event in list(self._watched.items()):
            if await self._store.cancel_requested(gen_id):
                event.set()

    async def _listen(self) -> None:
        backoff = Backoff(first_s=0.5, cap_s=5.0)
        while True:
            try:
                async with self._store.cancel_requests() as pubsub:
                    self.ready.set()
                    await self._catch_up()
                    messages = live_messages(pubsub, reply_timeout_s=self._reply_timeout_s)
                    async for message in messages:
                        backoff.reset()
                        gen_id = message.get("data")
                        if isinstance(gen_id, bytes):
                            gen_id = gen_id.decode()
                        event = self._watched.get(gen_id) if isinstance(gen_id, str) else None
                        if event is not None:
                            event.set()
            except Exception as exc:
                if not is_redis_failure(exc):
                    raise
                log.warning("cancel listener lost Redis (%s); reconnecting", type(exc).__name__)
                await backoff.sleep()

"""Every running attempt's lease of one worker, renewed together.

Why: each attempt used to renew its own lease every `lease_s / 3` from a task of
its own: a timer, a task wake-up and a Redis round trip per attempt per interval,
so a worker carrying 1,000 generations made 300 renewal calls a second, and the
ones falling due together took new connections from the pool. Here one loop
renews all of them in one script call per interval (`GenerationStore.renew_leases`)
and tells each attempt whose lease is gone, through the event `hold` gave it.
(Worker CPU per token did not change measurably: bench/README.md, "Seventh round".)

The bounds do not change: an attempt's lease is renewed at most `lease_s / 3`
after it was taken or last renewed, and a renewal that fails (Redis unreachable)
is tried again at the next tick, as before. Every write stays fenced by the lease
token in any case, so a lease lost between two ticks is found out at the next
write.
"""

from __future__ import annotations

import asyncio
import logging

from services.background import BackgroundLoop
from services.redis_connections import is_redis_failure
from services.store import GenerationStore

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Holds the leases of this worker's running attempts and renews them each `interval_s`."""

    def __init__(self, store: GenerationStore, *, lease_ms: int, interval_s: float) -> None:
        self._store = store
        self._lease_ms = lease_ms
        self._interval_s = interval_s
        self._held: dict[tuple[str, str], asyncio.Event] = {}
        self._renewer = BackgroundLoop("lease-keeper", self._renew_forever)

    def start(self) -> None:
        self._renewer.start()

    async def stop(self) -> None:
        await self._renewer.stop()

    def hold(self, gen_id: str, token: str) -> asyncio.Event:
        """Keep this attempt's lease (just taken) from now on; the event is set if it is lost."""
        lost = asyncio.Event()
        self._held[(gen_id, token)] = lost
        return lost

    def release(self, gen_id: str, token: str) -> None:
        """Stop renewing it: the attempt ended (its lease is released or left to expire)."""
        self._held.pop((gen_id, token), None)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.renew_now()

    async def renew_now(self) -> None:
        """One renewal of every lease held: the loop's tick (tests call it directly)."""
        held = list(self._held.items())
        if not held:
            return
        try:
            outcomes = await self._store.renew_leases([lease for lease, _ in held], self._lease_ms)
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            # Keep trying: the leases may outlive a short outage.
            log.warning("renewing %d leases failed (%s); trying again", len(held), exc)
            return
        for ((gen_id, token), lost), renewed in zip(held, outcomes, strict=True):
            if isinstance(renewed, Exception):
                if not is_redis_failure(renewed):
                    raise renewed
                log.warning("generation %s: lease renewal failed (%s)", gen_id, renewed)
            elif not renewed and self._held.get((gen_id, token)) is lost:
                log.warning("generation %s: lease lost; stopping without writing", gen_id)
                del self._held[(gen_id, token)]
                lost.set()

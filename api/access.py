"""Access checks that need Redis: whose generation is this, and who holds which stream.

`readable_status` is the one gate of every route of a generation. Another
tenant's generation answers exactly as an id that never existed: the same 404
body, after the same Redis reads (the status, then the expiry marker), so
neither the answer nor its timing tells whether the id exists. A viewer token
for another generation is a 403 before any read.

`OpenStreams` holds this process's SSE responses by principal: it takes a
key's stream slot when a response starts (services/limits.py), gives it back
when the response ends, refreshes the slots' deadlines, and once a second ends
the streams whose managed key was revoked or whose viewer token expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from starlette.responses import Response

from api.auth import Authenticator, Principal
from api.errors import failure_of, failure_response
from services import keys
from services.background import BackgroundLoop
from services.errors import Forbidden, NotFound, RateLimited
from services.generation import GenerationStatus
from services.limits import STREAM_SLOT_REFRESH_S, Limits
from services.store import GenerationStore

if TYPE_CHECKING:
    from api.streaming.sse import EventStreamResponse

log = logging.getLogger(__name__)

REVOCATION_CHECK_S = 1.0


async def readable_status(
    store: GenerationStore, principal: Principal, gen_id: str, *, retention_s: int
) -> GenerationStatus:
    """The generation's status if `principal` may read it; 404 as for an unknown id if not."""
    if principal.viewer_of is not None and principal.viewer_of != gen_id:
        raise Forbidden("this viewer token is for another generation")
    valid = keys.is_generation_id(gen_id)
    status = await store.status(gen_id) if valid else None
    if status is not None and principal.sees(status.tenant):
        return status
    # Unknown, expired, or another tenant's: the same reads and the same answer.
    expired_for = await store.expired_tenant(gen_id) if valid else None
    if expired_for is not None and status is None and principal.sees(expired_for):
        raise NotFound(
            f"generation '{gen_id}' has expired: finished generations are kept for "
            f"{retention_s} s (TOKENRELAY_RETENTION_S)"
        )
    raise NotFound(f"no generation '{gen_id[:64]}' (unknown, or expired after retention)")


@dataclass
class _Held:
    principal: Principal
    slot: tuple[str, str] | None


class OpenStreams:
    """This process's SSE responses, by the principal that opened them."""

    def __init__(self, auth: Authenticator, limits: Limits) -> None:
        self.auth = auth
        self.limits = limits
        self._held: dict[EventStreamResponse, _Held] = {}
        self._loop = BackgroundLoop("stream-access", self._watch)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def guard(
        self, principal: Principal | None, reserved: tuple[str, str] | None = None
    ) -> StreamGuard | None:
        return None if principal is None else StreamGuard(self, principal, reserved)

    async def reserve(self, principal: Principal) -> tuple[str, str] | None:
        """Take one of the key's stream slots now (None: the key has no stream limit).

        For a request that queues a generation and then streams it (the front doors):
        over the limit, nothing must be queued, so the slot is taken first. Raises
        `RateLimited`; give the slot to `open`, or back with `release`."""
        limit = principal.limits.max_streams
        if not limit or principal.viewer_of is not None:
            return None
        slot = (principal.key_id, secrets.token_hex(8))
        wait_ms = await self.limits.open_stream(slot[0], slot[1], limit)
        if wait_ms > 0:
            raise RateLimited(
                f"this key already has {limit} open event streams "
                "(its limit across all replicas); close one or retry later",
                retry_after_s=max(1, math.ceil(wait_ms / 1000)),
            )
        return slot

    async def release(self, slot: tuple[str, str] | None) -> None:
        if slot is not None:
            with contextlib.suppress(RedisError, OSError):  # else its deadline frees it
                await self.limits.close_stream(*slot)

    async def open(
        self,
        response: EventStreamResponse,
        principal: Principal,
        reserved: tuple[str, str] | None = None,
    ) -> Response | None:
        """Hold `response` for `principal`, in the slot `reserve` took or a new one."""
        slot = reserved
        if slot is None:
            try:
                slot = await self.reserve(principal)
            except RateLimited as limited:
                return failure_response(failure_of(limited))
        self._held[response] = _Held(principal, slot)
        return None

    async def close(self, response: EventStreamResponse) -> None:
        held = self._held.pop(response, None)
        if held is not None and held.slot is not None:
            with contextlib.suppress(RedisError, OSError):  # else its deadline frees it
                await self.limits.close_stream(*held.slot)

    async def _watch(self) -> None:
        since_refresh = 0.0
        while True:
            await asyncio.sleep(REVOCATION_CHECK_S)
            since_refresh += REVOCATION_CHECK_S
            try:
                await self._end_revoked()
                if since_refresh >= STREAM_SLOT_REFRESH_S:
                    since_refresh = 0.0
                    slots = [h.slot for h in self._held.values() if h.slot is not None]
                    await self.limits.refresh_streams(slots)
            except (RedisError, OSError) as exc:
                log.warning("stream access check failed: %s", type(exc).__name__)

    async def _end_revoked(self) -> None:
        wall = time.time()
        key_ids = {h.principal.revocable_by for h in self._held.values()} - {None}
        revoked = await self.auth.key_store.revoked([k for k in key_ids if k is not None])
        for response, held in list(self._held.items()):
            principal = held.principal
            expired = principal.expires_at is not None and principal.expires_at <= wall
            if expired or principal.revocable_by in revoked:
                response.interrupt("revoked")


class StreamGuard:
    """What an `EventStreamResponse` calls when it starts and ends (api/streaming/sse.py)."""

    def __init__(
        self,
        streams: OpenStreams,
        principal: Principal,
        reserved: tuple[str, str] | None = None,
    ) -> None:
        self.streams = streams
        self.principal = principal
        self.reserved = reserved

    async def open(self, response: EventStreamResponse) -> Response | None:
        return await self.streams.open(response, self.principal, self.reserved)

    async def abandon(self) -> None:
        """The response was refused before it opened: give back a slot taken for it."""
        await self.streams.release(self.reserved)

    async def close(self, response: EventStreamResponse) -> None:
        await self.streams.close(response)

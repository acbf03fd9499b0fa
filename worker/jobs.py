"""Run one generation: one arq job, from `queued` to exactly one terminal event.

The job takes a lease on a new attempt (the store refuses a second holder, so a
job delivered twice runs once), streams the provider into a `DeltaPublisher`,
and races that against a cancel and against losing the lease. Whatever happens,
it ends with one terminal event, or, when its lease is gone, writes nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from contextlib import aclosing
from typing import Any

from redis.exceptions import RedisError

from services.background import until_redis_answers
from services.errors import ProviderError
from services.events import CancelledEvent, DoneEvent, ErrorEvent, encode_data
from services.generation import GenerationRequest
from services.limits import release_generation
from services.providers.base import FinishChunk, Provider, TextChunk, ToolCallChunk
from services.redis_connections import is_passing_outage, is_redis_failure
from services.store import AttemptGrant, new_lease_token
from worker.claimed_job import BEGUN_ATTEMPT, INDEXED_GENERATION
from worker.publisher import DeltaPublisher, PublishRefused
from worker.retry import AttemptClock, RetryPolicy, TimeLimits
from worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)


_ENDED = frozenset({"completed", "failed", "cancelled", "finished", "missing"})
"""Outcomes after which the generation is over (or gone): drop it from the running index."""


async def run_generation(ctx: dict[str, Any], gen_id: str) -> str:
    """arq entry point. Returns a short outcome word for arq's job result."""
    runtime: WorkerRuntime = ctx["runtime"]
    indexed = ctx.get(INDEXED_GENERATION) == gen_id
    begun: tuple[str, list[Any]] | None = ctx.get(BEGUN_ATTEMPT)
    if begun is None:
        return await GenerationRun(runtime, gen_id).run(indexed=indexed)
    token, answer = begun
    return await GenerationRun(runtime, gen_id, token).run(indexed=indexed, begun=answer)


class GenerationRun:
    def __init__(self, runtime: WorkerRuntime, gen_id: str, token: str | None = None) -> None:
        """`token`: the lease token of an attempt begun with the job's claim, if one was."""
        self.runtime = runtime
        self.store = runtime.store
        self.gen_id = gen_id
        self.token = token if token is not None else new_lease_token()
        self.lease_ms = int(runtime.settings.lease_s * 1000)
        self._batch_numbers = itertools.count(1)  # shared by every attempt's publisher
        self._tenant: str | None = None
        self.publisher = self._new_publisher()

    async def run(self, *, indexed: bool = False, begun: list[Any] | None = None) -> str:
        """Run the generation; on losing Redis, stop writing and leave it to a takeover.

        The generation is in the running index before its lease is taken, so a
        reaper finds it whenever this worker dies from here on (worker/reaper.py):
        the job's claim put it there (`indexed`), or it is put there first. The claim
        may also have begun the attempt (`begun`: what `begin_attempt` answered).
        A Redis error mid-attempt cannot be retried safely (a write whose reply was
        lost may have been applied), so the attempt is abandoned, its lease handed
        back as soon as Redis answers, and a reaper starts a fresh attempt.
        """
        if not indexed:
            await self._until_redis_answers()
        try:
            outcome = await self._run_tracked(begun)
        except RedisError as exc:
            log.warning("generation %s: Redis failed (%s); abandoning", self.gen_id, exc)
            # An outage or failover is not the generation's doing; any other Redis
            # error (a full Redis, a script error) may recur at every attempt.
            await self._give_up_lease(handing_back=is_passing_outage(exc))
            return "redis_unavailable"
        except asyncio.CancelledError:
            # Shutting down: hand the attempt back so a reaper restarts it at once.
            with contextlib.suppress(RedisError, OSError):
                await asyncio.shield(self.store.hand_back(self.gen_id, self.token))
            raise
        if outcome in _ENDED:
            # Its tenant's running slot frees now (a lost release is repaired: services/limits.py).
            if self._tenant is not None:  # known from the lease: one round trip
                with contextlib.suppress(RedisError, OSError):
                    await self.store.end_running(self.gen_id, self._tenant)
            else:
                with contextlib.suppress(RedisError, OSError):
                    await self.store.untrack_running(self.gen_id)
                with contextlib.suppress(RedisError, OSError):
                    await release_generation(self.store, self.runtime.redis, self.gen_id)
        return outcome

    async def _until_redis_answers(self) -> None:
        """Index the generation, waiting out a Redis outage (arq needs Redis to retry us)."""
        await until_redis_answers(
            lambda: self.store.track_running(self.gen_id, self.lease_ms),
            what=f"generation {self.gen_id}",
            log=log,
        )

    async def _give_up_lease(self, *, handing_back: bool) -> None:
        release = self.store.hand_back if handing_back else self.store.release_lease
        deadline = asyncio.get_running_loop().time() + self.runtime.settings.lease_s
        while asyncio.get_running_loop().time() < deadline:
            try:
                await release(self.gen_id, self.token)
                return
            except Exception as exc:
                if not is_redis_failure(exc):
                    raise
                await asyncio.sleep(0.5)

    async def _run_tracked(self, begun: list[Any] | None) -> str:
        # An attempt begun with the claim was begun before this watch: a cancel asked
        # in between is refused at its first write, which reads the same flag.
        with self.runtime.cancels.watching(self.gen_id) as cancel_requested:
            if begun is not None:
                grant = await self.store.attempt_granted(self.gen_id, self.token, begun)
            else:
                grant = await self.store.begin_attempt(self.gen_id, self.token, self.lease_ms)
            if not isinstance(grant, AttemptGrant):
                log.info("generation %s not started: %s", self.gen_id, grant)
                return grant
            self._tenant = grant.tenant
            try:
                return await self._run_attempt(grant, cancel_requested)
            finally:
                await self.publisher.aclose()

    def _new_publisher(self) -> DeltaPublisher:
        return DeltaPublisher(
            self.runtime.publishes,
            self.gen_id,
            self.token,
            window_s=self.runtime.settings.coalesce_ms / 1000,
            clock=self.runtime.flush_clock,
            batch_numbers=self._batch_numbers,
        )

    async def _run_attempt(self, grant: AttemptGrant, cancel_requested: asyncio.Event) -> str:
        lease_lost = self.runtime.leases.hold(self.gen_id, self.token)
        stream = asyncio.create_task(self._stream(grant.request))
        watchers = [
            asyncio.create_task(cancel_requested.wait()),
            asyncio.create_task(lease_lost.wait()),
        ]
        try:
            await asyncio.wait([stream, *watchers], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.runtime.leases.release(self.gen_id, self.token)
            for task in watchers:
                task.cancel()
            if not stream.done():
                stream.cancel()  # closes the provider's HTTP stream through aclosing()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stream
        publisher = self.publisher  # the current attempt's (a retry replaces it)
        if lease_lost.is_set():
            return "lease_lost"
        if cancel_requested.is_set():
            return await self._finish_cancelled(publisher)
        try:
            finish = stream.result()
        except PublishRefused as refused:
            return await self._after_refusal(refused, publisher)
        except RedisError:
            raise  # not the generation's failure: run() leaves it to a takeover
        except ProviderError as exc:
            self.runtime.metrics.provider_error(grant.request.provider, exc.error_type)
            return await self._finish_failed(publisher, exc.error_type, exc.message, exc.retryable)
        except Exception:
            log.exception("generation %s failed unexpectedly", self.gen_id)
            return await self._finish_failed(
                publisher, "internal_error", "the worker failed unexpectedly", True
            )
        done = DoneEvent(finish_reason=finish.finish_reason, usage=finish.usage)
        return await self._finish(
            publisher,
            "completed",
            ("done", encode_data(done)),
            finish_reason=finish.finish_reason,
            usage_json=finish.usage.model_dump_json() if finish.usage else "",
        )

    async def _stream(self, request: GenerationRequest) -> FinishChunk:
        """Try the provider until it finishes, under worker/retry.py's policy.

        A failed try that published nothing is retried invisibly; one that did
        publish is voided with `reset` (a new, visible attempt) before the next
        try, so viewers never see text twice.
        """
        provider = self.runtime.providers.get(request.provider)
        if provider is None:
            raise ProviderError(
                "invalid_request_error",
                f"provider '{request.provider}' is not configured on this worker",
                retryable=False,
            )
        settings = self.runtime.settings
        policy = RetryPolicy.from_settings(settings)
        limits = TimeLimits.from_settings(settings)
        loop = asyncio.get_running_loop()
        total_deadline = loop.time() + limits.total_s
        tries = 0
        while True:
            tries += 1
            try:
                return await self._stream_once(provider, request, limits, total_deadline)
            except ProviderError as exc:
                delay = policy.delay_before_retry(exc, tries, total_deadline - loop.time())
                if delay is None:
                    raise
                log.info(
                    "generation %s: try %d failed (%s: %s); retrying in %.2f s",
                    self.gen_id,
                    tries,
                    exc.error_type,
                    exc.message,  # already redacted by the provider adapter
                    delay,
                )
                await self._void_attempt(exc.error_type)
                await asyncio.sleep(delay)

    async def _stream_once(
        self,
        provider: Provider,
        request: GenerationRequest,
        limits: TimeLimits,
        total_deadline: float,
    ) -> FinishChunk:
        clock = AttemptClock(limits, total_deadline)
        timing = self.runtime.metrics.streams.start(request.provider)
        async with aclosing(provider.stream(request)) as chunks:
            with clock.watch():
                async for chunk in chunks:
                    clock.received()
                    if isinstance(chunk, TextChunk):
                        timing.chunk()
                        await self.publisher.add_text(chunk.text)
                    elif isinstance(chunk, ToolCallChunk):
                        timing.chunk()
                        await self.publisher.add_tool_call(chunk.fragment)
                    else:
                        return chunk
                    clock.waiting()
        raise ProviderError(
            "provider_error", "the provider stream ended without a finish", retryable=True
        )

    async def _void_attempt(self, reason: str) -> None:
        """Forget a failed try's output: invisibly if none was published, else by `reset`."""
        await self.publisher.discard()
        if self.publisher.published_any:
            restarted = await self.store.restart_attempt(self.gen_id, self.token, reason)
            if not isinstance(restarted, int):
                raise PublishRefused(restarted)
            log.info("generation %s: attempt %d after %s", self.gen_id, restarted, reason)
        await self.publisher.aclose()
        self.publisher = self._new_publisher()

    async def _after_refusal(self, refused: PublishRefused, publisher: DeltaPublisher) -> str:
        if refused.outcome == "cancelled":
            return await self._finish_cancelled(publisher)
        if refused.outcome == "too_large":
            return await self._finish_failed(
                publisher,
                "output_too_large",
                "the generation exceeded the stream size guard",
                False,
            )
        return "lease_lost"

    async def _finish_cancelled(self, publisher: DeltaPublisher) -> str:
        return await self._finish(
            publisher, "cancelled", ("cancelled", encode_data(CancelledEvent()))
        )

    async def _finish_failed(
        self, publisher: DeltaPublisher, error_type: str, message: str, retryable: bool
    ) -> str:
        event = ErrorEvent(error_type=error_type, message=message, retryable=retryable)
        info = json.dumps({"type": error_type, "message": message})
        return await self._finish(
            publisher, "failed", ("error", encode_data(event)), error_json=info
        )

    async def _finish(
        self,
        publisher: DeltaPublisher,
        status: str,
        terminal: tuple[str, str],
        **fields: str,
    ) -> str:
        try:
            await publisher.finish(status, terminal, **fields)
        except PublishRefused as refused:
            if refused.outcome == "cancelled" and status != "cancelled":
                return await self._finish_cancelled(publisher)
            return refused.outcome
        return status

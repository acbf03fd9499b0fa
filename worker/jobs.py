"""Run one generation: one arq job, from `queued` to exactly one terminal event.

The job takes a lease on a new attempt (the store refuses a second holder, so a
job delivered twice runs once), streams the provider into a `DeltaPublisher`,
and races that against a cancel and against losing the lease. Whatever happens,
it ends with one terminal event, or, when its lease is gone, writes nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from contextlib import aclosing
from typing import Any

from services.errors import ProviderError
from services.events import CancelledEvent, DoneEvent, ErrorEvent, encode_data
from services.generation import GenerationRequest
from services.providers.base import FinishChunk, TextChunk, ToolCallChunk
from services.store import AttemptGrant
from worker.publisher import DeltaPublisher, PublishRefused
from worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)


class _Cancelled(Exception):
    """A cancel request arrived for the running generation."""


class _LeaseLost(Exception):
    """This worker no longer owns the attempt; it must not write anything more."""


async def run_generation(ctx: dict[str, Any], gen_id: str) -> str:
    """arq entry point. Returns a short outcome word for arq's job result."""
    runtime: WorkerRuntime = ctx["runtime"]
    return await GenerationRun(runtime, gen_id).run()


class GenerationRun:
    def __init__(self, runtime: WorkerRuntime, gen_id: str) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.gen_id = gen_id
        self.token = secrets.token_hex(16)
        self.lease_ms = int(runtime.settings.lease_s * 1000)

    async def run(self) -> str:
        with self.runtime.cancels.watching(self.gen_id) as cancel_requested:
            grant = await self.store.begin_attempt(self.gen_id, self.token, self.lease_ms)
            if not isinstance(grant, AttemptGrant):
                log.info("generation %s not started: %s", self.gen_id, grant)
                return grant
            publisher = DeltaPublisher(
                self.store,
                self.gen_id,
                self.token,
                window_s=self.runtime.settings.coalesce_ms / 1000,
            )
            try:
                return await self._run_attempt(grant, publisher, cancel_requested)
            finally:
                await publisher.aclose()

    async def _run_attempt(
        self, grant: AttemptGrant, publisher: DeltaPublisher, cancel_requested: asyncio.Event
    ) -> str:
        lease_lost = asyncio.Event()
        stream = asyncio.create_task(self._stream(grant.request, publisher))
        watchers = [
            asyncio.create_task(cancel_requested.wait()),
            asyncio.create_task(lease_lost.wait()),
            asyncio.create_task(self._keep_lease(lease_lost)),
        ]
        try:
            await asyncio.wait([stream, *watchers[:2]], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in watchers:
                task.cancel()
            if not stream.done():
                stream.cancel()  # closes the provider's HTTP stream through aclosing()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stream
        if lease_lost.is_set():
            return "lease_lost"
        if cancel_requested.is_set():
            return await self._finish_cancelled(publisher)
        try:
            finish = stream.result()
        except PublishRefused as refused:
            return await self._after_refusal(refused, publisher)
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

    async def _stream(self, request: GenerationRequest, publisher: DeltaPublisher) -> FinishChunk:
        provider = self.runtime.providers.get(request.provider)
        if provider is None:
            raise ProviderError(
                "invalid_request_error",
                f"provider '{request.provider}' is not configured on this worker",
                retryable=False,
            )
        observed = self.runtime.metrics.observe_stream(request.provider, provider.stream(request))
        async with aclosing(observed) as chunks:
            async for chunk in chunks:
                if isinstance(chunk, TextChunk):
                    await publisher.add_text(chunk.text)
                elif isinstance(chunk, ToolCallChunk):
                    await publisher.add_tool_call(chunk.fragment)
                else:
                    return chunk
        raise ProviderError(
            "provider_error", "the provider stream ended without a finish", retryable=True
        )

    async def _keep_lease(self, lease_lost: asyncio.Event) -> None:
        interval = self.runtime.settings.lease_s / 3
        while True:
            await asyncio.sleep(interval)
            if not await self.store.renew_lease(self.gen_id, self.token, self.lease_ms):
                log.warning("generation %s: lease lost; stopping without writing", self.gen_id)
                lease_lost.set()
                return

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

"""Turning a validated request into a queued generation.

Shared by the native API and the OpenAI/Anthropic front doors: every check that
can refuse a request runs before anything is written or queued. The caller's
principal (api/auth.py) decides the generation's tenant and the limits that
apply: the key's models and `max_tokens` ceiling, then, in one atomic step in
Redis, its requests per minute and the tenant's queued + running generations
(services/limits.py). Over a limit: 429 `rate_limit_error` with `Retry-After`,
and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError

from api.auth import Principal, current_principal
from api.state import AppState
from services import keys
from services.errors import Forbidden, InvalidFields, InvalidRequest, RateLimited
from services.generation import GenerationRequest
from services.job_wakeups import queue_job, write_then_queue_job
from services.limits import Refusal, repair_running
from services.providers import BY_NAME, KNOWN_PROVIDERS

log = logging.getLogger(__name__)


def check_servable(state: AppState, request: GenerationRequest) -> None:
    provider = request.provider
    if provider not in KNOWN_PROVIDERS:
        raise InvalidRequest(
            f"unknown provider '{provider}' in model '{request.model}': "
            f"use one of {', '.join(p + '/…' for p in KNOWN_PROVIDERS)}"
        )
    spec = BY_NAME[provider]
    if not spec.configured(state.settings):
        raise InvalidRequest(
            f"provider '{provider}' is not configured on this deployment (set {spec.variables})"
        )
    limit = state.settings.max_tokens_limit
    if request.max_tokens is not None and request.max_tokens > limit:
        raise InvalidFields(f"max_tokens: must be at most {limit}")


def check_key_limits(principal: Principal, request: GenerationRequest) -> None:
    limits = principal.limits
    if not limits.allows_model(request.model):
        raise Forbidden(f"this key may not use model '{request.model[:100]}'")
    if (
        limits.max_tokens is not None
        and request.max_tokens is not None
        and request.max_tokens > limits.max_tokens
    ):
        raise InvalidFields(f"max_tokens: this key allows at most {limits.max_tokens}")


async def admit(state: AppState, principal: Principal, gen_id: str) -> None:
    """Take the key's request and the tenant's slot for `gen_id`, or raise 429."""

    async def attempt() -> Refusal | None:
        return await state.limits.admit(
            key_id=principal.key_id,
            tenant=principal.tenant,
            gen_id=gen_id,
            requests_per_minute=principal.limits.requests_per_minute,
            max_running=state.settings.max_running_per_tenant,
        )

    refusal = await attempt()
    # A release lost in a crash would hold a slot until its deadline: look once.
    if (
        refusal is not None
        and refusal.limit == "running"
        and await repair_running(state.store, state.limits, principal.tenant)
    ):
        refusal = await attempt()
    if refusal is None:
        return
    state.metrics.tenants.limited(principal.tenant, refusal.limit)
    if refusal.limit == "requests":
        message = (
            f"this key may send {principal.limits.requests_per_minute} generation requests "
            "per minute; retry after the time in Retry-After"
        )
    else:
        message = (
            f"tenant '{principal.tenant}' already has {state.settings.max_running_per_tenant} "
            "queued or running generations (TOKENRELAY_MAX_RUNNING_PER_TENANT); "
            "retry when one ends"
        )
    raise RateLimited(message, retry_after_s=refusal.retry_after_s)


async def _settle_index(indexing: asyncio.Future[None], gen_id: str) -> None:
    try:
        await indexing
    except (RedisError, OSError) as exc:
        log.warning("generation %s not listed: the index write failed (%s)", gen_id, exc)


async def submit_generation(
    state: AppState, request: GenerationRequest, principal: Principal | None = None
) -> tuple[str, float]:
    """Validate, admit, record and enqueue. Returns the new generation's id and creation time.

    The doors do not pass the principal: it is the current request's (api/auth.py).
    """
    principal = principal or current_principal()
    check_servable(state, request)
    check_key_limits(principal, request)
    gen_id = keys.new_generation_id()
    await admit(state, principal, gen_id)
    created_at = time.time()
    # One Redis for generations and the queue (no separate streams Redis): the status
    # record, its listing and the queued job are one script, one round trip on the
    # path to the first token. Otherwise the record first, then the job (and the
    # listing while the job is queued), as two steps.
    if state.store.redis is state.redis:
        queued = await _record_and_queue_together(state, request, principal, gen_id, created_at)
    else:
        queued = await _record_then_queue(state, request, principal, gen_id, created_at)
    if not queued:  # arq already knows this id: impossible for a fresh random id
        log.error("generation %s was already queued", gen_id)
    state.metrics.tenants.created(principal.tenant)
    return gen_id, created_at


async def _record_and_queue_together(
    state: AppState,
    request: GenerationRequest,
    principal: Principal,
    gen_id: str,
    created_at: float,
) -> bool:
    record = state.store.record_call(gen_id, request, created_at, principal.tenant, indexed=True)
    try:
        return await write_then_queue_job(
            state.redis,
            record,
            state.queue,
            keys.GENERATION_JOB,
            gen_id,
            job_id=gen_id,
            queue_name=state.settings.queue_name,
        )
    except Exception:
        await _queueing_failed(state, principal, gen_id)
        raise


async def _record_then_queue(
    state: AppState,
    request: GenerationRequest,
    principal: Principal,
    gen_id: str,
    created_at: float,
) -> bool:
    try:
        await state.store.record(gen_id, request, created_at, principal.tenant)
    except BaseException:
        await state.limits.release_running(principal.tenant, [gen_id])
        raise
    # The listing index is written while the job is queued, not before: it is off
    # the path to the first token, and a generation missing from a listing (the
    # index write failed, or its record did) still runs and is still found by its id.
    indexing = asyncio.ensure_future(state.store.index(gen_id, created_at, principal.tenant))
    indexing.add_done_callback(lambda done: done.cancelled() or done.exception())  # seen
    try:
        queued = await queue_job(
            state.queue,
            keys.GENERATION_JOB,
            gen_id,
            job_id=gen_id,
            queue_name=state.settings.queue_name,
        )
    except Exception:
        await _settle_index(indexing, gen_id)
        await _queueing_failed(state, principal, gen_id)
        raise
    await _settle_index(indexing, gen_id)
    return queued


async def _queueing_failed(state: AppState, principal: Principal, gen_id: str) -> None:
    log.exception("could not enqueue generation %s", gen_id)
    # A record without its job would stay queued for good: it fails instead
    # (nothing to do when the record was never written).
    await state.store.fail_queued(gen_id, "unavailable", "the job queue is unavailable")
    with contextlib.suppress(RedisError, OSError):  # else repaired at the next refusal
        await state.limits.release_running(principal.tenant, [gen_id])

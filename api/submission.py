"""Turning a validated request into a queued generation.

Shared by the native API and the OpenAI/Anthropic front doors: every check that
can refuse a request runs before anything is written or queued.
"""

from __future__ import annotations

import logging
import time

from api.state import AppState
from services import keys
from services.errors import InvalidFields, InvalidRequest
from services.generation import GenerationRequest
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


async def submit_generation(state: AppState, request: GenerationRequest) -> tuple[str, float]:
    """Validate, record and enqueue. Returns the new generation's id and creation time."""
    check_servable(state, request)
    gen_id = keys.new_generation_id()
    created_at = time.time()
    await state.store.create(gen_id, request, created_at)
    try:
        job = await state.queue.enqueue_job(
            keys.GENERATION_JOB, gen_id, _job_id=gen_id, _queue_name=state.settings.queue_name
        )
    except Exception:
        log.exception("could not enqueue generation %s", gen_id)
        await state.store.fail_queued(gen_id, "unavailable", "the job queue is unavailable")
        raise
    if job is None:  # arq already knows this id: impossible for a fresh random id
        log.error("generation %s was already queued", gen_id)
    return gen_id, created_at

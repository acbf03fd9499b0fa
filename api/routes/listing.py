"""The list of recent generations, for the dashboard and for operators.

A listing must stay cheap however long the answers are: it reads each
generation's status fields and the *length* of its text in one pipelined round
trip per page of ids, and never the text itself. Generations whose records
expired (after retention) are skipped; the recent-ids index is trimmed lazily.

`?id=` asks for given generations instead of the most recent ones: the watch
page polls its generation's viewer count that way without re-reading the text.
Viewer counts come from the API's presence tracker when the app has one (only
for queued and running generations, which is when people watch).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Authenticated, StateDep
from api.errors import ErrorAnswer, documented_errors
from services import keys
from services.errors import InvalidFields
from services.events import Usage
from services.generation import ErrorInfo, Status

router = APIRouter(
    prefix="/v1/generations",
    tags=["generations"],
    dependencies=[Authenticated],
    responses=documented_errors(ErrorAnswer, 401, 422, 503),
)

MAX_LIMIT = 200
SCAN_CAP = 2000
"""At most this many recent ids are examined to answer a filtered listing."""
_PAGE = 200
_STATUSES: frozenset[str] = frozenset(get_args(Status))
_FIELDS = (
    "id",
    "model",
    "status",
    "attempt",
    "created_at",
    "started_at",
    "finished_at",
    "finish_reason",
    "usage",
    "error",
)
MAX_IDS = 100


class GenerationSummary(BaseModel):
    """One row of the listing: a generation's status without its text."""

    id: str
    status: Status
    model: str
    attempt: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    finish_reason: str | None
    usage: Usage | None
    error: ErrorInfo | None
    content_bytes: int
    """UTF-8 length of the current attempt's text so far."""
    viewers: int = 0


class GenerationList(BaseModel):
    object: str = "list"
    data: list[GenerationSummary]
    has_more: bool


def parse_status_filter(values: list[str] | None) -> frozenset[str]:
    """`status=a&status=b` or `status=a,b`; empty means every status."""
    wanted = {part.strip() for value in values or [] for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - _STATUSES)
    if unknown:
        raise InvalidFields(
            f"status: unknown value(s) {', '.join(repr(u[:32]) for u in unknown[:5])}; "
            f"expected any of {', '.join(sorted(_STATUSES))}"
        )
    return frozenset(wanted)


@router.get("")
async def list_generations(
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    status: Annotated[list[str] | None, Query(max_length=200)] = None,
    ids: Annotated[list[str] | None, Query(alias="id", max_length=MAX_IDS)] = None,
) -> GenerationList:
    """Recent generations, newest first (or the given `id`s), optionally filtered by status."""
    wanted = parse_status_filter(status)
    if ids:
        candidates = parse_id_filter(ids)
    else:
        candidates = await state.store.recent_ids(SCAN_CAP if wanted else limit + 1)
    rows: list[GenerationSummary] = []
    for start in range(0, len(candidates), _PAGE):
        page = candidates[start : start + _PAGE]
        for summary in await _summaries(state, page):
            if not wanted or summary.status in wanted:
                rows.append(summary)
        if len(rows) > limit:
            break
    rows = rows[: limit + 1]
    await _add_viewer_counts(state, rows[:limit])
    return GenerationList(data=rows[:limit], has_more=len(rows) > limit)


def parse_id_filter(values: list[str]) -> list[str]:
    """`id=a&id=b` or `id=a,b`, in the order given, each once."""
    ids = list(dict.fromkeys(p.strip() for v in values for p in v.split(",") if p.strip()))
    bad = [value for value in ids if not keys.is_generation_id(value)]
    if bad:
        raise InvalidFields(f"id: {bad[0][:64]!r} is not a generation id (gen_ and 32 hex digits)")
    if len(ids) > MAX_IDS:
        raise InvalidFields(f"id: at most {MAX_IDS} ids per request")
    return ids


async def _add_viewer_counts(state: StateDep, rows: list[GenerationSummary]) -> None:
    # The presence tracker is optional on AppState (absent in some builds and tests).
    presence = getattr(state, "presence", None)
    if presence is None:
        return
    live = [row for row in rows if row.status in ("queued", "running")]
    counts = await asyncio.gather(*(presence.count(row.id) for row in live))
    for row, count in zip(live, counts, strict=True):
        row.viewers = int(count)


async def _summaries(state: StateDep, ids: list[str]) -> list[GenerationSummary]:
    async with state.redis.pipeline(transaction=False) as pipe:
        for gen_id in ids:
            pipe.hmget(keys.meta(gen_id), list(_FIELDS))
            pipe.strlen(keys.text(gen_id))
        replies: list[Any] = await pipe.execute()
    summaries = []
    for index in range(0, len(replies), 2):
        values = dict(zip(_FIELDS, replies[index], strict=True))
        if not values["id"] or not values["created_at"]:
            continue  # expired after retention; the index entry lingers until trimmed
        summaries.append(_summary(values, int(replies[index + 1] or 0)))
    return summaries


def _summary(values: dict[str, str | None], content_bytes: int) -> GenerationSummary:
    def optional_float(name: str) -> float | None:
        value = values[name]
        return float(value) if value else None

    usage, error = values["usage"], values["error"]
    return GenerationSummary(
        id=values["id"] or "",
        status=values["status"] or "queued",  # type: ignore[arg-type]  # written by store scripts
        model=values["model"] or "",
        attempt=int(values["attempt"] or 0),
        created_at=float(values["created_at"] or 0),
        started_at=optional_float("started_at"),
        finished_at=optional_float("finished_at"),
        finish_reason=values["finish_reason"] or None,
        usage=Usage.model_validate(json.loads(usage)) if usage else None,
        error=ErrorInfo.model_validate(json.loads(error)) if error else None,
        content_bytes=content_bytes,
    )

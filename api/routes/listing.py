"""The list of recent generations, for the dashboard and for operators.

A listing must stay cheap however long the answers are: the store reads each
generation's status fields and the *length* of its text in one pipelined round
trip per page of ids (`GenerationStore.summaries`), and never the text itself.
Generations whose records expired (after retention) are skipped; the recent-ids
index is trimmed lazily.

`?id=` asks for given generations instead of the most recent ones: the watch
page polls its generation's viewer count that way without re-reading the text.
Viewer counts come from the API's presence tracker when the app has one (only
for queued and running generations, which is when people watch).

A key sees its own tenant's generations (read from that tenant's index), an
admin key every tenant's; `?id=` leaves out ids of other tenants as if unknown.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, get_args

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Authenticated, PrincipalDep, StateDep
from api.errors import ErrorAnswer, documented_errors
from services import keys
from services.errors import Forbidden, InvalidFields
from services.generation import GenerationSummary, Status

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
MAX_IDS = 100


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
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    status: Annotated[list[str] | None, Query(max_length=200)] = None,
    ids: Annotated[list[str] | None, Query(alias="id", max_length=MAX_IDS)] = None,
) -> GenerationList:
    """Recent generations, newest first (or the given `id`s), optionally filtered by status."""
    wanted = parse_status_filter(status)
    if principal.viewer_of is not None and parse_id_filter(ids or []) != [principal.viewer_of]:
        # The watch page polls its viewer count this way; nothing else is a viewer's.
        raise Forbidden("a viewer token lists only its own generation: ?id=<that id>")
    if ids:
        candidates = parse_id_filter(ids)
    elif principal.admin:
        candidates = await state.store.recent_ids(SCAN_CAP if wanted else limit + 1)
    else:
        count = SCAN_CAP if wanted else limit + 1
        candidates = await state.store.recent_ids_of(principal.tenant, count)
    rows: list[GenerationSummary] = []
    for start in range(0, len(candidates), _PAGE):
        page = candidates[start : start + _PAGE]
        for summary in await state.store.summaries(page):
            if principal.sees(summary.tenant) and (not wanted or summary.status in wanted):
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

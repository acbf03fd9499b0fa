"""Every Redis read and write of a generation.

Writes that must not race are Lua scripts, so the guard and the write are one
atomic step: a worker's append checks its lease token in the same round trip as
the XADD (fencing), a cancel and a worker's start cannot interleave, and exactly
one terminal event ends every generation.

Two clients, two roles (services/redis_connections.py): a generation's keys live
on the streams client, which may be a Redis Cluster, and the global keys (the
listing and running indexes, the cancel channel, the hubs' wake streams) on the
control client. Every script and transaction touches one generation's keys only
(one hash tag, one slot); nothing writes a generation's key and a global key
together, except where one Redis holds both (the create's record and listing,
`record_call(indexed=True)`). On a Cluster each script that appends also
SPUBLISHes the new entries, with the id before them, to the generation's sharded
channel (keys.live), for the hub's sharded reader; on one Redis it does not, and
costs nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha1
from typing import Any, Literal, cast

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import NoScriptError, RedisError

from services import keys
from services.events import ErrorEvent, StoredEvent, Usage, encode_data, stored_event_from_entry
from services.generation import (
    FINISHED_STATUSES,
    ErrorInfo,
    GenerationRequest,
    GenerationStatus,
    GenerationSummary,
    ToolCall,
)
from services.redis_connections import StreamsClient
from services.resp_pipeline import array_header, encode_bulk, send_encoded
from services.script_call import ScriptCall, chained

# Shared Lua: appending one event keeps the status record's cursor fields in step,
# and finishing sets the terminal status and the retention TTL on every key. With a
# fifth key (the live channel, Cluster only) the entries a script appended are
# announced once at its end: [previous last id, id, type, data, id, type, data, ...].
_PRELUDE = """
local meta, events, text, lease, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local announced = nil
local function xadd(kind, data)
  if channel and not announced then
    announced = {redis.call('HGET', meta, 'last_event_id') or '0-0'}
  end
  local id = redis.call('XADD', events, '*', 'type', kind, 'data', data)
  redis.call('HSET', meta, 'last_event_id', id)
  redis.call('HSETNX', meta, 'first_event_id', id)
  if announced then
    table.insert(announced, id)
    table.insert(announced, kind)
    table.insert(announced, data)
  end
  return id
end
local function announce()
  if announced then redis.call('SPUBLISH', channel, cjson.encode(announced)) end
end
local function finish(status, now, retention_ms, finish_reason, usage, err)
  redis.call('HSET', meta, 'status', status, 'finished_at', now)
  if finish_reason ~= '' then redis.call('HSET', meta, 'finish_reason', finish_reason) end
  if usage ~= '' then redis.call('HSET', meta, 'usage', usage) end
  if err ~= '' then redis.call('HSET', meta, 'error', err) end
  redis.call('DEL', lease)
  for _, key in ipairs({meta, events, text}) do
    redis.call('PEXPIRE', key, retention_ms)
  end
end
local function json(value)
  -- cjson escapes '/', which is legal JSON but surprises readers of model names
  return (string.gsub(cjson.encode(value), '\\\\/', '/'))
end
local function is_finished(status)
  return status == 'completed' or status == 'failed' or status == 'cancelled'
end
"""


def _writer(body: str) -> str:
    """A script that may append events: its body runs as a function, then announces them."""
    return (
        f"{_PRELUDE}local function main()\n{body}\nend\n"
        "local result = main()\nannounce()\nreturn result\n"
    )


# ARGV: retention_ms, tombstone_px (0 = none), tombstone value, then the status record's
#       field/value pairs
_CREATE = """
local meta, tombstone = KEYS[1], KEYS[2]
redis.call('HSET', meta, unpack(ARGV, 4))
redis.call('PEXPIRE', meta, ARGV[1])
if ARGV[2] ~= '0' then redis.call('SET', tombstone, ARGV[3], 'PX', ARGV[2]) end
return 1
"""

# A generation listed, globally and for its tenant, and the entries past the
# retention dropped. KEYS: the global index, the tenant's. ARGV: gen_id, created_at,
# the oldest score kept.
_INDEX = """
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[3])
end
return 1
"""

# Consistent reads of one generation in one step (a Cluster client runs no MULTI).
_READ_STATUS = """
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or ''}
"""

_READ_BOUNDS = """
local marks = redis.call('HMGET', KEYS[1], 'first_event_id', 'last_event_id')
local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first_retained = false
if head[1] then first_retained = head[1][1] end
return {marks[1], marks[2], first_retained}
"""

# ARGV: gen_id, token, lease_ms, now, retention_ms, reset_reason
_BEGIN_ATTEMPT = _writer(
    """
local gen_id, token, lease_ms, now, retention_ms, reason =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local status = redis.call('HGET', meta, 'status')
if not status then return {'missing'} end
if is_finished(status) then return {'finished'} end
if redis.call('EXISTS', lease) == 1 then return {'busy'} end
if redis.call('HGET', meta, 'cancel_requested') == '1' then
  xadd('cancelled', '{}')
  finish('cancelled', now, retention_ms, '', '', '')
  return {'cancelled'}
end
local attempt = redis.call('HINCRBY', meta, 'attempt', 1)
redis.call('SET', lease, token, 'PX', lease_ms)
if status == 'running' and redis.call('HGET', meta, 'has_output') == '1' then
  xadd('reset', json({attempt = attempt, reason = reason}))
end
redis.call('HSET', meta, 'status', 'running', 'has_output', '0', 'tool_calls', '[]')
redis.call('HSETNX', meta, 'started_at', now)
redis.call('SET', text, '')
for _, key in ipairs({meta, events, text}) do redis.call('PERSIST', key) end
local model = redis.call('HGET', meta, 'model')
xadd('start', json({generation_id = gen_id, model = model, attempt = attempt}))
return {'ok', tostring(attempt), redis.call('HGET', meta, 'request'),
        redis.call('HGET', meta, 'tenant') or ''}
"""
)

# ARGV: gen_id, token, reason  -> a new visible attempt after output was published
_RESTART_ATTEMPT = _writer(
    """
local gen_id, token, reason = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', lease) ~= token then return {'fenced'} end
if redis.call('HGET', meta, 'cancel_requested') == '1' then return {'cancelled'} end
local attempt = redis.call('HINCRBY', meta, 'attempt', 1)
xadd('reset', json({attempt = attempt, reason = reason}))
redis.call('HSET', meta, 'has_output', '0', 'tool_calls', '[]')
redis.call('SET', text, '')
local model = redis.call('HGET', meta, 'model')
xadd('start', json({generation_id = gen_id, model = model, attempt = attempt}))
return {'ok', tostring(attempt)}
"""
)

# ARGV: token, now, retention_ms, max_events, text_append, tool_calls_json,
#       terminal_status, finish_reason, usage_json, error_json, batch_id, then (type, data)
#       pairs. The batch id ("token:seq", or '') makes a resent batch (a Cluster client
#       retries a command whose reply was lost) a no-op instead of duplicated text.
_PUBLISH_BODY = """
local token, now, retention_ms, max_events = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local text_append, tool_calls, terminal, batch = ARGV[5], ARGV[6], ARGV[7], ARGV[11]
if batch ~= '' and redis.call('HGET', meta, 'last_batch') == batch then return 'ok' end
if redis.call('GET', lease) ~= token then return 'fenced' end
if terminal ~= 'cancelled' and redis.call('HGET', meta, 'cancel_requested') == '1' then
  return 'cancelled'
end
if terminal == '' and redis.call('XLEN', events) >= max_events then return 'too_large' end
for i = 12, #ARGV, 2 do xadd(ARGV[i], ARGV[i + 1]) end
if batch ~= '' then redis.call('HSET', meta, 'last_batch', batch) end
if text_append ~= '' then
  redis.call('APPEND', text, text_append)
  redis.call('HSET', meta, 'has_output', '1')
end
if tool_calls ~= '' then redis.call('HSET', meta, 'tool_calls', tool_calls, 'has_output', '1') end
if terminal ~= '' then finish(terminal, now, retention_ms, ARGV[8], ARGV[9], ARGV[10]) end
return 'ok'
"""
_PUBLISH = _writer(_PUBLISH_BODY)


def _batch_writer(body: str) -> str:
    """Many runs of an appending script in one call, for the worker's group commit on
    a plain Redis (never a cluster: its keys span slots). KEYS: four per run, in run
    order; ARGV: the number of runs, then for each run the length of its ARGV and its
    ARGV. Each run's result comes back in its place; a run that fails (an error
    reply of Redis, a full Redis) gives its error there and the others go on, as
    separate calls would. No live channel: nothing is announced."""
    return (
        f"{_PRELUDE}local function main(ARGV)\n{body}\nend\n"
        "channel = nil\n"
        "local results, at = {}, 2\n"
        "for run = 1, tonumber(ARGV[1]) do\n"
        "  meta, events, text, lease = KEYS[run * 4 - 3], KEYS[run * 4 - 2],\n"
        "    KEYS[run * 4 - 1], KEYS[run * 4]\n"
        "  local count = tonumber(ARGV[at])\n"
        "  local ok, result = pcall(main, {unpack(ARGV, at + 1, at + count)})\n"
        "  if ok then results[run] = result\n"
        "  elseif type(result) == 'table' and result.err then results[run] = result\n"
        "  else results[run] = {err = tostring(result)} end\n"
        "  at = at + count + 1\n"
        "end\n"
        "return results\n"
    )


# The group commit's: `_PUBLISH` for each generation of a tick, in one call.
_PUBLISH_MANY = _batch_writer(_PUBLISH_BODY)

# ARGV: token, lease_ms
# KEYS: leases; ARGV[1]: lease_ms, ARGV[1 + i]: the token of KEYS[i]. Each lease still
# held by its token is extended; the reply says which (1) and which not (0).
_RENEW_LEASES = """
local renewed = {}
for i, lease in ipairs(KEYS) do
  if redis.call('GET', lease) == ARGV[i + 1] then
    redis.call('PEXPIRE', lease, ARGV[1])
    renewed[i] = 1
  else
    renewed[i] = 0
  end
end
return renewed
"""

# ARGV: now, retention_ms
_CANCEL = _writer(
    """
local now, retention_ms = ARGV[1], ARGV[2]
local status = redis.call('HGET', meta, 'status')
if not status then return 'missing' end
if is_finished(status) then return 'finished' end
if status == 'queued' then
  xadd('cancelled', '{}')
  finish('cancelled', now, retention_ms, '', '', '')
  return 'cancelled'
end
redis.call('HSET', meta, 'cancel_requested', '1')
return 'requested'
"""
)

# ARGV: now, retention_ms, error_data_json, error_info_json
_FAIL_QUEUED = _writer(
    """
local status = redis.call('HGET', meta, 'status')
if status ~= 'queued' then return 0 end
xadd('error', ARGV[3])
finish('failed', ARGV[1], ARGV[2], '', '', ARGV[4])
return 1
"""
)

# The reaper's decision for a generation of the running index, made where the lease lives.
# ARGV: now, retention_ms, max_takeovers, force_new, error_data_json, error_info_json
_TAKE_OVER = _writer(
    """
local now, retention_ms = ARGV[1], ARGV[2]
local max_takeovers, force_new = tonumber(ARGV[3]), ARGV[4] == '1'
local status = redis.call('HGET', meta, 'status')
if not status or is_finished(status) then return {'gone'} end
local ttl = redis.call('PTTL', lease)
if ttl ~= -2 then return {'alive', tostring(ttl)} end
if redis.call('HGET', meta, 'cancel_requested') == '1' then
  xadd('cancelled', '{}')
  finish('cancelled', now, retention_ms, '', '', '')
  return {'cancelled'}
end
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local attempt = redis.call('HGET', meta, 'attempt') or '0'
local takeovers = tonumber(redis.call('HGET', meta, 'takeovers') or '0')
if not force_new and redis.call('HGET', meta, 'takeover_for') == attempt then
  local age = now_ms - tonumber(redis.call('HGET', meta, 'takeover_at') or '0')
  return {'pending', tostring(takeovers), tostring(age)}
end
-- An attempt its worker handed back (a Redis outage, a shutdown) was not lost:
-- only lost ones count against the budget. `takeovers` numbers the jobs.
if redis.call('HGET', meta, 'handed_back') ~= attempt then
  if tonumber(redis.call('HGET', meta, 'lost') or '0') >= max_takeovers then
    xadd('error', ARGV[5])
    finish('failed', now, retention_ms, '', '', ARGV[6])
    return {'exhausted'}
  end
  redis.call('HINCRBY', meta, 'lost', 1)
end
takeovers = redis.call('HINCRBY', meta, 'takeovers', 1)
redis.call('HSET', meta, 'takeover_for', attempt, 'takeover_at', now_ms)
return {'requeue', tostring(takeovers)}
"""
)

# ARGV: token, '1' when the attempt is handed back (not lost: see hand_back)
_RELEASE_LEASE = f"""{_PRELUDE}
if redis.call('GET', lease) ~= ARGV[1] then return 0 end
redis.call('DEL', lease)
if ARGV[2] == '1' then
  redis.call('HSET', meta, 'handed_back', redis.call('HGET', meta, 'attempt') or '0')
end
return 1
"""

PublishOutcome = Literal["ok", "fenced", "cancelled", "too_large"]
CancelOutcome = Literal["missing", "finished", "cancelled", "requested"]
TakeoverKind = Literal["gone", "alive", "cancelled", "exhausted", "requeue", "pending"]

WORKER_LOST = "worker_lost"


@dataclass(frozen=True, slots=True)
class TakeoverDecision:
    """What the reaper must do next for one generation of the running index.

    `gone`: finished or expired, drop it from the index. `alive`: a lease is held,
    check again in `lease_ttl_ms`. `cancelled` / `exhausted`: the script wrote the
    terminal event. `requeue`: takeover number `takeover` was just counted, enqueue
    its job. `pending`: that takeover was decided `pending_age_ms` ago and its attempt
    has not started yet.
    """

    kind: TakeoverKind
    takeover: int = 0
    lease_ttl_ms: int = 0
    pending_age_ms: int = 0


def new_lease_token() -> str:
    """A worker's token for one attempt's lease: every write of the attempt is fenced by it."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class AttemptGrant:
    """A worker's right to write one attempt of a generation."""

    attempt: int
    request: GenerationRequest
    tenant: str | None = None
    """Whose running slot the generation holds (services/limits.py), read with the lease."""


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events to append in one round trip, with the status fields they change."""

    events: Sequence[tuple[str, str]] = ()
    text_append: str = ""
    tool_calls_json: str = ""
    terminal_status: str = ""
    finish_reason: str = ""
    usage_json: str = ""
    error_json: str = ""
    batch_id: str = ""
    """Unique per batch of an attempt (the publisher's "token:seq"): a resend is a no-op."""


def _fields(batch: EventBatch) -> list[str]:
    """A publish run's arguments after (token, now, retention_ms, max_events), in the
    order of `_PUBLISH_BODY`'s ARGV."""
    fields = [
        batch.text_append,
        batch.tool_calls_json,
        batch.terminal_status,
        batch.finish_reason,
        batch.usage_json,
        batch.error_json,
        batch.batch_id,
    ]
    for kind, data in batch.events:
        fields.extend((kind, data))
    return fields


_NO_STATUS_FIELDS = encode_bulk("") * 5  # tool calls, status, finish, usage, error: unchanged
_DELTA_KIND = encode_bulk("delta")


def _encoded_fields(batch: EventBatch) -> tuple[list[bytes], int]:
    """`_fields(batch)` RESP-encoded, and how many there are.

    A batch of deltas alone (nearly every write of a busy worker) leaves the five
    status fields in the middle empty: those, and the kind of each event, are
    constants here, so only the text, the batch id and each event's data are encoded.
    """
    if (
        batch.tool_calls_json
        or batch.terminal_status
        or batch.finish_reason
        or batch.usage_json
        or batch.error_json
    ):
        fields = _fields(batch)
        return list(map(encode_bulk, fields)), len(fields)
    parts = [encode_bulk(batch.text_append), _NO_STATUS_FIELDS, encode_bulk(batch.batch_id)]
    for kind, data in batch.events:
        parts.append(_DELTA_KIND if kind == "delta" else encode_bulk(kind))
        parts.append(encode_bulk(data))
    return parts, 7 + 2 * len(batch.events)


@functools.lru_cache(maxsize=4096)
def _encoded_keys(gen_id: str) -> bytes:
    """A generation's four script keys, RESP-encoded: the same for every write of it."""
    return b"".join(map(encode_bulk, keys.all_for(gen_id)))


@dataclass(frozen=True, slots=True)
class StreamBounds:
    first_event_id: str | None
    first_retained_id: str | None
    last_event_id: str | None


class GenerationStore:
    """Reads and writes of generations (decoded strings).

    `redis` holds generations (the streams role: one Redis or a `RedisCluster`);
    `control` the global keys, `redis` itself when not given. `announce` makes
    every appending script SPUBLISH its entries (a Cluster's hub needs it).
    """

    def __init__(
        self,
        redis: StreamsClient,
        *,
        retention_s: int,
        max_stream_events: int,
        tombstone_s: int = 0,
        control: Redis | None = None,
        announce: bool = False,
    ) -> None:
        self.redis = redis
        self.control: Redis = control if control is not None else redis  # type: ignore[assignment]  # one client holds both roles only when it is a plain Redis
        self.announce = announce
        self.retention_ms = retention_s * 1000
        self.max_stream_events = max_stream_events
        self._encoded_limits = encode_bulk(str(self.retention_ms)) + encode_bulk(
            str(max_stream_events)
        )
        self._begin = _register(redis, _BEGIN_ATTEMPT)
        self._restart = _register(redis, _RESTART_ATTEMPT)
        self._publish = _register(redis, _PUBLISH)
        self._publish_many = _register(redis, _PUBLISH_MANY)
        self._renew = _register(redis, _RENEW_LEASES)
        self._cancel = _register(redis, _CANCEL)
        self._fail_queued = _register(redis, _FAIL_QUEUED)
        self._take_over = _register(redis, _TAKE_OVER)
        self._release = _register(redis, _RELEASE_LEASE)
        self._create = _register(redis, _CREATE)
        self._read_status = _register(redis, _READ_STATUS)
        self._read_bounds = _register(redis, _READ_BOUNDS)
        self.tombstone_s = tombstone_s

    def _keys(self, gen_id: str) -> list[str]:
        """The keys of the appending scripts, with the live channel when announcing."""
        if self.announce:
            return [*keys.all_for(gen_id), keys.live(gen_id)]
        return list(keys.all_for(gen_id))

    async def create(
        self,
        gen_id: str,
        request: GenerationRequest,
        created_at: float,
        tenant: str = "default",
    ) -> None:
        """Record a queued generation of `tenant`, then index it (globally and per tenant).

        The generation's keys and the global indexes are written in two steps, never
        one MULTI (they may live on different Redis servers); an index entry whose
        record is missing is skipped by listings.
        """
        await self.record(gen_id, request, created_at, tenant)
        await self.index(gen_id, created_at, tenant)

    async def record(
        self,
        gen_id: str,
        request: GenerationRequest,
        created_at: float,
        tenant: str = "default",
    ) -> None:
        """The queued generation's own keys: what a worker needs to run it."""
        call = self.record_call(gen_id, request, created_at, tenant)
        await self._create(keys=call.keys, args=call.args)

    def record_call(
        self,
        gen_id: str,
        request: GenerationRequest,
        created_at: float,
        tenant: str,
        *,
        indexed: bool = False,
    ) -> ScriptCall:
        """`record` as a script call, for a caller that runs it together with its own
        script (the API's record-then-queue on one Redis, services/job_wakeups.py).

        `indexed`: the call also lists the generation (what `index` writes), for a
        store whose generations and indexes live on one Redis: one round trip and
        one command of the API's instead of two per create.
        """
        fields = {
            "id": gen_id,
            "model": request.model,
            "status": "queued",
            "attempt": 0,
            "created_at": repr(created_at),
            "request": request.to_stored_json(),
            "tenant": tenant,
        }
        if request.metadata:
            fields["metadata"] = json.dumps(request.metadata)
        # One script on the generation's slot (a Cluster client runs no MULTI). The
        # tombstone names the tenant, so "expired" is said only to its own.
        tombstone_px = self.retention_ms + self.tombstone_s * 1000 if self.tombstone_s else 0
        args: list[Any] = [self.retention_ms, tombstone_px, tenant]
        for name, value in fields.items():
            args.extend((name, value))
        record = ScriptCall(_CREATE, [keys.meta(gen_id), keys.tombstone(gen_id)], args)
        return chained(record, self._index_call(gen_id, created_at, tenant)) if indexed else record

    async def index(self, gen_id: str, created_at: float, tenant: str = "default") -> None:
        """List a recorded generation (globally and per tenant), dropping expired entries."""
        await self._index_call(gen_id, created_at, tenant).run(self.control)

    def _index_call(self, gen_id: str, created_at: float, tenant: str) -> ScriptCall:
        oldest = created_at - self.retention_ms / 1000
        return ScriptCall(
            _INDEX,
            [keys.RECENT, keys.tenant_recent(tenant)],
            [gen_id, repr(created_at), repr(oldest)],
        )

    async def begin_attempt(
        self, gen_id: str, token: str, lease_ms: int, reason: str = "worker_restarted"
    ) -> AttemptGrant | Literal["missing", "finished", "busy", "cancelled", "failed"]:
        """Take the lease on a new attempt and read back the request it runs."""
        call = self.begin_call(gen_id, token, lease_ms, reason)
        result = await self._begin(keys=call.keys, args=call.args)
        return await self.attempt_granted(gen_id, token, result)

    def begin_call(
        self, gen_id: str, token: str, lease_ms: int, reason: str = "worker_restarted"
    ) -> ScriptCall:
        """`begin_attempt` as a script call, for a caller that runs it inside its own
        script (a worker's claim of the job on one Redis, services/job_wakeups.py); its
        answer is read by `attempt_granted`."""
        return ScriptCall(
            _BEGIN_ATTEMPT,
            self._keys(gen_id),
            [gen_id, token, lease_ms, repr(time.time()), self.retention_ms, reason],
        )

    async def attempt_granted(
        self, gen_id: str, token: str, result: Sequence[Any]
    ) -> AttemptGrant | Literal["missing", "finished", "busy", "cancelled", "failed"]:
        """What a `begin_call` answered (as str, or as bytes from a client that does not decode).

        A stored request that does not validate (written by a version with other
        limits) can never run: the generation fails at once with
        `invalid_request_error`, instead of the error escaping into the job runner,
        whose log line would quote the request and whose retries would end, much
        later, as `worker_lost`.
        """
        result = [item.decode() if isinstance(item, bytes) else item for item in result]
        if result[0] != "ok":
            return result[0]  # type: ignore[no-any-return]  # one of the Literal codes above
        try:
            request = GenerationRequest.from_stored_json(result[2])
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
            await self._fail_attempt(
                gen_id, token, f"the stored request cannot be read: {first['msg']}"
            )
            return "failed"
        tenant = str(result[3]) if len(result) > 3 and result[3] else None
        return AttemptGrant(attempt=int(result[1]), request=request, tenant=tenant)

    async def _fail_attempt(self, gen_id: str, token: str, message: str) -> None:
        error = ErrorEvent(error_type="invalid_request_error", message=message)
        info = json.dumps({"type": error.error_type, "message": message})
        batch = EventBatch(
            events=[("error", encode_data(error))], terminal_status="failed", error_json=info
        )
        await self.publish(gen_id, token, batch)

    async def restart_attempt(
        self, gen_id: str, token: str, reason: str
    ) -> int | Literal["fenced", "cancelled"]:
        result = await self._restart(keys=self._keys(gen_id), args=[gen_id, token, reason])
        if result[0] != "ok":
            return result[0]  # type: ignore[no-any-return]  # 'fenced' or 'cancelled'
        return int(result[1])

    def _publish_args(self, token: str, batch: EventBatch) -> list[Any]:
        return [
            token,
            repr(time.time()),
            self.retention_ms,
            self.max_stream_events,
            *_fields(batch),
        ]

    async def publish(self, gen_id: str, token: str, batch: EventBatch) -> PublishOutcome:
        outcome: PublishOutcome = await self._publish(
            keys=self._keys(gen_id), args=self._publish_args(token, batch)
        )
        return outcome

    def submit(
        self, gen_id: str, token: str, batch: EventBatch, *, urgent: bool = False
    ) -> asyncio.Future[PublishOutcome]:
        """`publish`, started now: how the worker's publisher hands a batch over
        (every write is sent at once here, so `urgent` changes nothing)."""
        return asyncio.ensure_future(self.publish(gen_id, token, batch))

    async def publish_many(
        self, writes: Sequence[tuple[str, str, EventBatch]]
    ) -> list[PublishOutcome | RedisError]:
        """Several generations' batches (gen_id, token, batch) in one round trip.

        One call of `_PUBLISH_MANY`, which runs the script `publish` runs for each
        write in turn, so each write is exactly what `publish` would have done;
        one that fails alone (its own error reply) comes back as that error, in
        its place. A lost connection raises, for all of them. One call rather than
        a pipeline of one call per write: a reply to read instead of one per write,
        and less for Redis to parse (services/resp_pipeline.py encodes it).
        On a plain Redis only: a cluster client would need every key on one node.
        """
        assert isinstance(self.redis, Redis), "a plain Redis only (see above)"
        pool = self.redis.connection_pool
        [reply] = await send_encoded(pool, [self._publish_many_command(writes)])
        if isinstance(reply, NoScriptError):  # Redis restarted: EVAL runs it and caches it
            command = self._publish_many_command(writes, evaluate=True)
            [reply] = await send_encoded(pool, [command])
        if isinstance(reply, RedisError):  # refused as a whole (a full Redis): each write fails
            return [reply] * len(writes)
        outcomes: list[PublishOutcome | RedisError] = list(cast(list[Any], reply))
        return outcomes

    def _publish_many_command(
        self, writes: Sequence[tuple[str, str, EventBatch]], *, evaluate: bool = False
    ) -> bytes:
        """The `_PUBLISH_MANY` call of `writes`, encoded: the RESP `encode_command` would
        write for `EVALSHA sha numkeys keys... runs (count args...)...`, with the
        arguments of each run those `publish` passes.

        Built from pieces because a busy worker encodes tens of thousands of runs a
        second: each generation's four keys are encoded once (`_encoded_keys`), the
        limits once per store, the time once per call, and an empty field is a
        constant: about a quarter of the general encoder's cost per write.
        """
        now = encode_bulk(repr(time.time()))
        key_parts: list[bytes] = []
        arg_parts = [encode_bulk(str(len(writes)))]
        arg_count = 1
        for gen_id, token, batch in writes:
            key_parts.append(_encoded_keys(gen_id))
            fields, field_count = _encoded_fields(batch)
            arg_parts.append(encode_bulk(str(4 + field_count)))
            arg_parts.extend((encode_bulk(token), now, self._encoded_limits))  # limits: two
            arg_parts.extend(fields)
            arg_count += 5 + field_count
        script = self._publish_many
        head = ("EVAL", script.source) if evaluate else ("EVALSHA", script.sha)
        return b"".join(
            (
                array_header(3 + 4 * len(writes) + arg_count),
                *map(encode_bulk, head),
                encode_bulk(str(4 * len(writes))),
                *key_parts,
                *arg_parts,
            )
        )

    async def renew_lease(self, gen_id: str, token: str, lease_ms: int) -> bool:
        [renewed] = await self._renew(keys=[keys.lease(gen_id)], args=[lease_ms, token])
        return bool(renewed)

    async def renew_leases(
        self, leases: Sequence[tuple[str, str]], lease_ms: int
    ) -> list[bool | Exception]:
        """`renew_lease` for several attempts (gen_id, token): whether each was renewed.

        One script call on a plain Redis. On a cluster the leases live on many nodes,
        so one call each, at once, and a node that fails costs only its own leases
        (their place holds the error). A lost connection on a plain Redis raises.
        """
        if not leases:
            return []
        if isinstance(self.redis, Redis):
            lease_keys = [keys.lease(gen_id) for gen_id, _ in leases]
            reply = await self._renew(
                keys=lease_keys, args=[lease_ms, *(token for _, token in leases)]
            )
            return [bool(renewed) for renewed in reply]
        replies = await asyncio.gather(
            *(self.renew_lease(gen_id, token, lease_ms) for gen_id, token in leases),
            return_exceptions=True,
        )
        outcomes: list[bool | Exception] = []
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(reply, Exception):
                raise reply
            outcomes.append(reply)
        return outcomes

    async def request_cancel(self, gen_id: str) -> CancelOutcome:
        outcome: CancelOutcome = await self._cancel(
            keys=self._keys(gen_id), args=[repr(time.time()), self.retention_ms]
        )
        if outcome == "requested":
            await self.control.publish(keys.CANCEL_CHANNEL, gen_id)
        return outcome

    async def fail_queued(self, gen_id: str, error_type: str, message: str) -> bool:
        data = json.dumps({"type": error_type, "message": message, "retryable": True})
        info = json.dumps({"type": error_type, "message": message})
        done = await self._fail_queued(
            keys=self._keys(gen_id), args=[repr(time.time()), self.retention_ms, data, info]
        )
        return bool(done)

    async def status(self, gen_id: str) -> GenerationStatus | None:
        flat, text = await self._read_status(keys=[keys.meta(gen_id), keys.text(gen_id)])
        if not flat:
            return None
        meta = dict(zip(flat[::2], flat[1::2], strict=True))
        return _status_from_meta(meta, text or "")

    async def bounds(self, gen_id: str) -> StreamBounds:
        """The first event ever written, the first still retained, and the last."""
        first, last, head = await self._read_bounds(keys=[keys.meta(gen_id), keys.events(gen_id)])
        return StreamBounds(
            first_event_id=first, first_retained_id=head or None, last_event_id=last
        )

    async def read_after(
        self, gen_id: str, cursor: str, count: int = 500, *, until: str = "+"
    ) -> list[StoredEvent]:
        """Events strictly after `cursor` ("0-0" for all) and up to `until`, oldest first."""
        entries = await self.redis.xrange(
            keys.events(gen_id), min=f"({cursor}", max=until, count=count
        )
        return [stored_event_from_entry(entry_id, fields) for entry_id, fields in entries]

    async def last_event(self, gen_id: str) -> StoredEvent | None:
        """The newest event of a generation's stream, if it has one."""
        head = await self.redis.xrevrange(keys.events(gen_id), count=1)
        return stored_event_from_entry(*head[0]) if head else None

    async def summaries(self, gen_ids: Sequence[str]) -> list[GenerationSummary]:
        """Listing rows of `gen_ids`, in order, in one round trip: the status fields and
        the text's length, never the text. Expired generations are left out."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for gen_id in gen_ids:
                pipe.hmget(keys.meta(gen_id), list(_SUMMARY_FIELDS))
                pipe.strlen(keys.text(gen_id))
            replies: list[Any] = await pipe.execute()
        rows = []
        for index in range(0, len(replies), 2):
            meta = dict(zip(_SUMMARY_FIELDS, replies[index], strict=True))
            if not meta["id"] or not meta["created_at"]:
                continue  # expired after retention; the index entry lingers until trimmed
            rows.append(
                GenerationSummary(
                    **_status_fields(meta), content_bytes=int(replies[index + 1] or 0)
                )
            )
        return rows

    @contextlib.asynccontextmanager
    async def cancel_requests(self) -> AsyncIterator[PubSub]:
        """A subscription to the cancel channel: each message names a generation."""
        async with self.control.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(keys.CANCEL_CHANNEL)
            yield pubsub

    async def wake_stream_reader(self, wake_key: str, ttl_s: int) -> None:
        """Append to a hub's wake stream (api/streaming/hub.py); it expires unless woken.

        On the streams Redis, beside the generation streams: the hub's one XREAD
        watches them all, so a wake written anywhere else would never end it."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(wake_key, {"w": "1"}, maxlen=1)
            pipe.expire(wake_key, ttl_s)
            await pipe.execute()

    async def drop_wake_stream(self, wake_key: str) -> None:
        await self.redis.delete(wake_key)

    async def cancel_requested(self, gen_id: str) -> bool:
        flag = await self.redis.hget(keys.meta(gen_id), "cancel_requested")  # type: ignore[misc]  # redis-py types sync and async clients alike
        return bool(flag == "1")

    async def write_viewer_counts(
        self, replica_id: str, counts: Mapping[str, int], *, ttl_ms: int
    ) -> None:
        """This replica's open SSE connections per generation (0 removes its field),
        each valid for `ttl_ms` unless written again (api/streaming/presence.py)."""
        if not counts:
            return
        deadline = _now_ms() + ttl_ms
        async with self.redis.pipeline(transaction=False) as pipe:
            for gen_id, count in counts.items():
                key = keys.viewers(gen_id)
                if count > 0:
                    pipe.hset(key, replica_id, f"{count} {deadline}")
                    pipe.pexpire(key, ttl_ms * 2)
                else:
                    pipe.hdel(key, replica_id)
            await pipe.execute()

    async def viewer_count(self, gen_id: str) -> int:
        """Open SSE connections to `gen_id` on every replica whose count has not expired."""
        fields: dict[str, str] = await self.redis.hgetall(keys.viewers(gen_id))  # type: ignore[misc]  # redis-py types sync and async clients alike
        now_ms = _now_ms()
        total = 0
        for value in fields.values():
            count, _, deadline = value.partition(" ")
            with contextlib.suppress(ValueError):
                if int(deadline) > now_ms:
                    total += int(count)
        return total

    async def expired(self, gen_id: str) -> bool:
        """Whether `gen_id` was a generation of this deployment whose keys have expired."""
        return bool(await self.redis.exists(keys.tombstone(gen_id)))

    async def expired_tenant(self, gen_id: str) -> str | None:
        """The tenant of `gen_id` if it was a generation of this deployment (its marker
        outlives its keys); None if it never was. Markers written before tenants say "1"."""
        value = await self.redis.get(keys.tombstone(gen_id))
        if value is None:
            return None
        return "default" if value == "1" else str(value)

    async def tenant_of(self, gen_id: str) -> str | None:
        """The tenant a generation belongs to, while its status record lasts."""
        value = await self.redis.hget(keys.meta(gen_id), "tenant")  # type: ignore[misc]  # redis-py types sync and async clients alike
        return str(value) if value is not None else None

    async def recent_ids_of(self, tenant: str, limit: int) -> list[str]:
        ids: list[str] = await self.control.zrevrange(keys.tenant_recent(tenant), 0, limit - 1)
        return ids

    async def release_lease(self, gen_id: str, token: str) -> bool:
        """Give up an attempt at once (the holder will write nothing more), for a quick
        takeover; it counts against `max_takeovers` like a lost worker, so an attempt
        that fails the same way every time cannot loop."""
        return bool(await self._release(keys=self._keys(gen_id), args=[token, "0"]))

    async def hand_back(self, gen_id: str, token: str) -> bool:
        """`release_lease` for an attempt stopped by something outside the generation
        (the worker shutting down, a Redis outage or failover): its takeover does not
        count against `max_takeovers`."""
        return bool(await self._release(keys=self._keys(gen_id), args=[token, "1"]))

    # The running index (keys.RUNNING) is one global key, written beside the
    # generation's scripts: see worker/reaper.py for why that is safe.

    async def track_running(self, gen_id: str, check_in_ms: int) -> None:
        """Index a generation a worker is about to start, before it takes the lease."""
        await self.control.zadd(keys.RUNNING, {gen_id: _now_ms() + check_in_ms})

    async def reschedule_check(self, gen_id: str, check_in_ms: int) -> None:
        """Move an indexed generation's next check; never re-adds one already dropped."""
        await self.control.zadd(keys.RUNNING, {gen_id: _now_ms() + check_in_ms}, xx=True)

    async def untrack_running(self, gen_id: str) -> None:
        await self.control.zrem(keys.RUNNING, gen_id)

    async def end_running(self, gen_id: str, tenant: str) -> None:
        """Out of the running index and out of its tenant's running slots, in one round
        trip (a job that knew its tenant from `begin_attempt`; see services/limits.py)."""
        async with self.control.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.RUNNING, gen_id)
            pipe.zrem(keys.tenant_running(tenant), gen_id)
            await pipe.execute()

    async def due_for_check(self, limit: int) -> list[str]:
        """Indexed generations whose lease should have been renewed by now, oldest first."""
        ids: list[str] = await self.control.zrangebyscore(
            keys.RUNNING, "-inf", _now_ms(), start=0, num=limit
        )
        return ids

    async def take_over(
        self, gen_id: str, *, max_takeovers: int, force_new: bool = False
    ) -> TakeoverDecision:
        """Atomically decide, and write if terminal, what happens to a generation without a lease.

        A takeover already decided for the current attempt comes back as `pending`
        (the caller decides whether its job is still on its way); `force_new` counts
        another one instead.
        """
        message = "the worker running this generation was lost too many times"
        data = json.dumps({"type": WORKER_LOST, "message": message, "retryable": True})
        info = json.dumps({"type": WORKER_LOST, "message": message})
        result = await self._take_over(
            keys=self._keys(gen_id),
            args=[
                repr(time.time()),
                self.retention_ms,
                max_takeovers,
                "1" if force_new else "0",
                data,
                info,
            ],
        )
        kind: TakeoverKind = result[0]
        if kind == "alive":
            return TakeoverDecision(kind, lease_ttl_ms=max(0, int(result[1])))
        if kind == "requeue":
            return TakeoverDecision(kind, takeover=int(result[1]))
        if kind == "pending":
            return TakeoverDecision(kind, takeover=int(result[1]), pending_age_ms=int(result[2]))
        return TakeoverDecision(kind)

    async def set_stream_option(self, gen_id: str, name: str, value: str) -> None:
        """Remember how the front door that created a generation writes its stream.

        Kept in the status record, so it lives exactly as long as the generation; a
        client that joins or resumes later then gets the same stream (for example
        OpenAI's usage chunk when the creator asked for `include_usage`).
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.meta(gen_id), f"stream_option:{name}", value)
            await pipe.execute()

    async def stream_option(self, gen_id: str, name: str) -> str | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.meta(gen_id), f"stream_option:{name}")
            (value,) = await pipe.execute()
        return value if isinstance(value, str) else None

    async def recent_ids(self, limit: int) -> list[str]:
        ids: list[str] = await self.control.zrevrange(keys.RECENT, 0, limit - 1)
        return ids


class _Script:
    """A Lua script called by its SHA, sent in full wherever the server lacks it.

    redis-py's own `Script` reloads a missing script once (SCRIPT LOAD) and tries
    the SHA again. On a Redis Cluster that is not enough after a failover: Redis 7
    does not replicate its script cache, the promoted replica has none of ours, and
    the cluster client loads the script on the masters it knew of before the slot
    map changed, so the retried EVALSHA fails again. EVAL, routed by the keys like
    any command, runs the script wherever it lands and leaves it cached there.
    """

    __slots__ = ("_client", "sha", "source")

    def __init__(self, client: StreamsClient, source: str) -> None:
        self._client = client
        self.source = source
        self.sha = sha1(source.encode()).hexdigest()

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        try:
            return await self._client.evalsha(self.sha, len(keys), *keys, *args)  # type: ignore[misc]  # redis-py types it as the sync client's
        except NoScriptError:
            return await self._client.eval(self.source, len(keys), *keys, *args)  # type: ignore[misc]  # idem


def _register(client: StreamsClient, source: str) -> _Script:
    return _Script(client, source)


def _now_ms() -> int:
    return int(time.time() * 1000)


_SUMMARY_FIELDS = (
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
    "last_event_id",
    "tenant",
)
"""The status record's fields a listing row needs (never the request, never the text)."""


def _status_fields(meta: Mapping[str, str | None]) -> dict[str, Any]:
    """The fields that a full status and a listing row read alike from a status record."""

    def optional_float(name: str) -> float | None:
        value = meta.get(name)
        return float(value) if value else None

    usage = meta.get("usage")
    error = meta.get("error")
    return {
        "id": meta["id"],
        "status": meta.get("status") or "queued",
        "model": meta.get("model") or "",
        "finish_reason": meta.get("finish_reason") or None,
        "usage": Usage.model_validate_json(usage) if usage else None,
        "error": ErrorInfo.model_validate_json(error) if error else None,
        "attempt": int(meta.get("attempt") or 0),
        "created_at": float(meta["created_at"] or 0),
        "started_at": optional_float("started_at"),
        "finished_at": optional_float("finished_at"),
        "last_event_id": meta.get("last_event_id") or None,
        "tenant": meta.get("tenant") or "default",
    }


def _status_from_meta(meta: dict[str, str], text: str) -> GenerationStatus:
    metadata = meta.get("metadata")
    return GenerationStatus(
        **_status_fields(meta),
        content=text,
        tool_calls=[ToolCall.model_validate(c) for c in json.loads(meta.get("tool_calls", "[]"))],
        metadata=json.loads(metadata) if metadata else None,
    )


def is_finished(status: str) -> bool:
    return status in FINISHED_STATUSES

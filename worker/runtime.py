"""What a worker process holds for its jobs: settings, store, providers, cancels, reaper.

Built once in arq's `on_startup` and closed in `on_shutdown`; jobs find it in ctx.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from arq.connections import ArqRedis
from redis.asyncio import Redis

from services.config import Settings
from services.providers import close_providers
from services.providers.base import Provider
from services.redis_connections import StreamsClient, command_client, streams_client
from services.script_call import ScriptCall
from services.store import GenerationStore, new_lease_token
from worker.cancel import CancelListener
from worker.flush_clock import FlushClock
from worker.group_commit import GroupCommit
from worker.lease_keeper import LeaseKeeper
from worker.metrics import WorkerMetrics
from worker.reaper import Reaper


@dataclass
class WorkerRuntime:
    settings: Settings
    redis: Redis
    """The control Redis (indexes, cancel signals); the store also holds the streams client."""
    store: GenerationStore
    providers: dict[str, Provider]
    cancels: CancelListener
    publishes: GroupCommit | GenerationStore
    """Where every job's deltas are written: batched across jobs on a plain Redis."""
    leases: LeaseKeeper
    """Every running job's lease, renewed together."""
    reaper: Reaper | None = None
    flush_clock: FlushClock = field(default_factory=FlushClock)
    """Every job's coalescing windows on one loop timer."""
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)

    @classmethod
    async def start(cls, settings: Settings, providers: dict[str, Provider]) -> WorkerRuntime:
        # Every write is bounded (services/redis_connections.py): a worker whose
        # connection goes half-open abandons the attempt instead of stalling it.
        pool_size = settings.redis_max_connections + settings.worker_max_jobs
        redis = command_client(settings, "tokenrelay-worker", max_connections=pool_size)
        streams = streams_client(settings, "tokenrelay-worker", redis, max_connections=pool_size)
        store = GenerationStore(
            streams,
            control=redis,
            announce=settings.streams_on_cluster,
            retention_s=settings.retention_s,
            max_stream_events=settings.max_stream_events,
            tombstone_s=settings.tombstone_s,
        )
        cancels = CancelListener(store, reply_timeout_s=settings.redis_timeout_s)
        await cancels.start()
        publishes = GroupCommit.for_store(store)
        if isinstance(publishes, GroupCommit):
            publishes.start()
        leases = LeaseKeeper(
            store, lease_ms=int(settings.lease_s * 1000), interval_s=settings.lease_s / 3
        )
        leases.start()
        runtime = cls(settings, redis, store, providers, cancels, publishes, leases)
        if settings.worker_metrics_port:
            runtime.metrics.serve(settings.worker_metrics_port)
        return runtime

    def begin_with_claim(self, gen_id: str) -> tuple[str, ScriptCall]:
        """A new lease token and the `begin_attempt` that takes it, for a job's claim to
        run (worker/resilient.py; only where the queue and the generations share a Redis)."""
        token = new_lease_token()
        lease_ms = int(self.settings.lease_s * 1000)
        return token, self.store.begin_call(gen_id, token, lease_ms)

    def start_reaper(self, queue: ArqRedis, job_name: str) -> None:
        """Take over generations of dead workers from this worker too (worker/reaper.py)."""
        self.reaper = Reaper(self.store, queue, self.settings, job_name)
        self.reaper.start()

    async def close(self) -> None:
        if self.reaper is not None:
            await self.reaper.stop()
        self.metrics.close()
        await self.cancels.stop()
        await self.leases.stop()
        if isinstance(self.publishes, GroupCommit):
            await self.publishes.stop()
        await close_providers(self.providers)
        streams: StreamsClient = self.store.redis
        if streams is not self.redis:
            await streams.aclose()
        await self.redis.aclose()

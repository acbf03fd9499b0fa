"""What a worker process holds for its jobs: settings, store, providers, cancel listener.

Built once in arq's `on_startup` and closed in `on_shutdown`; jobs find it in ctx.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from services.config import Settings
from services.providers.base import Provider
from services.store import GenerationStore
from worker.cancel import CancelListener
from worker.metrics import WorkerMetrics


@dataclass
class WorkerRuntime:
    settings: Settings
    redis: Redis
    store: GenerationStore
    providers: dict[str, Provider]
    cancels: CancelListener
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)

    @classmethod
    async def start(cls, settings: Settings, providers: dict[str, Provider]) -> WorkerRuntime:
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        store = GenerationStore(
            redis, retention_s=settings.retention_s, max_stream_events=settings.max_stream_events
        )
        cancels = CancelListener(redis)
        await cancels.start()
        runtime = cls(settings, redis, store, providers, cancels)
        if settings.worker_metrics_port:
            runtime.metrics.serve(settings.worker_metrics_port)
        return runtime

    async def close(self) -> None:
        self.metrics.close()
        await self.cancels.stop()
        await self.redis.aclose()

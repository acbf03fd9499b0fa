"""What a worker process holds for its jobs: settings, store, providers, cancel listener.

Built once in arq's `on_startup` and closed in `on_shutdown`; jobs find it in ctx.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.config import Settings
from services.providers import close_providers
from services.providers.base import Provider
from services.store import GenerationStore
from worker.cancel import CancelListener


@dataclass
class WorkerRuntime:
    settings: Settings
    redis: Redis
    store: GenerationStore
    providers: dict[str, Provider]
    cancels: CancelListener

    @classmethod
    async def start(cls, settings: Settings, providers: dict[str, Provider]) -> WorkerRuntime:
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        store = GenerationStore(
            redis, retention_s=settings.retention_s, max_stream_events=settings.max_stream_events
        )
        cancels = CancelListener(redis)
        await cancels.start()
        return cls(settings, redis, store, providers, cancels)

    async def close(self) -> None:
        await self.cancels.stop()
        await close_providers(self.providers)
        await self.redis.aclose()

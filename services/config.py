"""One typed Settings object, read from the environment.

Nothing here runs at import time: `Settings()` is built by the command that starts
a process (or by a test) and passed down explicitly, so tests can point every part
at their own Redis and knobs.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of tokenrelay: `TOKENRELAY_<NAME>` unless an alias says otherwise."""

    model_config = SettingsConfigDict(
        env_prefix="TOKENRELAY_", extra="ignore", env_ignore_empty=True
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    streams_redis_url: str | None = Field(
        default=None,
        description="where generations live; unset = redis_url; redis+cluster://H:P[,H:P]/0 "
        "(rediss+cluster:// over TLS) for a Redis Cluster",
    )
    redis_sentinels: str | None = Field(
        default=None, description="HOST:PORT,HOST:PORT of Sentinels watching the control Redis"
    )
    redis_sentinel_master: str | None = Field(
        default=None, description="the control Redis's master name under those Sentinels"
    )
    redis_sentinel_password: str | None = Field(
        default=None,
        description="the Sentinels' own password (their requirepass), when they ask for one; "
        "the master's comes from TOKENRELAY_REDIS_URL",
    )
    redis_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="longest wait for a Redis reply that is due; past it the connection is dropped",
    )
    redis_max_connections: int = Field(
        default=64, ge=4, description="command connections per process (the pool's bound)"
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="comma-separated `KEY` or `KEY:TENANT` (plain KEY is tenant 'default'); "
        "unset means no auth (dev only) unless `auth_required`",
    )
    auth_required: bool = Field(
        default=False,
        description="require a key even with TOKENRELAY_API_KEYS unset (managed keys only)",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="signs viewer tokens; unset = generated once and shared through Redis",
    )
    viewer_token_ttl_s: int = Field(
        default=3600, ge=10, le=30 * 86400, description="default lifetime of a viewer token"
    )
    max_running_per_tenant: int | None = Field(
        default=None, ge=1, description="queued + running generations one tenant may have"
    )
    key_requests_per_minute: int | None = Field(
        default=None, ge=1, description="generation requests per minute per key (default)"
    )
    key_max_streams: int | None = Field(
        default=None, ge=1, description="open SSE streams per key, all replicas (default)"
    )
    public_metrics: bool = Field(
        default=False,
        description="with auth on, serve /metrics without a key (else an admin key is needed)",
    )
    metrics_key: SecretStr | None = Field(
        default=None,
        description="with auth on, a bearer secret that may read /metrics (for Prometheus)",
    )
    public_docs: bool = Field(
        default=True, description="serve /docs and /openapi.json without a key"
    )
    metrics_max_tenants: int = Field(
        default=100, ge=0, description="tenants labelled in metrics; the rest count as '_other'"
    )
    retention_s: int = Field(default=86400, ge=1)
    heartbeat_s: float = Field(default=15.0, gt=0)

    # SSE transport
    sse_retry_ms: int = Field(default=2000, ge=0, description="`retry:` sent at stream start")
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_json_depth: int = Field(
        default=64,
        ge=4,
        le=128,
        description="deepest nesting of objects and arrays a request body may have; at most "
        "128, so that what the API stores stays within the nesting pydantic's JSON parser "
        "reads back in the worker (200)",
    )
    allowed_origins: str = Field(
        default="",
        description="comma-separated browser origins of front ends served elsewhere: their "
        "pages may read the answers (CORS), and with auth off send state-changing requests; "
        "'*' allows every origin",
    )
    max_header_bytes: int = Field(
        default=65_536, ge=1024, description="request line + headers; past it a 431 and close"
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="a request's line and headers must arrive within this"
    )
    shutdown_grace_s: float = Field(
        default=10.0, ge=1, description="on SIGTERM, how long open streams get to close"
    )
    shutdown_delay_s: float = Field(
        default=0.0, ge=0, description="on SIGTERM, keep answering (readyz 503) at least this long"
    )
    max_sse_connections: int = Field(default=10_000, ge=1, description="SSE cap per API process")
    sse_cap_retry_s: float = Field(default=2.0, gt=0, description="Retry-After base when full")
    sse_send_timeout_s: float = Field(
        default=30.0, gt=0, description="drop an SSE client that accepts no bytes for this long"
    )
    viewer_queue_events: int = Field(
        default=1024, ge=1, description="events queued per viewer before it reads from Redis"
    )
    presence_ttl_s: float = Field(
        default=30.0, gt=0, description="viewer counts of a vanished replica expire after this"
    )

    # worker
    queue_name: str = "tokenrelay:queue"
    worker_metrics_port: int = Field(
        default=0, ge=0, le=65535, description="worker /metrics HTTP port; 0 = off"
    )
    worker_max_jobs: int = Field(
        default=1000, ge=1, description="a ceiling; the worker takes jobs while its loop keeps up"
    )
    worker_poll_s: float = Field(
        default=0.5,
        gt=0,
        le=10,
        description="fallback queue poll; a queued job wakes idle workers at once",
    )
    worker_drain_s: float = Field(
        default=20.0, ge=0, description="on SIGTERM, how long running generations may finish"
    )
    coalesce_ms: float = Field(default=30.0, ge=0, description="delta coalescing window")
    lease_s: float = Field(default=10.0, gt=0, description="a worker's lease on an attempt")
    reap_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="how often each worker looks for generations whose lease expired",
    )
    max_takeovers: int = Field(
        default=2,
        ge=0,
        description=(
            "new attempts after lost workers before failing with worker_lost"
            " (attempts a worker handed back, shutting down or losing Redis, do not count)"
        ),
    )
    tombstone_s: int = Field(
        default=604_800, ge=0, description="how long after retention a 404 can still say 'expired'"
    )
    max_stream_events: int = Field(default=100_000, ge=10, description="size guard per stream")
    max_tokens_limit: int = Field(default=128_000, ge=1)
    demo_tokens_per_s: float = Field(default=50.0, ge=0, description="0 = as fast as possible")

    # provider calls: one retry policy and three time limits (see worker/retry.py)
    provider_attempts: int = Field(
        default=4, ge=1, le=20, description="tries per generation, the first one included"
    )
    retry_backoff_base_s: float = Field(default=0.5, ge=0, description="first backoff delay")
    retry_backoff_cap_s: float = Field(default=8.0, ge=0, description="longest backoff delay")
    retry_after_max_s: float = Field(
        default=30.0, ge=0, description="longest provider Retry-After we wait for"
    )
    first_token_timeout_s: float = Field(
        default=120.0, gt=0, description="request sent to first chunk, per attempt"
    )
    idle_timeout_s: float = Field(default=60.0, gt=0, description="longest gap between chunks")
    total_timeout_s: float = Field(
        default=1800.0, gt=0, description="whole generation, retries and backoff included"
    )
    provider_connect_timeout_s: float = Field(default=10.0, gt=0)
    anthropic_default_max_tokens: int = Field(
        default=4096, ge=1, description="Anthropic needs max_tokens; used when a request has none"
    )
    openai_stream_usage: bool = Field(
        default=True, description="send stream_options.include_usage (some servers reject it)"
    )

    # providers (standard SDK variable names)
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL")
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL")
    )

    @property
    def streams_on_cluster(self) -> bool:
        """Whether generations live on a Redis Cluster (services/redis_connections.py)."""
        url = self.streams_redis_url
        return bool(url and url.startswith(("redis+cluster://", "rediss+cluster://")))

    @property
    def accepted_api_keys(self) -> frozenset[str]:
        """The static keys a client may present (without their tenants)."""
        return frozenset(self.static_key_tenants)

    @property
    def static_key_tenants(self) -> dict[str, str]:
        """`TOKENRELAY_API_KEYS` as key -> tenant (`KEY` alone is tenant 'default')."""
        if self.api_keys is None:
            return {}
        tenants: dict[str, str] = {}
        for entry in self.api_keys.get_secret_value().split(","):
            key, _, tenant = entry.strip().partition(":")
            if key.strip():
                tenants[key.strip()] = tenant.strip() or "default"
        return tenants

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need a key: static keys configured, or `auth_required`."""
        return self.auth_required or bool(self.static_key_tenants)

    @property
    def cross_origins(self) -> frozenset[str]:
        """The origins of `allowed_origins`, without trailing slashes (`*` stays `*`)."""
        return frozenset(
            origin.strip().rstrip("/").lower()
            for origin in self.allowed_origins.split(",")
            if origin.strip()
        )

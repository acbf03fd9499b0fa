"""Managed API keys: created, listed and revoked at run time, stored only as hashes.

A managed key is `trk_<id>_<secret>`: the id names it in listings and in
`tokenrelay keys revoke ID`, the secret (32 random bytes) makes it unguessable.
Redis holds the SHA-256 of the whole key, never the key: a key has 256 bits of
entropy, so a plain digest cannot be reversed by guessing, and a lookup is one
`HGETALL` by digest. The record keeps the tenant, the scopes, the key's own
limits and, once revoked, `revoked_at` (kept so listings show it; a revoked key
is refused like an unknown one).

Everything here lives on the control Redis (`TOKENRELAY_REDIS_URL`).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from services import keys

SCOPES = ("generate", "read", "cancel", "admin")
DEFAULT_SCOPES = ("generate", "read", "cancel")
TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEY = re.compile(r"^trk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


class ManagedKeyError(ValueError):
    """A managed key could not be created or revoked as asked."""


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """A key's own limits; None falls back to the deployment's default."""

    requests_per_minute: int | None = None
    max_streams: int | None = None
    max_tokens: int | None = None
    models: tuple[str, ...] | None = None
    """Allowed `PROVIDER/MODEL` names, or `PROVIDER/*`; None allows every model."""

    def to_json(self) -> dict[str, object]:
        return {
            "requests_per_minute": self.requests_per_minute,
            "max_streams": self.max_streams,
            "max_tokens": self.max_tokens,
            "models": list(self.models) if self.models is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> KeyLimits:
        def number(name: str) -> int | None:
            value = data.get(name)
            return int(value) if isinstance(value, int) and value > 0 else None

        models = data.get("models")
        return cls(
            requests_per_minute=number("requests_per_minute"),
            max_streams=number("max_streams"),
            max_tokens=number("max_tokens"),
            models=tuple(str(m) for m in models) if isinstance(models, list) else None,
        )

    def allows_model(self, model: str) -> bool:
        if self.models is None:
            return True
        provider = model.partition("/")[0]
        return any(m == model or m == f"{provider}/*" for m in self.models)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    tenant: str
    name: str
    scopes: frozenset[str]
    created_at: float
    limits: KeyLimits = field(default_factory=KeyLimits)
    revoked_at: float | None = None

    def public(self) -> dict[str, object]:
        """What listings show: never the key, never its hash."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "limits": self.limits.to_json(),
        }


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_managed(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def parse_scopes(value: str | Iterable[str]) -> frozenset[str]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    scopes = frozenset(p.strip() for p in parts if p.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise ManagedKeyError(f"scopes: expected some of {', '.join(SCOPES)}, got {sorted(scopes)}")
    return scopes


def check_tenant(tenant: str) -> str:
    if not TENANT.fullmatch(tenant):
        raise ManagedKeyError(
            "tenant: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return tenant


class KeyStore:
    """Managed keys on the control Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def create(
        self,
        tenant: str,
        *,
        name: str = "",
        scopes: frozenset[str] = frozenset(DEFAULT_SCOPES),
        limits: KeyLimits | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key and its record; the key is returned once and never stored."""
        check_tenant(tenant)
        key_id = secrets.token_hex(6)
        key = f"trk_{key_id}_{secrets.token_urlsafe(32)}"
        record = KeyRecord(
            id=key_id,
            tenant=tenant,
            name=name[:200],
            scopes=parse_scopes(scopes),
            created_at=time.time(),
            limits=limits or KeyLimits(),
        )
        key_digest = digest(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.api_key(key_digest),
                mapping={
                    "id": record.id,
                    "tenant": record.tenant,
                    "name": record.name,
                    "scopes": ",".join(sorted(record.scopes)),
                    "created_at": repr(record.created_at),
                    "limits": json.dumps(record.limits.to_json()),
                },
            )
            pipe.hset(keys.API_KEY_IDS, key_id, key_digest)
            await pipe.execute()
        return key, record

    async def lookup(self, key: str) -> KeyRecord | None:
        """The record of a presented key, revoked or not; None for an unknown key."""
        if not looks_managed(key):
            return None
        fields: dict[str, str] = await self.redis.hgetall(keys.api_key(digest(key)))  # type: ignore[misc]  # redis-py types sync and async clients alike
        return _record(fields) if fields else None

    async def revoked(self, key_ids: Iterable[str]) -> set[str]:
        """Which of `key_ids` are revoked (or gone), in one round trip."""
        ids = list(key_ids)
        if not ids:
            return set()
        digests: list[str | None] = await self.redis.hmget(keys.API_KEY_IDS, ids)  # type: ignore[misc]  # as above
        async with self.redis.pipeline(transaction=False) as pipe:
            for key_digest in digests:
                pipe.hget(keys.api_key(key_digest or "none"), "revoked_at")
            flags = await pipe.execute()
        return {
            key_id
            for key_id, key_digest, flag in zip(ids, digests, flags, strict=True)
            if key_digest is None or flag is not None
        }

    async def list(self, tenant: str | None = None) -> list[KeyRecord]:
        entries: dict[str, str] = await self.redis.hgetall(keys.API_KEY_IDS)  # type: ignore[misc]  # as above
        async with self.redis.pipeline(transaction=False) as pipe:
            for key_digest in entries.values():
                pipe.hgetall(keys.api_key(key_digest))
            replies = await pipe.execute()
        records = [_record(fields) for fields in replies if fields]
        if tenant is not None:
            records = [r for r in records if r.tenant == tenant]
        return sorted(records, key=lambda r: r.created_at)

    async def revoke(self, key_id: str) -> KeyRecord:
        """Mark a key revoked; every replica refuses it within its cache's lifetime."""
        key_digest: str | None = await self.redis.hget(keys.API_KEY_IDS, key_id)  # type: ignore[misc]  # as above
        if key_digest is None:
            raise ManagedKeyError(f"no managed key '{key_id[:40]}'")
        await self.redis.hsetnx(keys.api_key(key_digest), "revoked_at", repr(time.time()))  # type: ignore[misc]  # as above
        fields: dict[str, str] = await self.redis.hgetall(keys.api_key(key_digest))  # type: ignore[misc]  # as above
        return _record(fields)


def _record(fields: dict[str, str]) -> KeyRecord:
    revoked = fields.get("revoked_at")
    return KeyRecord(
        id=fields["id"],
        tenant=fields["tenant"],
        name=fields.get("name", ""),
        scopes=frozenset(s for s in fields.get("scopes", "").split(",") if s),
        created_at=float(fields.get("created_at") or 0),
        limits=KeyLimits.from_json(json.loads(fields.get("limits") or "{}")),
        revoked_at=float(revoked) if revoked else None,
    )

"""Viewer tokens: signed, expiring, read-only access to one generation (PyJWT, HS256).

A token names one generation (`sub`), its tenant (`ten`), the managed key that
minted it (`kid`, so revoking the key ends its links too) and an expiry. It is
checked with the one algorithm we sign with: `alg: none`, another algorithm, a
wrong signature, another audience or an expired token all fail alike.

The signing key is `TOKENRELAY_SIGNING_KEY` when set. Unset, the first process
to start generates one and stores it in the control Redis with `SET NX`; every
other replica reads the same one, so a token minted on one replica is accepted
by all. Anyone who can read that Redis can then mint tokens, but they can already
read every generation there; a deployment that keeps secrets out of Redis sets
the variable (the same on every replica).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

import jwt
from redis.asyncio import Redis

from services import keys

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
AUDIENCE = "tokenrelay:viewer"
MIN_KEY_BYTES = 32


class InvalidToken(Exception):
    """Expired, tampered, or not a viewer token of this deployment."""


@dataclass(frozen=True, slots=True)
class ViewerGrant:
    gen_id: str
    tenant: str
    key_id: str | None
    expires_at: float


def configured_signing_key(configured: str | None) -> bytes | None:
    """`TOKENRELAY_SIGNING_KEY` checked at startup (too short refuses to start), or None."""
    if configured is None:
        return None
    if len(configured.encode()) < MIN_KEY_BYTES:
        raise ValueError(
            f"TOKENRELAY_SIGNING_KEY must be at least {MIN_KEY_BYTES} bytes "
            "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return configured.encode()


class ViewerTokens:
    """Mints and checks viewer tokens with the key every replica shares.

    The key shared through Redis is fetched on first use, not at startup, so a
    replica started while Redis is down comes up (and answers 503 on these routes,
    like every route that needs Redis) instead of exiting.
    """

    def __init__(self, configured: bytes | None, redis: Redis) -> None:
        self._key = configured
        self._redis = redis
        self._fetching = asyncio.Lock()

    async def _signing_key(self) -> bytes:
        if self._key is not None:
            return self._key
        async with self._fetching:
            if self._key is None:
                self._key = await self._shared_key()
        return self._key

    async def _shared_key(self) -> bytes:
        await self._redis.set(keys.SIGNING_KEY, secrets.token_urlsafe(48), nx=True)
        shared = await self._redis.get(keys.SIGNING_KEY)
        if not shared:
            raise RuntimeError("the shared signing key could not be read back from Redis")
        log.info("viewer tokens: signed with the key shared through Redis")
        return str(shared).encode()

    async def mint(
        self, gen_id: str, tenant: str, key_id: str | None, ttl_s: int
    ) -> tuple[str, float]:
        now = int(time.time())
        expires_at = now + ttl_s
        claims: dict[str, object] = {
            "sub": gen_id,
            "ten": tenant,
            "aud": AUDIENCE,
            "iat": now,
            "exp": expires_at,
        }
        if key_id is not None:
            claims["kid"] = key_id
        key = await self._signing_key()
        return jwt.encode(claims, key, algorithm=ALGORITHM), float(expires_at)

    async def verify(self, token: str) -> ViewerGrant:
        key = await self._signing_key()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from None
        sub, tenant, kid = claims.get("sub"), claims.get("ten"), claims.get("kid")
        if not isinstance(sub, str) or not isinstance(tenant, str):
            raise InvalidToken("claims")
        return ViewerGrant(
            gen_id=sub,
            tenant=tenant,
            key_id=kid if isinstance(kid, str) else None,
            expires_at=float(claims["exp"]),
        )


def looks_like_token(credential: str) -> bool:
    """A JWT (three dot-separated parts starting with a JSON header), not an API key."""
    return credential.startswith("eyJ") and credential.count(".") == 2

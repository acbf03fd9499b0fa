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


async def resolve_signing_key(configured: str | None, redis: Redis) -> bytes:
    """The key every replica signs with (see the module docstring)."""
    if configured is not None:
        if len(configured.encode()) < MIN_KEY_BYTES:
            raise ValueError(
                f"TOKENRELAY_SIGNING_KEY must be at least {MIN_KEY_BYTES} bytes "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return configured.encode()
    await redis.set(keys.SIGNING_KEY, secrets.token_urlsafe(48), nx=True)
    shared = await redis.get(keys.SIGNING_KEY)
    if not shared:
        raise RuntimeError("the shared signing key could not be read back from Redis")
    log.info("viewer tokens: signed with the key shared through Redis (no TOKENRELAY_SIGNING_KEY)")
    return str(shared).encode()


class ViewerTokens:
    def __init__(self, signing_key: bytes) -> None:
        self._key = signing_key

    def mint(self, gen_id: str, tenant: str, key_id: str | None, ttl_s: int) -> tuple[str, float]:
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
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), float(expires_at)

    def verify(self, token: str) -> ViewerGrant:
        try:
            claims = jwt.decode(
                token,
                self._key,
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

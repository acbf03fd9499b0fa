"""Who is asking, and what they may do: keys, tenants, scopes and viewer tokens.

A request's credential (`Authorization: Bearer`, `x-api-key`, or for viewer
tokens also `?token=`) becomes a `Principal`: the tenant whose generations it
sees, its scopes, its limits, and for a viewer token the one generation it may
read. Three kinds of credential:

- static keys, `TOKENRELAY_API_KEYS` (`KEY` or `KEY:TENANT`): scopes generate,
  read and cancel; they cannot be revoked without a restart;
- managed keys (services/api_keys.py), looked up by hash in the control Redis
  and cached here for `CACHE_TTL_S`. That TTL is the revocation bound: a key
  revoked on any replica is refused by every replica within it, with no message
  that could be lost. Unknown keys are cached too, so guessing costs no Redis
  round trip per try;
- viewer tokens (services/viewer_tokens.py): read-only, one generation.

The scope a request needs follows from its route (`required_scope`), so a route
added later is covered without opting in; a viewer token reaches only the
routes in `VIEWER_ROUTES`.

With auth off (`TOKENRELAY_API_KEYS` unset, dev), every request is tenant
`default` with every scope, and the cross-site check of api/origin.py applies.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from services.api_keys import KeyLimits, KeyRecord, KeyStore, digest, looks_managed
from services.config import Settings
from services.errors import AuthenticationFailed, Forbidden
from services.viewer_tokens import InvalidToken, ViewerTokens, looks_like_token

CACHE_TTL_S = 0.5
_CACHE_MAX = 10_000
DEFAULT_TENANT = "default"
ALL_SCOPES = frozenset({"generate", "read", "cancel", "admin"})
STATIC_SCOPES = frozenset({"generate", "read", "cancel"})

VIEWER_ROUTES: set[tuple[str, str]] = {
    ("GET", "/v1/generations/{gen_id}"),
    ("GET", "/v1/generations/{gen_id}/events"),
    ("GET", "/watch/{gen_id}"),
    ("GET", "/v1/responses/{response_id}"),
    ("GET", "/v1/generations"),  # only with `?id=` of its own generation (api/routes/listing.py)
}
"""(method, route path) a viewer token may call; everything else answers it 403."""


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    scopes: frozenset[str]
    key_id: str
    """Whose limits apply: a managed key's id, `static-<hash>`, or `anonymous`."""
    managed: bool = False
    limits: KeyLimits = field(default_factory=KeyLimits)
    viewer_of: str | None = None
    """For a viewer token: the one generation it may read."""
    minted_by: str | None = None
    """For a viewer token: the managed key that minted it (revoking the key ends it)."""
    expires_at: float | None = None

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def sees(self, tenant: str) -> bool:
        """Whether generations of `tenant` exist for this principal."""
        return self.admin or tenant == self.tenant

    @property
    def revocable_by(self) -> str | None:
        """The managed key whose revocation must end this principal's streams."""
        if self.viewer_of is not None:
            return self.minted_by
        return self.key_id if self.managed else None


ANONYMOUS = Principal(tenant=DEFAULT_TENANT, scopes=ALL_SCOPES, key_id="anonymous")

_current: ContextVar[Principal | None] = ContextVar("tokenrelay_principal", default=None)


def set_current(principal: Principal) -> None:
    _current.set(principal)


def current_principal() -> Principal:
    """The principal of the request being handled.

    Set by the auth dependency every authenticated router has, so the code that
    every door shares (api/submission.py, the SSE writer) finds it without each
    door passing it along. Outside a request it fails closed.
    """
    principal = _current.get()
    if principal is None:
        raise AuthenticationFailed("no credential was checked for this request")
    return principal


def current_principal_or_none() -> Principal | None:
    return _current.get()


def required_scope(method: str, path: str) -> str:
    """The scope a request needs, from its route alone (so new routes are covered)."""
    if path.startswith("/v1/admin"):
        return "admin"
    if path.endswith("/cancel"):
        return "cancel"
    if path.endswith("/viewer-tokens") or method in ("GET", "HEAD"):
        return "read"
    return "generate"


class Authenticator:
    """Turns a presented credential into a `Principal` (one per API process)."""

    def __init__(self, settings: Settings, key_store: KeyStore, tokens: ViewerTokens) -> None:
        self.settings = settings
        self.enabled = settings.auth_enabled
        self.key_store = key_store
        self.tokens = tokens
        self._static = {key.encode(): tenant for key, tenant in settings.static_key_tenants.items()}
        self._records: dict[str, tuple[float, KeyRecord | None]] = {}
        self._revoked: dict[str, tuple[float, bool]] = {}

    def default_limits(self, own: KeyLimits) -> KeyLimits:
        return KeyLimits(
            requests_per_minute=own.requests_per_minute or self.settings.key_requests_per_minute,
            max_streams=own.max_streams or self.settings.key_max_streams,
            max_tokens=own.max_tokens,
            models=own.models,
        )

    async def resolve(self, credential: str | None) -> Principal:
        if (
            credential is not None
            and looks_like_token(credential)
            and not self._is_static(credential)
        ):
            return await self._viewer(credential)
        if not self.enabled:
            return ANONYMOUS
        if credential is None:
            raise AuthenticationFailed(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        tenant = self._static_tenant(credential)
        if tenant is not None:
            key_hash = hashlib.sha256(credential.encode()).hexdigest()[:12]
            return Principal(
                tenant=tenant,
                scopes=STATIC_SCOPES,
                key_id=f"static-{key_hash}",
                limits=self.default_limits(KeyLimits()),
            )
        record = await self._record(credential) if looks_managed(credential) else None
        if record is None or record.revoked_at is not None:
            raise AuthenticationFailed("invalid API key")
        return Principal(
            tenant=record.tenant,
            scopes=record.scopes,
            key_id=record.id,
            managed=True,
            limits=self.default_limits(record.limits),
        )

    def _is_static(self, credential: str) -> bool:
        return self._static_tenant(credential) is not None

    def _static_tenant(self, credential: str) -> str | None:
        # Compare against every key, so timing does not tell which one nearly matched.
        presented = credential.encode()
        found = None
        for key, tenant in self._static.items():
            if hmac.compare_digest(presented, key):
                found = tenant
        return found

    async def _record(self, key: str) -> KeyRecord | None:
        key_digest = digest(key)
        now = time.monotonic()
        cached = self._records.get(key_digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self.key_store.lookup(key)
        if len(self._records) >= _CACHE_MAX:
            self._records.clear()
        self._records[key_digest] = (now + CACHE_TTL_S, record)
        return record

    async def is_revoked(self, key_id: str) -> bool:
        now = time.monotonic()
        cached = self._revoked.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        revoked = key_id in await self.key_store.revoked([key_id])
        if len(self._revoked) >= _CACHE_MAX:
            self._revoked.clear()
        self._revoked[key_id] = (now + CACHE_TTL_S, revoked)
        return revoked

    async def _viewer(self, token: str) -> Principal:
        try:
            grant = await self.tokens.verify(token)
        except InvalidToken:
            raise AuthenticationFailed("invalid or expired viewer token") from None
        if grant.key_id is not None and await self.is_revoked(grant.key_id):
            raise AuthenticationFailed("invalid or expired viewer token")
        return Principal(
            tenant=grant.tenant,
            scopes=frozenset({"read"}),
            key_id=f"viewer-{grant.gen_id}",
            viewer_of=grant.gen_id,
            minted_by=grant.key_id,
            expires_at=grant.expires_at,
        )


def authorize(principal: Principal, method: str, route_path: str) -> None:
    """403 unless the principal's scopes (or, for a viewer token, its routes) allow this."""
    if principal.viewer_of is not None:
        if (method if method != "HEAD" else "GET", route_path) not in VIEWER_ROUTES:
            raise Forbidden("a viewer token can only read the generation it names")
        return
    scope = required_scope(method, route_path)
    if scope not in principal.scopes:
        raise Forbidden(f"this key lacks the '{scope}' scope")

"""Refusing cross-site browser requests when there is no API key to refuse them.

With auth off (the `tokenrelay dev` default), any page the user visits could
make their browser POST to the API: start generations, cancel others. Browsers
say where such a request comes from in `Origin`, and a page cannot forge it. So
a state-changing request whose `Origin` is neither the API's own (the scheme's
host and port against the `Host` the browser connected to) nor one of
`TOKENRELAY_ALLOWED_ORIGINS` is a 403. Requests without `Origin` (curl, SDKs,
servers) are not browsers' cross-site requests and pass. With auth on the key
does this job: a page on another site cannot read or send it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from services.errors import Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_origin(
    method: str, origin: str | None, host: str | None, allowed: frozenset[str]
) -> None:
    """Raise `Forbidden` for a state-changing request from another site's page."""
    if method in SAFE_METHODS or origin is None:
        return
    normalized = origin.strip().rstrip("/").lower()
    if "*" in allowed or normalized in allowed or is_same_origin(normalized, host):
        return
    shown = normalized.encode("ascii", "backslashreplace").decode()[:100]
    raise Forbidden(
        f"cross-site request refused: origin '{shown}' is not this API's own; with auth off, "
        "only TOKENRELAY_ALLOWED_ORIGINS may send requests from a browser"
    )


def is_same_origin(origin: str, host: str | None) -> bool:
    """Whether `origin` (`scheme://host[:port]`) names the server the `Host` header names."""
    if not host:
        return False
    try:
        parsed = urlsplit(origin)
        connected = urlsplit(f"//{host.strip()}")
        if parsed.scheme not in _DEFAULT_PORTS:
            return False
        origin_port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
        host_port = connected.port or _DEFAULT_PORTS[parsed.scheme]
    except ValueError:  # a bracketed host left open, a port not a number or out of range
        return False
    return (
        parsed.hostname is not None
        and parsed.hostname == (connected.hostname or "").lower()
        and origin_port == host_port
    )

"""CORS for the front ends listed in TOKENRELAY_ALLOWED_ORIGINS.

A page on another origin may send to the API once its origin is listed (api/origin.py
checks that on the server), but the browser lets the page read an answer only when
the answer says so, and asks first (a preflight `OPTIONS`) before a JSON `POST` or a
request with an `Authorization` header. So every answer to a listed origin, the event
streams of the fast path included, carries `Access-Control-Allow-Origin`, and
preflights are answered here. Origins not listed get no CORS headers (the browser
keeps the answer from the page) and a preflight refusal.

Credentials are headers the page sets itself (an API key, a viewer token), never
cookies, so `Access-Control-Allow-Credentials` is not sent. Request headers are not
limited: the SDKs that run in browsers send their own (`x-stainless-*`,
`anthropic-version`, ...). Nothing is installed when no origin is listed.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from services.config import Settings

EXPOSED_HEADERS = ["Retry-After", "X-Generation-Id", "Content-Type"]
"""Answer headers a page may read beyond the safelisted ones."""

PREFLIGHT_MAX_AGE_S = 600


def with_cors(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` answering the listed origins' browsers, or `app` itself when none is listed."""
    origins = settings.cross_origins
    if not origins:
        return app
    return CORSMiddleware(
        app,
        allow_origins=["*"] if "*" in origins else sorted(origins),
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE_S,
    )

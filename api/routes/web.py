"""The web pages: chat at `/`, a live view at `/watch/{id}`, and `/dashboard`.

The pages are static files shipped in the package (`api/static/`), served by the
API itself so there is no second server and no build step. The pages need no
key; the API calls they make from the browser do, and carry it in a header.
Assets are served from a list made once at startup, never from a path the
client chose, so no request can reach a file outside `api/static/`.

Every page is sent with a strict Content-Security-Policy (scripts, styles and
connections from this origin only, no inline script): the markdown renderer
escapes everything, and the policy makes a mistake there harmless.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from api.deps import StateDep
from services.errors import AuthenticationFailed, Forbidden, NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
        "object-src 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # Revalidate on every load (cheap with ETag), so an upgrade is seen at once.
    "Cache-Control": "no-cache",
}


@functools.cache
def _asset_index() -> dict[str, Path]:
    """Every servable file, listed on first use (the package's files do not change)."""
    return {
        path.relative_to(STATIC_DIR).as_posix(): path
        for path in STATIC_DIR.rglob("*")
        if path.is_file() and path.suffix in _CONTENT_TYPES
    }


router = APIRouter(tags=["web"], include_in_schema=False)
# Every page and asset answers HEAD too (link checkers, uptime probes): FileResponse
# sends the GET's headers without the file.
_GET_AND_HEAD = ["GET", "HEAD"]


def _file(relative: str) -> FileResponse:
    path = _asset_index().get(relative)
    if path is None:
        raise NotFound(f"no such file: /static/{relative[:200]}")
    return FileResponse(
        path, media_type=_CONTENT_TYPES[path.suffix], headers=dict(_SECURITY_HEADERS)
    )


@router.api_route("/", methods=_GET_AND_HEAD)
async def chat_page() -> FileResponse:
    """The chat page."""
    return _file("chat.html")


@router.api_route("/watch/{gen_id}", methods=_GET_AND_HEAD)
async def watch_page(gen_id: str, request: Request, state: StateDep) -> FileResponse:
    """A generation, live, for anyone with the link (the page reads the id from its URL).

    The page holds no data: without a token it is the same page for every id (the
    API calls it makes decide, with the browser's key). A `?token=` is checked
    here: expired or tampered 401, another generation's 403."""
    token = request.query_params.get("token")
    if token is not None:
        principal = await state.auth.resolve(token)
        if principal.viewer_of is None:
            raise AuthenticationFailed("?token= takes a viewer token, never an API key")
        if principal.viewer_of != gen_id:
            raise Forbidden("this viewer token is for another generation")
    return _file("watch.html")


@router.api_route("/dashboard", methods=_GET_AND_HEAD)
async def dashboard_page() -> FileResponse:
    """Generations running now and recently finished."""
    return _file("dashboard.html")


@router.api_route("/favicon.ico", methods=_GET_AND_HEAD)
async def favicon() -> FileResponse:
    return _file("favicon.svg")


@router.api_route("/static/{asset:path}", methods=_GET_AND_HEAD)
async def static_asset(asset: str) -> FileResponse:
    """Scripts, styles and images of the pages."""
    return _file(asset)

"""The two pages, ``GET /dashboard`` and ``GET /me``, and their static files under ``/ui/``.

Static HTML, CSS and JS shipped in the package (``static/``), read once and served from
memory; no build step, nothing from another origin. The pages hold no data: they ask the JSON
endpoints with the key the user typed, kept in the tab's sessionStorage.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from ..errors import NotFound
from ..state import GATEWAY

_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript",
          ".svg": "image/svg+xml", ".txt": "text/plain"}
#: Same origin only, no inline script or style, no framing: the key typed in stays here.
_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _files() -> dict[str, tuple[bytes, str]]:
    """Every static file by name, with its content type."""
    out = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind("."):]
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return out


def _serve(name: str) -> web.Response:
    body, content_type = _files()[name]
    return web.Response(body=body, content_type=content_type, charset="utf-8",
                        headers=_HEADERS)


async def dashboard_page(request: web.Request) -> web.Response:
    """GET /dashboard: the operator's page; absent (404) while no admin key is configured."""
    if request.app[GATEWAY].holder.current.admin.key is None:
        raise NotFound("/dashboard is disabled: no admin key is configured")
    return _serve("dashboard.html")


async def me_page(request: web.Request) -> web.Response:
    """GET /me: a token holder's own page."""
    return _serve("me.html")


async def static_file(request: web.Request) -> web.Response:
    """GET /ui/{name}: one of the pages' static files (a fixed list, no paths)."""
    name = request.match_info["name"]
    if name not in _files():
        raise NotFound(f"no route for GET {request.path}")
    return _serve(name)

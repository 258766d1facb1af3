"""Operator routes under /admin: the admin-key rule, and ``POST /admin/reload``.

The rule for every /admin route: with no ``admin.key`` configured the routes do not exist
(404 ``not_found``); with one, a request without that key is refused (401 ``invalid_api_key``).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from .auth import is_admin
from .errors import InvalidApiKey, NotFound
from .state import GATEWAY


def require_admin(request: web.Request) -> None:
    """Raise unless the caller sent the configured admin key (404 when none is configured)."""
    config = request.app[GATEWAY].holder.current
    if config.admin.key is None:
        raise NotFound(f"no route for {request.method} {request.path}")
    if not is_admin(config, request.headers):
        raise InvalidApiKey("the admin key is required")


async def reload_route(request: web.Request) -> web.Response:
    """POST /admin/reload: re-read the config file now, as SIGHUP does.

    Answers 200 ``{"reloaded": true, "errors": []}`` when a new config is live, 200 with
    ``"reloaded": false`` when the file equals the live config, and 422 with ``"reloaded":
    false`` and every problem (``{"path", "message"}``, the path being the YAML path or, for a
    problem with the whole file, the file's) when the file is invalid and the old
    config keeps serving.
    """
    require_admin(request)
    holder = request.app[GATEWAY].holder
    reloaded = holder.reload("admin")
    errors = [{"path": path or holder.path, "message": message}
              for path, message in holder.problems]
    return web.Response(status=422 if errors else 200,
                        body=orjson.dumps({"reloaded": reloaded, "errors": errors}),
                        content_type="application/json")

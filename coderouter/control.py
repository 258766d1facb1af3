"""``POST /admin/reload``: re-read the config file on an operator's request.

Guarded like every /admin route (`auth.require_admin`): with no ``admin.key`` configured it
answers 404 ``not_found``; with one, a request without that key gets 401 ``invalid_api_key``.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from .auth import require_admin
from .state import GATEWAY


async def reload_route(request: web.Request) -> web.Response:
    """POST /admin/reload: re-read the config file now, as SIGHUP does.

    Answers 200 ``{"reloaded": true, "errors": []}`` when a new config is live, 200 with
    ``"reloaded": false`` when the file equals the live config, and 422 with ``"reloaded":
    false`` and every problem (``{"path", "message"}``, the path being the YAML path or, for a
    problem with the whole file, the file's) when the file is invalid and the old
    config keeps serving.
    """
    holder = request.app[GATEWAY].holder
    require_admin(holder.current, request.headers, "/admin/reload")
    reloaded = await holder.areload("admin")
    errors = [{"path": path or holder.path, "message": message}
              for path, message in holder.problems]
    return web.Response(status=422 if errors else 200,
                        body=orjson.dumps({"reloaded": reloaded, "errors": errors}),
                        content_type="application/json")

"""The Gemini API's routes (``/v1beta/models…``), for the Gemini CLI and Google's SDKs.

The model is the path's, never the body's: ``POST /v1beta/models/{model}:{method}`` with
method ``generateContent``, ``streamGenerateContent`` (``?alt=sse``) or ``countTokens``; the
same under ``/v1/models/`` (google-genai for Python defaults to v1). ``GET /v1/models`` is
OpenAI's list, or Gemini's when the key comes the Gemini way (``x-goog-api-key``, ``?key=``).
The
caller's key comes in ``x-goog-api-key``, ``?key=`` or ``Authorization: Bearer``; it is never
forwarded or logged (usage rows and the access log keep the path, not the query). Every error
on these routes is Google-shaped (`handlers.error_body`).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..auth import authenticate, authenticate_key, check_model, gemini_key, may_use
from ..dialects.registry import GEMINI_METHODS
from ..errors import InvalidRequest, ModelNotFound, NotFound
from ..state import GATEWAY
from . import handlers

_JSON_HEADERS = {"Content-Type": "application/json"}
_SUPPORTED = ["generateContent", "streamGenerateContent", "countTokens"]


def _key(request: web.Request) -> str | None:
    return gemini_key(request.headers, request.query)


def _target(request: web.Request) -> tuple[str, str]:
    """(model, method) of ``/v1beta/models/{model}:{method}``; `NotFound` otherwise."""
    model, colon, method = request.match_info["target"].rpartition(":")
    if not colon or not model or method not in GEMINI_METHODS:
        raise NotFound(f"no route for POST {request.path}: the Gemini API methods served are "
                       f"{', '.join(_SUPPORTED)}")
    return model, method


async def generate(request: web.Request) -> web.StreamResponse:
    """POST /v1beta/models/{model}:{generateContent|streamGenerateContent|countTokens}."""
    model, method = _target(request)
    stream = method == "streamGenerateContent"
    if stream and request.query.get("alt") != "sse":
        raise InvalidRequest("streamGenerateContent is served as server-sent events only: "
                             "add ?alt=sse (as Google's SDKs and the Gemini CLI do)")

    def parse(body: bytes) -> dict[str, Any]:
        try:
            payload = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise InvalidRequest("request body must be a JSON object")
        # what the gateway keeps beside the request; a Gemini upstream never sees them
        payload["model"], payload["stream"] = model, stream
        return payload

    return await handlers.relay(request, dialect=GEMINI_METHODS[method].name, key=_key,
                                parse=parse, raw=True)


def _model(name: str) -> dict[str, Any]:
    return {"name": f"models/{name}", "baseModelId": name, "version": "coderouter",
            "displayName": name, "description": f"{name}, served by Code Router",
            "supportedGenerationMethods": _SUPPORTED}


async def list_models(request: web.Request) -> web.Response:
    """GET /v1beta/models: the routable names this token may use, in Gemini's list shape."""
    config = request.app[GATEWAY].holder.current
    token = authenticate_key(config, _key(request))
    models = [_model(name) for name in sorted(config.routes) if may_use(token, name)]
    return web.Response(body=orjson.dumps({"models": models}), headers=_JSON_HEADERS)


async def get_model(request: web.Request) -> web.Response:
    """GET /v1beta/models/{model}: one routable name."""
    config = request.app[GATEWAY].holder.current
    token = authenticate_key(config, _key(request))
    name = request.match_info["target"]
    if name not in config.routes:
        raise ModelNotFound(f"the model '{name}' does not exist")
    check_model(token, name)
    return web.Response(body=orjson.dumps(_model(name)), headers=_JSON_HEADERS)


def is_gemini(request: web.Request) -> bool:
    """Whether a request to a path both APIs share comes from a Gemini API client."""
    return "x-goog-api-key" in request.headers or "key" in request.query \
        or request.path.startswith("/v1beta/") \
        or (request.path.startswith("/v1/models/") and ":" in request.path)


async def models_either(request: web.Request) -> web.Response:
    """GET /v1/models: OpenAI's list, or Gemini's for a Gemini client."""
    if is_gemini(request):
        return await list_models(request)
    return await handlers.models(request)


async def get_model_either(request: web.Request) -> web.Response:
    """GET /v1/models/{model}: OpenAI's model object, or Gemini's for a Gemini client."""
    if is_gemini(request):
        return await get_model(request)
    config = request.app[GATEWAY].holder.current
    token = authenticate(config, request.headers)
    name = request.match_info["target"]
    if name not in config.routes:
        raise ModelNotFound(f"the model '{name}' does not exist")
    check_model(token, name)
    created = int(request.app[GATEWAY].started)
    return web.Response(body=orjson.dumps({"id": name, "object": "model", "created": created,
                                           "owned_by": "coderouter"}), headers=_JSON_HEADERS)


def add_routes(router: web.UrlDispatcher) -> None:
    """The Gemini routes, and the GET /v1/models routes both APIs share."""
    router.add_get("/v1/models", models_either)
    router.add_get("/v1beta/models", list_models)
    for prefix in ("/v1beta/models/", "/v1/models/"):
        router.add_post(prefix + "{target:.+}", generate)
        router.add_get(prefix + "{target:.+}",
                       get_model if prefix == "/v1beta/models/" else get_model_either)

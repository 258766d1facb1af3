"""The errors a caller or an operator can see. Imports nothing internal.

A `GatewayError` is wire-neutral: an HTTP status, a stable ``code``, a ``kind`` (the class of
failure) and a message. The caller's dialect renders it (`dialects.registry`): an OpenAI-shaped
body on OpenAI routes, Anthropic's on /v1/messages, Google's on the Gemini API's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

#: The classes of failure a dialect renders (each dialect maps them to its own error types).
Kind = Literal["server_error", "authentication", "permission", "not_found", "invalid_request",
               "timeout", "too_large", "quota", "rate_limit", "upstream", "overloaded"]


class GatewayError(Exception):
    """An error answered to the caller: an HTTP status, a code and a kind; no wire shape."""

    status = 500
    code = "internal_error"
    kind: Kind = "server_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidApiKey(GatewayError):
    status, code, kind = 401, "invalid_api_key", "authentication"


class ModelNotAllowed(GatewayError):
    status, code, kind = 403, "model_not_allowed", "permission"


class ModelNotFound(GatewayError):
    status, code, kind = 404, "model_not_found", "not_found"


class NotFound(GatewayError):
    status, code, kind = 404, "not_found", "not_found"


class MethodNotAllowed(GatewayError):
    status, code, kind = 405, "method_not_allowed", "invalid_request"


class UpgradeRequired(GatewayError):
    """A WebSocket upgrade on a route that serves none: the caller uses plain HTTP instead
    (Codex falls back at once on a 426, but retries a 404 or 405 for seconds)."""

    status, code, kind = 426, "upgrade_required", "invalid_request"


class InvalidRequest(GatewayError):
    status, code, kind = 400, "invalid_request", "invalid_request"


class RequestTimeout(GatewayError):
    status, code, kind = 408, "request_timeout", "timeout"


class RequestTooLarge(GatewayError):
    status, code, kind = 413, "request_too_large", "too_large"


class HeadersTooLarge(GatewayError):
    status, code, kind = 431, "request_headers_too_large", "invalid_request"


class QuotaExceeded(GatewayError):
    status, code, kind = 429, "insufficient_quota", "quota"


class RateLimited(GatewayError):
    status, code, kind = 429, "rate_limit_exceeded", "rate_limit"


#: The statuses of the gateway's own refusals of a caller: key, model, quota or rate limit.
REFUSAL_STATUSES = (InvalidApiKey.status, ModelNotAllowed.status, QuotaExceeded.status)


class UpstreamError(GatewayError):
    status, code, kind = 502, "upstream_error", "upstream"


class UpstreamTimeout(UpstreamError):
    status = 504


class ServiceUnavailable(GatewayError):
    status, code, kind = 503, "shutting_down", "overloaded"


class StorageUnavailable(ServiceUnavailable):
    """The usage database (or shared state) cannot answer now; the message says why."""

    code = "storage_unavailable"


class ConfigError(ValueError):
    """A config file that cannot be used; ``problems`` holds every ``(yaml_path, message)``,
    ``lines`` the 1-based line of each YAML path of the file (when it was parsed)."""

    def __init__(self, problems: list[tuple[str, str]],
                 lines: Mapping[str, int] | None = None) -> None:
        self.problems = problems
        self.lines: Mapping[str, int] = lines or {}
        super().__init__("\n".join(f"{path}: {msg}" if path else msg
                                   for path, msg in problems))

    def line_of(self, path: str) -> int | None:
        """The line of *path*, else of the nearest enclosing value that has one (a missing
        key is reported where its mapping is)."""
        while path:
            line = self.lines.get(path)
            if line is not None:
                return line
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None

    def located(self) -> list[str]:
        """Each problem as ``path (line N): message``."""
        out = []
        for path, message in self.problems:
            line = self.line_of(path)
            where = f"{path} (line {line})" if path and line else path
            out.append(f"{where}: {message}" if where else message)
        return out

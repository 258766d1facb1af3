"""The errors a caller or an operator can see. Imports nothing internal."""

from __future__ import annotations

from collections.abc import Mapping


class GatewayError(Exception):
    """An error answered to the caller: an HTTP status, an OpenAI error type and code."""

    status = 500
    type = "server_error"
    code = "internal_error"
    #: The Anthropic ``error.type`` used on /v1/messages routes.
    anthropic_type = "api_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidApiKey(GatewayError):
    status, type, code, anthropic_type = (
        401, "invalid_request_error", "invalid_api_key", "authentication_error")


class ModelNotAllowed(GatewayError):
    status, type, code, anthropic_type = (
        403, "invalid_request_error", "model_not_allowed", "permission_error")


class ModelNotFound(GatewayError):
    status, type, code, anthropic_type = (
        404, "invalid_request_error", "model_not_found", "not_found_error")


class NotFound(GatewayError):
    status, type, code, anthropic_type = (
        404, "invalid_request_error", "not_found", "not_found_error")


class MethodNotAllowed(GatewayError):
    status, type, code, anthropic_type = (
        405, "invalid_request_error", "method_not_allowed", "invalid_request_error")


class InvalidRequest(GatewayError):
    status, type, code, anthropic_type = (
        400, "invalid_request_error", "invalid_request", "invalid_request_error")


class RequestTimeout(GatewayError):
    status, type, code, anthropic_type = (
        408, "invalid_request_error", "request_timeout", "timeout_error")


class RequestTooLarge(GatewayError):
    status, type, code, anthropic_type = (
        413, "invalid_request_error", "request_too_large", "request_too_large")


class HeadersTooLarge(GatewayError):
    status, type, code, anthropic_type = (
        431, "invalid_request_error", "request_headers_too_large", "invalid_request_error")


class QuotaExceeded(GatewayError):
    status, type, code, anthropic_type = (
        429, "insufficient_quota", "insufficient_quota", "rate_limit_error")


class RateLimited(GatewayError):
    status, type, code, anthropic_type = (
        429, "rate_limit_exceeded", "rate_limit_exceeded", "rate_limit_error")


class UpstreamError(GatewayError):
    status, type, code, anthropic_type = (502, "upstream_error", "upstream_error", "api_error")


class UpstreamTimeout(UpstreamError):
    status = 504


class ServiceUnavailable(GatewayError):
    status, type, code, anthropic_type = (
        503, "server_error", "shutting_down", "overloaded_error")


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

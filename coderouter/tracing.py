"""OpenTelemetry traces, opt-in (``tracing.endpoint``): one span per request, one per attempt.

Imported only when the config names an endpoint (it needs the ``otel`` extra: the official
OpenTelemetry SDK and its OTLP/HTTP exporter), so a gateway without tracing pays nothing.

The request's span (kind SERVER) follows OpenTelemetry's GenAI conventions:
``gen_ai.operation.name`` (its dialect's `operation`), ``gen_ai.provider.name`` (of the
channel that answered), ``gen_ai.request.model`` (the name asked for),
``gen_ai.response.model`` (the upstream model that answered), ``gen_ai.usage.input_tokens``
and ``output_tokens`` (as in the usage row). It continues the caller's trace when the request
carries a W3C ``traceparent``. Each upstream attempt is a CLIENT span under it, failed ones
with ``error.type`` and an error status; its upstream gets the attempt span's
``traceparent``, so a traced upstream (vLLM, another gateway) joins the trace. Spans are
batched and exported over OTLP/HTTP (protobuf) in the SDK's own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .channels import kind_of
from .config import Channel, Target
from .config.model import Tracing as Settings
from .errors import GatewayError
from .usage import Record

_PROPAGATOR = TraceContextTextMapPropagator()
#: Seconds one export (with its retries) may take: a collector that is down delays a stop by
#: at most about this long, and never a request.
EXPORT_TIMEOUT = 3.0


def provider(channel: Channel) -> str:
    """``gen_ai.provider.name`` of *channel*'s kind."""
    kind = kind_of(channel)
    return kind.provider or kind.name


class Tracing:
    """The tracer of one gateway process and its OTLP/HTTP exporter."""

    def __init__(self, settings: Settings) -> None:
        assert settings.endpoint is not None
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample)))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=settings.endpoint, headers=dict(settings.headers),
            timeout=EXPORT_TIMEOUT)))
        self.tracer = self.provider.get_tracer("coderouter")

    def request(self, headers: Mapping[str, str], path: str, op: str) -> RequestTrace:
        """The span of a request just arrived on *path*, in the caller's trace if any; *op* is
        its dialect's ``gen_ai.operation.name``."""
        span = self.tracer.start_span(
            op, context=_PROPAGATOR.extract(headers), kind=SpanKind.SERVER,
            attributes={"gen_ai.operation.name": op, "http.request.method": "POST",
                        "url.path": path})
        return RequestTrace(self, span, op)

    async def close(self) -> None:
        """Export what is left, then stop (in a thread: the exporter blocks)."""
        await asyncio.to_thread(self.provider.shutdown)


class RequestTrace:
    """One request's span, and its attempts' spans under it."""

    __slots__ = ("context", "op", "span", "tracing", "upstream")

    def __init__(self, tracing: Tracing, span: Span, op: str) -> None:
        self.tracing, self.span, self.op = tracing, span, op
        self.context = set_span_in_context(span)
        #: The current attempt's ``traceparent``, sent to its upstream.
        self.upstream: dict[str, str] = {}

    @contextlib.contextmanager
    def attempt(self, target: Target, kind: str) -> Iterator[None]:
        """A span for one upstream attempt on *target* (*kind*: first, retry, failover)."""
        span = self.tracing.tracer.start_span(
            f"{self.op} {target.model}", context=self.context, kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": self.op,
                        "gen_ai.provider.name": provider(target.channel),
                        "gen_ai.request.model": target.model,
                        "coderouter.channel": target.channel.name,
                        "coderouter.attempt": kind})
        self.upstream = {}
        _PROPAGATOR.inject(self.upstream, context=set_span_in_context(span))
        try:
            yield
        except BaseException as exc:
            error = getattr(exc, "error", None)
            if isinstance(error, GatewayError):
                span.set_attribute("error.type", error.code)
                span.set_status(Status(StatusCode.ERROR, error.message))
            else:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR))
            raise
        finally:
            span.end()

    def finish(self, record: Record, target: Target | None) -> None:
        """End the request's span with what its usage row says."""
        span = self.span
        if record.model:
            span.update_name(f"{self.op} {record.model}")
        attributes: dict[str, Any] = {
            "gen_ai.request.model": record.model, "gen_ai.response.model":
            record.upstream_model if record.status < 400 else None,
            "gen_ai.provider.name": provider(target.channel) if target is not None else None,
            "gen_ai.usage.input_tokens": record.prompt_tokens,
            "gen_ai.usage.output_tokens": record.completion_tokens,
            "http.response.status_code": record.status,
            "coderouter.request_id": record.request_id, "coderouter.token": record.token,
            "coderouter.channel": record.channel, "coderouter.attempts": record.attempts,
            "coderouter.session": record.session}
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if record.status >= 400:
            span.set_attribute("error.type", str(record.status))
            if record.status >= 500:
                span.set_status(Status(StatusCode.ERROR, record.error or ""))
        span.end()

"""Prometheus metrics of one gateway, in its own registry, and the ``GET /metrics`` route.

Counted as requests finish (one observation per usage row), as upstream attempts and cooldowns
happen, and read at scrape time from the live state (reloads, usage writer, requests in flight).
The ``model`` label is the model group that served the request (an alias resolved to its
group), or ``other`` when the name asked for is not routable, so a caller cannot grow the label
set with made-up names. Quota gauges are refreshed from the quota state (memory or Redis) on
each scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .auth import is_admin
from .config import Target
from .dashboard.alerts import every_target
from .dashboard.views import QUOTA_DIMENSIONS, quotas
from .errors import InvalidApiKey
from .state import GATEWAY, Gateway
from .usage import Record
from .workers import MULTIPROCESS_DIR

#: Most model names whose group `Metrics` remembers (callers choose the names).
_GROUPS_KEPT = 4096
#: Seconds; from a fast cached answer to a long agent turn.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFB_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The gateway's metrics; hook `observe`, `attempt` and `cooldown` into its state."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "coderouter_requests", "Requests that got past authentication, by final status.",
            ["model", "channel", "status"], registry=registry)
        self.prompt_tokens = Counter(
            "coderouter_prompt_tokens", "Prompt (input) tokens, as in the usage rows.",
            ["model", "channel"], registry=registry)
        self.cached_tokens = Counter(
            "coderouter_cached_tokens",
            "Prompt tokens the upstream read from its prompt cache (part of prompt tokens); "
            "cached / prompt is the cache-hit ratio.",
            ["model", "channel"], registry=registry)
        self.completion_tokens = Counter(
            "coderouter_completion_tokens", "Completion (output) tokens, as in the usage rows.",
            ["model", "channel"], registry=registry)
        self.latency = Histogram(
            "coderouter_upstream_latency_seconds",
            "Whole request time of requests that reached a channel.",
            ["channel"], buckets=LATENCY_BUCKETS, registry=registry)
        self.ttfb = Histogram(
            "coderouter_upstream_ttfb_seconds",
            "Time until the upstream's first byte (answer or first stream event).",
            ["channel"], buckets=TTFB_BUCKETS, registry=registry)
        self.retries = Counter(
            "coderouter_upstream_retries", "Further attempts on the same target (another key).",
            ["channel"], registry=registry)
        self.failovers = Counter(
            "coderouter_upstream_failovers", "Attempts moved on to a further target.",
            ["channel"], registry=registry)
        self.cooldowns = Counter(
            "coderouter_cooldowns", "Cooldowns started, of a target or of a channel key.",
            ["channel", "kind"], registry=registry)
        self.cost = Counter(
            "coderouter_cost_usd", "Cost in US dollars, as in the usage rows.",
            ["model", "channel"], registry=registry)
        self._children: dict[tuple[Any, ...], Any] = {}
        #: The model group of each name asked for, under the config it was resolved in.
        self._groups: dict[str | None, str] = {}
        self._groups_of: object = None
        #: With several workers, where they all write their values (see `coderouter.workers`).
        self.multiprocess = os.environ.get(MULTIPROCESS_DIR)
        self.mirror: _Mirror | None = None
        self.state = _StateCollector(gateway)
        if self.multiprocess:
            self.mirror = _Mirror(self.state)
        else:
            registry.register(self.state)

    @classmethod
    def attach(cls, gateway: Gateway) -> Metrics:
        """Metrics fed by *gateway*'s finished requests, attempts and cooldowns."""
        metrics = cls(gateway)
        gateway.observers.append(metrics.observe)
        gateway.forwarder.on_attempt = metrics.attempt
        gateway.health.on_cooldown = metrics.cooldown
        return metrics

    def observe(self, record: Record) -> None:
        """Count one finished request."""
        model = self._group(record.model)
        channel = record.channel or ""
        self._series(self.requests, model, channel, str(record.status)).inc()
        if record.cost:
            self._series(self.cost, model, channel).inc(record.cost)
        if record.prompt_tokens:
            self._series(self.prompt_tokens, model, channel).inc(record.prompt_tokens)
        if record.cached_tokens:
            self._series(self.cached_tokens, model, channel).inc(record.cached_tokens)
        if record.completion_tokens:
            self._series(self.completion_tokens, model, channel).inc(record.completion_tokens)
        if record.channel is not None and record.latency_ms is not None:
            self._series(self.latency, channel).observe(record.latency_ms / 1000)
        if record.channel is not None and record.ttfb_ms is not None:
            self._series(self.ttfb, channel).observe(record.ttfb_ms / 1000)

    def _group(self, model: str | None) -> str:
        """The name of the group serving *model* (its own, or the one an alias glob names);
        ``other`` when none does. Remembered per config, for at most `_GROUPS_KEPT` names."""
        config = self.gateway.holder.current
        if config is not self._groups_of:
            self._groups, self._groups_of = {}, config
        name = self._groups.get(model)
        if name is None:
            route = config.route(model) if model else None
            name = route.name if route is not None else "other"
            if len(self._groups) < _GROUPS_KEPT:
                self._groups[model] = name
        return name

    def _series(self, metric: Any, *labels: str) -> Any:
        """*metric*'s child for *labels*, looked up once: ``labels()`` validates and locks."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def attempt(self, target: Target, kind: str) -> None:
        """Count a retry or a failover (`Forwarder.on_attempt`)."""
        if kind == "retry":
            self.retries.labels(target.channel.name).inc()
        elif kind == "failover":
            self.failovers.labels(target.channel.name).inc()

    def cooldown(self, channel: str, kind: str) -> None:
        """Count a cooldown (`Health.on_cooldown`)."""
        self.cooldowns.labels(channel, kind).inc()

    async def refresh_quotas(self) -> None:
        """Read every quota of every token and group now, for the next exposition."""
        gw = self.gateway
        config = gw.holder.current
        reports = [await gw.quotas.report(token) for token in config.tokens]
        self.state.quotas = quotas(config, reports)["quotas"]

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format *accept* asks for (Prometheus text by default); with
        several workers, every worker's merged."""
        encode, content_type = choose_encoder(accept or "")
        if self.multiprocess:
            assert self.mirror is not None
            self.mirror.update()
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=self.multiprocess)
            return encode(merged), content_type
        return encode(self.registry), content_type


class _Mirror:
    """Copies the live-state metrics into multiprocess gauges and counters, to be merged:
    gauges are summed over live workers (``*_up`` take the minimum), counters add up."""

    def __init__(self, source: Collector) -> None:
        self.source = source
        self.metrics: dict[str, Any] = {}
        self.last: dict[tuple[Any, ...], float] = {}

    def update(self) -> None:
        for family in self.source.collect():
            counter = family.type == "counter"
            for sample in family.samples:
                if counter and not sample.name.endswith("_total"):
                    continue
                metric = self.metrics.get(family.name)
                if metric is None:
                    metric = self.metrics[family.name] = (
                        Counter(family.name, family.documentation, list(sample.labels),
                                registry=None) if counter else
                        Gauge(family.name, family.documentation, list(sample.labels),
                              registry=None, multiprocess_mode=_merged_as(family.name)))
                child = metric.labels(**sample.labels) if sample.labels else metric
                if isinstance(child, Gauge):
                    child.set(sample.value)
                    continue
                key = (family.name, *sorted(sample.labels.items()))
                delta = sample.value - self.last.get(key, 0.0)
                if delta > 0:
                    child.inc(delta)
                self.last[key] = sample.value


def _merged_as(gauge: str) -> Literal["livemin", "livemostrecent", "livesum"]:
    """How the workers' values of *gauge* merge: ``*_up`` take the minimum, quota gauges the
    most recent (the scraping worker's, just read), the rest add up."""
    if gauge.endswith("_up"):
        return "livemin"
    if gauge.startswith("coderouter_quota_"):
        return "livemostrecent"
    return "livesum"


async def mirror_state(app: web.Application) -> AsyncIterator[None]:
    """With several workers: publish this worker's live state every second."""
    mirror = app[METRICS].mirror
    assert mirror is not None

    async def tick() -> None:
        while True:
            mirror.update()
            await asyncio.sleep(1.0)

    task = asyncio.create_task(tick(), name="metrics-mirror")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    mirror.update()


class _StateCollector(Collector):
    """Values read from the live gateway at scrape time."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        #: Every quota, as ``/admin/quotas`` lists them (`Metrics.refresh_quotas`).
        self.quotas: list[dict[str, Any]] = []

    def collect(self) -> Iterator[Metric]:
        yield from _target_families(self.gateway)
        yield from _quota_families(self.quotas)
        gw = self.gateway
        reloads = CounterMetricFamily(
            "coderouter_config_reloads", "Config reloads: ok swapped a new config in, failed "
            "kept the old one.", labels=["result"])
        reloads.add_metric(["ok"], gw.holder.reloads_ok)
        reloads.add_metric(["failed"], gw.holder.reloads_failed)
        yield reloads
        active = gw.drain.active
        yield GaugeMetricFamily("coderouter_requests_in_flight",
                                "Forwarded requests not finished yet.", value=len(active))
        yield GaugeMetricFamily("coderouter_streams_in_flight",
                                "Streams relaying to their callers now.",
                                value=sum(getattr(ex, "meter", None) is not None
                                          for ex in active))
        writer = gw.writer
        yield GaugeMetricFamily("coderouter_usage_rows_queued",
                                "Usage rows waiting to be written.", value=writer.queued)
        yield CounterMetricFamily("coderouter_usage_rows_written",
                                  "Usage rows written to the database.", value=writer.written)
        yield GaugeMetricFamily("coderouter_usage_rows_spooled",
                                "Usage rows parked on local disk while the database is down.",
                                value=writer.spooled)
        yield GaugeMetricFamily("coderouter_usage_database_up",
                                "1 while usage writes succeed, 0 after a failed one.",
                                value=0 if writer.problem else 1)
        shared = gw.quotas.shared_health()
        if shared is not None:
            yield GaugeMetricFamily("coderouter_state_up",
                                    "1 while Redis (shared state) answers, 0 after a failure.",
                                    value=1 if shared.up else 0)
            yield CounterMetricFamily("coderouter_state_failures",
                                      "Failed calls to Redis (shared state).",
                                      value=shared.failures)
            yield GaugeMetricFamily("coderouter_state_pending_settlements",
                                    "Settlements waiting for Redis to answer again.",
                                    value=shared.pending)
        refusals = CounterMetricFamily(
            "coderouter_refusals", "Callers the gateway refused itself (401 key, 403 model, "
            "429 quota or rate limit), by the error's code.", labels=["reason"])
        for reason, count in sorted(gw.refusals.counts.items()):
            refusals.add_metric([reason], count)
        yield refusals
        failures = CounterMetricFamily(
            "coderouter_upstream_failures", "Failed upstream attempts (connect errors, "
            "timeouts, 429, 5xx, refused channel keys), on the channel that failed.",
            labels=["channel"])
        for channel, count in sorted(gw.forwarder.failed_attempts.items()):
            failures.add_metric([channel], count)
        yield failures
        yield CounterMetricFamily("coderouter_usage_write_failures",
                                  "Failed usage batch writes (the rows are kept and retried).",
                                  value=writer.failures)


def _target_families(gw: Gateway) -> Iterator[Metric]:
    """1 per target that may be tried now (healthy, or due its trial), 0 while it cools
    down or its channel is disabled; every target of every group and rule, once."""
    up = GaugeMetricFamily("coderouter_target_up", "1 while a target may be tried, 0 while "
                           "it cools down after failures or its channel is disabled.",
                           labels=["channel", "model"])
    for target in every_target(gw.holder.current):
        cooling = gw.health.target_state(target)[0] == "cooling"
        up.add_metric(list(target.id), 0 if cooling or not target.channel.enabled else 1)
    yield up


def _quota_families(items: list[dict[str, Any]]) -> Iterator[Metric]:
    """Each quota's limit and what is left of it (used and reserved taken off), per scope
    (token or group), name, period and dimension (tokens, requests, cost)."""
    labels = ["scope", "name", "period", "dimension"]
    remaining = GaugeMetricFamily("coderouter_quota_remaining", "What a quota has left in "
                                  "its period: limit - used - reserved.", labels=labels)
    limit = GaugeMetricFamily("coderouter_quota_limit", "A quota's limit per period.",
                              labels=labels)
    for item in items:
        for dimension in QUOTA_DIMENSIONS:
            numbers = item.get(dimension)
            if numbers is None:
                continue
            names = [item["scope"], item["name"], item["period"], dimension]
            remaining.add_metric(names, numbers["remaining"])
            limit.add_metric(names, numbers["limit"])
    yield remaining
    yield limit


METRICS = web.AppKey("metrics", Metrics)


async def metrics_route(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text; the admin key is required when one is configured."""
    config = request.app[GATEWAY].holder.current
    if config.admin.key is not None and not is_admin(config, request.headers):
        raise InvalidApiKey("the admin key is required for /metrics")
    metrics = request.app[METRICS]
    await metrics.refresh_quotas()
    body, content_type = metrics.exposition(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})

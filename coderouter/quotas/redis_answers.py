"""Reading what Redis answers: the admission script's refusals and headers, usage reports.

The wording and shapes are `coderouter.quotas.model`'s, so both backends answer alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import Token
from ..errors import GatewayError
from .model import (
    INDEX,
    SCOPES,
    WINDOW,
    Calendar,
    Limits,
    Tightest,
    concurrent_report,
    has_rate,
    limits_of,
    quota_report,
    ratelimit_headers,
    refuse_concurrent,
    refuse_quota,
    refuse_rate,
    report,
    scope_label,
    tighter,
    window_report,
)

_WHAT = {1: "token", 2: "request", 3: "cost"}


def scopes_of(token: Token) -> tuple[str, ...]:
    """The Redis scope keys of *token*: its own, then its group's."""
    if token.group is None:
        return (f"t:{token.name}",)
    return (f"t:{token.name}", f"g:{token.group.name}")


def limit_arg(value: float | None) -> Any:
    """A limit as the scripts read it: -1 for none."""
    return -1 if value is None else value


def start_arg(start: float) -> str:
    return str(int(start))


def headers_of(limits: list[Limits], values: Sequence[Any]) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers of the tightest rpm and tpm limits, from the four values
    (rpm left, rpm reset, tpm left, tpm reset) the admission script answers per scope."""
    requests: Tightest | None = None
    tokens: Tightest | None = None
    for i, (_, rate) in enumerate(limits):
        if rate is None:
            continue
        rpm_left, rpm_reset, tpm_left, tpm_reset = values[4 * i:4 * i + 4]
        if rate.rpm is not None:
            requests = tighter(requests, (int(float(rpm_left)), rate.rpm, float(rpm_reset)))
        if rate.tpm is not None:
            tokens = tighter(tokens, (int(float(tpm_left)), rate.tpm, float(tpm_reset)))
    return ratelimit_headers(requests, tokens)


def refusal(token: Token, answer: Sequence[Any], calendar: Calendar) -> GatewayError:
    """The refusal the admission script's *answer* (code, scope, detail, extra) stands for."""
    code, scope, detail, extra = int(answer[0]), int(answer[1]) - 1, answer[2], int(answer[3])
    limits = limits_of(token)
    headers = headers_of(limits, answer[4:])
    label = scope_label(SCOPES[scope], token)
    quotas, rate = limits[scope]
    if code == 1:
        quota = quotas[int(detail) - 1]
        held, what = extra >= 10, extra % 10
        limit = {1: quota.tokens, 2: quota.requests, 3: quota.cost}[what] or 0
        return refuse_quota(label, quota, _WHAT[what], limit,
                            calendar.ends[INDEX[quota.period]], held, headers)
    assert rate is not None
    if code == 2:
        return refuse_concurrent(label, extra, headers)
    if code == 3:
        return refuse_rate(label, "requests", rate.rpm or 0, float(detail), headers)
    return refuse_rate(label, "tokens", rate.tpm or 0, float(detail), headers)


async def read_report(redis: Any, prefix: str, token: Token, now: float,
                      calendar: Calendar) -> dict[str, Any]:
    """`GET /v1/usage` for *token* from the counters under *prefix* (one pipeline)."""
    starts = calendar.at(now)
    limits = limits_of(token)
    pipe = redis.pipeline(transaction=False)
    for scope, (quotas, _) in zip(scopes_of(token), limits, strict=True):
        key = f"{prefix}:{scope}"
        pipe.hmget(f"{key}:held", "n", "t", "c")
        pipe.zcount(f"{key}:rpm", f"({now - WINDOW}", "+inf")
        pipe.zrange(f"{key}:rpm", -1, -1, withscores=True)
        pipe.hgetall(f"{key}:tpm")
        for quota in quotas:
            index = INDEX[quota.period]
            pipe.hmget(f"{key}:b:{index}:{start_arg(starts[index])}", "t", "r", "c")
    answers = iter(await pipe.execute())
    quotas_out: list[dict[str, Any]] = []
    rates_out: list[dict[str, Any]] = []
    for kind, (quotas, rate) in zip(SCOPES, limits, strict=False):
        n, t, c = _held(next(answers))
        count = int(next(answers))
        newest = next(answers)
        tpm = {int(sec): int(v) for sec, v in next(answers).items() if int(sec) > now - WINDOW}
        for quota in quotas:
            bt, br, bc = (float(v or 0) for v in next(answers))
            quotas_out.append(quota_report(kind, quota, calendar.ends[INDEX[quota.period]],
                                           (int(bt), int(br), bc), (t, n, c)))
        if rate is not None and has_rate(rate):
            rpm_reset = newest[0][1] + WINDOW - now if newest else 0.0
            tpm_reset = max(tpm) + WINDOW - now if tpm else 0.0
            rates_out.append({
                "scope": kind,
                "rpm": window_report(rate.rpm, count, rpm_reset),
                "tpm": window_report(rate.tpm, sum(tpm.values()) + t, tpm_reset),
                "concurrent": concurrent_report(rate.concurrent, n)})
    return report(token, quotas_out, rates_out)


def _held(values: Sequence[Any]) -> tuple[int, int, float]:
    """Requests in flight and what they reserve (zero once nothing is in flight)."""
    n, t, c = (float(v or 0) for v in values)
    if n <= 0:
        return 0, 0, 0.0
    return int(n), int(t), c

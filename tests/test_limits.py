"""Quotas and rate limits over a fake clock: nothing here sleeps."""

from __future__ import annotations

import datetime as dt

import pytest

from coderouter.config import Quota, RateLimit, Token, TokenGroup
from coderouter.errors import QuotaExceeded, RateLimited
from coderouter.quotas.memory import Limiter
from coderouter.quotas.model import SeedQuery, format_reset, period_start
from coderouter.usage import Totals
from tests.fakes import FakeClock


def at(text: str) -> float:
    """Unix time of an ISO datetime read as UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def make_token(name: str = "alice", *, group: TokenGroup | None = None,
               quotas: tuple[Quota, ...] = (), rate_limit: RateLimit | None = None) -> Token:
    return Token(name=name, key_sha256=name.encode().ljust(32, b"-"), group=group,
                 quotas=quotas, rate_limit=rate_limit)


def use(limiter: Limiter, token: Token, tokens: int, cost: float = 0.0) -> None:
    """Admit one request estimated at *tokens* and settle it to exactly that usage."""
    limiter.admit(token, estimate_tokens=tokens, estimate_cost=cost).settle(
        tokens=tokens, cost=cost)


WED = at("2026-11-25T12:00:00")  # a Wednesday


# -- periods ------------------------------------------------------------------------------------


def test_day_quota_resets_at_utc_midnight() -> None:
    """A daily quota used up stays refused until 00:00 UTC, then admits again."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    alice = make_token(quotas=(Quota(period="day", tokens=100),))
    use(limiter, alice, 100)
    clock.now = at("2026-11-25T23:59:59.999")
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' has used its daily token quota (100); it resets at 2026-11-26T00:00:00Z")
    clock.now = at("2026-11-26T00:00:00")
    limiter.admit(alice, estimate_tokens=1, estimate_cost=0).settle(tokens=7, cost=0)
    assert limiter.report(alice)["quotas"][0]["tokens"] == {
        "limit": 100, "used": 7, "reserved": 0, "remaining": 93}


def test_week_quota_resets_on_monday_midnight() -> None:
    """A weekly quota runs Monday 00:00 UTC to the next Monday; Sunday night is still refused."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    alice = make_token(quotas=(Quota(period="week", requests=1),))
    use(limiter, alice, 5)
    clock.now = at("2026-11-29T23:59:59")  # Sunday
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' has used its weekly request quota (1); it resets at 2026-11-30T00:00:00Z")
    clock.now = at("2026-11-30T00:00:00")  # Monday
    limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert limiter.report(alice)["quotas"][0]["resets_at"] == "2026-12-07T00:00:00Z"


def test_month_quota_resets_on_the_first() -> None:
    """A monthly quota resets at 00:00 UTC on the 1st, including across a year end."""
    clock = FakeClock(at("2026-11-15T08:00:00"))
    limiter = Limiter(clock)
    alice = make_token(quotas=(Quota(period="month", cost=1.5),))
    use(limiter, alice, 10, cost=1.5)
    clock.now = at("2026-11-30T23:59:59")
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' has used its monthly cost quota (1.5); it resets at 2026-12-01T00:00:00Z")
    clock.now = at("2026-12-01T00:00:00")
    use(limiter, alice, 10, cost=0.25)
    quota = limiter.report(alice)["quotas"][0]
    assert quota["resets_at"] == "2027-01-01T00:00:00Z"
    assert quota["cost"] == {"limit": 1.5, "used": 0.25, "reserved": 0.0, "remaining": 1.25}


def test_total_quota_never_resets() -> None:
    """A total quota counts forever: a year later it is still used up, and says so."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    alice = make_token(quotas=(Quota(period="total", tokens=10),))
    use(limiter, alice, 10)
    clock.now = at("2027-11-25T12:00:00")
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' has used its total token quota (10); it does not reset")
    assert limiter.report(alice)["quotas"][0]["resets_at"] is None


def test_period_start_follows_the_utc_calendar() -> None:
    """Period starts are UTC midnight, the Monday of the week, the 1st, and 0 for total."""
    now = at("2026-11-25T12:34:56")
    assert period_start("day", now) == at("2026-11-25T00:00:00")
    assert period_start("week", now) == at("2026-11-23T00:00:00")
    assert period_start("month", now) == at("2026-11-01T00:00:00")
    assert period_start("total", now) == 0.0


# -- quotas -------------------------------------------------------------------------------------


def test_burst_admits_only_what_fits_before_the_limit() -> None:
    """50 concurrent admissions against room for 5 estimates admit exactly 5."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(quotas=(Quota(period="day", tokens=5000),))
    admitted, refused = [], 0
    for _ in range(50):
        try:
            admitted.append(limiter.admit(alice, estimate_tokens=1000, estimate_cost=0))
        except QuotaExceeded:
            refused += 1
    assert (len(admitted), refused) == (5, 45)
    assert limiter.report(alice)["quotas"][0]["tokens"] == {
        "limit": 5000, "used": 0, "reserved": 5000, "remaining": 0}


def test_one_request_may_cross_the_limit_and_the_next_is_refused() -> None:
    """Admission only needs used + reserved below the limit; the crossing request settles fully."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(quotas=(Quota(period="day", tokens=100),))
    use(limiter, alice, 99)
    use(limiter, alice, 500)
    assert limiter.report(alice)["quotas"][0]["tokens"] == {
        "limit": 100, "used": 599, "reserved": 0, "remaining": 0}
    with pytest.raises(QuotaExceeded):
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)


def test_group_quota_is_shared_by_its_tokens() -> None:
    """Two tokens of one group draw from the group's quota; either is refused once it is used."""
    limiter = Limiter(FakeClock(WED))
    team = TokenGroup(name="team-a", quotas=(Quota(period="day", requests=3),))
    alice, bob = make_token("alice", group=team), make_token("bob", group=team)
    use(limiter, alice, 1)
    use(limiter, alice, 1)
    use(limiter, bob, 1)
    for token in (alice, bob):
        with pytest.raises(QuotaExceeded) as refused:
            limiter.admit(token, estimate_tokens=1, estimate_cost=0)
        assert refused.value.message == ("token group 'team-a' has used its daily request "
                                         "quota (3); it resets at 2026-11-26T00:00:00Z")
    assert limiter.report(bob)["quotas"][0]["requests"] == {
        "limit": 3, "used": 3, "reserved": 0, "remaining": 0}


def test_token_quota_is_checked_before_group_quota() -> None:
    """When both scopes are used up the token's own quota is the one named."""
    limiter = Limiter(FakeClock(WED))
    team = TokenGroup(name="team-a", quotas=(Quota(period="month", tokens=10),))
    alice = make_token(group=team, quotas=(Quota(period="day", tokens=10),))
    use(limiter, alice, 10)
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message.startswith("token 'alice' has used its daily token quota")


def test_settle_replaces_the_estimate_with_real_usage() -> None:
    """A reservation counts until settle, then only the real usage, larger or smaller, remains."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(quotas=(Quota(period="day", tokens=1000, cost=1.0),))
    first = limiter.admit(alice, estimate_tokens=500, estimate_cost=0.5)
    quota = limiter.report(alice)["quotas"][0]
    assert quota["tokens"] == {"limit": 1000, "used": 0, "reserved": 500, "remaining": 500}
    assert quota["cost"] == {"limit": 1.0, "used": 0.0, "reserved": 0.5, "remaining": 0.5}
    first.settle(tokens=800, cost=0.08)  # larger than estimated in tokens
    second = limiter.admit(alice, estimate_tokens=150, estimate_cost=0.1)
    second.settle(tokens=50, cost=0.02)  # smaller than estimated
    quota = limiter.report(alice)["quotas"][0]
    assert quota["tokens"] == {"limit": 1000, "used": 850, "reserved": 0, "remaining": 150}
    assert quota["cost"] == {"limit": 1.0, "used": 0.1, "reserved": 0.0, "remaining": 0.9}
    assert quota["requests"] is None


def test_settle_is_idempotent() -> None:
    """A second settle neither counts usage again nor frees another request's slot."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(quotas=(Quota(period="day", tokens=1000),),
                       rate_limit=RateLimit(concurrent=1))
    first = limiter.admit(alice, estimate_tokens=10, estimate_cost=0)
    first.settle(tokens=100, cost=0)
    second = limiter.admit(alice, estimate_tokens=10, estimate_cost=0)
    first.settle(tokens=999, cost=0)
    assert first.settled and not second.settled
    with pytest.raises(RateLimited):
        limiter.admit(alice, estimate_tokens=10, estimate_cost=0)
    assert limiter.report(alice)["quotas"][0]["tokens"] == {
        "limit": 1000, "used": 100, "reserved": 10, "remaining": 890}


def test_failed_request_counts_as_a_request_but_no_tokens() -> None:
    """Settling with no usage records one request and zero tokens and cost."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(quotas=(Quota(period="day", tokens=100, requests=10, cost=5.0),))
    limiter.admit(alice, estimate_tokens=60, estimate_cost=1.0).settle(tokens=0, cost=0)
    quota = limiter.report(alice)["quotas"][0]
    assert quota["tokens"] == {"limit": 100, "used": 0, "reserved": 0, "remaining": 100}
    assert quota["requests"] == {"limit": 10, "used": 1, "reserved": 0, "remaining": 9}
    assert quota["cost"] == {"limit": 5.0, "used": 0.0, "reserved": 0.0, "remaining": 5.0}


def test_unforwarded_request_counts_nothing() -> None:
    """Settled with forwarded=False, a request gives back its reservation and its rpm entry."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    alice = make_token(quotas=(Quota(period="day", tokens=100, requests=2, cost=5.0),),
                       rate_limit=RateLimit(rpm=3, concurrent=1))
    use(limiter, alice, 10)
    clock.now += 5
    held = limiter.admit(alice, estimate_tokens=60, estimate_cost=1.0)
    clock.now += 1
    held.settle(tokens=40, cost=2.0, forwarded=False)
    report = limiter.report(alice)
    assert report["quotas"][0]["tokens"] == {"limit": 100, "used": 10, "reserved": 0,
                                             "remaining": 90}
    assert report["quotas"][0]["requests"] == {"limit": 2, "used": 1, "reserved": 0,
                                               "remaining": 1}
    assert report["quotas"][0]["cost"] == {"limit": 5.0, "used": 0.0, "reserved": 0.0,
                                           "remaining": 5.0}
    assert report["rate_limits"][0]["rpm"] == {"limit": 3, "remaining": 2, "resets_in": 54}
    assert report["rate_limits"][0]["concurrent"] == {"limit": 1, "remaining": 1,
                                                      "resets_in": None}


def test_unforwarded_request_leaves_other_admissions_in_its_rpm_slot() -> None:
    """Withdrawing one admission from a shared 100 ms slot keeps the others counted."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    alice = make_token(rate_limit=RateLimit(rpm=2))
    limiter.admit(alice, estimate_tokens=0, estimate_cost=0).settle(tokens=0, cost=0)
    clock.now += 0.05
    limiter.admit(alice, estimate_tokens=0, estimate_cost=0).settle(
        tokens=0, cost=0, forwarded=False)
    kept = limiter.admit(alice, estimate_tokens=0, estimate_cost=0)
    assert kept.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(RateLimited):
        limiter.admit(alice, estimate_tokens=0, estimate_cost=0)


def test_refused_requests_consume_nothing() -> None:
    """A quota refusal adds no request, no tokens, and no rpm entry."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(quotas=(Quota(period="day", requests=1),), rate_limit=RateLimit(rpm=5))
    use(limiter, alice, 3)
    for _ in range(3):
        with pytest.raises(QuotaExceeded):
            limiter.admit(alice, estimate_tokens=3, estimate_cost=0)
    report = limiter.report(alice)
    assert report["quotas"][0]["requests"] == {
        "limit": 1, "used": 1, "reserved": 0, "remaining": 0}
    assert report["rate_limits"][0]["rpm"] == {"limit": 5, "remaining": 4, "resets_in": 60}


def test_quota_added_later_counts_usage_from_before() -> None:
    """Usage is counted for every token and group, so a quota added by a reload sees it."""
    limiter = Limiter(FakeClock(WED))
    team = TokenGroup(name="team-a")
    alice = make_token(group=team)
    for _ in range(3):
        use(limiter, alice, 100, cost=0.5)
    reloaded_team = TokenGroup(name="team-a", quotas=(Quota(period="week", cost=2.0),))
    reloaded = make_token(group=reloaded_team, quotas=(Quota(period="day", tokens=400),))
    use(limiter, reloaded, 100)
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit(reloaded, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' has used its daily token quota (400); it resets at 2026-11-26T00:00:00Z")
    assert limiter.report(reloaded)["quotas"][1]["cost"] == {
        "limit": 2.0, "used": 1.5, "reserved": 0.0, "remaining": 0.5}


def test_group_usage_stays_with_the_group_name() -> None:
    """A token moved to another group leaves its usage counted under the old group's name."""
    limiter = Limiter(FakeClock(WED))
    old = TokenGroup(name="old", quotas=(Quota(period="day", tokens=100),))
    new = TokenGroup(name="new", quotas=(Quota(period="day", tokens=100),))
    use(limiter, make_token(group=old), 100)
    use(limiter, make_token(group=new), 30)
    assert limiter.report(make_token(group=old))["quotas"][0]["tokens"]["used"] == 100
    assert limiter.report(make_token(group=new))["quotas"][0]["tokens"]["used"] == 30


# -- rate limits --------------------------------------------------------------------------------


def test_rpm_is_a_sliding_minute_with_exact_retry_after() -> None:
    """rpm counts admissions in the last 60 s; Retry-After is when the oldest one leaves."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    alice = make_token(rate_limit=RateLimit(rpm=2))
    limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    clock.now = WED + 10
    limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    clock.now = WED + 20.5
    with pytest.raises(RateLimited) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' reached its rate limit of 2 requests per minute; retry in 40s")
    assert refused.value.headers == {
        "Retry-After": "40", "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "49.5s"}
    clock.now = WED + 59.9
    with pytest.raises(RateLimited) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.headers["Retry-After"] == "1"
    clock.now = WED + 60
    limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.headers["Retry-After"] == "10"


def test_tpm_counts_settled_tokens_and_reservations() -> None:
    """tpm is settled tokens of the last 60 s plus in-flight estimates; the wait is exact."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    alice = make_token(rate_limit=RateLimit(tpm=1000))
    first = limiter.admit(alice, estimate_tokens=300, estimate_cost=0)
    clock.now = WED + 5
    first.settle(tokens=600, cost=0)
    clock.now = WED + 10
    second = limiter.admit(alice, estimate_tokens=300, estimate_cost=0)
    assert second.headers == {"x-ratelimit-limit-tokens": "1000",
                              "x-ratelimit-remaining-tokens": "100",
                              "x-ratelimit-reset-tokens": "55s"}
    third = limiter.admit(alice, estimate_tokens=300, estimate_cost=0)
    assert third.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.now = WED + 12
    with pytest.raises(RateLimited) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' reached its rate limit of 1000 tokens per minute; retry in 53s")
    assert refused.value.headers == {
        "Retry-After": "53", "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "53s"}
    second.settle(tokens=0, cost=0)
    third.settle(tokens=0, cost=0)
    assert limiter.admit(alice, estimate_tokens=1, estimate_cost=0).headers == {
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "399",
        "x-ratelimit-reset-tokens": "53s"}


def test_tpm_filled_by_reservations_alone_says_retry_in_one_second() -> None:
    """When in-flight estimates alone fill tpm no expiry helps: Retry-After is the minimum, 1."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(rate_limit=RateLimit(tpm=100))
    limiter.admit(alice, estimate_tokens=100, estimate_cost=0)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.headers["Retry-After"] == "1"
    assert refused.value.headers["x-ratelimit-reset-tokens"] == "0s"


def test_concurrent_limit_is_released_by_settle() -> None:
    """At the concurrency limit the next request is refused until one in flight settles."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(rate_limit=RateLimit(concurrent=2))
    first = limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' has 2 requests in flight, its concurrency limit; retry when one finishes")
    assert refused.value.headers == {"Retry-After": "1"}
    assert refused.value.status == 429 and refused.value.code == "rate_limit_exceeded"
    first.settle(tokens=1, cost=0)
    limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert limiter.report(alice)["rate_limits"] == [{
        "scope": "token", "rpm": None, "tpm": None,
        "concurrent": {"limit": 2, "remaining": 0, "resets_in": None}}]


def test_group_rate_limit_is_shared_and_named() -> None:
    """A group's rpm counts admissions of all its tokens and the refusal names the group."""
    limiter = Limiter(FakeClock(WED))
    team = TokenGroup(name="team-a", rate_limit=RateLimit(rpm=2))
    limiter.admit(make_token("alice", group=team), estimate_tokens=1, estimate_cost=0)
    limiter.admit(make_token("bob", group=team), estimate_tokens=1, estimate_cost=0)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(make_token("carol", group=team), estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token group 'team-a' reached its rate limit of 2 requests per minute; retry in 60s")


def test_admission_headers_come_from_the_tightest_limits() -> None:
    """x-ratelimit-* report the rpm and tpm with the least remaining, token or group."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    team = TokenGroup(name="team-a", rate_limit=RateLimit(rpm=10, tpm=100_000))
    alice = make_token(group=team, rate_limit=RateLimit(rpm=60, tpm=1000))
    limiter.admit(alice, estimate_tokens=200, estimate_cost=0).settle(tokens=250, cost=0)
    clock.now = WED + 1.5
    reservation = limiter.admit(alice, estimate_tokens=100, estimate_cost=0)
    assert reservation.headers == {
        "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "8",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "650",
        "x-ratelimit-reset-tokens": "58.5s"}


def test_no_headers_without_rate_limits() -> None:
    """A token and group without rpm or tpm get no x-ratelimit headers, on admission or 429."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(quotas=(Quota(period="day", requests=1),),
                       rate_limit=RateLimit(concurrent=5))
    assert limiter.admit(alice, estimate_tokens=1, estimate_cost=0).headers == {}
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.headers == {}


def test_quota_refusal_carries_rate_limit_headers() -> None:
    """A 429 for quota has the insufficient_quota code, no Retry-After, and x-ratelimit-*."""
    limiter = Limiter(FakeClock(WED))
    alice = make_token(quotas=(Quota(period="day", tokens=10),), rate_limit=RateLimit(rpm=60))
    use(limiter, alice, 10)
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert (refused.value.status, refused.value.code) == (429, "insufficient_quota")
    assert refused.value.headers == {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1m0s"}


def test_limit_changes_apply_on_the_next_admission() -> None:
    """Limits come from the Token passed in, so a raised rpm admits at once; counts stay."""
    limiter = Limiter(FakeClock(WED))
    strict = make_token(rate_limit=RateLimit(rpm=1))
    limiter.admit(strict, estimate_tokens=1, estimate_cost=0)
    with pytest.raises(RateLimited):
        limiter.admit(strict, estimate_tokens=1, estimate_cost=0)
    relaxed = make_token(rate_limit=RateLimit(rpm=3))
    assert limiter.admit(relaxed, estimate_tokens=1, estimate_cost=0).headers[
        "x-ratelimit-remaining-requests"] == "1"


def test_format_reset_matches_openai_style() -> None:
    """Durations print like OpenAI's headers: ms below a second, then h/m/s with decimals."""
    cases = {0: "0s", 0.012: "12ms", 0.5: "500ms", 1: "1s", 1.5: "1.5s", 59.25: "59.25s",
             60: "1m0s", 360: "6m0s", 3661: "1h1m1s", -3: "0s"}
    assert {seconds: format_reset(seconds) for seconds in cases} == cases


# -- persistence seam ---------------------------------------------------------------------------


def test_seed_plan_lists_every_scope_and_period() -> None:
    """The plan has one query per scope and period, since each period's start, plus a minute."""
    now = at("2026-11-25T12:00:00")
    plan = Limiter(FakeClock(0)).seed_plan(now)
    day, week, month = at("2026-11-25T00:00:00"), at("2026-11-23T00:00:00"), at("2026-11-01")
    assert plan == [
        SeedQuery("token", "day", day), SeedQuery("token", "week", week),
        SeedQuery("token", "month", month), SeedQuery("token", "total", 0.0),
        SeedQuery("group", "day", day), SeedQuery("group", "week", week),
        SeedQuery("group", "month", month), SeedQuery("group", "total", 0.0),
        SeedQuery("token", "minute", now - 60), SeedQuery("group", "minute", now - 60)]
    assert Limiter(FakeClock(now)).seed_plan() == plan


def test_seed_then_admit_respects_seeded_usage() -> None:
    """Seeded period totals count like settled usage, per token and per group."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    team = TokenGroup(name="team-a", quotas=(Quota(period="month", requests=100),))
    alice = make_token(group=team, quotas=(Quota(period="day", tokens=1000),))
    for query in limiter.seed_plan():
        totals = {
            ("token", "day"): {"alice": Totals(tokens=990, requests=4, cost=0.1)},
            ("group", "month"): {"team-a": Totals(tokens=5000, requests=98, cost=2.0)},
        }.get((query.scope, query.period), {})
        limiter.seed(query, totals)
    use(limiter, alice, 10)
    with pytest.raises(QuotaExceeded) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' has used its daily token quota (1000); it resets at 2026-11-26T00:00:00Z")
    report = limiter.report(alice)
    assert report["quotas"][1]["requests"] == {
        "limit": 100, "used": 99, "reserved": 0, "remaining": 1}


def test_seed_is_idempotent_and_stale_seeds_roll_over() -> None:
    """Seeding twice sets rather than adds; a seed for yesterday is dropped at the next use."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    alice = make_token(quotas=(Quota(period="day", tokens=1000),))
    query = SeedQuery("token", "day", at("2026-11-25T00:00:00"))
    limiter.seed(query, {"alice": Totals(tokens=400, requests=2)})
    limiter.seed(query, {"alice": Totals(tokens=400, requests=2)})
    assert limiter.report(alice)["quotas"][0]["tokens"]["used"] == 400
    limiter.seed(SeedQuery("token", "day", at("2026-11-24T00:00:00")),
                 {"alice": Totals(tokens=999)})
    assert limiter.report(alice)["quotas"][0]["tokens"]["used"] == 0


def test_seeded_minute_fills_the_windows_until_a_minute_after_seeding() -> None:
    """A minute seed counts in rpm/tpm as if used at seed time, and drains 60 s later."""
    clock = FakeClock(WED)
    limiter = Limiter(clock)
    alice = make_token(rate_limit=RateLimit(rpm=3, tpm=1000))
    limiter.seed(SeedQuery("token", "minute", WED - 60), {"alice": Totals(tokens=900, requests=2)})
    assert limiter.admit(alice, estimate_tokens=200, estimate_cost=0).headers == {
        "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m0s"}
    clock.now = WED + 20
    with pytest.raises(RateLimited) as refused:
        limiter.admit(alice, estimate_tokens=1, estimate_cost=0)
    assert refused.value.message == (
        "token 'alice' reached its rate limit of 3 requests per minute; retry in 40s")


# -- GET /v1/usage ------------------------------------------------------------------------------


def test_report_is_the_usage_json() -> None:
    """report() gives token, group, every quota of both scopes and every configured rate limit."""
    clock = FakeClock(at("2026-11-24T10:00:00"))
    limiter = Limiter(clock)
    team = TokenGroup(name="team-a",
                      quotas=(Quota(period="month", tokens=50_000_000, requests=100_000,
                                    cost=200.0),),
                      rate_limit=RateLimit(rpm=600, tpm=2_000_000, concurrent=50))
    alice = make_token(group=team, quotas=(Quota(period="day", tokens=1_000_000),),
                       rate_limit=RateLimit(rpm=60))
    use(limiter, alice, 1234, cost=0.0125)
    clock.now += 48
    in_flight = limiter.admit(alice, estimate_tokens=766, estimate_cost=0.01)
    assert in_flight.headers["x-ratelimit-remaining-requests"] == "58"
    assert limiter.report(alice) == {
        "token": "alice", "group": "team-a",
        "quotas": [
            {"scope": "token", "period": "day", "resets_at": "2026-11-25T00:00:00Z",
             "tokens": {"limit": 1_000_000, "used": 1234, "reserved": 766,
                        "remaining": 998_000},
             "requests": None, "cost": None},
            {"scope": "group", "period": "month", "resets_at": "2026-12-01T00:00:00Z",
             "tokens": {"limit": 50_000_000, "used": 1234, "reserved": 766,
                        "remaining": 49_998_000},
             "requests": {"limit": 100_000, "used": 1, "reserved": 1, "remaining": 99_998},
             "cost": {"limit": 200.0, "used": 0.0125, "reserved": 0.01,
                      "remaining": 199.9775}},
        ],
        "rate_limits": [
            {"scope": "token", "rpm": {"limit": 60, "remaining": 58, "resets_in": 60},
             "tpm": None, "concurrent": None},
            {"scope": "group", "rpm": {"limit": 600, "remaining": 598, "resets_in": 60},
             "tpm": {"limit": 2_000_000, "remaining": 1_998_000, "resets_in": 12},
             "concurrent": {"limit": 50, "remaining": 49, "resets_in": None}},
        ],
    }


def test_report_of_a_token_without_group_or_limits() -> None:
    """A token with no group and no limits reports a null group and empty lists."""
    limiter = Limiter(FakeClock(WED))
    bob = make_token("bob", rate_limit=RateLimit())
    use(limiter, bob, 5)
    assert limiter.report(bob) == {"token": "bob", "group": None, "quotas": [],
                                   "rate_limits": []}

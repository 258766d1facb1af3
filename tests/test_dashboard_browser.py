"""/dashboard and /me in a real browser: Debian's chromium, headless, driven by chromedriver.

A real ``coderouter serve`` process runs on a usage table holding known rows plus real
traffic; the tests sign in through the pages' forms and compare what the pages show with the
table. Screenshots land in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from coderouter.config import hash_key
from tests import dashboard_data as data

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("CI"):
        raise RuntimeError("chromium and chromium-driver must be installed (see .ci/run)")
    pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium "
                "chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ADMIN = "cr-admin-browser-0123456789abcdefghij"
ALICE = "sk-cr-alice-browser-0123456789abcdefghijkl"
BOB = "sk-cr-bob-browser-0123456789abcdefghijklmn"
CAROL = "sk-cr-carol-browser-0123456789abcdefghijk"
CHANNEL_KEYS = ["sk-upstream-browser-key-0", "sk-upstream-browser-key-1"]
SECRETS = [ADMIN, ALICE, BOB, CAROL, *CHANNEL_KEYS]
ARTIFACTS = Path(__file__).parent / "artifacts"
WAIT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(url: str, key: str | None = None, body: dict[str, Any] | None = None) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {key}"}
                                                 if key else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Served:
    def __init__(self, url: str, db: str, config_path: Path) -> None:
        self.url = url
        self.db = db
        self.config_path = config_path

    def rows(self) -> list[dict[str, Any]]:
        return data.table_rows(self.db)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """``coderouter serve`` on known rows, after real traffic that cooled a target."""
    folder = Path(tempfile.mkdtemp(prefix="cr-browser-"))
    db = str(folder / "usage.sqlite")
    now = time.time()
    data.write_rows(db, data.known_rows(now, count=300))
    port = free_port()
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "database": {"path": db},
        "admin": {"key": ADMIN},
        "log": {"access": False},
        "capture": {"sample": 1},
        "channels": [
            {"name": "mock", "type": "mock"},
            {"name": "dead", "type": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1",
             "keys": CHANNEL_KEYS}],
        "model_groups": [
            {"name": "smart", "targets": [{"channel": "mock", "model": "mock-1"}],
             "price": {"input": 1.0, "output": 2.0},
             "rules": [{"name": "long", "when": {"prompt_tokens_over": 100_000},
                        "targets": [{"channel": "mock", "model": "mock-long"}]}]},
            {"name": "flaky", "cooldown": "1h", "targets": [
                {"channel": "dead", "model": "dead-model", "priority": 0},
                {"channel": "mock", "model": "mock-1", "priority": 1}]}],
        "token_groups": [{"name": "team", "quota": {"tokens": 2_000_000, "period": "month"}}],
        "tokens": [
            {"name": "alice", "key_sha256": hash_key(ALICE).hex(), "group": "team",
             "quota": {"requests": 400, "period": "day"}},
            {"name": "bob", "key_sha256": hash_key(BOB).hex(),
             "quota": {"cost": 5, "period": "total"}, "rate_limit": {"rpm": 60}},
            {"name": "carol", "key_sha256": hash_key(CAROL).hex(),
             "quota": {"requests": 1, "period": "day"}}],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (folder / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "coderouter", "serve", "-c", str(path)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if http(url + "/healthz") == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("coderouter serve did not start:\n"
                            + (folder / "serve.log").read_text())
            time.sleep(0.1)
        chat = {"messages": [{"role": "user", "content": "hello there"}]}
        for model in ("smart", "smart", "flaky"):
            assert http(url + "/v1/chat/completions", ALICE, {**chat, "model": model}) == 200
        assert http(url + "/v1/chat/completions", BOB, {**chat, "model": "smart"}) == 200
        assert http(url + "/v1/chat/completions", BOB, {**chat, "model": "nope"}) == 404
        # carol (1 request a day) is at her quota: known rows of today, or this one
        assert http(url + "/v1/chat/completions", CAROL, {**chat, "model": "smart"}) in (200, 429)
        assert http(url + "/admin/usage", ADMIN) == 200  # flushes the writer
        yield Served(url, db, path)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="cr-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--window-size=1280,900", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: webdriver.Chrome, condition: Any, what: str) -> Any:
    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
        lambda d: condition(d), message=f"timed out waiting for {what}")


def sign_in(driver: webdriver.Chrome, url: str, key: str) -> None:
    driver.get(url)
    driver.execute_script("sessionStorage.clear()")
    driver.get(url)
    field = wait(driver, lambda d: d.find_element(By.ID, "key"), "the login form")
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()


def loaded(driver: webdriver.Chrome) -> None:
    """Wait for the first refresh after sign-in to have drawn the page."""
    wait(driver, lambda d: d.find_element(By.ID, "status").text.startswith("Updated"),
         "the page to load its data")


# The page redraws itself every few seconds: read what it shows in one script call, so no
# element goes stale between finding it and reading it.

def attrs(driver: webdriver.Chrome, css: str, *names: str) -> list[list[str | None]]:
    """For each element matching *css*, its attributes *names* (``text``: its visible text)."""
    return list(driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => arguments[1].map("
        "n => n === 'text' ? e.innerText : e.getAttribute(n)));", css, list(names)))


def value(driver: webdriver.Chrome, element_id: str) -> str:
    return str(attrs(driver, f"#{element_id}", "data-value")[0][0])


def text(driver: webdriver.Chrome, css: str) -> str:
    found = attrs(driver, css, "text")
    return str(found[0][0]) if found else ""


def no_secrets(driver: webdriver.Chrome) -> None:
    source = driver.page_source
    leaked = [secret for secret in SECRETS if secret in source]
    assert not leaked, "a key is in the page"


def select_range(driver: webdriver.Chrome, name: str) -> None:
    driver.execute_script(
        "const s = document.getElementById('range'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('change'));", name)


def shown_window(driver: webdriver.Chrome, step: int) -> tuple[float, float, int]:
    """The range the page shows (it writes it on #totals), once it has the bucket *step*."""
    wait(driver, lambda d: attrs(d, "#totals", "data-step") == [[str(step)]],
         f"the page to show buckets of {step}s")
    ((since, until, shown),) = attrs(driver, "#totals", "data-since", "data-until", "data-step")
    return float(since or "nan"), float(until or "nan"), int(shown or 0)


def screenshot(driver: webdriver.Chrome, name: str, width: int = 1280, height: int = 900,
               dark: bool = False, full: bool = True) -> None:
    driver.set_window_size(width, height)
    theme = "dark" if dark else "light"
    for _ in range(3):  # the theme button cycles auto, light, dark
        if driver.execute_script("return document.documentElement.dataset.theme") == theme:
            break
        # a script's click: an open modal dialog (the row view) takes the pointer's
        driver.execute_script("document.getElementById('theme').click()")
    time.sleep(0.4)
    if full:
        total = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(int(total) + 20, 6000))
        time.sleep(0.3)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    driver.set_window_size(1280, 900)


def test_a_wrong_key_shows_a_clear_message(served: Served, browser: webdriver.Chrome) -> None:
    """A wrong key, or a token's key on /dashboard, is refused with the gateway's reason."""
    sign_in(browser, served.url + "/dashboard", "sk-not-a-real-key")
    message = wait(browser, lambda d: d.find_element(By.ID, "login-message"), "a message")
    wait(browser, lambda d: message.is_displayed() and message.text, "the message text")
    assert message.text == "That key was refused: this route needs the admin key, sent as " \
                           "'Authorization: Bearer KEY'"
    assert not browser.find_element(By.ID, "main").is_displayed()
    screenshot(browser, "dashboard-wrong-key", full=False)
    sign_in(browser, served.url + "/dashboard", ALICE)
    wait(browser, lambda d: "needs the admin key" in text(d, "#login-message"), "the message")
    no_secrets(browser)
    sign_in(browser, served.url + "/me", "sk-not-a-real-key")
    wait(browser, lambda d: text(d, "#login-message") == "That key was refused: invalid API key",
         "the /me message")
    no_secrets(browser)


def test_dashboard_numbers_equal_the_usage_table(served: Served,
                                                 browser: webdriver.Chrome) -> None:
    """Totals, every bar of the requests chart and the cost points equal the table's."""
    sign_in(browser, served.url + "/dashboard", ADMIN)
    loaded(browser)
    no_secrets(browser)
    select_range(browser, "30d")
    since, until, step = shown_window(browser, 86400)
    assert since == (until - 30 * 86400) // 86400 * 86400
    rows = served.rows()
    expected = data.overview(rows, since, until, step)
    totals = expected["totals"]
    wait(browser, lambda d: value(d, "total-requests") == str(totals["requests"]),
         "the 30-day totals")
    assert text(browser, "#total-requests .value") == f"{totals['requests']:,}"
    assert text(browser, "#total-prompt .value") == f"{totals['prompt_tokens']:,}"
    assert text(browser, "#total-completion .value") == f"{totals['completion_tokens']:,}"
    assert text(browser, "#total-prompt .sub") == f"{totals['cached_tokens']:,} cached"
    writes = totals["cache_write_5m_tokens"] + totals["cache_write_1h_tokens"]
    assert text(browser, "#total-cache-writes .value") == f"{writes:,}"
    assert text(browser, "#total-cache-writes .sub") == \
        f"{totals['cache_write_1h_tokens']:,} kept 1 h"
    assert text(browser, "#total-errors .sub") == f"{totals['errors']:,} errors"
    assert text(browser, "#total-refused .value") == f"{totals['refused']:,}" != "0"
    assert float(value(browser, "total-cost")) == pytest.approx(totals["cost"], abs=2e-6)
    assert float(value(browser, "total-latency")) == totals["latency_p50"]
    assert float(value(browser, "total-ttfb")) == totals["ttfb_p50"]

    def points(chart: str, series: str) -> list[tuple[float, float]]:
        found = attrs(browser, f"#{chart} [data-series={series}] [data-t]", "data-t", "data-v")
        return [(float(t or "nan"), float(v or "nan")) for t, v in found]

    ok = [(p["t"], p["requests"] - p["errors"] - p["refused"]) for p in expected["series"]]
    errors = [(p["t"], p["errors"]) for p in expected["series"]]
    assert points("chart-requests", "refused") == [
        (p["t"], p["refused"]) for p in expected["series"]]
    assert points("chart-requests", "ok") == ok and len(ok) in (30, 31)
    assert points("chart-requests", "errors") == errors
    assert points("chart-tokens", "completion_tokens") == [
        (p["t"], p["completion_tokens"]) for p in expected["series"]]
    cost = points("chart-cost", "cost")
    assert [t for t, _ in cost] == [p["t"] for p in expected["series"]]
    assert all(abs(v - p["cost"]) <= 2e-6 for (_, v), p in zip(cost, expected["series"],
                                                               strict=True))
    p95 = points("chart-latency", "latency_p95")
    assert p95 == [(p["t"], p["latency_p95"]) for p in expected["series"]
                   if p["latency_p95"] is not None]

    # per session: each conversation's background calls (titles, classifiers) apart
    browser.execute_script("document.querySelector('[data-by=session]').click()")
    picked = data.select(rows, since, until)
    sessions = {r["session"] or "" for r in picked}  # no session: data-key ""
    wait(browser, lambda d: {k for (k,) in attrs(d, "#breakdown-table tbody tr", "data-key")}
         == sessions, "the breakdown by session")
    headers = [h for (h,) in attrs(browser, "#breakdown-table thead th", "text")]
    column = headers.index("Background") + 1
    shown = dict(attrs(browser, "#breakdown-table tbody tr", "data-key")[i] + [cell]
                 for i, (cell,) in enumerate(attrs(
                     browser, f"#breakdown-table tbody td:nth-child({column})", "text")))
    assert {k: v.rsplit(" ", 1)[1] for k, v in shown.items()} == {
        s: f"({sum(r['background'] for r in picked if (r['session'] or '') == s)})"
        for s in sessions}
    screenshot(browser, "dashboard-light")
    screenshot(browser, "dashboard-top", full=False)
    screenshot(browser, "dashboard-dark", dark=True)
    screenshot(browser, "dashboard-phone", width=390, height=844, full=False)
    no_secrets(browser)


def test_dashboard_channels_quotas_requests_config(served: Served,
                                                   browser: webdriver.Chrome) -> None:
    """A cooling target shows as cooling; a quota bar shows the table's count; a row opens."""
    sign_in(browser, served.url + "/dashboard", ADMIN)
    loaded(browser)
    dead = "[data-group=flaky] tr.target[data-channel=dead]"
    assert attrs(browser, dead, "data-state", "data-model") == [["cooling", "dead-model"]]
    assert text(browser, f"{dead} .state").startswith("cooling until ")
    assert attrs(browser, f"{dead} .chip", "text") == [["#0 ready"], ["#1 ready"]]
    # the request that failed over from dead counts on dead, with its error
    cells = [t for (t,) in attrs(browser, f"{dead} td", "text")]
    assert cells[4:6] == ["1", "100.0%"], cells
    assert " 502: upstream connection failed: ClientConnectorError" in cells[-1], cells
    long = "[data-group=smart] tr.target[data-rule=long]"
    assert attrs(browser, long, "data-channel", "data-model", "data-state") == [
        ["mock", "mock-long", "healthy"]]
    assert text(browser, "[data-group=smart] h4.rule") == "rule long"
    mock = "[data-group=smart] tr.target[data-channel=mock]:not([data-rule])"
    assert attrs(browser, mock, "data-state") == [["healthy"]]

    rows = served.rows()
    day_start = time.time() // 86400 * 86400
    alice_today = [r for r in rows if r["token"] == "alice" and r["attempts"] > 0
                   and r["ts"] >= day_start]
    bar = ".quota[data-scope=token][data-name=alice][data-period=day] [data-dim=requests]"
    assert attrs(browser, bar, "data-used", "data-limit") == [[str(len(alice_today)), "400"]]
    assert text(browser, f"{bar} .bar-text") == f"{len(alice_today)} / 400"
    assert browser.find_elements(By.CSS_SELECTOR, ".quota[data-scope=group][data-name=team]")
    # times are labelled with the clock they are on (the browser's, here the test machine's)
    offset = time.localtime().tm_gmtoff // 60
    zone = "UTC" if offset == 0 else (f"UTC{'+' if offset > 0 else '-'}"
                                      f"{abs(offset) // 60:02d}:{abs(offset) % 60:02d}")
    assert text(browser, "[data-zone]") == f"times in {zone}"
    resets = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(day_start + 86400))
    period = ".quota[data-scope=token][data-name=alice][data-period=day] .muted"
    assert text(browser, period).endswith(f"· day · resets {resets} {zone}")

    newest = max(rows, key=lambda r: (r["ts"], r["id"]))
    shown = attrs(browser, "#request-table tbody tr", "data-id")
    assert shown == [[str(r["id"])] for r in sorted(rows, key=lambda r: (-r["ts"], -r["id"]))[:50]]
    browser.execute_script("document.querySelector('#request-table tbody tr').click()")
    dialog = wait(browser, lambda d: d.find_element(By.ID, "row-dialog"), "the row dialog")
    wait(browser, lambda d: dialog.is_displayed(), "the row dialog to open")
    fields = {dd.get_attribute("data-field"): dd.text
              for dd in dialog.find_elements(By.CSS_SELECTOR, "dd")}
    assert fields.get("request_id") == newest["request_id"], fields
    assert fields["status"] == str(newest["status"]) and fields["model"] == newest["model"]
    assert set(fields) == set(newest)
    screenshot(browser, "dashboard-row", full=False)
    browser.execute_script("document.getElementById('row-dialog').close();"
                           "document.getElementById('channels').scrollIntoView()")
    screenshot(browser, "dashboard-channels", full=False)
    browser.execute_script("window.scrollTo(0, 0)")

    browser.find_element(By.CSS_SELECTOR, "#request-filters [name=token]").send_keys("bob\n")
    wait(browser, lambda d: {t for (t,) in attrs(d, "#request-table tbody td:nth-child(3)",
                                                 "text")} == {"bob"}, "the token filter")
    assert text(browser, "#config-line") == (
        "2 channels, 2 routable models, 1 token group, 3 tokens")
    assert attrs(browser, "#last-reload", "data-result") == [["none"]]
    # bob's cost quota: the flaky group's unpriced targets are named, and prices are shown
    warnings = [w for (w,) in attrs(browser, "#config-warnings li", "text")]
    assert [w.split(" has no price")[0] for w in warnings if "has no price" in w] == [
        "model_groups[1]: 'flaky' served by dead/dead-model",
        "model_groups[1]: 'flaky' served by mock/mock-1"]
    assert "smart\tmock/mock-1 $1.0000 / $2.0000\n" in text(browser, "#config")
    assert "dead/dead-model (no price)" in text(browser, "#config")
    no_secrets(browser)


def test_dashboard_refreshes_on_its_own(served: Served, browser: webdriver.Chrome) -> None:
    """New traffic appears without a reload of the page."""
    sign_in(browser, served.url + "/dashboard", ADMIN)
    loaded(browser)
    before = int(value(browser, "total-requests"))
    assert http(served.url + "/v1/chat/completions", ALICE, {
        "model": "smart", "messages": [{"role": "user", "content": "again"}]}) == 200
    wait(browser, lambda d: int(value(d, "total-requests")) == before + 1, "the next refresh")


def test_me_shows_only_the_callers_token(served: Served, browser: webdriver.Chrome) -> None:
    """/me signed in as bob: bob's totals, bob's quota, only bob's requests."""
    sign_in(browser, served.url + "/me", BOB)
    loaded(browser)
    no_secrets(browser)
    assert text(browser, "#who") == "bob"
    select_range(browser, "30d")
    since, until, step = shown_window(browser, 86400)
    rows = served.rows()
    expected = data.overview(rows, since, until, step, lambda r: r["token"] == "bob")
    wait(browser, lambda d: value(d, "total-requests") == str(expected["totals"]["requests"]),
         "bob's 30-day totals")
    assert text(browser, "#total-prompt .value") == f"{expected['totals']['prompt_tokens']:,}"
    bars = attrs(browser, "#chart-requests [data-series=ok] [data-t]", "data-v")
    assert [float(v or "nan") for (v,) in bars] == [
        p["requests"] - p["errors"] - p["refused"] for p in expected["series"]]
    bob_rows = sorted((r for r in rows if r["token"] == "bob"), key=lambda r: (-r["ts"], -r["id"]))
    shown = attrs(browser, "#request-table tbody tr", "data-id")
    assert shown == [[str(r["id"])] for r in bob_rows[:50]]
    others = {r["request_id"] for r in rows if r["token"] != "bob"}
    assert not any(rid in browser.page_source for rid in others)
    cost = sum(r["cost"] for r in rows if r["token"] == "bob" and r["attempts"] > 0)
    ((used,),) = attrs(browser, ".quota[data-scope=token] [data-dim=cost]", "data-used")
    assert float(used or "nan") == pytest.approx(cost, abs=2e-6)
    assert attrs(browser, ".quota", "data-scope", "data-name") == [["token", "bob"]]
    assert "rpm" in text(browser, "#rate-limits")
    screenshot(browser, "me-light")
    screenshot(browser, "me-top", full=False)
    screenshot(browser, "me-dark-phone", width=390, height=844, dark=True, full=False)
    no_secrets(browser)


def test_custom_range(served: Served, browser: webdriver.Chrome) -> None:
    """A custom from/to shows that range, in buckets small enough for at most 60 points."""
    sign_in(browser, served.url + "/dashboard", ADMIN)
    loaded(browser)
    browser.execute_script(
        "const s = document.getElementById('range'); s.value = 'custom';"
        "s.dispatchEvent(new Event('change'));"
        "document.getElementById('since').value = arguments[0];"
        "const u = document.getElementById('until'); u.value = arguments[1];"
        "u.dispatchEvent(new Event('change'));",
        time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() - 10 * 86400)),
        time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() - 4 * 86400)))
    since, until, step = shown_window(browser, 3 * 3600)
    assert 6 * 86400 - 60 <= until - since <= 6 * 86400 + step
    expected = data.overview(served.rows(), since, until, step)
    wait(browser, lambda d: value(d, "total-requests") == str(expected["totals"]["requests"]),
         "the custom range's totals")
    bars = attrs(browser, "#chart-requests [data-series=errors] [data-t]", "data-t", "data-v")
    assert [(float(t or "nan"), float(v or "nan")) for t, v in bars] == [
        (p["t"], p["errors"]) for p in expected["series"]]


def test_the_alert_strip(served: Served, browser: webdriver.Chrome) -> None:
    """At the top: the cooling target with a countdown that runs, the token at its quota,
    and a failed reload until the file is fixed."""
    sign_in(browser, served.url + "/dashboard", ADMIN)
    loaded(browser)
    cooling = "#alerts [data-kind=cooling][data-channel=dead][data-model=dead-model]"
    wait(browser, lambda d: attrs(d, cooling, "data-until"), "the cooling target's alert")
    first = text(browser, f"{cooling} .countdown")
    assert re.fullmatch(r"(59|60) min \d{1,2} s", first), first
    wait(browser, lambda d: text(d, f"{cooling} .countdown") != first, "the countdown to run")
    quota = "#alerts [data-kind=quota][data-scope=token][data-name=carol][data-period=day]"
    resets = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() // 86400 * 86400
                                                              + 86400))
    assert re.fullmatch(rf"token carol at its day quota \(\d+\.\d%\), resets {resets} UTC\S*",
                        text(browser, quota)), text(browser, quota)
    assert not attrs(browser, "#alerts [data-kind=reload]", "text")
    assert browser.execute_script(
        "return document.getElementById('alerts').getBoundingClientRect().top") \
        < browser.execute_script(
        "return document.getElementById('overview').getBoundingClientRect().top")
    good = served.config_path.read_text()
    try:
        served.config_path.write_text("channels: 3\n")
        wait(browser, lambda d: attrs(d, "#alerts [data-kind=reload]", "text"),
             "the failed reload's alert")
        assert text(browser, "#alerts [data-kind=reload]").startswith("Reload failed ")
        screenshot(browser, "dashboard-alerts", full=False)
    finally:
        served.config_path.write_text(good)
    no_secrets(browser)


def test_a_failed_reload_shows_its_errors(served: Served, browser: webdriver.Chrome) -> None:
    """An invalid config saved while serving: the page says the reload failed, with every
    error's YAML path; the old config keeps serving."""
    good = served.config_path.read_text()
    config = yaml.safe_load(good)
    config["model_groups"][0]["targets"][0]["channel"] = "nowhere"
    config["tokens"][0]["group"] = "nogroup"
    try:
        served.config_path.write_text(yaml.safe_dump(config))
        sign_in(browser, served.url + "/dashboard", ADMIN)
        loaded(browser)
        wait(browser, lambda d: attrs(d, "#last-reload", "data-result") == [["failed"]],
             "the failed reload on the page")
        errors = [t for (t,) in attrs(browser, "#last-reload li", "text")]
        assert any(e.startswith("model_groups[0].targets[0].channel: ") for e in errors)
        assert any(e.startswith("tokens[0].group: ") for e in errors)
        assert text(browser, "#config-line") == (
            "2 channels, 2 routable models, 1 token group, 3 tokens")
        browser.execute_script("document.getElementById('config').scrollIntoView()")
        screenshot(browser, "dashboard-reload-failed", full=False)
        no_secrets(browser)
    finally:
        served.config_path.write_text(good)


def test_the_request_view_shows_captured_bodies(served: Served,
                                                browser: webdriver.Chrome) -> None:
    """With capture on, a click on a request shows its body and the answer, secrets
    scrubbed."""
    content = "please summarise the capture test " + ALICE
    assert http(served.url + "/v1/chat/completions", BOB, {
        "model": "smart", "messages": [{"role": "user", "content": content}]}) == 200
    assert http(served.url + "/admin/usage", ADMIN) == 200  # flushes the writer
    newest = max(served.rows(), key=lambda r: (r["ts"], r["id"]))
    sign_in(browser, served.url + "/dashboard", ADMIN)
    loaded(browser)
    row = f"#request-table tbody tr[data-id='{newest['id']}']"
    wait(browser, lambda d: attrs(d, row, "data-id"), "the new request in the table")
    browser.execute_script(f"document.querySelector(\"{row}\").click()")
    wait(browser, lambda d: text(d, "#capture-request"), "the captured request body")
    shown = text(browser, "#capture-request")
    assert "please summarise the capture test [REDACTED]" in shown
    assert '"model": "smart"' in shown  # pretty-printed JSON
    assert text(browser, "#capture-response")
    no_secrets(browser)
    browser.execute_script("document.getElementById('row-dialog').close()")

"""Parsing wrk's summary, percentiles, added TTFB, and the rendered tables."""

from __future__ import annotations

import math

from bench import load, report, suite, threads

WRK_OUT = """Running 3s test @ http://127.0.0.1:1/v1/chat/completions
BENCHJSON {"requests":3000,"duration_us":3000000,"bytes":1,"connect_errors":0,"read_errors":1,\
"write_errors":0,"timeouts":2,"non2xx":5,"mean_us":1500.0,"max_us":9000,"p50_us":1200,\
"p90_us":2000,"p99_us":4000}
"""


def test_parse_wrk_reads_the_lua_summary() -> None:
    """Requests, rate, percentiles in ms, and errors come from the BENCHJSON line."""
    r = load.parse_wrk(WRK_OUT, 32)
    assert (r.requests, r.rps, r.p50_ms, r.p99_ms) == (3000, 1000.0, 1.2, 4.0)
    assert (r.errors, r.non2xx) == (3, 5)


def test_percentile_is_nearest_rank() -> None:
    """p50 of 1..100 is 50 and p99 is 99; empty input is NaN."""
    values = [float(v) for v in range(100, 0, -1)]
    assert suite.percentile(values, 50) == 50.0
    assert suite.percentile(values, 99) == 99.0
    assert math.isnan(suite.percentile([], 50))


def test_py_spy_dump_names_threads() -> None:
    """Native ids map to Python names; the aiosqlite worker is the usage writer."""
    dump = ('Thread 10 (active+gil): "MainThread"\n'
            'Thread 12 (idle): "Thread-1 (_connection_worker_thread)"\n')
    names = threads.parse_dump(dump)
    assert threads.role(12, 10, "coderouter", names) == threads.WRITER
    assert threads.role(10, 10, "coderouter", names) == "main"


def _results() -> dict[str, dict[str, object]]:
    def target(rps: float, cpu: float, ttfb: float) -> dict[str, object]:
        return {"nonstream_c32": {"rps": rps, "cpu_ms_per_req": cpu},
                "nonstream_c128": {"rps": rps, "cpu_ms_per_req": cpu},
                "ttfb_sequential": {"ttfb_p50_ms": ttfb},
                "ttfb_concurrent": {"ttfb_p99_ms": ttfb * 10, "chunk_by_chunk": True},
                "rss_idle_mb": 20.0, "sanity_problems": []}
    return {"direct": target(100.0, 0.01, 0.2), "nginx": target(80.0, 0.02, 0.3),
            "coderouter": target(10.0, 0.08, 0.5)}


def test_ratios_and_checks_compare_the_same_run() -> None:
    """Gateway/nginx CPU ratio and added TTFB are computed from the given results."""
    res = _results()
    report.enrich(res)
    assert res["coderouter"]["ttfb_sequential"]["added_ttfb_p50_ms"] == 0.3  # type: ignore[index]
    ratios = report.ratios(res)
    assert ratios["coderouter/nginx"]["CPU ms/req, 32 conns"] == 4.0
    verdicts = {c.name: c.verdict for c in report.checks(res)}
    assert verdicts["CPU per non-stream request vs nginx, 32 conns"] == "PASS"
    assert verdicts["added TTFB p50, one stream at a time"] == "PASS"
    assert verdicts["RSS with 1000 streams open"] == "N/A"


def test_markdown_table_has_one_column_per_target_and_ratio() -> None:
    """Header: metric, each target, then gateway/direct and gateway/nginx."""
    md = report.markdown_table(_results())
    header = md.splitlines()[0]
    assert header == ("| metric | direct | nginx | coderouter | coderouter/direct "
                      "| coderouter/nginx |")
    assert "| req/s, 32 conns | 100 | 80 | 10 | 0.10x | 0.12x |" in md


def test_baseline_redis_and_translated_rows_are_compared_in_the_same_run() -> None:
    """A baseline commit's gateway gets a ratio column and a never-slower check; the Redis
    target and the translated stream are judged against the in-memory pass-through."""
    res = _results()
    res["coderouter"]["stream_c32"] = {"cpu_ms_per_req": 0.1}
    res["coderouter"]["messages_stream_c32"] = {"cpu_ms_per_req": 0.15}
    res["coderouter-redis"] = {"nonstream_c128": {"cpu_ms_per_req": 0.1}}
    res["coderouter@abc1234"] = {"nonstream_c32": {"cpu_ms_per_req": 0.1},
                                 "nonstream_c128": {"cpu_ms_per_req": 0.07}}
    ratios = report.ratios(res)
    assert ratios["coderouter/coderouter@abc1234"]["CPU ms/req, 32 conns"] == 0.8
    header, _rows = report.table(res)
    assert header[-1] == "coderouter/coderouter@abc1234"
    verdicts = {c.name: (c.value, c.verdict) for c in report.checks(res)}
    assert verdicts["CPU per translated stream vs pass-through stream"] == ("1.50x", "PASS")
    assert verdicts["CPU per request, Redis state vs in-memory, 128 conns"] == ("1.25x", "FAIL")
    assert verdicts["CPU per request vs coderouter@abc1234, 32 conns"] == ("0.80x", "PASS")
    assert verdicts["CPU per request vs coderouter@abc1234, 128 conns"] == ("1.14x", "FAIL")

"""The bench's arithmetic and parsing: medians, ratios, verdict, tables, wrk output, plans."""

import argparse
import os
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server.pages import decode_cursor
from svc_common import tracing, tracing_pipeline

from bench import (
    bare_app,
    cases,
    procs,
    report,
    traces_instructions,
    traces_profile,
    tracing_calls,
    wrk,
)


def _run(rps: float, errors: float = 0, p99: float = 9.0) -> dict[str, float]:
    return {"rps": rps, "p50_ms": 1.0, "p95_ms": 5.0, "p99_ms": p99, "errors": errors}


def _workload(rps: dict[str, float], errors: float = 0) -> dict[str, Any]:
    runs = {c: [_run(v, errors if c == "d" else 0)] for c, v in rps.items()}
    cases = {c: report.summarize(r) for c, r in runs.items()}
    return {"cases": cases, "ratios": report.ratios(runs)}


def _results(get_item: dict[str, float], errors: float = 0) -> dict[str, Any]:
    return {"workloads": {"get_item": _workload(get_item, errors)}}


def test_median_of_odd_and_even_counts_and_of_nothing() -> None:
    assert report.median([3, 1, 2]) == 2
    assert report.median([4, 1, 3, 2]) == 2.5
    assert report.median([]) == 0.0


def test_summary_takes_medians_of_each_metric_and_sums_errors() -> None:
    summary = report.summarize([_run(100, 0, 9), _run(300, 2, 30), _run(200, 1, 10)])
    assert summary["rps"] == 200
    assert summary["p99_ms"] == 10
    assert summary["errors"] == 3, "an error in any run counts"
    assert summary["runs"] == 3


def test_ratios_divide_rps_and_skip_missing_cases() -> None:
    runs = {c: [_run(v)] for c, v in {"a": 500, "b": 1000, "d": 520}.items()}
    assert report.ratios(runs) == {
        "d/b": 0.52,
        "c/b": None,
        "a/e": None,
        "a/f": None,
        "g/b": None,
        "g/d": None,
    }
    assert report.ratio(1, 3) == 0.333
    assert report.ratio(1, 0) is None


def test_a_ratio_is_the_median_of_each_rounds_own_ratio() -> None:
    # The machine slowed down in round 2, for both cases: that round's pair still says 0.95,
    # where the medians of each case (150 over 200) would say 0.75.
    runs = {"d": [_run(100), _run(300), _run(200)], "g": [_run(95), _run(285), _run(150)]}
    assert report.ratios(runs)["g/d"] == 0.95


def test_verdict_names_each_missed_target_and_any_errors() -> None:
    passing = _results({"a": 500, "b": 1000, "c": 700, "d": 500, "e": 1000})
    assert report.verdict(passing) == []
    failing = _results({"a": 400, "b": 1000, "c": 700, "d": 450, "e": 1000}, errors=2)
    assert report.verdict(failing) == [
        "get_item d/b = 0.45 < 0.5",
        "get_item a/e = 0.4 < 0.5",
        "get_item case d: 2 errors",
    ]


def _issue_17(*, list_a: float, deep_a: float, hits: float = 0) -> dict[str, Any]:
    """A run of the issue's workloads: list a/e = list_a / 1000, deep/first = deep_a / 200."""
    results = _results({"a": 500, "b": 1000, "c": 700, "d": 500, "e": 1000})
    results["workloads"] |= {
        "list": _workload({"a": list_a, "d": 600, "e": 1000}),
        "page_first": _workload({"a": 200, "d": 180}) | {"distinct": True},
        "page_deep": _workload({"a": deep_a, "d": 170}) | {"distinct": True},
        "write": _workload({"a": 160, "d": 140, "e": 4000, "f": 1600}),
    }
    results["workloads"]["page_deep"]["page_cache"] = {"hit": hits, "miss": 900.0}
    results["workloads"]["list"]["page_cache"] = {"hit": 5000.0, "miss": 2.0}
    results["services"] = {
        "server": {"limited": True, "rss_rest_mb": 90.0, "rss_after_mb": 95.0, "rss_peak_mb": 99},
        "nginx": {"limited": False, "rss_rest_mb": 500.0, "rss_after_mb": 500.0},
    }
    return results


def test_verdict_judges_the_list_the_deep_page_the_page_cache_and_memory() -> None:
    assert report.verdict(_issue_17(list_a=300, deep_a=100)) == []
    failing = _issue_17(list_a=290, deep_a=99, hits=3)
    failing["services"]["server"]["rss_peak_mb"] = 120.5
    assert report.verdict(failing) == [
        "list a/e = 0.29 < 0.3",
        "page_deep/page_first case a = 0.495 < 0.5",
        "page_deep: 3 page cache hits (not the database path)",
        "server RSS 120.5 MB >= 120",
    ]


def test_cross_ratios_compare_workloads_case_by_case() -> None:
    results = _issue_17(list_a=300, deep_a=100)
    assert report.cross_ratios(results["workloads"]) == {
        "page_deep/page_first": {"a": 0.5, "d": 0.944}
    }
    text = report.table(results)
    assert "| req/s ratio | a | d |" in text
    assert "| page_deep/page_first | 0.500 | 0.944 |" in text
    assert "| page_deep | 0 | 900 | 0.000 |" in text
    assert "| list | 5000 | 2 | 1.000 |" in text
    assert "| write | - | - | 0.040 | 0.100 |" in text


def test_headline_gives_deep_over_first_and_write_throughput() -> None:
    lines = report.headline(_issue_17(list_a=300, deep_a=100))
    assert "list: d/b=- a/e=0.300" not in lines, "ratios without both cases are left out"
    assert "list: a/e=0.300" in lines
    assert "page_deep/page_first: a=0.500 d=0.944 (target >= 0.5)" in lines
    assert "write req/s: a=160 d=140 e=4000 f=1600" in lines
    assert lines[-1] == "RSS under 120 MB: yes"


def test_tables_show_medians_ratios_and_missing_values_as_dashes() -> None:
    results = _results({"a": 512.4, "b": 1000})
    text = report.table(results)
    assert "| get_item | a: direct to one server | 512 | 1.00 | 5.00 | 9.00 | 0 |" in text
    assert "| get_item | - | - | - | - |" in text
    services = {"server": {"rss_rest_mb": 95.04, "rss_after_mb": 97.0, "cpu": {"a": 0.91}}}
    assert "| server | 95.0 | 97.0 | - | 0.91 |" in report.services_table(services)


def test_headline_flags_only_our_services_over_120_mb() -> None:
    results = _results({"a": 500, "b": 1000})
    results["services"] = {
        "api_gateway": {"limited": True, "rss_rest_mb": 101.0, "rss_after_mb": 121.0},
        "nginx": {"limited": False, "rss_rest_mb": 500.0, "rss_after_mb": 500.0},
    }
    assert report.headline(results)[-1] == "RSS under 120 MB: no: api_gateway"


def test_wrk_output_is_parsed_into_rps_milliseconds_and_errors() -> None:
    line = (
        'BENCH_RESULT {"requests":5000,"duration_us":2000000,"connect":0,"read":1,"write":0,'
        '"status":2,"timeout":0,"p50":1500,"p95":4000,"p99":9000}'
    )
    run = wrk.parse("Running 2s test\n" + line + "\n")
    assert run == {
        "rps": 2500.0,
        "p50_ms": 1.5,
        "p95_ms": 4.0,
        "p99_ms": 9.0,
        "errors": 3.0,
        "requests": 5000.0,
    }


def test_plans_are_skewed_reads_a_fixed_list_and_an_eighty_fifteen_five_mix() -> None:
    ids = list(range(1, 1001))
    reads = wrk.plan("get_item", ids)
    hottest = max(set(reads), key=reads.count)
    assert reads.count(hottest) > len(reads) / 20, "Zipf: one id takes a large share"
    assert wrk.plan("list", ids) == [("GET", "/itens?limit=20", None)]
    mix = wrk.plan("mix", ids)
    writes = [op for op in mix if op[0] == "PUT"]
    lists = [op for op in mix if op[1].startswith("/itens?")]
    assert 0.04 < len(writes) / len(mix) < 0.06
    assert 0.135 < len(lists) / len(mix) < 0.165
    assert {op[1] for op in lists} == set(wrk.MIX_LISTS)
    assert all(op[2] is None for op in mix if op[0] == "GET")
    with pytest.raises(ValueError, match="unknown workload"):
        wrk.plan("nope", ids)


def _cursor_id(path: str) -> int:
    return decode_cursor(path.split("cursor=")[1], "id")[1]


def test_page_plans_ask_for_distinct_pages_at_the_start_and_at_the_end() -> None:
    first = wrk.plan("page_first", [], rows=100_000)
    deep = wrk.plan("page_deep", [], rows=100_000)
    offsets = wrk.plan("offset_deep", [], rows=100_000)
    for ops in (first, deep, offsets):
        assert len({path for _, path, _ in ops}) == len(ops) == 20_000, "no page asked twice"
        assert all(path.startswith("/itens?limit=20&") for _, path, _ in ops)
    assert {_cursor_id(p) for _, p, _ in first} == set(range(1, 20_001))
    assert {_cursor_id(p) for _, p, _ in deep} == set(range(79_981, 99_981))
    # The deepest page is page 5,000 of 20: full, ids 99,981..100,000.
    assert "/itens?limit=20&offset=99980" in {p for _, p, _ in offsets}
    assert _cursor_id(first[0][1]) != 1, "in random order"
    with pytest.raises(ValueError, match="needs at least 20020 rows"):
        wrk.plan("page_deep", [], rows=1000)


def test_write_plans_create_distinct_items_and_spread_updates_over_every_item() -> None:
    creates = wrk.plan("write", [])
    assert {method for method, _, _ in creates} == {"POST"}
    assert len({body for _, _, body in creates}) == len(creates)
    updates = wrk.plan("update", list(range(1, 1001)))
    ids = [int(path.rsplit("/", 1)[1]) for _, path, _ in updates]
    assert set(ids) == set(range(1, 1001))
    assert all(ids[n : n + 1000].count(ids[n]) == 1 for n in range(0, 5000, 1000))
    # The second thread starts a stride (half the plan) ahead: a different row each time.
    half = len(ids) // 2
    assert sum(ids[n] == ids[n + half] for n in range(half)) < half / 100


def test_each_workload_runs_on_known_cases_deep_pages_on_a_and_d() -> None:
    assert set("".join(wrk.WORKLOADS.values())) <= set(report.CASES)
    # g: the gateway's path with traces on, priced on the read by id only, run beside d
    assert wrk.WORKLOADS["get_item"] == "abcdge"  # g beside d, its reference
    assert wrk.WORKLOADS["page_first"] == wrk.WORKLOADS["page_deep"] == "ad"
    assert set("adef") <= set(wrk.WORKLOADS["write"])
    assert set(wrk.WORKLOADS) >= wrk.DISTINCT


def test_the_wrk_script_carries_the_token_on_reads_and_writes() -> None:
    script = wrk.script("mix", [1, 2, 3], "tok")
    assert 'wrk.headers["Authorization"] = "Bearer tok"' in script
    assert '["Authorization"] = "Bearer tok"}' in script
    assert "done = function" in script
    assert "stride = 10000" in wrk.script("get_item", [1, 2, 3], "tok", threads=2)


def test_the_bare_app_creates_in_memory_and_lists_with_the_servers_headers() -> None:
    items = [
        {"id": i, "nome": f"P{i}", "descricao": "", "preco": 1.0, "version": 1}
        for i in range(1, 31)
    ]
    with TestClient(bare_app.build_app(items)) as client:
        created = client.post("/itens", json={"nome": "Novo", "preco": 2.5})
        assert created.status_code == 201
        assert created.json()["data"]["nome"] == "Novo"
        assert created.headers["Location"] == f"/itens/{created.json()['data']['id']}"
        page = client.get("/itens?limit=20&sort=-id")
        assert [item["id"] for item in page.json()["data"]][:2] == [30, 29]
        assert page.json()["meta"] == {"total": 30, "limit": 20, "offset": 0}
        assert page.headers["X-Total-Count"] == "30"
        assert page.headers["Link"] == '</itens?limit=20&offset=20>; rel="next"'
        assert "Link" not in client.get("/itens?limit=20&offset=20").headers
        assert client.put("/itens/3", json={"nome": "X", "preco": 1}).json()["data"]["version"] == 2


def test_traces_failing_their_cost_bar_fail_the_verdict() -> None:
    results = _results({"b": 1000, "d": 600, "g": 500})
    assert results["workloads"]["get_item"]["ratios"]["g/d"] == 0.833
    assert report.verdict(results) == ["get_item g/d = 0.833 < 0.9"]


def test_the_instructions_table_gives_each_count_and_its_extra_over_traces_off() -> None:
    args = argparse.Namespace(duration=20.0)
    counts = {"load_balancer": {"off": 200_000.0, "on 0": 220_000.0, "on 0.1": 250_000.0}}
    row = traces_instructions._report(args, counts).splitlines()[-1]
    assert row == "| load_balancer | 200.0 | 220.0 | 250.0 | +20.0 (+10.0%) | +50.0 (+25.0%) |"


def test_instructions_are_divided_by_the_reads_by_id_the_process_answered() -> None:
    scraped = "\n".join(
        [
            'http_requests_total{method="GET",route="/itens/{item_id}",status="200"} 1500.0',
            'http_requests_total{method="GET",route="/itens/{id}",status="304"} 20.0',
            'http_requests_total{method="GET",route="/saude",status="200"} 99.0',
            'http_requests_total{method="GET",route="/itens",status="200"} 7.0',
        ]
    )
    assert traces_instructions._SERVED.findall(scraped) == ["1500.0", "20.0"]


def test_tracing_calls_reads_the_instructions_callgrind_collected() -> None:
    stderr = "==41== Events    : Ir\n==41== Collected : 123456789\n==41==\n==41== I   refs:  1\n"
    assert tracing_calls.collected(stderr) == 123_456_789
    with pytest.raises(AssertionError, match="no callgrind summary"):
        tracing_calls.collected("python: not found\n")


def test_each_traced_operation_runs_and_leaves_traces_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "ENABLED", tracing.ENABLED)
    monkeypatch.setattr(tracing_pipeline, "current", tracing_pipeline.current)
    operations = tracing_calls.operations()
    assert len(operations) == 7
    for name, (_, _, per_call) in operations.items():
        tracing_calls.repeat(name, 2 * per_call)


def test_the_pairs_run_over_even_blocks_each_on_fresh_starts_of_the_paths() -> None:
    assert cases.fresh_starts(12, 3) == {0, 4, 8}
    assert cases.fresh_starts(10, 3) == {0, 3, 6}
    assert cases.fresh_starts(2, 3) == {0, 1}
    assert cases.fresh_starts(12, 0) == set()
    assert cases.fresh_starts(0, 3) == set()


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_process_cpu_time_splits_into_its_event_loop_and_other_threads() -> None:
    pid = os.getpid()
    loop_before, all_before = procs.main_thread_cpu_seconds(pid), procs.cpu_seconds([pid])
    worker = threading.Thread(target=_spin, args=(0.3,))
    worker.start()
    worker.join()
    loop = procs.main_thread_cpu_seconds(pid) - loop_before
    others = procs.cpu_seconds([pid]) - all_before - loop
    assert others >= 0.1, "the other thread's time is in the process's, not the main thread's"


def test_page_cache_lookups_add_up_over_fresh_starts_of_the_servers() -> None:
    before_restart = cases.add_lookups({}, {"hit": 10, "miss": 4}, {"hit": 2, "miss": 1})
    assert before_restart == {"hit": 8, "miss": 3}
    # A fresh server counts from 0 again.
    assert cases.add_lookups(before_restart, {"hit": 5, "miss": 1}, {}) == {"hit": 13, "miss": 4}


def test_profiled_calls_name_functions_from_their_package_and_built_ins_without_addresses() -> None:
    site = "/x/.venv/lib/python3.11/site-packages/opentelemetry/trace/span.py"
    assert traces_profile.function_name((site, 453, "__new__")) == (
        "opentelemetry/trace/span.py:453(__new__)"
    )
    built_in = ("~", 0, "<built-in method __new__ of type object at 0x7f7a8825ea00>")
    assert traces_profile.function_name(built_in) == "<built-in method __new__ of type object>"


def test_profiled_calls_are_per_request_and_the_extra_keeps_real_changes_only() -> None:
    base = {"begin": 0.0, "scan": 1.0, "noise": 3.0}
    twin = {"begin": 1.0, "scan": 1.0, "noise": 3.04, "report": 0.1}
    assert traces_profile.changed_calls(base, twin, top=10) == [(1.0, "begin"), (0.1, "report")]

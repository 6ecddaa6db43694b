"""The bench's arithmetic and parsing: medians, ratios, verdict, tables, wrk output, plans."""

from typing import Any

import pytest

from bench import report, wrk


def _run(rps: float, errors: float = 0, p99: float = 9.0) -> dict[str, float]:
    return {"rps": rps, "p50_ms": 1.0, "p95_ms": 5.0, "p99_ms": p99, "errors": errors}


def _results(get_item: dict[str, float], errors: float = 0) -> dict[str, Any]:
    cases = {c: report.summarize([_run(v, errors if c == "d" else 0)]) for c, v in get_item.items()}
    return {"workloads": {"get_item": {"cases": cases, "ratios": report.ratios(cases)}}}


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


def test_ratios_divide_median_rps_and_skip_missing_cases() -> None:
    cases = {c: report.summarize([_run(v)]) for c, v in {"a": 500, "b": 1000, "d": 520}.items()}
    assert report.ratios(cases) == {"d/b": 0.52, "c/b": None, "a/e": None}
    assert report.ratio(1, 3) == 0.333
    assert report.ratio(1, 0) is None


def test_verdict_names_each_missed_target_and_any_errors() -> None:
    passing = _results({"a": 500, "b": 1000, "c": 700, "d": 500, "e": 1000})
    assert report.verdict(passing) == []
    failing = _results({"a": 400, "b": 1000, "c": 700, "d": 450, "e": 1000}, errors=2)
    assert report.verdict(failing) == [
        "get_item d/b = 0.45 < 0.5",
        "get_item a/e = 0.4 < 0.5",
        "get_item case d: 2 errors",
    ]


def test_tables_show_medians_ratios_and_missing_values_as_dashes() -> None:
    results = _results({"a": 512.4, "b": 1000})
    text = report.table(results)
    assert "| get_item | a: direct to one server | 512 | 1.00 | 5.00 | 9.00 | 0 |" in text
    assert "| get_item | - | - | - |" in text
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


def test_plans_are_skewed_reads_a_fixed_list_and_a_ninety_ten_mix() -> None:
    ids = list(range(1, 1001))
    reads = wrk.plan("get_item", ids)
    hottest = max(set(reads), key=reads.count)
    assert reads.count(hottest) > len(reads) / 20, "Zipf: one id takes a large share"
    assert wrk.plan("list", ids) == [("GET", "/itens?limit=20", None)]
    mix = wrk.plan("mix", ids)
    writes = [op for op in mix if op[0] == "PUT"]
    assert 0.08 < len(writes) / len(mix) < 0.12
    assert all(op[2] is None for op in mix if op[0] == "GET")
    with pytest.raises(ValueError, match="unknown workload"):
        wrk.plan("nope", ids)


def test_the_wrk_script_carries_the_token_on_reads_and_writes() -> None:
    script = wrk.script("mix", [1, 2, 3], "tok")
    assert 'wrk.headers["Authorization"] = "Bearer tok"' in script
    assert '["Authorization"] = "Bearer tok"}' in script
    assert "done = function" in script

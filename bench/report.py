"""The benchmark's arithmetic and its printed forms: medians, ratios, tables (no I/O)."""

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

# case -> what it measures; the order is the order runs are interleaved in and printed in.
CASES: dict[str, str] = {
    "a": "direct to one server",
    "b": "nginx round-robin over both servers",
    "c": "our balancer over both servers",
    "d": "gateway + balancer (token, rate limit)",
    # Beside d, its reference: each of its runs is paired with d's run next to it.
    "g": "d with traces on (10 % sampled, OTLP/HTTP)",
    "e": "bare FastAPI app, items in memory",
    "f": "bare FastAPI app, one asyncpg statement per write",
}
# ratio name -> (numerator case, denominator case), computed on every workload.
RATIOS: dict[str, tuple[str, str]] = {
    "d/b": ("d", "b"),
    "c/b": ("c", "b"),
    "a/e": ("a", "e"),
    "a/f": ("a", "f"),
    "g/b": ("g", "b"),
    # What traces cost: the same path with them on over it with them off.
    "g/d": ("g", "d"),
}
# (workload, ratio) -> the least the issues accept.
TARGETS: dict[tuple[str, str], float] = {
    ("get_item", "d/b"): 0.5,
    ("get_item", "a/e"): 0.5,
    ("list", "a/e"): 0.3,
    # Traces at 10 % sampling take at most a tenth of the gateway path's throughput.
    ("get_item", "g/d"): 0.9,
}
# name -> (numerator workload, denominator workload, target or None), per case both ran on.
# page_deep/page_first >= 0.5: a page at the end costs at most twice what one at the start does.
CROSS: dict[str, tuple[str, str, float | None]] = {
    "page_deep/page_first": ("page_deep", "page_first", 0.5),
    "offset_deep/page_first": ("offset_deep", "page_first", None),
}
# Workloads whose req/s is the figure itself (writes have no like-for-like reference).
THROUGHPUT = ("update", "write")
RSS_LIMIT_MB = 120.0
METRICS = ("rps", "p50_ms", "p95_ms", "p99_ms", "errors")

Run = Mapping[str, float]


def median(values: Sequence[float]) -> float:
    """The median (the mean of the middle two for an even count); 0 for no values."""
    return float(statistics.median(values)) if values else 0.0


def summarize(runs: Sequence[Run]) -> dict[str, float]:
    """Median of every metric over the runs of one case; errors are summed (any one counts)."""
    summary = {m: median([r[m] for r in runs]) for m in METRICS if m != "errors"}
    summary["errors"] = float(sum(r["errors"] for r in runs))
    summary["runs"] = float(len(runs))
    return summary


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator rounded to 3 places; None when the denominator is 0."""
    return round(numerator / denominator, 3) if denominator else None


def ratios(runs: Mapping[str, Sequence[Run]]) -> dict[str, float | None]:
    """RATIOS, each the median over the rounds of one round's ratio (None where a case is
    missing): runs of one round were measured minutes apart at most, so a machine that speeds
    up or slows down over the whole run moves both sides of each ratio alike."""
    out: dict[str, float | None] = {}
    for name, (top, bottom) in RATIOS.items():
        pairs = zip(runs.get(top, ()), runs.get(bottom, ()), strict=False)
        each = [r["rps"] / s["rps"] for r, s in pairs if s["rps"]]
        out[name] = round(median(each), 3) if each else None
    return out


def cross_ratios(workloads: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """CROSS per case: median req/s of one workload over another's on the same case."""
    out: dict[str, dict[str, float | None]] = {}
    for name, (top, bottom, _) in CROSS.items():
        if top in workloads and bottom in workloads:
            tops, bottoms = workloads[top]["cases"], workloads[bottom]["cases"]
            out[name] = {
                case: ratio(tops[case]["rps"], bottoms[case]["rps"])
                for case in CASES
                if case in tops and case in bottoms
            }
    return out


def rss_over(services: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Our services whose RSS reached the limit at any point measured (peak included): MB."""
    over = {}
    for name, s in services.items():
        keys = ("rss_rest_mb", "rss_after_mb", "rss_peak_mb")
        highest = max(s.get(key) or 0 for key in keys)
        if s.get("limited") and highest >= RSS_LIMIT_MB:
            over[name] = highest
    return over


def verdict(results: Mapping[str, Any]) -> list[str]:
    """What fails the issues' bars: a target missed, an error, a page cache hit where every
    page must come from the database, or a service at 120 MB or more."""
    problems: list[str] = []
    workloads = results["workloads"]
    for (workload, name), target in TARGETS.items():
        value = workloads.get(workload, {}).get("ratios", {}).get(name)
        if value is not None and value < target:
            problems.append(f"{workload} {name} = {value} < {target}")
    for name, per_case in cross_ratios(workloads).items():
        least = CROSS[name][2]
        for case, value in per_case.items():
            if least is not None and value is not None and value < least:
                problems.append(f"{name} case {case} = {value} < {least}")
    for workload, data in workloads.items():
        for case, summary in data["cases"].items():
            if summary["errors"]:
                problems.append(f"{workload} case {case}: {int(summary['errors'])} errors")
        hits = data.get("page_cache", {}).get("hit", 0)
        if data.get("distinct") and hits:
            problems.append(f"{workload}: {int(hits)} page cache hits (not the database path)")
    for name, mb in rss_over(results.get("services", {})).items():
        problems.append(f"{name} RSS {mb:.1f} MB >= {RSS_LIMIT_MB:.0f}")
    return problems


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: Mapping[str, Any]) -> str:
    """Markdown tables: every workload and case (medians), the ratios, the page cache."""
    workloads = results["workloads"]
    lines = [
        "| workload | case | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for workload, data in workloads.items():
        for case, s in data["cases"].items():
            lines.append(
                f"| {workload} | {case}: {CASES[case]} | {s['rps']:.0f} | {_fmt(s['p50_ms'])} "
                f"| {_fmt(s['p95_ms'])} | {_fmt(s['p99_ms'])} | {int(s['errors'])} |"
            )
    lines += ["", "| workload | " + " | ".join(RATIOS) + " |", "|---|" + "---:|" * len(RATIOS)]
    for workload, data in workloads.items():
        cells = [_fmt(data["ratios"].get(name), 3) for name in RATIOS]
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    cross = cross_ratios(workloads)
    if cross:
        cases = [c for c in CASES if any(c in per_case for per_case in cross.values())]
        lines += ["", "| req/s ratio | " + " | ".join(cases) + " |", "|---|" + "---:|" * len(cases)]
        for name, per_case in cross.items():
            cells = [_fmt(per_case.get(c), 3) for c in cases]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    counted = {w: d["page_cache"] for w, d in workloads.items() if "page_cache" in d}
    if counted:
        lines += ["", "| workload | page cache hits | misses | hit ratio |", "|---|---:|---:|---:|"]
        for workload, c in counted.items():
            hits, misses = c.get("hit", 0), c.get("miss", 0)
            share = ratio(hits, hits + misses)
            lines.append(f"| {workload} | {int(hits)} | {int(misses)} | {_fmt(share, 3)} |")
    return "\n".join(lines)


def services_table(services: Mapping[str, Mapping[str, Any]]) -> str:
    """RSS at rest, after the run and at its peak, and CPU share per case, per service."""
    cases = sorted({c for s in services.values() for c in s.get("cpu", {})})
    head = "| service | RSS rest MB | RSS after MB | peak RSS MB | " + " | ".join(
        f"CPU {c}" for c in cases
    )
    lines = [head + " |", "|---|---:|---:|---:|" + "---:|" * len(cases)]
    for name, s in services.items():
        cpu = [_fmt(s.get("cpu", {}).get(c)) for c in cases]
        lines.append(
            f"| {name} | {_fmt(s.get('rss_rest_mb'), 1)} | {_fmt(s.get('rss_after_mb'), 1)} "
            f"| {_fmt(s.get('rss_peak_mb'), 1)} | " + " | ".join(cpu) + " |"
        )
    return "\n".join(lines)


def headline(results: Mapping[str, Any]) -> list[str]:
    """The lines `make bench` ends with: ratios, deep/first, write req/s, the memory bar."""
    workloads = results["workloads"]
    lines = []
    for workload, data in workloads.items():
        parts = [f"{name}={_fmt(v, 3)}" for name, v in data["ratios"].items() if v is not None]
        if parts:
            lines.append(f"{workload}: " + " ".join(parts))
    for name, per_case in cross_ratios(workloads).items():
        target = CROSS[name][2]
        parts = [f"{case}={_fmt(v, 3)}" for case, v in per_case.items()]
        goal = f" (target >= {target})" if target is not None else ""
        lines.append(f"{name}: " + " ".join(parts) + goal)
    for workload in THROUGHPUT:
        if workload in workloads:
            cases = workloads[workload]["cases"]
            parts = [f"{case}={s['rps']:.0f}" for case, s in cases.items()]
            lines.append(f"{workload} req/s: " + " ".join(parts))
    over = rss_over(results.get("services", {}))
    lines.append("RSS under 120 MB: " + ("yes" if not over else "no: " + ", ".join(over)))
    return lines

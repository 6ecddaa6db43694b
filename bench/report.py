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
    "e": "bare FastAPI app, items in memory",
}
# ratio name -> (numerator case, denominator case, target or None)
RATIOS: dict[str, tuple[str, str, float | None]] = {
    "d/b": ("d", "b", 0.5),
    "c/b": ("c", "b", None),
    "a/e": ("a", "e", 0.5),
}
# The ratios the issue sets a target for are judged on this workload.
JUDGED_WORKLOAD = "get_item"
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


def ratios(summaries: Mapping[str, Mapping[str, float]]) -> dict[str, float | None]:
    """d/b, c/b and a/e from the median req/s of each case (None where a case is missing)."""
    out: dict[str, float | None] = {}
    for name, (top, bottom, _) in RATIOS.items():
        if top in summaries and bottom in summaries:
            out[name] = ratio(summaries[top]["rps"], summaries[bottom]["rps"])
        else:
            out[name] = None
    return out


def verdict(results: Mapping[str, Any]) -> list[str]:
    """What fails the issue's bar: a judged ratio under its target, or any error in any run."""
    problems: list[str] = []
    judged = results["workloads"].get(JUDGED_WORKLOAD)
    if judged is not None:
        for name, (_, _, target) in RATIOS.items():
            value = judged["ratios"].get(name)
            if target is not None and value is not None and value < target:
                problems.append(f"{JUDGED_WORKLOAD} {name} = {value} < {target}")
    for workload, data in results["workloads"].items():
        for case, summary in data["cases"].items():
            if summary["errors"]:
                problems.append(f"{workload} case {case}: {int(summary['errors'])} errors")
    return problems


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: Mapping[str, Any]) -> str:
    """A Markdown table of every workload and case (medians), then the ratios."""
    lines = [
        "| workload | case | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for workload, data in results["workloads"].items():
        for case, s in data["cases"].items():
            lines.append(
                f"| {workload} | {case}: {CASES[case]} | {s['rps']:.0f} | {_fmt(s['p50_ms'])} "
                f"| {_fmt(s['p95_ms'])} | {_fmt(s['p99_ms'])} | {int(s['errors'])} |"
            )
    lines += ["", "| workload | " + " | ".join(RATIOS) + " |", "|---|" + "---:|" * len(RATIOS)]
    for workload, data in results["workloads"].items():
        cells = [_fmt(data["ratios"].get(name), 3) for name in RATIOS]
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
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
    """The lines `make bench` ends with: ratios per workload, and the memory bar."""
    lines = []
    for workload, data in results["workloads"].items():
        parts = [f"{name}={_fmt(value, 3)}" for name, value in data["ratios"].items()]
        lines.append(f"{workload}: " + " ".join(parts))
    over = [
        name
        for name, s in results.get("services", {}).items()
        if s.get("limited") and max(s.get("rss_rest_mb") or 0, s.get("rss_after_mb") or 0) >= 120
    ]
    lines.append("RSS under 120 MB: " + ("yes" if not over else "no: " + ", ".join(over)))
    return lines

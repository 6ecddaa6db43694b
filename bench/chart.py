"""The results as a PNG: median req/s per case and workload, with the ratios in the title."""

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a build machine
import matplotlib.pyplot as plt

from bench.report import CASES, TARGETS, cross_ratios


def _judged(results: dict[str, Any]) -> str:
    """The ratios the issues set targets for, as one line."""
    parts = []
    for workload, name in TARGETS:
        value = results["workloads"].get(workload, {}).get("ratios", {}).get(name)
        if value is not None:
            parts.append(f"{workload} {name}={value}")
    for name, per_case in cross_ratios(results["workloads"]).items():
        parts += [f"{name} {case}={value}" for case, value in per_case.items()]
    return "  ".join(parts)


def draw(results: dict[str, Any], path: Path) -> None:
    """Grouped bars: one group per workload, one bar per case it ran on (median of the runs)."""
    workloads = list(results["workloads"])
    cases = [c for c in CASES if any(c in results["workloads"][w]["cases"] for w in workloads)]
    width = 0.8 / max(1, len(cases))
    fig, ax = plt.subplots(figsize=(12, 5))
    for n, case in enumerate(cases):
        ran = results["workloads"]
        values = [ran[w]["cases"].get(case, {}).get("rps", math.nan) for w in workloads]
        xs = [i + (n - (len(cases) - 1) / 2) * width for i in range(len(workloads))]
        bars = ax.bar(xs, values, width, label=f"{case}: {CASES[case]}")
        labels = ["" if math.isnan(v) else f"{v:.0f}" for v in values]
        ax.bar_label(bars, labels=labels, fontsize=6)
    ax.set_xticks(range(len(workloads)), workloads)
    # From a few hundred (a page at depth) to tens of thousands (a cached read): log scale.
    ax.set_yscale("log")
    ax.set_ylabel("req/s (median, log scale)")
    ax.set_title(f"{results['machine']['summary']}\n{_judged(results)}", fontsize=9)
    ax.legend(fontsize=7, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

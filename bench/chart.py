"""The results as a PNG: median req/s per case and workload, with the ratios in the title."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a build machine
import matplotlib.pyplot as plt

from bench.report import CASES


def draw(results: dict[str, Any], path: Path) -> None:
    """Grouped bars: one group per workload, one bar per case (median of the runs)."""
    workloads = list(results["workloads"])
    cases = [c for c in CASES if any(c in results["workloads"][w]["cases"] for w in workloads)]
    width = 0.8 / max(1, len(cases))
    fig, ax = plt.subplots(figsize=(10, 5))
    for n, case in enumerate(cases):
        values = [results["workloads"][w]["cases"].get(case, {}).get("rps", 0) for w in workloads]
        xs = [i + (n - (len(cases) - 1) / 2) * width for i in range(len(workloads))]
        bars = ax.bar(xs, values, width, label=f"{case}: {CASES[case]}")
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel("req/s (median)")
    judged = results["workloads"].get("get_item", {}).get("ratios", {})
    ratio_text = "  ".join(f"{k}={v}" for k, v in judged.items())
    ax.set_title(f"{results['machine']['summary']}\nget_item: {ratio_text}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

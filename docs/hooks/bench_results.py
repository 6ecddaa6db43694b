"""MkDocs hook: the Performance page's figures, generated from bench/results/latest.json."""

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

REPO = Path(__file__).resolve().parents[2]
# "| get_item | a: direct to one server |" -> "| get_item | a |": the page's table of cases
# says what each letter is, and the figures fit beside it.
CASE_CELL = re.compile(r"^(\| \w+ \| )([a-z]): [^|]*\|", re.M)
RESULTS = REPO / "bench" / "results"
PAGE = "performance.md"
# Replaced on the Performance page by the tables of the last run.
MARKER = "<!-- bench:results -->"
BARS = "<!-- bench:bars -->"
CHART = "assets/bench-latest.png"


def _report() -> ModuleType:
    """bench/report.py, the module that writes `make bench`'s tables, loaded by its path."""
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    if spec is None or spec.loader is None:
        raise PluginError("bench/report.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_summary(results: dict[str, Any]) -> str:
    """Which run, on what machine, when, and how it was driven: from the JSON alone."""
    machine, settings = results["machine"], results["settings"]
    versions = ", ".join(
        f"{name} {machine[key]}"
        for name, key in (("Python", "python"), ("nginx", "nginx"))
        if machine.get(key)
    )
    return (
        f"Measured **{machine['date']}** on **{machine['summary']}** ({versions}), by "
        f"`{settings['command'].strip()}`: wrk with {settings['connections']} connections and "
        f"{settings['threads']} threads, {settings['duration']} s × {settings['runs']} "
        f"interleaved runs per case (medians), {settings['rows']} rows seeded, "
        f"{settings['items']} read by id, case d with `RATE_LIMIT={settings['rate_limit']}`. "
        f"Load average {machine['load_before']:.1f} before and {machine['load_after']:.1f} "
        "after (the machine is shared)."
    )


def results_markdown(results: dict[str, Any], report: ModuleType) -> str:
    """The last run as the Performance page shows it."""
    problems = report.verdict(results)
    verdict = "PASS" if not problems else "FAIL: " + "; ".join(problems)
    headline = "\n".join(f"    {line}" for line in report.headline(results))
    return "\n\n".join(
        [
            run_summary(results),
            CASE_CELL.sub(r"\1\2 |", report.table(results)),
            "Per service: resident memory at rest, after the run and at its peak, and the share "
            "of a CPU each used in each case.",
            report.services_table(results["services"]),
            f"What `make bench` printed last, and its verdict (**{verdict}**):",
            headline,
            f"![Requests per second of each case, per workload]({CHART})",
        ]
    )


def bars_markdown(report: ModuleType) -> str:
    """The bars `make bench` holds a run to, from bench/report.py."""
    lines = [
        f"- `{workload}` {name} ≥ {target}" for (workload, name), target in report.TARGETS.items()
    ]
    lines += [
        f"- {name} ≥ {least} in every case that ran both"
        for name, (_, _, least) in report.CROSS.items()
        if least is not None
    ]
    lines += [
        "- no request failed, and no page workload hit the page cache",
        f"- every service under {report.RSS_LIMIT_MB:.0f} MB of resident memory",
    ]
    return "\n".join(lines)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """`mkdocs serve` rebuilds when a bench run writes new results."""
    config.watch.append(str(RESULTS))
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """The chart of the last run, as a file of the site."""
    files.append(File.generated(config, CHART, abs_src_path=str(RESULTS / "latest.png")))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Fill the Performance page's markers from the last run."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown or BARS not in markdown:
        raise PluginError(f"{PAGE} lost its bench markers ({BARS}, {MARKER})")
    report = _report()
    results = json.loads((RESULTS / "latest.json").read_text())
    markdown = markdown.replace(BARS, bars_markdown(report))
    return markdown.replace(MARKER, results_markdown(results, report))

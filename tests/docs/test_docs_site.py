"""The docs site: a strict build, no broken link or anchor, every page in the nav, a short
README that points to it, and a configuration table that names every setting."""

import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from linkcheck.command import linkchecker as linkchecker_cli

from tests.deploy.tools import REPO, venv_tool
from tests.docs.conftest import DOCS, build, mkdocs_config, serve

README = REPO / "README.md"
README_MAX_LINES = 150
SETTINGS = (
    "api_gateway.config:GatewaySettings",
    "load_balancer.config:BalancerSettings",
    "server.config:ServerSettings",
    "cache.config:CacheSettings",
    "monitoring.config:MonitorSettings",
)
# linkchecker: internal URLs and their anchors; anything else only parsed, never fetched.
LINKCHECKER_INI = """\
[checking]
maxrequestspersecond=1000
[filtering]
checkextern=0
[AnchorCheck]
"""
LINK = re.compile(r"\]\(([^)\s]+)\)")


def nav_pages(nav: list[Any]) -> Iterator[str]:
    """Every page the nav names, depth first."""
    for entry in nav:
        if isinstance(entry, str):
            yield entry
        else:
            for value in entry.values():
                yield from nav_pages(value) if isinstance(value, list) else [value]


def doc_pages() -> set[str]:
    """Every Markdown page under docs/, as the nav names it."""
    return {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}


def links(markdown: str) -> set[str]:
    """The targets of the Markdown links in a text, without their anchors."""
    return {target.split("#", 1)[0] for target in LINK.findall(markdown)}


# As root, linkchecker switches to user nobody once it has read its configuration, and nobody
# cannot import the rest of it from a checkout under a directory only root may enter (/root, a
# 0700 temporary directory). It crawls our own site on loopback here, so it keeps its user:
# its entry point without that step (pyproject.toml bounds the version; a test below checks
# the step is still where this expects it).
LINKCHECKER_AS_ROOT = (
    "import sys\n"
    "from linkcheck.command import linkchecker as cli\n"
    "cli.drop_privileges = lambda: None\n"
    "sys.exit(cli.linkchecker())\n"
)


def linkchecker_command() -> list[str]:
    """How to start linkchecker as the user running the tests."""
    if os.geteuid() == 0:
        return [sys.executable, "-c", LINKCHECKER_AS_ROOT]
    return [venv_tool("linkchecker")]


def linkcheck(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """linkchecker over the site at url, with anchors checked."""
    config = tmp_path / "linkcheckerrc"
    config.write_text(LINKCHECKER_INI)
    return subprocess.run(
        [*linkchecker_command(), "--config", str(config), "--no-status", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_site_builds_strictly_with_a_page_for_every_nav_entry(site: Path) -> None:
    for page in nav_pages(mkdocs_config()["nav"]):
        assert (site / page.replace(".md", ".html")).is_file(), page


def test_every_docs_page_is_in_the_nav() -> None:
    assert doc_pages() == set(nav_pages(mkdocs_config()["nav"]))


def test_the_strict_build_fails_on_a_broken_link_or_anchor_or_a_page_outside_the_nav(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs, ignore=shutil.ignore_patterns("hooks"))
    index = docs / "index.md"
    index.write_text(index.read_text() + "\n[a](security.md#no-such-heading) [b](no-such.md)\n")
    (docs / "orphan.md").write_text("# Orphan\n")
    config = mkdocs_config()
    config["docs_dir"] = str(docs)
    config["hooks"] = [str(DOCS / "hooks" / "bench_results.py")]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    for complaint in ("no-such-heading", "no-such.md", "orphan.md"):
        assert complaint in result.stderr, complaint


def test_linkchecker_finds_no_broken_link_or_anchor_in_the_built_site(
    site_url: str, tmp_path: Path
) -> None:
    result = linkcheck(site_url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors found" in result.stdout


def test_linkchecker_still_drops_root_where_its_root_launcher_skips_it() -> None:
    assert "drop_privileges()" in inspect.getsource(linkchecker_cli.linkchecker)
    assert callable(linkchecker_cli.drop_privileges)


def test_linkchecker_reports_a_missing_page_and_a_missing_anchor(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "index.html").write_text(
        '<a href="gone.html">gone</a> <a href="other.html#nowhere">anchor</a>'
        ' <a href="https://example.invalid/">outside</a>'
    )
    (broken / "other.html").write_text('<h1 id="here">Other</h1>')
    with serve(broken) as url:
        result = linkcheck(url, tmp_path)
    assert result.returncode != 0
    assert "gone.html" in result.stdout
    assert "nowhere" in result.stdout
    # Outside addresses are parsed, never fetched: not an error even where nothing answers.
    assert "example.invalid" not in result.stdout


def test_the_site_loads_nothing_from_another_host(site: Path) -> None:
    outside = re.compile(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(?:https?:)?//', re.I)
    for page in site.rglob("*.html"):
        assert not outside.search(page.read_text()), f"{page.name} loads from another host"


def test_the_performance_page_shows_the_last_bench_run(site: Path) -> None:
    results = json.loads((REPO / "bench" / "results" / "latest.json").read_text())
    page = (site / "performance.html").read_text()
    assert results["machine"]["date"] in page
    assert results["machine"]["summary"] in page
    assert "<!-- bench:" not in page
    for workload in results["workloads"]:
        assert f"<td>{workload}</td>" in page, workload
    assert (site / "assets" / "bench-latest.png").is_file()


def test_the_readme_is_short_and_keeps_the_try_it_flow() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    flow = text.split("## Try it", 1)[1]
    assert re.match(r"[^\n]*\n\n```bash\n", flow), "the curl flow must follow '## Try it'"
    assert "/identidade" in flow.split("```", 2)[1]


def test_the_readme_and_the_docs_index_link_every_topic_page() -> None:
    readme = links(README.read_text())
    assert "docs/index.md" in readme
    for target in readme:
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).exists(), f"README links to a missing {target}"
    index = links((DOCS / "index.md").read_text())
    adrs = links((DOCS / "adr" / "index.md").read_text())
    for page in doc_pages() - {"index.md"}:
        if page.startswith("adr/") and page != "adr/index.md":
            assert Path(page).name in adrs, f"docs/adr/index.md does not list {page}"
        else:
            assert page in index, f"docs/index.md does not link {page}"
            assert f"docs/{page}" in readme, f"README.md does not link docs/{page}"


def _settings_names() -> set[str]:
    names: set[str] = set()
    for path in SETTINGS:
        module, _, cls = path.partition(":")
        fields = getattr(importlib.import_module(module), cls).model_fields
        names |= {(field.alias or name).upper() for name, field in fields.items()}
    return names


def _documented_names() -> set[str]:
    names: set[str] = set()
    for line in (DOCS / "configuration.md").read_text().splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def test_the_configuration_table_names_every_setting_and_no_other() -> None:
    wanted, documented = _settings_names(), _documented_names()
    assert not wanted - documented, f"missing from docs/configuration.md: {wanted - documented}"
    assert not documented - wanted, f"not settings, yet in the table: {documented - wanted}"

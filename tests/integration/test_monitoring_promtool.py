"""deploy/prometheus/ passes promtool, and its rules match the built-in monitor's."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from monitoring.config import MonitorSettings
from monitoring.rules import default_rules

from tests.integration.conftest import IN_CI

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
UNITS = {"s": 1, "m": 60, "h": 3600}


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    """Run promtool (Debian package prometheus), in deploy/prometheus/ by default."""
    tool = shutil.which("promtool")
    if tool is None:
        message = "promtool missing (Debian package prometheus, see scripts/debian-packages.txt)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_scrape_config_and_the_rule_file_it_loads_are_valid(tmp_path: Path) -> None:
    # As a user installs it: the directory, plus the METRICS_TOKEN file the scrapes send.
    installed = shutil.copytree(PROMETHEUS_DIR, tmp_path / "prometheus")
    (installed / "metrics-token").write_text("a-metrics-token-0123456789\n")
    result = promtool("check", "config", "prometheus.yml", cwd=installed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_rules_have_the_monitors_names_and_default_for_durations() -> None:
    text = (PROMETHEUS_DIR / "alerts.yml").read_text()
    found = {}
    for chunk in text.split("- alert: ")[1:]:
        duration = re.search(r"\n\s+for: (\d+)([smh])\n", chunk)
        assert duration is not None, chunk
        found[chunk.split()[0]] = int(duration[1]) * UNITS[duration[2]]
    defaults = MonitorSettings(_env_file=None)  # type: ignore[call-arg]
    assert found == {rule.name: rule.for_seconds for rule in default_rules(defaults)}

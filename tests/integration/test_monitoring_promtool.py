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


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool (Debian package prometheus) in deploy/prometheus/."""
    tool = shutil.which("promtool")
    if tool is None:
        message = "promtool missing (Debian package prometheus, see scripts/debian-packages.txt)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60, check=False
    )


def test_scrape_config_and_the_rule_file_it_loads_are_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
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

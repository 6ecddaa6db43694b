"""MONITOR_TARGETS parsing and what the monitor remembers of a target."""

import pytest
from monitoring.config import DEFAULT_TARGETS, MonitorSettings
from monitoring.targets import TargetState
from pydantic import ValidationError


def test_targets_default_to_the_six_local_services() -> None:
    assert MonitorSettings(_env_file=None).monitor_targets == DEFAULT_TARGETS  # type: ignore[call-arg]


def test_targets_are_name_url_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MONITOR_TARGETS", "gw=http://api_gateway:8000/, lb=http://load_balancer:8001"
    )
    targets = MonitorSettings(_env_file=None).monitor_targets  # type: ignore[call-arg]
    assert targets == {"gw": "http://api_gateway:8000", "lb": "http://load_balancer:8001"}


@pytest.mark.parametrize("value", ["gw", "gw=ftp://x", "=http://x", " , "])
def test_bad_targets_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MONITOR_TARGETS", value)
    with pytest.raises(ValidationError):
        MonitorSettings(_env_file=None)  # type: ignore[call-arg]


def test_uptime_is_the_share_of_good_probes_in_the_window() -> None:
    state = TargetState("s", "http://s")
    for up in (True, True, True, False):
        state.record(up, 1.0, None if up else "HTTP 503", window=60)
    assert state.uptime_percent == 75.0
    assert state.snapshot()["status"] == "down"
    assert state.snapshot()["instance"] == "s"

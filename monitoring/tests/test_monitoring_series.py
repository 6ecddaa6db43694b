"""The dashboard's chart history: bounded, incremental, gaps where nothing was known."""

from monitoring.series import Series


def test_readers_get_only_points_newer_than_they_have() -> None:
    series = Series(window=100)
    for at in (1.0, 2.0, 3.0):
        series.add(at, {"server": {"request_rate": at * 10}}, hit_ratio=0.9)
    newer = series.since(2.0)
    assert newer["t"] == [3.0]
    assert newer["services"]["server"]["request_rate"] == [30.0]
    assert newer["cache_hit_ratio"] == [0.9]
    assert series.since(None)["t"] == [1.0, 2.0, 3.0]
    assert series.since(3.0)["t"] == []


def test_points_older_than_the_window_are_dropped() -> None:
    series = Series(window=10)
    for at in range(0, 30, 5):
        series.add(float(at), {"cache": {"up": 1.0}}, hit_ratio=None)
    assert series.since()["t"] == [15.0, 20.0, 25.0]
    assert len(series.since()["services"]["cache"]["up"]) == 3


def test_a_service_seen_late_has_gaps_before_it_and_missing_fields_are_gaps() -> None:
    series = Series(window=100)
    series.add(1.0, {"server": {"up": 1.0}}, hit_ratio=None)
    series.add(2.0, {"server": {"up": 1.0}, "server2": {"up": 0.0}}, hit_ratio=None)
    columns = series.since()["services"]
    assert columns["server2"]["up"] == [None, 0.0]
    assert columns["server"]["p95_ms"] == [None, None]

"""Backend configuration and the round-robin order."""

import pytest
from load_balancer.backends import BackendPool
from load_balancer.config import BalancerSettings
from pydantic import ValidationError


def test_servidores_is_the_seeds_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVIDORES", "http://localhost:8002/, http://localhost:8003")
    settings = BalancerSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.servidores == ["http://localhost:8002", "http://localhost:8003"]


def test_a_backend_without_a_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVIDORES", "localhost:8002")
    with pytest.raises(ValidationError):
        BalancerSettings(_env_file=None)  # type: ignore[call-arg]


def test_rotation_starts_at_the_next_backend_and_covers_all() -> None:
    pool = BackendPool(["a", "b", "c"])
    firsts = [next(pool.rotation()).url for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert [b.url for b in pool.rotation()] == ["a", "b", "c"][(6 % 3) :] + ["a", "b", "c"][: 6 % 3]

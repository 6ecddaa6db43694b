"""SECRET_KEY has no usable default outside dev mode."""

import pytest
from pydantic import ValidationError
from svc_common.settings import DEV_SECRET_KEY, AuthSettings


def _settings(**kwargs: object) -> AuthSettings:
    return AuthSettings(service_name="t", porta=1, _env_file=None, **kwargs)  # type: ignore[call-arg]


def test_missing_key_is_refused_outside_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="SECRET_KEY is required"):
        _settings(dev_mode=False)


@pytest.mark.parametrize("key", ["short", "sua_chave_secreta_aqui", DEV_SECRET_KEY])
def test_short_or_well_known_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationError):
        _settings(dev_mode=False, secret_key=key)


def test_dev_mode_falls_back_to_the_dev_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    assert _settings(dev_mode=True).jwt_key == DEV_SECRET_KEY


def test_a_strong_key_is_accepted() -> None:
    key = "x" * 20 + "0123456789abcdef"
    assert _settings(dev_mode=False, secret_key=key).jwt_key == key


def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker-compose.yml passes every setting through, empty when .env leaves it unset.
    monkeypatch.setenv("LOG_LEVEL", "")
    monkeypatch.setenv("READ_TIMEOUT", "")
    settings = _settings(dev_mode=True)
    assert (settings.log_level, settings.read_timeout) == ("INFO", 10.0)

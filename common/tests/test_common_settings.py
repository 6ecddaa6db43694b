"""SECRET_KEY has no usable default outside dev mode; secrets may come as files."""

from pathlib import Path

import pytest
from pydantic import ValidationError
from svc_common.settings import (
    DEV_SECRET_KEY,
    SECRETS_DIR,
    AuthSettings,
    ServiceSettings,
    secrets_dir,
)


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


def test_a_setting_comes_from_its_file_in_the_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Docker swarm mounts each secret as a file; `echo ... | docker secret create` ends it
    # with a newline.
    monkeypatch.delenv("SECRET_KEY", raising=False)
    key = "k" * 20 + "0123456789abcdef"
    (tmp_path / "SECRET_KEY").write_text(f"{key}\n")
    settings = _settings(dev_mode=False, _secrets_dir=tmp_path)
    assert settings.jwt_key == key


def test_a_variable_wins_over_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = "e" * 20 + "0123456789abcdef"
    monkeypatch.setenv("SECRET_KEY", from_env)
    (tmp_path / "secret_key").write_text("f" * 20 + "0123456789abcdef")
    assert _settings(dev_mode=False, _secrets_dir=tmp_path).jwt_key == from_env


def test_secret_files_are_read_from_run_secrets_only_where_it_exists(tmp_path: Path) -> None:
    assert secrets_dir(str(tmp_path)) == str(tmp_path)
    assert secrets_dir(str(tmp_path / "absent")) is None
    assert secrets_dir() == (SECRETS_DIR if Path(SECRETS_DIR).is_dir() else None)
    assert ServiceSettings.model_config.get("secrets_dir") == secrets_dir()

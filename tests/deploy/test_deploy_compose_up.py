"""scripts/compose_up.py (`make compose-up`): the .env it writes, with fresh secrets, and never
over what is already there."""

from pathlib import Path

from tests.deploy.compose import (
    ENV_EXAMPLE,
    SECRETS,
    compose_config,
    example_values,
    read_env,
    run_compose_up,
)


def test_compose_up_creates_an_env_file_with_fresh_distinct_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    result = run_compose_up(env_file)
    values = read_env(env_file)
    generated = [values[name] for name in SECRETS]
    assert all(generated), values
    assert len(set(generated)) == len(SECRETS)
    assert len(values["FIRST_ADMIN_PASSWORD"]) >= 16
    assert values["FIRST_ADMIN_PASSWORD"].replace("-", "").replace("_", "").isalnum()
    int(values["POSTGRES_PASSWORD"], 16)  # hex: it goes into DATABASE_URL as it is
    assert len(values["SECRET_KEY"]) >= 32
    # Everything else as .env.example has it, comments included; readable by its owner only.
    others = {k: v for k, v in example_values().items() if k not in SECRETS}
    assert {k: values[k] for k in others} == others
    assert env_file.read_text().count("\n#") == ENV_EXAMPLE.read_text().count("\n#")
    assert env_file.stat().st_mode & 0o777 == 0o600
    # The admin's credentials, printed this once, and where they are kept.
    assert result.stdout.count(values["FIRST_ADMIN_PASSWORD"]) == 1, result.stdout
    assert "username: admin" in result.stdout
    assert str(env_file) in result.stdout
    for secret in ("SECRET_KEY", "POSTGRES_PASSWORD", "METRICS_TOKEN"):
        assert values[secret] not in result.stdout
    # And compose takes it as it is.
    assert compose_config(tmp_path, values, "-q").returncode == 0


def test_compose_up_never_overwrites_an_existing_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run_compose_up(env_file)
    env_file.write_text(env_file.read_text() + "RATE_LIMIT=3/minute\n# mine\n")
    before = env_file.read_text()
    result = run_compose_up(env_file)
    assert env_file.read_text() == before
    assert result.stdout == ""
    assert read_env(env_file)["FIRST_ADMIN_PASSWORD"] not in result.stdout


def test_compose_up_fills_in_only_the_blank_secrets(tmp_path: Path) -> None:
    # A .env from before METRICS_TOKEN and FIRST_ADMIN_PASSWORD, one of them left blank.
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# mine\nSECRET_KEY=k" + "k" * 40 + "\nPOSTGRES_PASSWORD=abc123\nMETRICS_TOKEN=\n"
    )
    result = run_compose_up(env_file)
    lines = env_file.read_text().splitlines()
    assert lines[:3] == ["# mine", "SECRET_KEY=k" + "k" * 40, "POSTGRES_PASSWORD=abc123"]
    assert lines[3].startswith("METRICS_TOKEN=")  # filled in where it was
    assert lines[4].startswith("FIRST_ADMIN_PASSWORD=")  # added
    values = read_env(env_file)
    assert values["METRICS_TOKEN"]
    assert len(values["FIRST_ADMIN_PASSWORD"]) >= 16
    assert "METRICS_TOKEN, FIRST_ADMIN_PASSWORD" in result.stdout
    assert result.stdout.count(values["FIRST_ADMIN_PASSWORD"]) == 1
    assert values["METRICS_TOKEN"] not in result.stdout

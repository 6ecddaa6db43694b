"""Settings base shared by every service (pydantic-settings, seed env names)."""

import os
import sys
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from svc_common import tracing_setup

# Dev mode only: a key everyone knows, which is why production refuses it.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789"
WELL_KNOWN_KEYS = frozenset(
    {
        DEV_SECRET_KEY,
        "sua_chave_secreta_aqui",
        "secret",
        "changeme",
        "change-me",
        "your-secret-key",
        "your_secret_key",
        "supersecret",
        "secret_key",
    }
)
MIN_SECRET_LENGTH = 32
MIN_METRICS_TOKEN = 16
DEFAULT_DATABASE_URL = "sqlite:///./data/app.db"
# Where Docker swarm (and Kubernetes, as a volume) mounts secrets, one file per value: a file
# named after a setting (SECRET_KEY, in any case) sets it when its variable is unset.
SECRETS_DIR = "/run/secrets"

CommaList = Annotated[list[str], NoDecode]
S = TypeVar("S", bound="ServiceSettings")


def secrets_dir(path: str = SECRETS_DIR) -> str | None:
    """The directory of secret files when it exists (pydantic-settings warns of a missing one)."""
    return path if os.path.isdir(path) else None


def split_commas(value: Any) -> Any:
    """Turn 'a, b,c' into ['a', 'b', 'c'], leaving lists alone."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ServiceSettings(BaseSettings):
    """What every service reads from its environment."""

    # An empty variable means "the default" (compose passes every setting through, empty when
    # .env leaves it unset). A file under SECRETS_DIR sets what its variable leaves unset.
    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
        secrets_dir=secrets_dir(),
    )

    service_name: str
    porta: int = Field(ge=1, le=65535)
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    access_log: bool = True
    # Plain GETs answered below ASGI (svc_common.serving); off, every request takes the ASGI
    # path with the same answers.
    fast_lane: bool = True
    # Seconds a client may take to send a request's head, or between two pieces of its body
    # (nginx's client_header_timeout / client_body_timeout): slower ones get 408 and are closed.
    read_timeout: float = Field(default=10.0, gt=0)
    # Open connections one process keeps at most; more are closed at once, with a log line.
    max_connections: int = Field(default=10_000, ge=1)
    dev_mode: bool = False
    # When set, /metrics asks for it as a bearer token (the monitor and Prometheus send it).
    metrics_token: SecretStr | None = None

    @field_validator("metrics_token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_METRICS_TOKEN:
            raise ValueError(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} characters")
        return value

    @model_validator(mode="after")
    def _tracing_possible(self) -> Self:
        # The OTEL_* variables are the SDK's, read from the environment as it reads them.
        found = tracing_setup.problems(os.environ)
        if found:
            raise ValueError("; ".join(found))
        return self

    @property
    def metrics_open(self) -> bool:
        """Whether /metrics answers anyone when METRICS_TOKEN is unset."""
        return True


class AuthSettings(ServiceSettings):
    """Settings of a service that verifies the gateway's JWTs."""

    secret_key: SecretStr | None = None
    jwt_algorithm: Literal["HS256"] = "HS256"
    # Shared state (token revocations) goes through Redis when set; in-process otherwise.
    redis_url: str | None = None

    @field_validator("redis_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _require_strong_key(self) -> "AuthSettings":
        key = self.secret_key.get_secret_value() if self.secret_key else None
        if key is None and self.dev_mode:
            self.secret_key = SecretStr(DEV_SECRET_KEY)
            return self
        if self.dev_mode:
            return self
        if key is None:
            raise ValueError(
                "SECRET_KEY is required (set DEV_MODE=true only for local development)"
            )
        if len(key) < MIN_SECRET_LENGTH:
            raise ValueError(f"SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
        if key in WELL_KNOWN_KEYS:
            raise ValueError(
                "SECRET_KEY is a well-known value; generate one (openssl rand -hex 32)"
            )
        return self

    @property
    def jwt_key(self) -> str:
        """The verified signing key."""
        assert self.secret_key is not None  # guaranteed by the validator
        return self.secret_key.get_secret_value()


class DatabaseSettings(ServiceSettings):
    """Settings of a service that owns tables."""

    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: float = Field(default=5.0, gt=0)
    # Prepared statements cached per connection (PostgreSQL); 0 behind PgBouncer in
    # transaction mode, unset for the drivers' defaults.
    db_statement_cache_size: int | None = Field(default=None, ge=0)

    @field_validator("database_url")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return value.strip() or DEFAULT_DATABASE_URL


def load_or_exit(cls: type[S]) -> S:
    """Settings from the environment; on a bad value, one line per problem and exit status 2
    (a start-up refusal reads as a reason, not as a traceback)."""
    try:
        return cls()
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            reason = error["msg"].removeprefix("Value error, ")
            print(f"cannot start: {f'{name}: ' if name else ''}{reason}", file=sys.stderr)
        raise SystemExit(2) from None

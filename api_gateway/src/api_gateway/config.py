"""Configuration of the API gateway."""

from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_network

from limits import RateLimitItem, parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from svc_common.settings import AuthSettings, CommaList, DatabaseSettings, split_commas

from api_gateway.schemas import USERNAME_PATTERN

Network = IPv4Network | IPv6Network
# The seed's accounts: (username, password, role). Published in its README, so they exist only
# in dev mode or with DEMO_USERS=true.
DEMO_USERS = (("admin", "admin123", "admin"), ("user", "user123", "user"))
MIN_ADMIN_PASSWORD = 12
# Refused as FIRST_ADMIN_PASSWORD whatever their length: the first guesses of any attacker.
WELL_KNOWN_PASSWORDS = frozenset(
    {password for _, password, _ in DEMO_USERS}
    | {"changeme", "changethis", "password", "administrator", "admin", "letmein", "qwerty"}
    | {"123456789012", "password1234", "adminadmin123", "changeme1234"}
)


def one_rate(value: str) -> RateLimitItem:
    """A `limits` rate such as `100/second` or `5 per minute`; exactly one per setting."""
    try:
        items = parse_many(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a rate such as 100/second") from exc
    if len(items) != 1:
        # One rate keeps a request at one Redis round trip.
        raise ValueError(f"{value!r}: give exactly one rate, such as 100/second")
    return items[0]


class GatewaySettings(AuthSettings, DatabaseSettings):
    """LOAD_BALANCER_URL, SECRET_KEY and REDIS_URL are the seed's names."""

    service_name: str = "api_gateway"
    porta: int = Field(default=8000, ge=1, le=65535)
    load_balancer_url: str = "http://127.0.0.1:8001"
    access_token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=7, ge=1, le=90)
    upstream_timeout: float = Field(default=15.0, gt=0)
    connect_timeout: float = Field(default=2.0, gt=0)
    pool_limit: int = Field(default=256, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    rate_limit: str = "100/second"
    login_rate_limit: str = "5/minute"
    trusted_proxies: CommaList = Field(default_factory=list)
    cors_origins: CommaList = Field(default_factory=list)
    gzip_min_bytes: int = Field(default=1024, ge=1)
    items_openapi_url: str = "http://127.0.0.1:8002/openapi.json"
    # admin/admin123 and user/user123 outside dev mode too (warned about at every start).
    demo_users: bool = False
    # The first admin, created at the first start; later starts leave the account alone.
    first_admin_username: str = Field(default="admin", pattern=USERNAME_PATTERN)
    first_admin_password: SecretStr | None = None

    _split = field_validator("trusted_proxies", "cors_origins", mode="before")(split_commas)

    @field_validator("rate_limit", "login_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        one_rate(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"TRUSTED_PROXIES: {entry!r} is not an IP or CIDR") from exc
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"CORS_ORIGINS: {origin!r} must be * or start with http(s)://")
        return [origin.rstrip("/") for origin in value]

    @model_validator(mode="after")
    def _require_first_admin(self) -> "GatewaySettings":
        password = self.first_admin_password
        if password is None:
            if not self.demo_accounts:
                raise ValueError(
                    "FIRST_ADMIN_PASSWORD is required outside dev mode (or set DEMO_USERS=true "
                    "for a demo with the published admin/admin123)"
                )
            return self
        if self.dev_mode:
            return self
        value = password.get_secret_value()
        if len(value) < MIN_ADMIN_PASSWORD:
            raise ValueError(
                f"FIRST_ADMIN_PASSWORD must be at least {MIN_ADMIN_PASSWORD} characters"
            )
        if value.lower() in WELL_KNOWN_PASSWORDS or value.lower() == self.first_admin_username:
            raise ValueError(
                "FIRST_ADMIN_PASSWORD is a well-known password; generate one "
                "(openssl rand -base64 18)"
            )
        return self

    @property
    def metrics_open(self) -> bool:
        """The gateway's port is public: outside dev mode /metrics needs METRICS_TOKEN."""
        return self.dev_mode

    @property
    def demo_accounts(self) -> bool:
        """Whether the seed's published accounts exist (dev mode, or DEMO_USERS=true)."""
        return self.dev_mode or self.demo_users

    @cached_property
    def proxy_networks(self) -> tuple[Network, ...]:
        """TRUSTED_PROXIES parsed."""
        return tuple(ip_network(entry, strict=False) for entry in self.trusted_proxies)

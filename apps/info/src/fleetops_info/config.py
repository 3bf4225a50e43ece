"""info's configuration, read once from environment variables into a typed object.

Nothing else in the service reads ``os.environ``: ``__main__`` passes it in, tests pass a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fleetops_common.envconfig import ConfigError, app_version, env_float, env_int, env_str
from fleetops_common.lameduck import DrainSettings
from fleetops_common.server import ServerSettings


@dataclass(frozen=True)
class DataURL:
    """Where the data service answers; ``path`` is a prefix placed before ``/api/...``."""

    scheme: str
    host: str
    port: int
    path: str = ""

    def __str__(self) -> str:
        # IPv6 literals need their brackets back to form a URL again.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_data_url(name: str, value: str) -> DataURL:
    """Validate a base URL for data; errors name the variable so the operator knows what to fix."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:  # urlsplit rejects bad ports and brackets this way
        raise ConfigError(f"{name} is not a valid URL ({exc}): {value!r}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{name} must start with http:// or https://, got {value!r}")
    if not parts.hostname:
        raise ConfigError(f"{name} must name a host, got {value!r}")
    if parts.username is not None or parts.query or parts.fragment:
        # Credentials travel in DATA_API_TOKEN; anything else here would be silently dropped.
        raise ConfigError(f"{name} must not carry credentials, a query or a fragment")
    default_port = 443 if parts.scheme == "https" else 80
    return DataURL(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port if port is not None else default_port,
        path=parts.path.rstrip("/"),
    )


def parse_data_urls(name: str, value: str) -> tuple[DataURL, ...]:
    """A comma-separated list of base URLs (empty entries ignored), each checked."""
    return tuple(parse_data_url(name, part.strip()) for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Config:
    bind_host: str
    port: int
    threads: int
    version: str
    # Secrets stay out of repr() so a logged or printed config never leaks them.
    jwt_secret: str = field(repr=False)
    jwt_ttl_seconds: int
    data_url: DataURL
    data_api_token: str = field(repr=False)
    data_connect_timeout: float
    data_timeout: float
    # Where to go when data_url does not accept a connection (the region's other lbs).
    data_fallback_urls: tuple[DataURL, ...] = ()
    # How a SIGTERM drains (lameduck.py).
    drain: DrainSettings = field(default_factory=DrainSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Build the config, or raise ConfigError naming the first unusable variable."""
        return cls(
            bind_host=env_str(env, "BIND_HOST", "127.0.0.1"),
            port=env_int(env, "PORT", 5555, minimum=1, maximum=65535),
            threads=env_int(env, "THREADS", 8, minimum=1, maximum=256),
            version=app_version(env),
            # 32 characters = 256 bits, the HMAC-SHA256 key size RFC 7518 asks for.
            jwt_secret=env_str(env, "JWT_SECRET", min_length=32),
            jwt_ttl_seconds=env_int(env, "JWT_TTL_SECONDS", 3600, minimum=60, maximum=86400),
            data_url=parse_data_url("DATA_URL", env_str(env, "DATA_URL", "http://127.0.0.1:9876")),
            data_api_token=env_str(env, "DATA_API_TOKEN", min_length=16),
            data_connect_timeout=env_float(
                env, "DATA_CONNECT_TIMEOUT", 1.0, minimum=0.01, maximum=60.0
            ),
            data_timeout=env_float(env, "DATA_TIMEOUT", 3.0, minimum=0.01, maximum=300.0),
            data_fallback_urls=parse_data_urls(
                "DATA_FALLBACK_URLS", env_str(env, "DATA_FALLBACK_URLS", "")
            ),
            drain=DrainSettings.from_env(env),
        )

    def server_settings(self) -> ServerSettings:
        return ServerSettings(host=self.bind_host, port=self.port, threads=self.threads)

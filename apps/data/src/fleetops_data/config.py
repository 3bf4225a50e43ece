"""The data service's settings, read once from the environment at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetops_common.envconfig import app_version, env_float, env_int, env_str
from fleetops_common.server import ServerSettings

# Long enough that guessing is hopeless; Vault generates much longer ones.
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Config:
    bind_host: str
    port: int
    threads: int
    version: str
    # Secrets stay out of repr() so a logged config never leaks them.
    api_token: str = field(repr=False)
    db_host: str
    db_port: int
    db_name: str
    db_user: str
    db_password: str = field(repr=False)
    db_pool_size: int
    db_connect_timeout: float
    db_read_timeout: float
    db_write_timeout: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Build the config, raising ``ConfigError`` naming the first unusable variable."""
        threads = env_int(env, "THREADS", 8, minimum=1, maximum=256)
        return cls(
            bind_host=env_str(env, "BIND_HOST", "127.0.0.1"),
            port=env_int(env, "PORT", 9876, minimum=1, maximum=65535),
            threads=threads,
            version=app_version(env),
            api_token=env_str(env, "DATA_API_TOKEN", min_length=MIN_TOKEN_LENGTH),
            db_host=env_str(env, "DB_HOST", "127.0.0.1"),
            db_port=env_int(env, "DB_PORT", 3306, minimum=1, maximum=65535),
            db_name=env_str(env, "DB_NAME", "fleetops"),
            db_user=env_str(env, "DB_USER"),
            db_password=env_str(env, "DB_PASSWORD"),
            # One connection per waitress thread means a request never waits for another's.
            db_pool_size=env_int(env, "DB_POOL_SIZE", threads, minimum=1, maximum=256),
            # Short timeouts: a stuck database must turn into a quick 503, not a hung
            # worker thread that HAProxy's health check would wait on too.
            db_connect_timeout=env_float(env, "DB_CONNECT_TIMEOUT", 2.0, minimum=0.1, maximum=60.0),
            db_read_timeout=env_float(env, "DB_READ_TIMEOUT", 5.0, minimum=0.1, maximum=600.0),
            db_write_timeout=env_float(env, "DB_WRITE_TIMEOUT", 5.0, minimum=0.1, maximum=600.0),
        )

    def server_settings(self) -> ServerSettings:
        return ServerSettings(host=self.bind_host, port=self.port, threads=self.threads)

"""The data service's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetops_common.envconfig import ConfigError, app_version, env_float, env_int, env_str
from fleetops_common.lameduck import DrainSettings
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
    # Logins hashing at once, logins waiting for that, and how long one waits (kdfgate.py).
    kdf_workers: int
    kdf_waiting: int
    kdf_wait_seconds: float
    # How a SIGTERM drains (lameduck.py).
    drain: DrainSettings = field(default_factory=DrainSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str], cpus: int | None = None) -> Config:
        """Build the config, raising ``ConfigError`` naming the first unusable variable.

        ``cpus``: the cores this process may use (default: its CPU affinity).
        """
        threads = env_int(env, "THREADS", 8, minimum=2, maximum=256)
        cores = cpus if cpus is not None else len(os.sched_getaffinity(0))
        # Hashing more at once than there are cores only makes each login slower; a quarter of
        # the threads at most, and as many waiting, leaves half of them to reads.
        kdf_workers = env_int(
            env, "KDF_WORKERS", max(1, min(cores, threads // 4)), minimum=1, maximum=256
        )
        kdf_waiting = env_int(
            env,
            "KDF_WAITING",
            max(0, min(kdf_workers, threads - 1 - kdf_workers)),
            minimum=0,
            maximum=256,
        )
        if kdf_workers + kdf_waiting >= threads:
            raise ConfigError(
                f"KDF_WORKERS + KDF_WAITING ({kdf_workers} + {kdf_waiting}) must be less than "
                f"THREADS ({threads}): logins would take every thread and starve reads"
            )
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
            kdf_workers=kdf_workers,
            kdf_waiting=kdf_waiting,
            kdf_wait_seconds=env_float(env, "KDF_WAIT_SECONDS", 1.0, minimum=0.0, maximum=30.0),
            drain=DrainSettings.from_env(env),
        )

    def server_settings(self) -> ServerSettings:
        return ServerSettings(host=self.bind_host, port=self.port, threads=self.threads)

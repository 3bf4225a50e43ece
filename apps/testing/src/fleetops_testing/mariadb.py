"""A real MariaDB server for tests: its own datadir, socket and loopback port.

Uses the binaries of Debian's ``mariadb-server`` package (``make test`` installs it). The
server can be stopped and started again on the same port and datadir, which is how tests
simulate the database going down and coming back.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql


@dataclass(frozen=True)
class Database:
    """Connection settings of one test database and its application user."""

    host: str
    port: int
    name: str
    user: str
    password: str

    def env(self) -> dict[str, str]:
        """The ``DB_*`` environment variables a service uses to reach this database."""
        return {
            "DB_HOST": self.host,
            "DB_PORT": str(self.port),
            "DB_NAME": self.name,
            "DB_USER": self.user,
            "DB_PASSWORD": self.password,
        }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"{name} not found: install Debian's mariadb-server (make test does)")


class MariaDBServer:
    """One mariadbd process owned by the test session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.socket = workdir / "mysqld.sock"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._process: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        subprocess.run(
            [
                _binary("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--user=root",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            check=True,
            capture_output=True,
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        log = (self.workdir / "mariadb.log").open("ab")
        self._process = subprocess.Popen(
            [
                _binary("mariadbd"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                f"--bind-address={self.host}",
                "--user=root",
                "--skip-log-bin",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=2",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mariadbd exited; see {self.workdir / 'mariadb.log'}")
            try:
                self.root().close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.1)
        raise RuntimeError(f"mariadbd did not answer within {timeout}s")

    def stop(self) -> None:
        """Shut the server down cleanly (as an operator or a crash-free restart would)."""
        if not self.running:
            return
        assert self._process is not None
        self._process.terminate()
        self._process.wait(timeout=30)
        self._process = None

    def root(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)

    def create_database(self) -> Database:
        suffix = secrets.token_hex(4)
        db = Database(
            self.host, self.port, f"fleetops_{suffix}", f"app_{suffix}", secrets.token_urlsafe(16)
        )
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{db.name}`")
            cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (db.user, db.password))
            # What the mariadb role grants the data service: DML plus the DDL its
            # expand-only migrations need; never DROP or GRANT.
            cur.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES "
                f"ON `{db.name}`.* TO %s@'127.0.0.1'",
                (db.user,),
            )
        return db

    def drop_database(self, db: Database) -> None:
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db.name}`")
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (db.user,))

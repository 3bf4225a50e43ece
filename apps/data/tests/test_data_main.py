"""The command line, run in-process: serve, migrate, seed, add-user and their failures."""

import io
import json
import os
import runpy
import signal
import socket
import sys
import threading
import time
import urllib.request

import pytest

from fleetops_data.__main__ import main
from fleetops_data.seed import QUOTES_FILE
from fleetops_testing.mariadb import free_port

SEED_QUOTES = len(json.loads(QUOTES_FILE.read_text()))
VARIABLES = [
    "BIND_HOST", "PORT", "THREADS", "APP_VERSION", "COMMIT_SHA", "DATA_API_TOKEN", "DB_HOST",
    "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_POOL_SIZE", "DB_CONNECT_TIMEOUT",
    "DB_READ_TIMEOUT", "DB_WRITE_TIMEOUT",
]  # fmt: skip


@pytest.fixture
def environ(monkeypatch, env):
    """Make ``env`` the process environment (main is the one place that reads it)."""

    def use(values):
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    use(env)
    return use


def test_a_configuration_error_is_one_line_and_exit_code_2(environ, env, capsys):
    environ({k: v for k, v in env.items() if k != "DATA_API_TOKEN"})
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "DATA_API_TOKEN" in err
    assert "Traceback" not in err


def test_a_bad_value_names_the_variable(environ, env, capsys):
    environ({**env, "DB_POOL_SIZE": "lots"})
    assert main(["seed"]) == 2
    assert "DB_POOL_SIZE" in capsys.readouterr().err


def test_migrate_then_seed(environ, capsys, store):
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == "applied 0001_users, 0002_quotes\n"
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == "schema is up to date\n"
    assert main(["seed"]) == 0
    assert capsys.readouterr().out == f"added 4 users and {SEED_QUOTES} quotes\n"
    assert main(["seed"]) == 0
    assert capsys.readouterr().out == "added 0 users and 0 quotes\n"
    assert store.authenticate("bob", "thisIsNotAPasswordBob") == ("bob", "viewer")


def test_add_user_reads_the_password_from_stdin(environ, migrated, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long passphrase\nignored\n"))
    assert main(["add-user", "ops", "admin"]) == 0
    assert capsys.readouterr().out == "added user ops (admin)\n"
    assert migrated.authenticate("ops", "a long passphrase") == ("ops", "admin")

    monkeypatch.setattr(sys, "stdin", io.StringIO("another\n"))
    assert main(["add-user", "ops", "viewer"]) == 1
    assert "UserExistsError: ops" in capsys.readouterr().err
    assert migrated.authenticate("ops", "a long passphrase") == ("ops", "admin")


def test_ensure_user_says_what_it_did(environ, migrated, monkeypatch, capsys):
    steps = [("pw one", "created"), ("pw one", "unchanged"), ("pw two", "updated")]
    for password, outcome in steps:
        monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
        assert main(["ensure-user", "smoke", "viewer"]) == 0
        assert capsys.readouterr().out == f"{outcome} user smoke (viewer)\n"
    assert migrated.authenticate("smoke", "pw two") == ("smoke", "viewer")


def test_add_user_refuses_an_empty_password(environ, migrated, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main(["add-user", "ops", "viewer"]) == 1
    assert "non-empty" in capsys.readouterr().err
    assert migrated.authenticate("ops", "") is None


def test_add_user_refuses_an_unknown_role(environ, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["add-user", "ops", "root"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_database_down_is_a_clear_failure(environ, env, capsys):
    environ({**env, "DB_PORT": str(free_port())})
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fleetops-data: DatabaseUnavailable: (2003)")
    assert "Traceback" not in err


def test_serve_on_a_taken_port_is_a_clear_failure(environ, env, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        environ({**env, "PORT": str(taken.getsockname()[1])})
        assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fleetops-data: OSError:")
    assert "Traceback" not in err


def test_python_dash_m_runs_main(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["fleetops-data", "--help"])
    # As on a real `python -m`, the module must not have been imported before.
    monkeypatch.delitem(sys.modules, "fleetops_data.__main__")
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("fleetops_data", run_name="__main__")
    assert exit_.value.code == 0
    assert "add-user" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["serve"], []], ids=["serve", "default"])
def test_serve_answers_http_until_sigterm(environ, env, migrated, argv):
    port = free_port()
    # The check is a health checker that stops checking: the lame duck waits out its gap.
    environ({**env, "PORT": str(port), "THREADS": "2", "DRAIN_CHECK_GAP_SECONDS": "1"})
    seen = {}

    def check_then_stop():
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/health", timeout=2
                    ) as response:
                        seen["health"] = (response.status, json.load(response))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    timer = threading.Timer(0.1, check_then_stop)
    timer.start()
    try:
        assert main(argv) == 0
    finally:
        timer.join(15)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert seen["health"] == (200, {"status": "ok", "db": "ok"})

"""The deploy lock module's logic: one winner, a clear refusal, explicit breaking, safe release."""

from __future__ import annotations

import json
import threading

import pytest

from tests.conftest import load_module

lock = load_module("library/fleet_deploy_lock.py")


def record(token: str, who: str = "alice@laptop", action: str = "rolling_update info") -> dict:
    return {"token": token, "holder": who, "action": action, "environment": "prod", "since": "t0"}


def test_first_run_takes_it_and_the_file_names_the_holder(tmp_path):
    path = str(tmp_path / "sub" / "deploy.lock")
    result = lock.acquire(path, record("a"))
    assert result["changed"]
    assert result["acquired"]
    assert "token" not in result["holder"]
    stored = json.loads((tmp_path / "sub" / "deploy.lock").read_text())
    assert stored["holder"] == "alice@laptop"
    assert stored["token"] == "a"


def test_a_second_run_is_refused_with_who_since_when_and_what(tmp_path):
    path = str(tmp_path / "deploy.lock")
    lock.acquire(path, record("a"))
    with pytest.raises(lock.LockHeldError) as held:
        lock.acquire(path, record("b", who="bob@ci", action="site.yml"))
    message = str(held.value)
    assert "alice@laptop" in message
    assert "t0" in message
    assert "rolling_update info" in message
    assert "token" not in held.value.record
    assert json.loads((tmp_path / "deploy.lock").read_text())["token"] == "a"


def test_the_holder_may_take_it_again(tmp_path):
    path = str(tmp_path / "deploy.lock")
    lock.acquire(path, record("a"))
    again = lock.acquire(path, record("a"))
    assert again["acquired"]
    assert not again["changed"]


def test_breaking_replaces_the_stale_lock_and_reports_it(tmp_path):
    path = str(tmp_path / "deploy.lock")
    lock.acquire(path, record("a"))
    result = lock.acquire(path, record("b", who="bob@ci"), break_lock=True)
    assert result["acquired"]
    assert result["broken"]["holder"] == "alice@laptop"
    assert json.loads((tmp_path / "deploy.lock").read_text())["token"] == "b"


def test_break_lock_without_a_lock_just_takes_it(tmp_path):
    path = str(tmp_path / "deploy.lock")
    assert lock.acquire(path, record("a"), break_lock=True)["broken"] is None


def test_an_unreadable_lock_file_still_counts_as_held(tmp_path):
    path = tmp_path / "deploy.lock"
    path.write_text("{not json")
    with pytest.raises(lock.LockHeldError, match="unreadable"):
        lock.acquire(str(path), record("a"))
    path.write_text("[1, 2]")
    with pytest.raises(lock.LockHeldError):
        lock.acquire(str(path), record("a"))


def test_release_removes_only_the_holders_lock(tmp_path):
    path = str(tmp_path / "deploy.lock")
    lock.acquire(path, record("a"))
    kept = lock.release(path, "b")
    assert not kept["changed"]
    assert kept["holder"]["holder"] == "alice@laptop"
    assert (tmp_path / "deploy.lock").exists()
    assert lock.release(path, "a")["changed"]
    assert not (tmp_path / "deploy.lock").exists()
    assert lock.release(path, "a") == {"changed": False, "acquired": False}


def test_check_mode_writes_and_removes_nothing(tmp_path):
    path = str(tmp_path / "deploy.lock")
    assert lock.acquire(path, record("a"), check=True)["acquired"]
    assert not (tmp_path / "deploy.lock").exists()
    lock.acquire(path, record("a"))
    assert lock.release(path, "a", check=True)["changed"]
    assert (tmp_path / "deploy.lock").exists()


def test_of_many_racing_runs_exactly_one_wins(tmp_path):
    path = str(tmp_path / "deploy.lock")
    outcomes: list[str] = []
    start = threading.Barrier(16)

    def run(i: int) -> None:
        start.wait()
        try:
            lock.acquire(path, record(f"t{i}"))
            outcomes.append("won")
        except lock.LockHeldError:
            outcomes.append("refused")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("won") == 1
    assert outcomes.count("refused") == 15

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


def _metric(text: str) -> float:
    (line,) = [x for x in text.splitlines() if x.startswith("fleetops_deploy_lock_since")]
    return float(line.split()[-1])


def test_the_lock_state_is_a_metric_for_node_exporter(tmp_path):
    path, metrics = str(tmp_path / "deploy.lock"), tmp_path / "textfile" / "lock.prom"
    # No textfile directory yet (a fresh host before node_exporter): nothing written, no error.
    assert lock.write_metrics(str(metrics), path) is False
    metrics.parent.mkdir()
    assert lock.write_metrics(str(metrics), path)
    assert _metric(metrics.read_text()) == 0
    taken = {**record("a"), "since": "2026-12-02T10:00:00Z"}
    lock.acquire(path, taken)
    lock.write_metrics(str(metrics), path)
    assert _metric(metrics.read_text()) == 1796205600
    assert oct(metrics.stat().st_mode & 0o777) == "0o644"  # node_exporter runs as its own user
    lock.release(path, "a")
    lock.write_metrics(str(metrics), path)
    assert _metric(metrics.read_text()) == 0


def test_an_unreadable_lock_counts_from_its_file_time(tmp_path):
    path = tmp_path / "deploy.lock"
    path.write_text("garbage")
    text = lock.lock_metrics(lock.read(str(path)), 1234.0)
    assert _metric(text) == 1234

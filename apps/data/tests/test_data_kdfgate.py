"""The bound on logins hashed at once (fleetops_data.kdfgate)."""

from __future__ import annotations

import threading
import time

import pytest

from fleetops_data.kdfgate import KdfBusy, KdfGate


def hold(gate: KdfGate, entered: threading.Event, release: threading.Event, out: list) -> None:
    try:
        with gate.slot():
            entered.set()
            release.wait(5)
        out.append("hashed")
    except KdfBusy:
        entered.set()
        out.append("busy")


def test_workers_hash_waiters_wait_and_the_rest_are_turned_away_at_once():
    gate = KdfGate(workers=1, waiting=1, wait_seconds=5)
    release = threading.Event()
    results: list[str] = []
    first, second = threading.Event(), threading.Event()
    hashing = threading.Thread(target=hold, args=(gate, first, release, results))
    hashing.start()
    assert first.wait(5)
    waiting = threading.Thread(target=hold, args=(gate, second, release, results))
    waiting.start()
    deadline = time.monotonic() + 5
    while gate.admitted < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.admitted == 2
    began = time.monotonic()
    with pytest.raises(KdfBusy), gate.slot():
        pass
    assert time.monotonic() - began < 0.5  # no wait for the third
    release.set()
    hashing.join(5)
    waiting.join(5)
    assert results == ["hashed", "hashed"]
    assert (gate.admitted, gate.turned_away) == (0, 1)


def test_a_waiter_gives_up_after_its_wait():
    gate = KdfGate(workers=1, waiting=1, wait_seconds=0.05)
    with gate.slot():
        began = time.monotonic()
        with pytest.raises(KdfBusy), gate.slot():
            pass
        assert 0.04 <= time.monotonic() - began < 1
    assert (gate.admitted, gate.turned_away) == (0, 1)
    with gate.slot():  # the slot is free again
        assert gate.admitted == 1


@pytest.mark.parametrize(("workers", "waiting", "wait"), [(0, 1, 1.0), (1, -1, 1.0), (1, 1, -1.0)])
def test_nonsense_bounds_are_refused(workers, waiting, wait):
    with pytest.raises(ValueError, match="workers"):
        KdfGate(workers, waiting, wait)

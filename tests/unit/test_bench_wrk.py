"""make bench reads wrk's own report; a misread number would make every ratio wrong."""

from __future__ import annotations

import pytest

from tests.conftest import load_module

wrk = load_module("bench/wrk.py")

REPORT = """Running 10s test @ http://127.0.0.1:8080/_health
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.19ms    4.50ms  40.17ms   89.66%
    Req/Sec     3.77k     1.55k    9.39k    80.00%
  Latency Distribution
     50%  812.00us
     75%    2.26ms
     90%    6.87ms
     99%    1.20s
  75515 requests in 10.01s, 9.81MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 15
Requests/sec:   7544.05
Transfer/sec:      0.98MB
"""


def test_a_report_is_read_with_units_and_errors():
    run = wrk.parse(REPORT)
    assert run.rps == pytest.approx(7544.05)
    assert run.p50_ms == pytest.approx(0.812)
    assert run.p99_ms == pytest.approx(1200.0)
    assert run.requests == 75515
    assert run.errors == 3 + 1 + 2 + 15


def test_a_clean_run_has_no_errors():
    clean = REPORT.replace("  Socket errors: connect 0, read 3, write 1, timeout 2\n", "")
    assert wrk.parse(clean.replace("  Non-2xx or 3xx responses: 15\n", "")).errors == 0


def test_anything_else_is_refused():
    with pytest.raises(ValueError, match="not a wrk --latency report"):
        wrk.parse("unable to connect to 127.0.0.1:8080 Connection refused")
    with pytest.raises(ValueError, match="not a wrk duration"):
        wrk.to_ms("12parsecs")


def test_pacing_offers_the_asked_rate():
    # 16 connections, each pausing 20 ms before a request: about 800 requests/s offered.
    assert wrk.delay_for(800, 16) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="positive"):
        wrk.delay_for(0, 16)

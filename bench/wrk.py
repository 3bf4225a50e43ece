"""Run wrk (Debian's package) and read its report: requests per second, latency percentiles."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("request.lua")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors and non-2xx/3xx answers


def to_ms(text: str) -> float:
    """wrk's durations ("812.00us", "1.20ms", "2.01s") in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(report: str) -> Run:
    """Read the report of ``wrk --latency``."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", report)
    total = re.search(r"(\d+) requests in", report)
    p50 = re.search(r"^\s+50%\s+(\S+)", report, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", report, re.M)
    if not (rps and total and p50 and p99):
        raise ValueError("not a wrk --latency report:\n" + report)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", report))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", report)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return Run(
        rps=float(rps.group(1)),
        p50_ms=to_ms(p50.group(1)),
        p99_ms=to_ms(p99.group(1)),
        requests=int(total.group(1)),
        errors=errors,
    )


def delay_for(rate: float, connections: int) -> float:
    """The per-connection pause (ms) that offers about ``rate`` requests/s over ``connections``."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    return connections * 1000.0 / rate


def run(
    url: str,
    *,
    seconds: int = 10,
    connections: int = 16,
    threads: int = 2,
    method: str = "GET",
    body: str = "",
    token: str = "",
    delay_ms: float = 0.0,
) -> Run:
    """One bounded wrk run against ``url`` (127.0.0.1 or the fleet's own network only)."""
    env = {
        **os.environ,
        "BENCH_METHOD": method,
        "BENCH_BODY": body,
        "BENCH_TOKEN": token,
        "BENCH_DELAY_MS": f"{delay_ms:.3f}",
    }
    command = ["wrk", "--latency", "-t", str(threads), "-c", str(connections)]
    command += ["-d", f"{seconds}s", "--timeout", "5s", "-s", str(SCRIPT), url]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    return parse(done.stdout)

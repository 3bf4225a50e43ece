"""The canary's verdict: a batch's new nodes judged by their live SLIs against the old nodes'.

Pure: the inputs are two summaries of the same window (the new nodes', the old nodes') and the
tier's thresholds; the output is the verdict and its reasons, with every number that decided it.

Each SLI has a limit that is the larger of an absolute bound and the old nodes' value times a
factor: a release is failed when it is worse than the fleet by a margin *and* worse than what
is acceptable outright, so a fleet already past its goal (an overload) does not fail every new
release, and a tiny baseline (0.1 % errors) does not make one more error a failure.

- ``fail``: at least one SLI is past its limit (the numbers say which, new vs old, and the limit);
- ``none``: no verdict can be given: a side has too few requests in the window for a ratio or a
  percentile to mean something, or an SLI is missing (no histogram, Prometheus did not answer);
  the caller stops safely unless an operator overrides;
- ``pass``: every SLI within its limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (SLI, summary key, absolute-limit key, factor key, how to show a value)
_SLIS = (
    ("error ratio", "error_ratio", "error_ratio_max", "error_ratio_factor", "{:.2%}"),
    ("p99 latency", "p99_seconds", "p99_max_seconds", "p99_factor", "{:.3f} s"),
    ("CPU saturation", "cpu", "cpu_max", "cpu_factor", "{:.0%}"),
)
THRESHOLD_KEYS = frozenset(
    {"min_requests"} | {key for _, _, absolute, factor, _ in _SLIS for key in (absolute, factor)}
)


def _summary(side: Mapping[str, Any] | None) -> dict[str, float | None]:
    """A side's numbers, with its error ratio; None where the summary has no value."""
    side = side or {}

    def number(key: str) -> float | None:
        value = side.get(key)
        return None if value is None else float(value)

    requests, errors = number("requests"), number("errors")
    ratio = errors / requests if requests and errors is not None else None
    return {
        "requests": requests,
        "error_ratio": ratio,
        "p99_seconds": number("p99_seconds"),
        "cpu": number("cpu"),
    }


def canary_verdict(
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
    thresholds: Mapping[str, Any],
) -> dict[str, Any]:
    """``{"verdict": "pass"|"fail"|"none", "reasons": [...], "checks": [...]}``.

    ``new`` and ``old``: ``requests`` and ``errors`` (5xx) counted over the window, its
    ``p99_seconds`` and ``cpu`` (busy share of the nodes' cores, 0..1); None for a side
    Prometheus gave nothing for. ``thresholds``: ``min_requests`` per side, and for each SLI an
    absolute limit and a factor on the old nodes' value (``error_ratio_max``,
    ``error_ratio_factor``, ``p99_max_seconds``, ``p99_factor``, ``cpu_max``, ``cpu_factor``).
    """
    unknown = set(thresholds) - THRESHOLD_KEYS
    missing = THRESHOLD_KEYS - set(thresholds)
    if unknown or missing:
        raise ValueError(f"canary thresholds: unknown {sorted(unknown)}, missing {sorted(missing)}")
    summaries = {"new": _summary(new), "old": _summary(old)}
    minimum = float(thresholds["min_requests"])
    few = [
        f"{name} nodes served {int(s['requests'] or 0)} requests in the window, fewer than"
        f" {int(minimum)}"
        for name, s in summaries.items()
        if (s["requests"] or 0) < minimum
    ]
    if few:
        return {"verdict": "none", "reasons": few, "checks": []}
    checks, failed, unknowable = [], [], []
    for title, key, absolute, factor, shown in _SLIS:
        value, baseline = summaries["new"][key], summaries["old"][key]
        if value is None or baseline is None:
            unknowable.append(f"no {title} for the {'new' if value is None else 'old'} nodes")
            continue
        limit = max(float(thresholds[absolute]), baseline * float(thresholds[factor]))
        ok = value <= limit
        checks.append({"sli": key, "new": value, "old": baseline, "limit": limit, "ok": ok})
        if not ok:
            failed.append(
                f"{title} {shown.format(value)} on the new nodes, past the limit"
                f" {shown.format(limit)} (old nodes {shown.format(baseline)})"
            )
    if failed:
        return {"verdict": "fail", "reasons": failed, "checks": checks}
    if unknowable:
        return {"verdict": "none", "reasons": unknowable, "checks": checks}
    return {"verdict": "pass", "reasons": [], "checks": checks}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"canary_verdict": canary_verdict}

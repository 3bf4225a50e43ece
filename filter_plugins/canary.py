"""The canary's verdict: a batch's new nodes judged by their live SLIs against the old nodes'.

Pure: the inputs are two summaries of the same window (the new nodes', the old nodes') and the
tier's thresholds; the output is the verdict and its reasons, with every number that decided it.

Each SLI has a limit that is the larger of an absolute bound and the old nodes' value times a
factor: a release is failed when it is worse than the fleet by a margin *and* worse than what
is acceptable outright, so a fleet already past its goal (an overload) does not fail every new
release, and a tiny baseline (0.1 % errors) does not make one more error a failure.

Latency is judged twice: the tier's p99 (its SLO's statistic), and each route's mean latency
against the same route on the old nodes. A tier's tail is often one slow route's (info's is
its logins', a KDF by design), so a regression on another route hides under it; a route's mean
moves with every one of its requests and stays steady with a few dozen of them, where a p99 of
so few is its slowest one. A route is judged when each side served ``min_route_requests`` of it.
A route the new nodes served fewer times, where the traffic split says a second window would
bring it there (they were expected to serve at least half of it), is *thin*: the verdict names
it, and the bake takes one more window before it passes a batch a thin route might be hiding a
regression in (a small share's luck of the draw let +80 ms through on 17 requests of 20).
So are all routes when a side served fewer than ``min_requests`` but at least half of it: the
bake takes one more window before it gives up on a verdict.

- ``fail``: at least one SLI is past its limit (the numbers say which, new vs old, and the limit);
- ``none``: no verdict can be given: a side has too few requests in the window for a ratio or a
  percentile to mean something, or an SLI is missing (no histogram, Prometheus did not answer);
  the caller stops safely unless an operator overrides;
- ``pass``: every SLI within its limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# (SLI, summary key, absolute-limit key, factor key, how to show a value)
_SLIS = (
    ("error ratio", "error_ratio", "error_ratio_max", "error_ratio_factor", "{:.2%}"),
    ("p99 latency", "p99_seconds", "p99_max_seconds", "p99_factor", "{:.3f} s"),
    ("CPU saturation", "cpu", "cpu_max", "cpu_factor", "{:.0%}"),
)
_ROUTE_KEYS = ("min_route_requests", "route_mean_max_seconds", "route_mean_factor")
THRESHOLD_KEYS = frozenset(
    {"min_requests", *_ROUTE_KEYS}
    | {key for _, _, absolute, factor, _ in _SLIS for key in (absolute, factor)}
)


def _summary(side: Mapping[str, Any] | None) -> dict[str, float | None]:
    """A side's numbers, with its error ratio; None where the summary has no value."""
    side = side or {}

    def number(key: str) -> float | None:
        value = side.get(key)
        return None if value is None else float(value)

    requests, errors = number("requests"), number("errors")
    ratio = errors / requests if requests and errors is not None else None
    counts, seconds = side.get("route_requests") or {}, side.get("route_seconds") or {}
    routes = {
        route: (float(count), float(seconds[route]) / float(count))
        for route, count in counts.items()
        if count and seconds.get(route) is not None
    }
    return {
        "requests": requests,
        "error_ratio": ratio,
        "p99_seconds": number("p99_seconds"),
        "cpu": number("cpu"),
        "routes": routes,
    }


def _route_checks(
    new: Mapping[str, tuple[float, float]],
    old: Mapping[str, tuple[float, float]],
    thresholds: Mapping[str, Any],
    split: float,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each route both sides served ``min_route_requests`` of: its mean latency new vs old.
    And the thin routes: the new nodes served fewer than that of a route where the old nodes'
    count times ``split`` (new requests per old one, over all routes) expected at least half
    of it, so that a window twice as long is expected to reach it."""
    least = float(thresholds["min_route_requests"])
    checks, thin = [], []
    for route in sorted(old):
        old_count, baseline = old[route]
        count, value = new.get(route, (0.0, 0.0))
        if count < least <= 2 * old_count * split:
            thin.append(f"{route} (new {count:.0f}, expected {old_count * split:.0f})")
        if count < least or old_count < least:
            continue
        limit = max(
            float(thresholds["route_mean_max_seconds"]),
            baseline * float(thresholds["route_mean_factor"]),
        )
        checks.append(
            {"sli": "route_mean_seconds", "route": route, "new": value, "old": baseline,
             "limit": limit, "ok": value <= limit}
        )  # fmt: skip
    return checks, thin


def canary_verdict(
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
    thresholds: Mapping[str, Any],
) -> dict[str, Any]:
    """``{"verdict": "pass"|"fail"|"none", "reasons": [...], "checks": [...], "thin": [...],
    "summary": "..."}`` (``summary``: every number on one line, for the deployment
    notification; ``thin``: the routes the new nodes served too little of to judge, though the
    traffic split expected enough: the caller bakes longer before it takes a pass).

    ``new`` and ``old``: ``requests`` and ``errors`` (5xx) counted over the window, its
    ``p99_seconds`` and ``cpu`` (busy share of the nodes' cores, 0..1), ``route_requests`` and
    ``route_seconds`` (``{route: value}``: requests and the seconds spent on them); None for a
    side Prometheus gave nothing for. ``thresholds``: ``min_requests`` per side, for each SLI an
    absolute limit and a factor on the old nodes' value (``error_ratio_max``,
    ``error_ratio_factor``, ``p99_max_seconds``, ``p99_factor``, ``cpu_max``, ``cpu_factor``,
    ``route_mean_max_seconds``, ``route_mean_factor``), and ``min_route_requests``.
    """
    unknown = set(thresholds) - THRESHOLD_KEYS
    missing = THRESHOLD_KEYS - set(thresholds)
    if unknown or missing:
        raise ValueError(f"canary thresholds: unknown {sorted(unknown)}, missing {sorted(missing)}")
    summaries = {"new": _summary(new), "old": _summary(old)}
    minimum = float(thresholds["min_requests"])
    few = [
        f"no request count for the {name} nodes (Prometheus gave none)"
        if s["requests"] is None
        else f"{name} nodes served {int(s['requests'])} requests in the window, fewer than"
        f" {int(minimum)}"
        for name, s in summaries.items()
        if s["requests"] is None or s["requests"] < minimum
    ]
    if few:
        # Every side at half the minimum or more: a second window is expected to reach it.
        counts = [s["requests"] for s in summaries.values()]
        thin = (
            [f"all routes (new {counts[0]:.0f}, old {counts[1]:.0f}, of {minimum:.0f} each)"]
            if all(count is not None and 2 * count >= minimum for count in counts)
            else []
        )
        return {
            "verdict": "none", "reasons": few, "checks": [], "thin": thin, "summary": "; ".join(few)
        }  # fmt: skip
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
    new_count, old_count = (int(summaries[side]["requests"] or 0) for side in ("new", "old"))
    counts = f"requests new {new_count}, old {old_count}"
    numbers = "; ".join(
        [counts]
        + [
            f"{title} {shown.format(c['new'])} (old {shown.format(c['old'])},"
            f" limit {shown.format(c['limit'])})"
            for title, key, _, _, shown in _SLIS
            for c in checks
            if c["sli"] == key
        ]
    )
    routes, thin = _route_checks(
        summaries["new"]["routes"],
        summaries["old"]["routes"],
        thresholds,
        new_count / old_count if old_count else 0.0,
    )
    checks += routes
    failed += [
        f"mean latency of {c['route']} {c['new']:.3f} s on the new nodes, past the limit"
        f" {c['limit']:.3f} s (old nodes {c['old']:.3f} s)"
        for c in routes
        if not c["ok"]
    ]
    if routes:
        worst = max(routes, key=lambda c: c["new"] / c["limit"])
        numbers += (
            f"; {len(routes)} routes' mean latency, nearest its limit {worst['route']}"
            f" {worst['new']:.3f} s (old {worst['old']:.3f} s, limit {worst['limit']:.3f} s)"
        )
    if thin:
        numbers += f"; too few to judge: {', '.join(thin)}"
    out = {"checks": checks, "thin": thin, "summary": numbers}
    if failed:
        return {"verdict": "fail", "reasons": failed, **out}
    if unknowable:
        return {
            "verdict": "none",
            "reasons": unknowable,
            **out,
            "summary": "; ".join([numbers, *unknowable]),
        }
    return {"verdict": "pass", "reasons": [], **out}


# What the SLIs leave out: the load balancers' checks and the scrapes are not users.
_NOT_USERS = "/_health|/_ready|/metrics|/api/health"


def _instances(names: Sequence[str]) -> str:
    if not names:
        raise ValueError("a canary side needs at least one instance")
    return "|".join(re.escape(str(name)) for name in sorted(names))


def canary_queries(
    job: str, new: Sequence[str], old: Sequence[str], window_seconds: int
) -> list[dict[str, str]]:
    """The PromQL that summarises each side over the bake window, one ``{side, sli, query}``
    per ``canary_verdict`` key: ``requests`` and ``errors`` (5xx) counted, ``p99_seconds``
    from the latency histogram, ``cpu`` the busy share of the nodes' cores (node_exporter),
    ``route_requests`` and ``route_seconds`` (the histogram's count and sum) by route.
    Health checks and scrapes are not requests. ``new`` and ``old``: the nodes' ``instance``
    labels (their inventory names).
    """
    if int(window_seconds) < 1:
        raise ValueError("the bake window must be at least a second")
    window = f"{int(window_seconds)}s"
    out: list[dict[str, str]] = []
    for side, names in (("new", new), ("old", old)):
        instances = _instances(names)
        match = f'job="{job}",instance=~"{instances}",route!~"{_NOT_USERS}"'
        queries = {
            "requests": f"sum(increase(http_requests_total{{{match}}}[{window}]))",
            "errors": f'sum(increase(http_requests_total{{{match},status=~"5.."}}[{window}]))',
            "p99_seconds": (
                "histogram_quantile(0.99, sum by (le) "
                f"(rate(http_request_duration_seconds_bucket{{{match}}}[{window}])))"
            ),
            "cpu": (
                "1 - avg(rate(node_cpu_seconds_total"
                f'{{job="node",mode="idle",instance=~"{instances}"}}[{window}]))'
            ),
            "route_requests": (
                "sum by (route) (increase("
                f"http_request_duration_seconds_count{{{match}}}[{window}]))"
            ),
            "route_seconds": (
                f"sum by (route) (increase(http_request_duration_seconds_sum{{{match}}}[{window}]))"
            ),
        }
        out += [{"side": side, "sli": sli, "query": query} for sli, query in queries.items()]
    return out


def canary_summaries(answers: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Both sides' numbers from Prometheus' answers to ``canary_queries`` (a registered loop:
    each result's ``item`` the query, ``json`` the API's answer). An error, an empty result or
    NaN (a histogram without requests) is None: unknown, never zero; except the counts, where
    no series means none were served. The by-route queries give ``{route: value}`` (NaN and
    errors left out)."""
    out: dict[str, dict[str, Any]] = {"new": {}, "old": {}}
    for answer in answers:
        item = answer["item"]
        by_route = item["sli"].startswith("route_")
        value: Any = {} if by_route else None
        body = answer.get("json") or {}
        if answer.get("status") == 200 and body.get("status") == "success":
            result = (body.get("data") or {}).get("result") or []
            numbers = [
                ((series.get("metric") or {}).get("route", ""), float(series["value"][1]))
                for series in result
            ]
            if by_route:
                value = {route: n for route, n in numbers if not math.isnan(n)}
            elif numbers:
                value = None if math.isnan(numbers[0][1]) else numbers[0][1]
            elif item["sli"] in ("requests", "errors"):
                value = 0.0
        out[item["side"]][item["sli"]] = value
    return out


def canary_batch(
    plan: Mapping[str, Any], batch: Sequence[str], shares: Sequence[float]
) -> dict[str, Any]:
    """Whether this batch is judged, at which share, against which nodes: the batch's place in
    its tier's plan (``batch_plan``: ``drain`` in order, ``serial`` the batches' sizes) picks
    the share (``shares[n]`` for the n-th batch of serving nodes; none after the list), and the
    old nodes are the serving ones still to come (those before run the new release already). A
    batch of nodes that were not serving, or the last batch (no old node left), is not judged.
    """
    drain = list(plan.get("drain") or [])
    mine = [host for host in batch if host in drain]
    if not mine:
        return {"judge": False, "share": 0.0, "old": []}
    start = drain.index(min(mine, key=drain.index))
    quiet = len(plan.get("order") or []) - len(drain)
    sizes = list(plan.get("serial") or [])[1 if quiet else 0 :]
    index, seen = 0, 0
    while seen < start and index < len(sizes):
        seen += int(sizes[index])
        index += 1
    old = [host for host in drain[start:] if host not in mine]
    judged = index < len(shares) and bool(old)
    return {"judge": judged, "share": float(shares[index]) if judged else 0.0, "old": old}


def canary_judged(plan: Mapping[str, Any] | None, shares: Sequence[float]) -> bool:
    """Whether any batch of a tier's plan is judged (``canary_batch``)."""
    plan = plan or {}
    drain = list(plan.get("drain") or [])
    quiet = len(plan.get("order") or []) - len(drain)
    start = 0
    for size in list(plan.get("serial") or [])[1 if quiet else 0 :]:
        batch = drain[start : start + int(size)]
        if batch and canary_batch(plan, batch, shares)["judge"]:
            return True
        start += int(size)
    return False


def canary_judged_tiers(
    batches: Mapping[str, Any], canary: Mapping[str, Any], tiers: Sequence[str]
) -> list[str]:
    """Which of a run's ``tiers`` will have a batch judged: those with a canary (``canary``:
    the inventory's ``fleet_canary``) whose plan (``batches``: ``batch_plan``'s answer) has a
    batch ``canary_judged``. The run needs the canary's judge before it changes a node."""
    return [
        tier
        for tier in tiers
        if tier in canary and canary_judged(batches.get(tier), canary[tier]["shares"])
    ]


def canary_weight(new: int, old: int, share: float, old_weight: int = 100) -> int:
    """The HAProxy weight that gives ``new`` nodes ``share`` of the requests beside ``old``
    nodes of ``old_weight`` each (round robin is weighted): w = share x old x W / (new x (1 -
    share)), within HAProxy's 1..256."""
    new, old, share = int(new), int(old), float(share)
    if new < 1 or old < 1 or not 0 < share < 1:
        raise ValueError(
            f"a canary needs new and old nodes and a share between 0 and 1, not {new}, {old},"
            f" {share}"
        )
    weight = round(share * old * int(old_weight) / (new * (1 - share)))
    return min(256, max(1, weight))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "canary_verdict": canary_verdict,
            "canary_queries": canary_queries,
            "canary_summaries": canary_summaries,
            "canary_weight": canary_weight,
            "canary_judged_tiers": canary_judged_tiers,
            "canary_batch": canary_batch,
        }

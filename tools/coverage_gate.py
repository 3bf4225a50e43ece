"""Fail unless line and branch coverage both meet their thresholds.

coverage.py's own ``fail_under`` checks one combined figure; the project gates line coverage
(100 %, the capstone's gate) and branch coverage (>= 95 %) separately.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def percentages(report: dict) -> tuple[float, float]:
    """Line and branch coverage, in percent, from a ``coverage json`` report."""
    totals = report["totals"]
    lines = 100.0 * totals["covered_lines"] / max(totals["num_statements"], 1)
    branches = 100.0 * totals["covered_branches"] / max(totals["num_branches"], 1)
    return lines, branches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path)
    parser.add_argument("--lines", type=float, default=100.0)
    parser.add_argument("--branches", type=float, default=95.0)
    args = parser.parse_args(argv)
    lines, branches = percentages(json.loads(args.report.read_text()))
    print(
        f"coverage: lines {lines:.2f} % (gate {args.lines} %), "
        f"branches {branches:.2f} % (gate {args.branches} %)"
    )
    if lines < args.lines or branches < args.branches:
        print("coverage gate FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

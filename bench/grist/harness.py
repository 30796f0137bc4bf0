"""Run ``numsentry check`` on the GRIST cases and score it against ``truth.json``.

Used by ``python -m bench.grist``. Every case is checked in this process through
``numsentry.api.check_json(model, ["--ranges", RANGES, *check_args])``. A ground-truth defect
counts as found when a finding names its node, whether or not the finding is marked
``after_earlier_finding`` (both are reported). Findings on other nodes are extra alarms; those
that follow an earlier finding (NaN/Inf propagated from it) are listed apart and not counted in
the extra-alarm total.

Each extra alarm is looked up as ``"<node> <rule>"`` in the case's ``extra_alarms`` in
``truth.json``: ``real`` (a tested witness makes that node produce inf/NaN, or a zero divisor,
inside the ranges), ``imprecision`` (no witness exists; an imprecision of the analysis raises
it) or, when absent, unexplained. The second summary line counts the three.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TRUTH = Path(__file__).resolve().parent / "truth.json"

Checker = Callable[[str, list[str]], dict[str, Any]]


@dataclass
class DefectResult:
    """Whether one ground-truth defect node was reported."""

    node: str
    found: bool
    after_earlier_finding: bool | None  # of the first finding on the node, None if not found
    rules: list[str] = field(default_factory=list)


@dataclass
class CaseResult:
    """Score of one case."""

    case: str
    defects: list[DefectResult]
    extra_alarms: list[dict[str, Any]]  # primary findings on non-defect nodes (with "verdict")
    extra_after_earlier: list[dict[str, Any]]  # ... after an earlier one (with "verdict")
    ms: float | None
    unsupported_ops: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def n_found(self) -> int:
        """Number of defects found."""
        return sum(d.found for d in self.defects)


VERDICTS = ("real", "imprecision")


def alarm_key(node: Any, rule: Any) -> str:
    """The ``extra_alarms`` key of a finding: ``"<node> <rule>"``."""
    return f"{node} {rule}"


def score(case: str, defects: Sequence[str], report: dict[str, Any],
          wall_ms: float | None = None,
          explained: Mapping[str, Mapping[str, Any]] | None = None) -> CaseResult:
    """Compare one JSON report with the case's ground-truth defect nodes.

    Args:
        case: Case id.
        defects: Ground-truth defect node names.
        report: The ``numsentry check`` JSON report (``check_json``'s return value).
        wall_ms: Wall time of the call, used when the report has no ``stats.seconds``.
        explained: The case's ``extra_alarms`` from ``truth.json`` (``"<node> <rule>"`` ->
            ``{"verdict": ..., "why": ...}``); every extra alarm (after an earlier finding or
            not) gets its ``verdict`` (None when unexplained).

    Returns:
        The case's result.
    """
    findings = list(report.get("findings") or [])
    by_node: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_node.setdefault(str(f.get("node")), []).append(f)
    results = []
    for node in defects:
        hits = by_node.get(node, [])
        results.append(DefectResult(
            node=node, found=bool(hits),
            after_earlier_finding=bool(hits[0].get("after_earlier_finding")) if hits else None,
            rules=sorted({str(f.get("rule")) for f in hits})))
    extra: list[dict[str, Any]] = []
    extra_after: list[dict[str, Any]] = []
    for f in findings:
        if f.get("node") in defects:
            continue
        item = {"node": f.get("node"), "rule": f.get("rule"), "name": f.get("name"),
                "op_type": f.get("op_type")}
        verdict = (explained or {}).get(alarm_key(item["node"], item["rule"]), {})
        item["verdict"] = verdict.get("verdict") if verdict.get("verdict") in VERDICTS else None
        (extra_after if f.get("after_earlier_finding") else extra).append(item)
    stats = report.get("stats") or {}
    seconds = stats.get("seconds")
    ms = float(seconds) * 1000.0 if isinstance(seconds, (int, float)) else wall_ms
    unsupported = [str(u if isinstance(u, str) else u.get("op_type", u))
                   for u in report.get("unsupported_ops") or []]
    return CaseResult(case, results, extra, extra_after, ms, unsupported)


def default_checker() -> Checker:
    """The in-process numsentry checker."""
    from numsentry.api import check_json

    return check_json


def run_cases(entries: Sequence[dict[str, Any]], checker: Checker,
              extra_args: Sequence[str] = (), root: Path = ROOT) -> list[CaseResult]:
    """Check every entry and score it; exceptions become a per-case error.

    Args:
        entries: ``truth.json`` records.
        checker: ``check_json``-compatible callable.
        extra_args: Arguments appended for every case (e.g. ``--dim batch=4``).
        root: Directory the truth paths are relative to.

    Returns:
        One result per entry, in order.
    """
    results = []
    for entry in entries:
        args = ["--ranges", str(root / entry["ranges"]), *entry["check_args"], *extra_args]
        start = time.perf_counter()
        try:
            report = checker(str(root / entry["model"]), args)
        except Exception as exc:  # a crash on one case must not stop the benchmark
            wall = (time.perf_counter() - start) * 1000.0
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            results.append(CaseResult(entry["case"], [DefectResult(d, False, None)
                                                      for d in entry["defects"]],
                                      [], [], wall, error=detail))
            continue
        wall = (time.perf_counter() - start) * 1000.0
        results.append(score(entry["case"], entry["defects"], report, wall,
                             entry.get("extra_alarms")))
    return results


def summary(results: Sequence[CaseResult]) -> dict[str, Any]:
    """Totals over the results."""
    times = [r.ms for r in results if r.ms is not None]
    return {
        "defects_found": sum(r.n_found for r in results),
        "defects_total": sum(len(r.defects) for r in results),
        "defects_found_after_earlier": sum(
            1 for r in results for d in r.defects if d.found and d.after_earlier_finding),
        "cases_detected": sum(1 for r in results if r.n_found > 0),
        "cases_all_found": sum(1 for r in results if r.defects and r.n_found == len(r.defects)),
        "cases_total": len(results),
        "extra_alarms": sum(len(r.extra_alarms) for r in results),
        "extra_alarms_after_earlier": sum(len(r.extra_after_earlier) for r in results),
        "extra_alarms_real": _count_verdict(results, "real"),
        "extra_alarms_imprecision": _count_verdict(results, "imprecision"),
        "extra_alarms_unexplained": _count_verdict(results, None),
        "errors": sum(1 for r in results if r.error),
        "analysis_total_s": sum(times) / 1000.0,
        "analysis_median_ms": statistics.median(times) if times else 0.0,
    }


def _count_verdict(results: Sequence[CaseResult], verdict: str | None) -> int:
    return sum(1 for r in results for a in r.extra_alarms if a.get("verdict") == verdict)


def summary_line(s: dict[str, Any]) -> str:
    """The last line of the table."""
    return (f"detected {s['defects_found']}/{s['defects_total']} defects in "
            f"{s['cases_detected']}/{s['cases_total']} cases; extra alarms {s['extra_alarms']}; "
            f"analysis total {s['analysis_total_s']:.1f} s, median {s['analysis_median_ms']:.0f} ms")


def extra_line(s: dict[str, Any]) -> str:
    """The second summary line: the extra alarms by verdict."""
    return (f"extra alarms: {s['extra_alarms_real']} real (witnessed), "
            f"{s['extra_alarms_imprecision']} imprecision, "
            f"{s['extra_alarms_unexplained']} unexplained")


def _found_cell(d: DefectResult) -> str:
    if not d.found:
        return "no"
    return "yes (after earlier)" if d.after_earlier_finding else "yes"


def _extra_cell(r: CaseResult, limit: int = 3) -> str:
    if r.error:
        return f"ERROR: {r.error}"
    items = [f"{a['node']} ({a['rule']}{', ' + a['verdict'] if a.get('verdict') else ''})"
             for a in r.extra_alarms]
    text = ", ".join(items[:limit]) + (f", +{len(items) - limit} more" if len(items) > limit else "")
    if r.extra_after_earlier:
        text += ("; " if text else "") + f"+{len(r.extra_after_earlier)} after earlier"
    return text or "-"


def format_table(results: Sequence[CaseResult]) -> str:
    """A plain-text table: case, defect nodes, found?, extra alarms (node, rule), analysis ms."""
    rows = [("case", "defect nodes", "found?", "extra alarms (node, rule)", "ms")]
    for r in results:
        rows.append((r.case, ", ".join(d.node for d in r.defects),
                     ", ".join(_found_cell(d) for d in r.defects), _extra_cell(r),
                     "-" if r.ms is None else f"{r.ms:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[c].ljust(widths[c]) for c in range(4)] + [row[4].rjust(6)]
        lines.append("  ".join(cells).rstrip() if i else "  ".join(cells))
        if i == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def to_json(results: Sequence[CaseResult]) -> dict[str, Any]:
    """The data behind the table."""
    return {"summary": summary(results),
            "cases": [{**asdict(r), "found": r.n_found} for r in results]}


def main(argv: Sequence[str] | None = None, checker: Checker | None = None) -> int:
    """Command-line entry point of ``python -m bench.grist``.

    Returns:
        0, or 1 when a case raised an error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bench.grist",
        description="Run numsentry check on the GRIST benchmark cases and score the findings.")
    parser.add_argument("--cases", help="comma-separated case ids (default: all 79)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON here")
    parser.add_argument("--truth", default=str(TRUTH), help="truth file (default: %(default)s)")
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=N",
                        help="passed to every check (symbolic dims; default batch=1)")
    args = parser.parse_args(argv)
    entries = json.loads(Path(args.truth).read_text())
    if args.cases:
        wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
        known = {e["case"] for e in entries}
        unknown = [c for c in wanted if c not in known]
        if unknown:
            parser.error(f"unknown case ids: {', '.join(unknown)}")
        entries = [e for e in entries if e["case"] in wanted]
    extra = [a for d in args.dim for a in ("--dim", d)]
    results = run_cases(entries, checker or default_checker(), extra)
    print(format_table(results))
    totals = summary(results)
    print(summary_line(totals))
    print(extra_line(totals))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=1) + "\n")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

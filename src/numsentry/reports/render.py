"""Renderers of a check result: text (rich), json (versioned), sarif (2.1.0), github."""

from __future__ import annotations

import io
import json
from typing import Any

from numsentry import __version__
from numsentry.analyses.check import CheckResult
from numsentry.reports.rules import RULES

__all__ = ["JSON_VERSION", "render", "to_json_dict"]

#: Version of the JSON report format; bumped on any incompatible change.
JSON_VERSION = 1


def to_json_dict(res: CheckResult) -> dict[str, Any]:
    """The stable JSON report."""
    m = res.model
    return {
        "version": JSON_VERSION,
        "tool": {"name": "numsentry", "version": __version__},
        "model": {"path": m.path, "opset": m.opset, "dims": m.dims, "default_dims": m.default_dims,
                  "as_dtype": res.options.as_dtype, "weights": res.options.weights},
        "ranges": [r.to_dict() for r in res.ranges],
        "findings": [f.to_dict() for f in res.findings],
        "unsupported_ops": [{"op_type": k, "nodes": v} for k, v in sorted(res.unsupported.items())],
        "stats": {"nodes": res.nodes, "seconds": round(res.seconds, 6), "findings": len(res.findings)},
    }


def _text(res: CheckResult, color: bool) -> str:
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    con = Console(file=buf, force_terminal=color, no_color=not color, width=120, highlight=False)
    m = res.model
    con.print(f"[bold]{m.path}[/bold]  opset {m.opset}, {res.nodes} nodes, analysed in "
              f"{res.options.as_dtype or 'model dtypes'}, weights {res.options.weights}")
    shown = [r for r in res.ranges if r.origin == "user" or (r.kind == "input" and r.origin == "default")]
    defaults = [r for r in shown if r.origin == "default"]
    explicit = [r for r in shown if r.origin == "user"]
    parts = [f"{r.name}=[{r.lo:g}, {r.hi:g}]" for r in explicit[:8]]
    if len(explicit) > 8:
        parts.append(f"… {len(explicit) - 8} more")
    if defaults:
        spans = sorted({(r.lo, r.hi) for r in defaults})
        names = ", ".join(r.name for r in defaults[:3]) + (" …" if len(defaults) > 3 else "")
        parts.append(f"{len(defaults)} input(s) at the default {' / '.join(f'[{a:g}, {b:g}]' for a, b in spans)} "
                     f"({names}; give --range)")
    trained = sum(r.origin == "trainable" for r in res.ranges)
    if trained:
        parts.append(f"{trained} weight tensor(s) widened as trainable")
    if parts:
        con.print("ranges: " + "; ".join(parts))
    if m.default_dims:
        con.print(f"symbolic dims set to 1 by default: {', '.join(m.default_dims)} (use --dim NAME=N)")
    if res.findings:
        t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for col in ("rule", "node", "op", "message"):
            t.add_column(col, overflow="fold")
        for f in res.findings:
            rule = f"[red]{f.rule}[/red]" if not f.after_earlier_finding else f"[yellow]{f.rule}[/yellow]"
            msg = f.message + (" [dim](after an earlier finding)[/dim]" if f.after_earlier_finding else "")
            if f.source:
                msg += f" [dim]at {f.source.file}:{f.source.line}[/dim]"
            if f.confirmed is not None:
                msg += f" [green](confirmed: {f.witness})[/green]" if f.confirmed else " [yellow](unconfirmed)[/yellow]"
            t.add_row(rule, f.node, f.op_type, msg)
        con.print(t)
    for op, nodes in sorted(res.unsupported.items()):
        con.print(f"[yellow]ANA001[/yellow] unsupported op {op} at {len(nodes)} node(s): "
                  f"{', '.join(nodes[:5])}{' …' if len(nodes) > 5 else ''} (outputs assumed [-inf, inf])")
    n = len(res.findings)
    first = sum(not f.after_earlier_finding for f in res.findings)
    con.print(f"[bold]{'no findings' if n == 0 else f'{n} finding(s)'}[/bold]"
              + (f" ({first} independent, {n - first} after an earlier finding)" if n else "")
              + f" in {res.seconds:.2f} s")
    if any(f.confirmed is not None for f in res.findings):
        c = sum(bool(f.confirmed) for f in res.findings)
        con.print(f"{c}/{n} confirmed on onnxruntime by a failure-exhibiting unit test")
    return buf.getvalue()


def _sarif(res: CheckResult) -> dict[str, Any]:
    used = sorted({f.rule for f in res.findings} | ({"ANA001"} if res.unsupported else set()))
    rules = [{"id": c, "name": RULES[c].name, "shortDescription": {"text": RULES[c].summary},
              "fullDescription": {"text": RULES[c].explanation},
              "help": {"text": f"Example: {RULES[c].example}\nFix: {RULES[c].fix}"}} for c in used]
    index = {c: i for i, c in enumerate(used)}
    results = []
    for f in res.findings:
        loc: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": res.model.path}},
                               "logicalLocations": [{"name": f.node, "kind": "function",
                                                     "fullyQualifiedName": f"{f.node} ({f.op_type})"}]}
        if f.source:
            loc["physicalLocation"] = {"artifactLocation": {"uri": f.source.file},
                                       "region": {"startLine": max(1, f.source.line)}}
        results.append({"ruleId": f.rule, "ruleIndex": index[f.rule],
                        "level": "note" if f.after_earlier_finding else "error",
                        "message": {"text": f"{f.node} ({f.op_type}): {f.message}" + _confirmation(f)},
                        "locations": [loc],
                        "properties": {"after_earlier_finding": f.after_earlier_finding,
                                       "input_intervals": f.input_intervals, "dtype": f.dtype,
                                       "confirmed": f.confirmed, "witness": f.witness}})
    for op, nodes in sorted(res.unsupported.items()):
        results.append({"ruleId": "ANA001", "ruleIndex": index["ANA001"], "level": "warning",
                        "message": {"text": f"unsupported op {op} at {', '.join(nodes[:10])}"},
                        "locations": [{"physicalLocation": {"artifactLocation": {"uri": res.model.path}}}]})
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "numsentry", "version": __version__,
                                      "informationUri": "https://github.com/numsentry/numsentry",
                                      "rules": rules}},
                  "results": results}],
    }


def _confirmation(f: Any) -> str:
    """`` (confirmed: DIR)`` / `` (unconfirmed)`` after ``check --confirm``, else nothing."""
    if f.confirmed is None:
        return ""
    return f" (confirmed: {f.witness})" if f.confirmed else " (unconfirmed)"


def _github(res: CheckResult) -> str:
    lines = []
    for f in res.findings:
        level = "notice" if f.after_earlier_finding else "error"
        file = f.source.file if f.source else res.model.path
        line = f",line={f.source.line}" if f.source else ""
        msg = f"{f.node} ({f.op_type}): {f.message}{_confirmation(f)}".replace("%", "%25").replace("\n", "%0A")
        lines.append(f"::{level} file={file}{line},title={f.rule} {f.name}::{msg}")
    return "\n".join(lines) + ("\n" if lines else "")


def render(res: CheckResult, fmt: str, color: bool = False) -> str:
    """Render ``res`` as ``text``, ``json``, ``sarif`` or ``github``."""
    if fmt == "json":
        return json.dumps(to_json_dict(res), indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(_sarif(res), indent=2) + "\n"
    if fmt == "github":
        return _github(res)
    return _text(res, color)

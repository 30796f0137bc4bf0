"""Reports of a ``deviate`` run: rich terminal tables, versioned JSON, self-contained HTML.

The HTML report embeds its plots as PNG data URIs (matplotlib; without it the report has
tables only and says so): remaining precision per configuration, knob effects and slowdowns,
and per-layer propagation with ``--layers``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from numsentry.deviation.store import CrossPlatform
from numsentry.deviation.sweep import REPORT_VERSION, DeviationResult

__all__ = ["cross_platform_json", "print_cross_platform", "print_text", "to_html", "to_json", "to_json_dict"]


def _clean(v: Any) -> Any:
    """JSON-safe: non-finite floats become the strings ``inf``/``-inf``/``nan``; NumPy scalars plain."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def to_json_dict(res: DeviationResult, telltale: str | None = None, telltale_count: int | None = None) -> dict[str, Any]:
    """The JSON report as a dict (``version`` 1; see docs/deviate.md)."""
    d: dict[str, Any] = {
        "version": REPORT_VERSION, "tool": "numsentry deviate", "model": res.model, "model_hash": res.model_hash,
        "input_hash": res.input_hash,
        "inputs": {"source": res.input_source, "shapes": {k: list(v.shape) for k, v in res.inputs.items()}},
        "baseline": res.baseline, "reference": res.reference, "label_output": res.label_output,
        "platform": res.platform, "seconds": round(res.seconds, 3),
        "configs": [r.to_dict() for r in res.rows], "classes": res.classes,
        "knobs": [e.to_dict() for e in res.knobs], "summary": res.summary,
    }
    if res.layers:
        d["first_divergence"] = [
            {"a": p.a, "b": p.b, "node": p.first.node if p.first else None,
             "op_type": p.first.op_type if p.first else None, "index": p.first.index if p.first else None,
             "note": p.note} for p in res.layers]
        d["layers"] = [{"a": p.a, "b": p.b, "rows": [r.to_dict() for r in p.rows]} for p in res.layers]
    if res.boundary is not None:
        b = res.boundary
        d["boundary"] = {
            "n": len(b.inputs), "searcher": b.searcher,
            "margin_ulp_median": float(_median(b.margin_ulp)), "margin_ulp_max": float(max(b.margin_ulp, default=0)),
            "flips": {r.name: (r.vs_baseline.top1_flips if r.vs_baseline else None) for r in res.rows},
            "flips_vs_float64": {r.name: (r.vs_float64.top1_flips if r.vs_float64 else None) for r in res.rows},
            "telltale_file": telltale, "telltale_count": telltale_count,
        }
    return _clean(d)


def _median(xs: Any) -> float:
    s = sorted(float(x) for x in xs)
    if not s:
        return 0.0
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def to_json(res: DeviationResult, **kw: Any) -> str:
    """The JSON report as text."""
    return json.dumps(to_json_dict(res, **kw), indent=2) + "\n"


# ---- terminal --------------------------------------------------------------------------------


def _console() -> Any:
    from rich.console import Console

    con = Console()
    return con if con.is_terminal else Console(width=170)  # pipes and files: no wrapping at 80


def _short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _v(v: Any) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else str(v)


def _f(v: Any, fmt: str = "{:.3g}") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return fmt.format(v)


def print_text(res: DeviationResult, console: Any = None, layer_pairs: int = 1,
               telltale: str | None = None, telltale_count: int | None = None) -> None:
    """Print the report with rich (to ``console``, default stdout)."""
    from rich.table import Table

    con = console or _console()
    plat = res.platform
    n_in = next(iter(res.inputs.values())).shape[0] if res.inputs else 0
    con.print(f"[bold]numsentry deviate[/bold] {res.model}  ({n_in} {res.input_source} inputs, "
              f"{len(res.rows)} configurations, {res.seconds:.1f} s)")
    con.print(f"platform: {plat.get('cpu')} x{plat.get('cores')}  [dim]{plat.get('fingerprint')}[/dim]   "
              f"baseline: [bold]{res.baseline}[/bold]   float64 reference: {res.reference or '-'}")
    t = Table(box=None, header_style="bold", pad_edge=False)
    for c, j in (("config", "left"), ("class", "center"), ("bits min", "right"), ("bits med", "right"),
                 ("max ULP", "right"), ("L∞", "right"), ("differ", "right"), ("top-1 flips", "right"),
                 ("D_MAD", "right"), ("f64 bits", "right"), ("f64 ULP", "right"), ("margin ULP", "right"),
                 ("distinct/rep", "right"), ("ms", "right")):
        t.add_column(c, justify=j)  # type: ignore[arg-type]
    for r in res.rows:
        rr = r.result
        if not rr.ok:
            t.add_row(r.name, "-", f"[yellow]{rr.status}[/yellow]", *([""] * 11))
            continue
        vb, vf = r.vs_baseline, r.vs_float64
        rep = f"{rr.distinct_repeats}/{rr.config.repeats}"
        if rr.distinct_repeats > 1:
            rep = f"[red]{rep}[/red]"
        t.add_row(
            r.name, f"[bold]{r.cls}[/bold]", _f(vb and vb.remaining_precision_min, "{}"),
            _f(vb and vb.remaining_precision_median, "{:g}"), _f(vb and vb.max_ulp, "{:.0f}"),
            _f(vb and vb.linf), _f(vb and vb.frac_differing, "{:.0%}"), _f(vb and vb.top1_flips, "{}"),
            _f(vb and vb.d_mad), _f(vf and vf.remaining_precision_min, "{}"), _f(vf and vf.max_ulp, "{:.0f}"),
            _f(r.margin_min_ulp, "{:.3g}"), rep, _f(rr.seconds and rr.seconds * 1e3, "{:.2f}"))
    con.print(t)
    for r in res.rows:
        if not r.result.ok:
            con.print(f"[yellow]{r.result.status}[/yellow] {r.name}: {r.result.reason}", soft_wrap=True)
    classes = res.classes
    con.print(f"[bold]{len(classes)} equivalence classes[/bold] (bit-identical outputs): "
              + "; ".join(f"[bold]{k}[/bold] {', '.join(v)}" for k, v in classes.items()))
    if res.knobs:
        kt = Table(title="knob effects (each knob changed alone)", box=None, header_style="bold", title_justify="left")
        for c in ("knob", "value", "runtime", "vs", "changes output", "top-1 flips", "slowdown"):
            kt.add_column(c)
        for e in res.knobs:
            ch = "-" if e.changes_output is None else ("[red]yes[/red]" if e.changes_output else "no")
            kt.add_row(e.knob, _v(e.value), e.runtime, e.reference, ch if e.skipped is None else f"- ({_short(e.skipped)})",
                       _f(e.top1_flips, "{}"), _f(e.slowdown, "x{:.2f}"))
        con.print(kt)
    for line in res.summary:
        con.print(line, soft_wrap=True)
    if res.layers:
        con.print("[bold]first divergence[/bold]")
        for p in res.layers:
            where = f"{p.first.node} ({p.first.op_type}, node {p.first.index})" if p.first else "no intermediate differs"
            con.print(f"  {p.a} vs {p.b}: {where}" + (f"  [dim]{p.note}[/dim]" if p.note else ""))
        for p in res.layers[:layer_pairs]:
            lt = Table(title=f"per-layer propagation: {p.a} vs {p.b}", box=None, header_style="bold",
                       title_justify="left")
            for c in ("#", "node", "op", "differ", "bits min", "bits med", "max ULP"):
                lt.add_column(c)
            for row in p.rows:
                if not row.compared:
                    lt.add_row(str(row.index), row.node, row.op_type, "[dim]not compared[/dim]", "", "", "")
                    continue
                lt.add_row(str(row.index), row.node, row.op_type, f"{row.frac_differing:.0%}",
                           _f(row.remaining_precision_min, "{}"), _f(row.remaining_precision_median, "{:g}"),
                           _f(row.max_ulp, "{:.0f}"))
            con.print(lt)
    if res.boundary is not None:
        b = res.boundary
        con.print(f"[bold]boundary samples[/bold]: {len(b.inputs)} inputs, top-2 margin median "
                  f"{_median(b.margin_ulp):.0f} ULP (max {max(b.margin_ulp, default=0):.0f}) under {b.searcher}; "
                  "label flips against the baseline are the 'top-1 flips' column")
        if telltale:
            con.print(f"telltale set ({telltale_count} inputs whose label differs between configurations): {telltale}")


# ---- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.cls{font-weight:bold;text-align:center}.yes{color:#b00;font-weight:bold}.dim{color:#888}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
"""
_COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac"]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def plots(res: DeviationResult) -> dict[str, str]:
    """PNG data URIs by name (empty without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return {}
    out: dict[str, str] = {}
    ok = [r for r in res.rows if r.result.ok and r.vs_baseline is not None]
    if ok:
        fig, ax = plt.subplots(figsize=(10, 0.25 * len(ok) + 1.2))
        names = [f"{r.name} [{r.cls}]" for r in ok]
        y = list(range(len(ok)))
        ax.barh([v + 0.2 for v in y], [r.vs_baseline.remaining_precision_median for r in ok if r.vs_baseline],
                height=0.4, color=_COLORS[0], label="vs baseline (median)")
        ax.barh([v - 0.2 for v in y], [r.vs_float64.remaining_precision_median if r.vs_float64 else 0 for r in ok],
                height=0.4, color=_COLORS[1], label="vs float64 (median)")
        ax.scatter([r.vs_baseline.remaining_precision_min for r in ok if r.vs_baseline], y, color="k", s=12,
                   zorder=3, label="vs baseline (min)")
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("remaining precision (shared leading significand bits)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        out["precision"] = _png(fig)
    eff = [e for e in res.knobs if e.slowdown is not None]
    if eff:
        fig, ax = plt.subplots(figsize=(10, 0.25 * len(eff) + 1.2))
        ax.barh(range(len(eff)), [e.slowdown or 0 for e in eff],
                color=[_COLORS[2] if e.changes_output else _COLORS[4] for e in eff])
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_yticks(range(len(eff)), [f"{e.knob}={_v(e.value)} ({e.runtime})" for e in eff], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("slowdown of pinning the knob (red: changes the output, green: bit-identical)")
        out["knobs"] = _png(fig)
    if res.layers:
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
        cls = {r.name: r.cls for r in res.rows}
        seen: set[tuple[Any, Any]] = set()
        shown = []
        for p in res.layers:  # one line per pair of classes: configs of one class have identical layers
            key = (cls.get(p.a), cls.get(p.b))
            if key not in seen:
                seen.add(key)
                shown.append(p)
        for i, p in enumerate(shown[:10]):
            xs = [r.index for r in p.rows if r.compared]
            col = _COLORS[i % len(_COLORS)]
            a1.plot(xs, [r.remaining_precision_median for r in p.rows if r.compared], "-o", ms=3, color=col,
                    label=f"{p.a} [{cls.get(p.a)}] vs {p.b} [{cls.get(p.b)}]")
            a1.plot(xs, [r.remaining_precision_min for r in p.rows if r.compared], ":", color=col)
            a2.plot(xs, [r.frac_differing for r in p.rows if r.compared], "-o", ms=3, color=col)
        labels = [f"{r.index}:{r.node}" for r in res.layers[0].rows]
        a2.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        a1.set_ylabel("shared bits (median; dotted: min)")
        a2.set_ylabel("fraction differing")
        a1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        out["layers"] = _png(fig)
    return out


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def to_html(res: DeviationResult, telltale: str | None = None, telltale_count: int | None = None) -> str:
    """A self-contained HTML report (inline CSS, plots as data URIs)."""
    e = html.escape
    pl = plots(res)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>numsentry deviate: {e(res.model)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>numsentry deviate</h1><p><b>{e(res.model)}</b> &mdash; {len(res.rows)} configurations, "
             f"{res.seconds:.1f} s; inputs: {e(res.input_source)} "
             f"{e(str({k: list(v.shape) for k, v in res.inputs.items()}))}<br>platform: {e(str(res.platform.get('cpu')))}"
             f" x{res.platform.get('cores')} (<span class=dim>{e(str(res.platform.get('fingerprint')))}</span>); "
             f"baseline <b>{e(str(res.baseline))}</b>; float64 reference {e(str(res.reference))}</p>",
             "<h2>Summary</h2>" + "".join(f"<p>{e(s)}</p>" for s in res.summary)]
    rows = []
    for r in res.rows:
        rr, vb, vf = r.result, r.vs_baseline, r.vs_float64
        if not rr.ok:
            rows.append([e(r.name), "-", f"<span class=dim>{e(rr.status)}: {e(rr.reason or '')}</span>"] + [""] * 9)
            continue
        rows.append([e(r.name), f"<span class=cls>{r.cls}</span>", _f(vb and vb.remaining_precision_min, "{}"),
                     _f(vb and vb.remaining_precision_median, "{:g}"), _f(vb and vb.max_ulp, "{:.0f}"),
                     _f(vb and vb.linf), _f(vb and vb.frac_differing, "{:.0%}"), _f(vb and vb.top1_flips, "{}"),
                     _f(vb and vb.d_mad), _f(vf and vf.remaining_precision_min, "{}"), _f(vf and vf.max_ulp, "{:.0f}"),
                     f"{rr.distinct_repeats}/{rr.config.repeats}"])
    parts.append("<h2>Configurations and classes</h2>" + _table(
        ["config", "class", "bits min", "bits median", "max ULP", "L∞", "differing", "top-1 flips", "D_MAD",
         "f64 bits min", "f64 max ULP", "distinct repeats"], rows))
    parts.append("<p>" + "<br>".join(f"<b>{k}</b>: {e(', '.join(v))}" for k, v in res.classes.items()) + "</p>")
    if "precision" in pl:
        parts.append(f"<img alt='remaining precision' src='{pl['precision']}'>")
    if res.knobs:
        parts.append("<h2>Knob effects</h2>" + _table(
            ["knob", "value", "runtime", "reference", "changes output", "top-1 flips", "slowdown"],
            [[e(k.knob), e(_v(k.value)), e(k.runtime), e(k.reference),
              ("<span class=yes>yes</span>" if k.changes_output else ("no" if k.changes_output is False
                                                                      else e(f"- ({k.skipped})"))),
              _f(k.top1_flips, "{}"), _f(k.slowdown, "x{:.2f}")] for k in res.knobs]))
        if "knobs" in pl:
            parts.append(f"<img alt='knob effects' src='{pl['knobs']}'>")
    if res.layers:
        parts.append("<h2>Localisation</h2>" + _table(
            ["a", "b", "first diverging node", "op", "note"],
            [[e(p.a), e(p.b), e(p.first.node) if p.first else "-", e(p.first.op_type) if p.first else "",
              e(p.note or "")] for p in res.layers]))
        if "layers" in pl:
            parts.append(f"<img alt='per-layer propagation' src='{pl['layers']}'>")
        p = res.layers[0]
        parts.append(f"<h3>Per-layer propagation: {e(p.a)} vs {e(p.b)}</h3>" + _table(
            ["#", "node", "op", "differing", "bits min", "bits median", "max ULP"],
            [[str(r.index), e(r.node), e(r.op_type), f"{r.frac_differing:.0%}" if r.compared else "-",
              _f(r.remaining_precision_min, "{}"), _f(r.remaining_precision_median, "{:g}"),
              _f(r.max_ulp, "{:.0f}")] for r in p.rows]))
    if res.boundary is not None:
        b = res.boundary
        parts.append(f"<h2>Boundary samples</h2><p>{len(b.inputs)} inputs, top-2 margin median "
                     f"{_median(b.margin_ulp):.0f} ULP under {e(b.searcher)}; the top-1 flips column counts the "
                     f"labels each configuration flips against the baseline."
                     + (f" Telltale set ({telltale_count} inputs): {e(telltale)}" if telltale else "") + "</p>")
    if not pl:
        parts.append("<p class=dim>Plots need matplotlib (pip install matplotlib).</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ---- cross-platform (deviate report) -----------------------------------------------------------


def cross_platform_json(merged: Sequence[CrossPlatform]) -> str:
    """The merged-database report as JSON."""
    return json.dumps(_clean({"version": REPORT_VERSION, "tool": "numsentry deviate report",
                              "groups": [m.to_dict() for m in merged]}), indent=2) + "\n"


def print_cross_platform(merged: Sequence[CrossPlatform], console: Any = None) -> None:
    """Print configuration x platform class tables, one per (model, inputs)."""
    from rich.table import Table

    con = console or _console()
    for m in merged:
        plats = list(m.platforms)
        con.print(f"[bold]{m.model_path}[/bold] model {m.model_hash} inputs {m.input_hash}: "
                  f"{len(plats)} platforms, {len(m.classes)} classes")
        for i, fp in enumerate(plats):
            p = m.platforms[fp]
            libs = ", ".join(f"{k} {v}" for k, v in (p.get("libraries") or {}).items() if v)
            con.print(f"  P{i + 1} = {fp}: {p.get('cpu')} x{p.get('cores')}; {libs}")
        t = Table(box=None, header_style="bold")
        t.add_column("config")
        for i in range(len(plats)):
            t.add_column(f"P{i + 1}", justify="center")
        for c in m.configs:
            t.add_row(c, *[(m.cells.get((c, fp)) or "-") for fp in plats])
        con.print(t)
        for letter, members in m.classes.items():
            va = m.vs_a.get(letter)
            extra = (f"  [dim](vs A: {va['remaining_precision_min']} bits, max {_f(va['max_ulp'], '{:.0f}')} ULP, "
                     f"{va['top1_flips']} label flips)[/dim]") if va and letter != "A" else ""
            con.print(f"  [bold]{letter}[/bold]: {len(members)} runs{extra}")

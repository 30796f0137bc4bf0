"""Benchmark of ``numsentry deviate`` on the digits example (``python -m bench.deviate``).

1. The default sweep on the example CNN and its 64 test inputs: wall time of the whole sweep
   (goal <= 60 s on a 2-core machine), configurations run/skipped/failed, number of
   bit-identical classes, and per knob whether it changes the output and its slowdown.
2. The same sweep on ``--boundary N`` boundary samples (top-2 margin within a few ULP): label
   flips of each knob against its reference configuration, and of each configuration against
   the baseline.

Prints Markdown tables; ``--json FILE`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "src/numsentry/examples/digits"


def _sweep(configs: str, boundary: int | None, repeats: int | None) -> tuple[Any, float]:
    from numsentry.deviation.configs import load_matrix, select
    from numsentry.deviation.sweep import run_deviate

    matrix = select(load_matrix(configs), repeats=repeats)
    feeds = {"x": np.load(EXAMPLE / "inputs.npy")}
    t0 = time.perf_counter()
    res = run_deviate(str(EXAMPLE / "model.onnx"), feeds, matrix, boundary=boundary)
    return res, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="default", help="configuration set or matrix file (default: default)")
    ap.add_argument("--boundary", type=int, default=64, help="boundary samples (0: skip part 2; default 64)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per configuration (default: the set's)")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args(argv)

    res, wall = _sweep(args.configs, None, args.repeats)
    ok = [r for r in res.rows if r.result.ok]
    skipped = [r for r in res.rows if r.result.status == "skipped"]
    failed = [r for r in res.rows if r.result.status == "failed"]
    plat = res.platform
    print(f"platform: {plat.get('cpu')} x{plat.get('cores')}; "
          + ", ".join(f"{k} {v}" for k, v in plat.get("libraries", {}).items() if v))
    print("\n## Default sweep on the digits CNN (64 natural test inputs)\n")
    print("| what | value |\n|---|---|")
    print(f"| whole sweep wall time | {wall:.1f} s (goal <= 60 s: {'met' if wall <= 60 else 'NOT met'}) |")
    print(f"| configurations run / skipped / failed | {len(ok)} / {len(skipped)} / {len(failed)} |")
    print(f"| bit-identical classes | {len(res.classes)} |")
    print(f"| label flips vs baseline ({res.baseline}), any config | {sum(r.vs_baseline.top1_flips for r in ok if r.vs_baseline)} |")
    print(f"| non-deterministic configs (repeats differ) | {sum(r.result.distinct_repeats > 1 for r in ok)} |")
    for r in skipped + failed:
        print(f"| {r.result.status}: {r.name} | {r.result.reason} |")
    print("\nclasses: " + "; ".join(f"**{k}** {', '.join(v)}" for k, v in res.classes.items()))

    bres = None
    if args.boundary:
        bres, bwall = _sweep(args.configs, args.boundary, args.repeats)
        b = bres.boundary
        print(f"\n## Boundary samples: {len(b.inputs)} inputs, top-2 margin median "
              f"{float(np.median(b.margin_ulp)):.0f} ULP (max {float(b.margin_ulp.max()):.0f}), "
              f"searched on {b.searcher}; sweep {bwall:.1f} s\n")
    bknobs = {(e.knob, str(e.value), e.runtime): e for e in (bres.knobs if bres else [])}
    print("\n## Knobs (each changed alone against its reference)\n")
    print("| knob | value | runtime | changes output | slowdown | boundary flips vs reference |")
    print("|---|---|---|---|---|---|")
    for e in res.knobs:
        be = bknobs.get((e.knob, str(e.value), e.runtime))
        ch = "-" if e.changes_output is None else ("yes" if e.changes_output else "no")
        sd = f"x{e.slowdown:.2f}" if e.slowdown is not None else "-"
        bf = "-" if be is None or be.top1_flips is None else f"{be.top1_flips}/{args.boundary}"
        print(f"| {e.knob} | {e.value} | {e.runtime} | {ch} | {sd} | {bf} |")
    if bres is not None:
        print("\n## Boundary flips per configuration (vs baseline / vs float64 reference)\n")
        print("| config | class | flips vs baseline | flips vs float64 |\n|---|---|---|---|")
        for r in bres.rows:
            if r.result.ok:
                fb = r.vs_baseline.top1_flips if r.vs_baseline else "-"
                ff = r.vs_float64.top1_flips if r.vs_float64 else "-"
                print(f"| {r.name} | {r.cls} | {fb} | {ff} |")
    if args.json:
        from numsentry.deviation.report import to_json_dict

        out = {"wall_seconds": wall, "sweep": to_json_dict(res), "boundary": to_json_dict(bres) if bres else None}
        Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

"""``python -m bench.trigger``: unit and system test generation on the GRIST suite.

For every case (``bench/grist/truth.json``) and seed, numsentry's searches try to confirm the
case's ground-truth defects on onnxruntime, next to the random-sampling baseline with the same
time budget per defect:

* **unit**: inputs and weights inside the case's ranges (``--weights trainable`` for cases with
  weights) that make the defect node produce NaN/Inf (`numsentry.search.trigger.trigger`);
* **system**: a training batch inside the input ranges such that ``--steps`` SGD steps with
  ``--lr`` through the model's first output (its loss) from the stored weights lead to the
  failure, or training itself hits it (`numsentry.search.system.system_trigger`).

The target of each defect is its node with the check's rule there (else the op's rule; NUM011
for the truth's ``gradient_only`` Sqrt defects). For the two ``downstream`` defects (16b, 16c),
whose own op cannot overflow, the target is the node the truth checks (the Sum or the division).
A run succeeds when *every* defect of the case is confirmed (``any`` counts runs with at least
one). Times are wall-clock seconds per run (search, sessions and confirmation; model loading,
the static check and the one-time torch import excluded), in one process with one thread.

Confirmation follows each program's own runtime: onnxruntime flushes denormals to zero for the
TensorFlow cases (TensorFlow's CPU runtime does) and keeps them for the PyTorch ones
(``--denormals``). System tests train on a batch of the program's own size (``--batch``).
``--setting ranum`` replaces the fact sheets' input ranges by RANUM's convention, to compare
with its published numbers like for like.

    python -m bench.trigger --jobs 2 --json out.json   # 10 seeds, all cases, unit + system + random (~1 h)
    python -m bench.trigger --seeds 2 --cases 1,2a,6 --no-system
    python -m bench.trigger --setting ranum --methods unit,unit-random
    python -m bench.trigger --render out.json          # Markdown tables of an earlier run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRUTH = ROOT / "bench" / "grist" / "truth.json"
METHODS = ("unit", "system", "unit-random", "system-random")
DENORMALS = {"framework": "flushed for TensorFlow cases, kept for PyTorch ones", "kept": "kept",
             "flushed": "flushed"}


@dataclass
class Run:
    """One (case, seed, method) run."""

    case: str
    seed: int
    method: str
    confirmed: list[bool]
    seconds: float
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def all(self) -> bool:
        return bool(self.confirmed) and all(self.confirmed)

    @property
    def any(self) -> bool:
        return any(self.confirmed)


def _targets(entry: dict[str, Any], model: Any, result: Any, propagated: bool = False) -> list[Any]:
    from bench.grist.witness import witnesses
    from numsentry.search.confirm import Target
    from numsentry.search.trigger import default_rule

    nodes = {n.name: n for n in model.graph.nodes}
    downstream = {d: w.check for w in witnesses(entry["case"]) if w.check for d in w.defects}
    out = []
    for d in entry["defects"]:
        name = downstream.get(d, d)
        kind = entry["witness"][d]
        fs = [f for f in result.findings if f.node == name]
        if kind["effect"] == "gradient_only":
            rule, after = "NUM011", False
        elif fs:
            rule, after = fs[0].rule, fs[0].after_earlier_finding
        else:
            rule, after = default_rule(nodes[name].op_type) or "NUM007", False
        out.append(Target(nodes[name], rule, after or propagated))
    return out


# RANUM's range convention (llylly/RANUM, interp/specified_ranges.py and AbstractionInitConfig):
# graph inputs it names get the range it specifies, every other float input the default
# [-50, 50], dropout keep probabilities [0.1, 0.9] (the fact sheets' note); weights as the case's
# own check arguments say. Keys are our case ids and input names for RANUM's named subjects.
RANUM_DEFAULT = (-50.0, 50.0)
RANUM_KEEP_PROB = (0.1, 0.9)
_MNIST = {"x": (-1.0, 1.0), "keep_prob": (0.5, 1.0)}
RANUM_SPECIFIED: dict[str, dict[str, tuple[float, float]]] = {
    "1": _MNIST, "2a": {"x-input": (-1.0, 1.0)}, "2b": {"x-input": (-1.0, 1.0)}, "3": {"x": (-1.0, 1.0)},
    "6": _MNIST, "7": _MNIST, "8": _MNIST, "9a": {"x": (0.5, 1.0)}, "9b": {"x": (0.5, 1.0)},
    "10": {"x": (0.5, 1.0)}, "11a": {"x": (-1.0, 1.0)}, "11b": {"x": (-1.0, 1.0)}, "11c": {"x": (-1.0, 1.0)},
}


def ranum_ranges(case: str, model: Any, ranges: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """``ranges`` with the graph inputs re-ranged by RANUM's convention (integer inputs keep theirs)."""
    from numsentry.dtypes import is_float_dtype

    out = dict(ranges)
    spec = RANUM_SPECIFIED.get(case, {})
    for vi in model.graph.inputs:
        if vi.name in model.graph.initializers or not is_float_dtype(vi.dtype):
            continue
        if vi.name in spec:
            out[vi.name] = spec[vi.name]
        elif "keep_prob" in vi.name:
            out[vi.name] = RANUM_KEEP_PROB
        else:
            out[vi.name] = RANUM_DEFAULT
    return out


def flushes_denormals(entry: dict[str, Any], denormals: str) -> bool:
    """Whether onnxruntime confirms ``entry``'s witnesses with denormals flushed to zero.

    ``framework`` follows the case's program: TensorFlow's CPU runtime sets flush-to-zero and
    denormals-are-zero on its threads (so ``exp(-100)`` is exactly 0 there), PyTorch does not.
    """
    if denormals == "framework":
        return entry.get("framework", "tensorflow") == "tensorflow"
    return denormals == "flushed"


def run_case(entry: dict[str, Any], seeds: Sequence[int], methods: Sequence[str], budget: float,
             system_budget: float, lr: float, steps: int, denormals: str,
             propagated: bool = False, setting: str = "facts", batch: str = "program") -> list[Run]:
    """All runs of one case (in this process)."""
    import numpy as np
    import onnxruntime  # noqa: F401  (imported once, outside the timings)
    import torch  # noqa: F401

    from numsentry.analyses.check import CheckOptions, run_check
    from numsentry.analyses.ranges import load_ranges_file
    from numsentry.ir.load import load_model
    from numsentry.search.baseline import random_system, random_unit
    from numsentry.search.system import SystemOptions, system_trigger
    from numsentry.search.trigger import TriggerOptions, trigger

    model = load_model(str(ROOT / entry["model"]))
    weights = "trainable" if "trainable" in entry["check_args"] else "stored"
    ranges = load_ranges_file(str(ROOT / entry["ranges"]))
    if setting == "ranum":
        ranges = ranum_ranges(entry["case"], model, ranges)
    result = run_check(model, CheckOptions(ranges=ranges, weights=weights))
    targets = _targets(entry, model, result, propagated)
    # unit tests are one example (symbolic batch = 1); system tests train on a batch of the
    # program's own size where the graph's batch dimension is symbolic
    smodel, sresult, stargets = model, result, targets
    if batch == "program" and entry.get("train_batch") and "batch" in model.dims \
            and any(m.startswith("system") for m in methods):
        smodel = load_model(str(ROOT / entry["model"]), dims={"batch": int(entry["train_batch"])})
        sresult = run_check(smodel, CheckOptions(ranges=ranges, weights=weights))
        stargets = _targets(entry, smodel, sresult, propagated)
    loss = model.graph.outputs[0].name
    denormal_as_zero = flushes_denormals(entry, denormals)
    runs: list[Run] = []
    for seed in seeds:
        for method in methods:
            uopt = TriggerOptions(seed=seed, budget_s=budget, denormal_as_zero=denormal_as_zero, threads=1)
            sopt = SystemOptions(loss=loss, lr=lr, steps=steps, seed=seed, budget_s=system_budget,
                                 denormal_as_zero=denormal_as_zero, threads=1)
            t0 = time.perf_counter()
            try:
                with np.errstate(all="ignore"):
                    if method == "unit":
                        outs = trigger(model, result, targets, uopt)
                    elif method == "unit-random":
                        outs = random_unit(model, result, targets, uopt)
                    elif method == "system":
                        outs = system_trigger(smodel, sresult, stargets, sopt)
                    else:
                        outs = random_system(smodel, sresult, stargets, sopt)
                runs.append(Run(entry["case"], seed, method, [o.confirmed for o in outs], time.perf_counter() - t0,
                                notes=[o.witness.observed if o.witness else o.tried() for o in outs]))
            except Exception as e:  # a crash is a failed run, reported
                runs.append(Run(entry["case"], seed, method, [False] * len(targets), time.perf_counter() - t0,
                                error=f"{type(e).__name__}: {str(e)[:200]}"))
    return runs


def _summary(runs: list[Run], method: str) -> dict[str, Any]:
    rs = [r for r in runs if r.method == method]
    if not rs:
        return {}
    secs = [r.seconds for r in rs]
    ok = [r.seconds for r in rs if r.all]
    return {"runs": len(rs), "all": sum(r.all for r in rs), "any": sum(r.any for r in rs),
            "defects": sum(sum(r.confirmed) for r in rs), "defects_total": sum(len(r.confirmed) for r in rs),
            "median_s": statistics.median(secs), "mean_s": statistics.fmean(secs),
            "mean_success_s": statistics.fmean(ok) if ok else None, "errors": sum(r.error is not None for r in rs)}


def table(runs: list[Run], cases: list[str], seeds: int) -> str:
    """Per-case successes (out of the seeds) and the summary lines."""
    methods = [m for m in METHODS if any(r.method == m for r in runs)]
    lines = [f"{'case':6}" + "".join(f"{m:>16}" for m in methods)]
    for c in cases:
        cells = []
        for m in methods:
            rs = [r for r in runs if r.case == c and r.method == m]
            if not rs:
                cells.append(f"{'-':>16}")
                continue
            mean = statistics.fmean(r.seconds for r in rs)
            cells.append(f"{sum(r.all for r in rs):>3}/{len(rs):<3}{mean:>8.2f} s")
        lines.append(f"{c:6}" + "".join(cells))
    lines.append("")
    lines.append(f"{'method':14}{'runs (all)':>12}{'runs (any)':>12}{'defects':>12}{'median s':>10}{'mean s':>9}")
    for m in methods:
        s = _summary(runs, m)
        lines.append(f"{m:14}{s['all']:>6}/{s['runs']:<5}{s['any']:>6}/{s['runs']:<5}"
                     f"{s['defects']:>6}/{s['defects_total']:<5}{s['median_s']:>10.2f}{s['mean_s']:>9.2f}"
                     + (f"  ({s['errors']} errors)" if s["errors"] else ""))
    return "\n".join(lines)


def markdown(runs: list[Run], cases: list[str]) -> str:
    """The summary and the per-case table as Markdown (for docs/trigger.md)."""
    methods = [m for m in METHODS if any(r.method == m for r in runs)]
    lines = ["| | runs (all defects) | runs (any) | defects | median s | mean s |", "|---|---|---|---|---|---|"]
    for m in methods:
        s = _summary(runs, m)
        lines.append(f"| {m} | {s['all']}/{s['runs']} | {s['any']}/{s['runs']} | "
                     f"{s['defects']}/{s['defects_total']} | {s['median_s']:.2f} | {s['mean_s']:.2f} |")
    lines += ["", "| case | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for c in cases:
        cells = []
        for m in methods:
            rs = [r for r in runs if r.case == c and r.method == m]
            cells.append(f"{sum(r.all for r in rs)}/{len(rs)} ({statistics.fmean(r.seconds for r in rs):.2f} s)"
                         if rs else "-")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load_runs(path: str) -> list[Run]:
    data = json.loads(Path(path).read_text())
    return [Run(**r) for r in data["runs"]]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints the table, returns 1 when a run raised."""
    ap = argparse.ArgumentParser(prog="python -m bench.trigger", description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="seeds per case (default 10)")
    ap.add_argument("--cases", help="comma-separated case ids (default: all)")
    ap.add_argument("--budget", type=float, default=3.0, help="unit-test seconds per defect (default 3)")
    ap.add_argument("--system-budget", type=float, default=6.0, help="system-test seconds per defect (default 6)")
    ap.add_argument("--lr", type=float, default=1.0, help="SGD learning rate of the system tests (default 1)")
    ap.add_argument("--steps", type=int, default=1, help="SGD steps of the system tests (default 1)")
    ap.add_argument("--no-system", action="store_true", help="unit tests only")
    ap.add_argument("--no-random", action="store_true", help="skip the random-sampling baseline")
    ap.add_argument("--methods", help=f"comma-separated subset of {', '.join(METHODS)} (overrides the two above)")
    ap.add_argument("--denormals", choices=("framework", "kept", "flushed"), default="framework",
                    help="onnxruntime's denormal mode when confirming: as the case's framework does "
                         "(TensorFlow flushes them to zero, PyTorch keeps them; the default), or the same "
                         "for every case")
    ap.add_argument("--propagated", action="store_true",
                    help="count a NaN/Inf at the defect node even when its inputs were already non-finite "
                         "(the truth's witness criterion; default: the node must create it)")
    ap.add_argument("--setting", choices=("facts", "ranum"), default="facts",
                    help="input ranges: the fact sheets' real data ranges (bench/grist/ranges, the default) "
                         "or RANUM's convention (inputs it does not specify get [-50, 50], keep "
                         "probabilities [0.1, 0.9]), for a like-for-like comparison with its numbers")
    ap.add_argument("--batch", choices=("program", "one"), default="program",
                    help="batch size of the system tests' training data: the program's own (truth.json's "
                         "train_batch, for graphs with a symbolic batch; the default) or 1")
    ap.add_argument("--render", metavar="FILE", nargs="+",
                    help="no runs: print the Markdown tables of --json files written before")
    ap.add_argument("--jobs", type=int, default=1, help="cases run in parallel processes (default 1)")
    ap.add_argument("--json", metavar="FILE", help="also write every run as JSON")
    args = ap.parse_args(argv)
    entries = json.loads(TRUTH.read_text())
    if args.render:
        runs = [r for f in args.render for r in _load_runs(f)]
        order = [e["case"] for e in entries if any(r.case == e["case"] for r in runs)]
        print(markdown(runs, order))
        return 0
    if args.cases:
        want = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = set(want) - {e["case"] for e in entries}
        if unknown:
            ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
        entries = [e for e in entries if e["case"] in want]
    methods = ["unit"] + ([] if args.no_random else ["unit-random"])
    if not args.no_system:
        methods += ["system"] + ([] if args.no_random else ["system-random"])
    if args.methods:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if set(methods) - set(METHODS):
            ap.error(f"--methods: choose from {', '.join(METHODS)}")
    seeds = list(range(args.seeds))
    todo = [(e, seeds, methods, args.budget, args.system_budget, args.lr, args.steps, args.denormals,
             args.propagated, args.setting, args.batch) for e in entries]
    runs: list[Run] = []
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    log = not sys.stderr.isatty()  # in a log file: one line per case instead of a live bar

    def done(case: str, rs: list[Run]) -> None:
        bar.update(task, advance=1, description=f"case {case}")
        if log:
            cells = " ".join(f"{m} {sum(r.all for r in rs if r.method == m)}/{len(seeds)}" for m in methods)
            print(f"case {case}: {cells} ({sum(r.seconds for r in rs):.1f} s)", file=sys.stderr, flush=True)

    with Progress(TextColumn("GRIST trigger"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), transient=True, console=Console(stderr=True), disable=log) as bar:
        task = bar.add_task("", total=len(todo))
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                for e, rs in zip(entries, pool.map(_run_packed, todo), strict=True):
                    runs += rs
                    done(e["case"], rs)
        else:
            for item in todo:
                rs = run_case(*item)
                runs += rs
                done(item[0]["case"], rs)
    print(table(runs, [e["case"] for e in entries], args.seeds))
    print(f"\nunit budget {args.budget:g} s/defect, system budget {args.system_budget:g} s/defect, SGD lr "
          f"{args.lr:g} x {args.steps} step(s); denormals {DENORMALS[args.denormals]}; "
          + ("propagated NaN/Inf counts" if args.propagated else "the defect node must create the NaN/Inf")
          + ("; RANUM's input ranges" if args.setting == "ranum" else "; the fact sheets' input ranges")
          + ("; system tests train on the program's batch size" if args.batch == "program"
             else "; system tests train on a batch of 1"))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": [asdict(r) for r in runs],
                                               "summary": {m: _summary(runs, m) for m in methods}}, indent=1))
    return 1 if any(r.error for r in runs) else 0


def _run_packed(item: tuple[Any, ...]) -> list[Run]:
    return run_case(*item)


if __name__ == "__main__":
    sys.exit(main())

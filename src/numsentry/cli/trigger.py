"""``numsentry trigger``: confirm findings with failure-exhibiting unit and system tests.

Imports nothing heavy at module level (``numsentry check`` must stay light): torch and
onnxruntime load inside `run`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from numsentry.errors import UserError

__all__ = ["add_search_arguments", "register", "require_runtime", "run"]

DEFAULT_OUT = "numsentry-witnesses"


def add_search_arguments(p: Any) -> None:
    """Arguments of the unit-test search on a parser or group (shared with ``check --confirm``)."""
    p.add_argument("--seed", type=int, default=0, help="seed of the search (default 0)")
    p.add_argument("--budget", type=float, default=10.0, metavar="S",
                   help="seconds of search per finding (default 10)")
    p.add_argument("--restarts", type=int, default=12, help="restarts per finding (default 12)")
    p.add_argument("--search-steps", type=int, default=60, metavar="N", help="gradient steps per restart (default 60)")
    p.add_argument("--denormal-as-zero", action="store_true",
                   help="run onnxruntime with denormals flushed to zero (as TF and most GPU kernels do)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch/onnxruntime threads (default 1; 0 keeps the libraries' defaults)")
    p.add_argument("--witness-dir", default=DEFAULT_OUT, metavar="DIR",
                   help=f"where reproductions are written (default {DEFAULT_OUT}/)")


def register(sub: Any) -> None:
    """Add the ``trigger`` subcommand (called by `numsentry.cli.main`)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "trigger", help="confirm findings: inputs/weights (and training data) that make them fire",
        description="For every finding (or --node NAME), search concrete inputs and weights within the "
                    "ranges that make onnxruntime produce NaN/Inf at that node, and write a "
                    "reproduction (witness.npz + a pytest file) per confirmed finding. With --system, "
                    "also search a training batch that drives SGD from the stored weights into the failure.")
    p.add_argument("model", help="an .onnx file, or pkg.module:factory returning (torch module, example inputs)")
    p.add_argument("--node", action="append", default=[], metavar="NAME",
                   help="only this node (repeatable); a node without a finding gets its op's hazard")
    # the check's options: the same ranges define the search box
    p.add_argument("--range", action="append", default=[], metavar="NAME=LO,HI", help="range of an input or weight")
    p.add_argument("--ranges", metavar="FILE", help="JSON or YAML file {name: [lo, hi]}")
    p.add_argument("--weights", choices=["stored", "trainable"], default="stored",
                   help="stored: weights fixed; trainable: weights searched within RANUM's widened span")
    p.add_argument("--as-dtype", choices=["float16", "bfloat16", "float32", "float64"],
                   help="analyse as if deployed in this dtype (the search still runs the model's own)")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=N", help="value of a symbolic dimension")
    p.add_argument("--unsupported", choices=["top", "error"], default="top", help=argparse.SUPPRESS)
    p.add_argument("--select", action="append", help="only findings of these rules")
    p.add_argument("--ignore", action="append", help="skip findings of these rules")
    add_search_arguments(p)
    p.add_argument("--baseline", action="store_true", help="random sampling within the ranges instead of the search")
    s = p.add_argument_group("system tests")
    s.add_argument("--system", action="store_true", help="also search training data that drives SGD into the failure")
    s.add_argument("--loss", metavar="NAME", help="graph output that training minimises (default: the first output)")
    s.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    s.add_argument("--steps", type=int, default=1, metavar="K", help="SGD steps (default 1)")
    s.add_argument("--trainable", action="append", metavar="NAME",
                   help="initializer updated by training (repeatable; default: every float initializer)")
    p.add_argument("--output-format", choices=["text", "json"], default="text")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> None:
    if args.budget <= 0:
        raise UserError(f"--budget {args.budget:g}: must be positive")
    if args.restarts < 1 or args.search_steps < 1:
        raise UserError("--restarts and --search-steps must be at least 1")
    if args.threads < 0:
        raise UserError("--threads must be >= 0")
    if getattr(args, "system", False):
        if args.steps < 1:
            raise UserError(f"--steps {args.steps}: need at least one SGD step")
        if not args.lr > 0:
            raise UserError(f"--lr {args.lr:g}: must be positive")


def require_runtime() -> None:
    """Raise a `UserError` when torch or onnxruntime is missing (both are optional extras)."""
    import importlib.util

    missing = [m for m in ("torch", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"triggering findings needs {' and '.join(missing)}",
                        hint="pip install 'numsentry[torch,runtime]'")


def unit_options(args: argparse.Namespace) -> Any:
    """`TriggerOptions` from parsed arguments."""
    from numsentry.search.trigger import TriggerOptions

    return TriggerOptions(seed=args.seed, restarts=args.restarts, steps=args.search_steps, budget_s=args.budget,
                          denormal_as_zero=args.denormal_as_zero, threads=args.threads or None)


def model_file(args: argparse.Namespace, model: Any) -> Path:
    """The .onnx file a reproduction loads (a torch factory's export is saved next to them)."""
    p = Path(args.model)
    if p.suffix == ".onnx" or p.exists():
        return p
    out = Path(args.witness_dir)
    out.mkdir(parents=True, exist_ok=True)
    f = out / "model.onnx"
    import onnx

    onnx.save(model.proto, str(f))
    return f


def write_all(outcomes: list[Any], targets: list[Any], args: argparse.Namespace, result: Any, dims: dict[str, int]) -> None:
    """Write the reproduction of every confirmed outcome (sets ``outcome.path``)."""
    from numsentry.search.confirm import has_random_ops
    from numsentry.search.reproduce import slug, write_reproduction

    ranges = {r.name: (r.lo, r.hi) for r in result.ranges}
    path = model_file(args, result.model)
    runs = 3 if has_random_ops(result.model) else 1
    sub = Path(args.witness_dir) / slug(path.stem)  # one directory per model
    for o, t in zip(outcomes, targets, strict=True):
        if o.confirmed and o.witness is not None:
            where = sub / "system" if o.witness.method == "system" else sub
            write_reproduction(o, t, path, where, ranges, dims, args.denormal_as_zero, runs)


def _progress(enabled: bool, total: int, label: str) -> Any:
    from contextlib import nullcontext

    if not enabled or total == 0:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    # on stderr: stdout may be a JSON report
    return Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total} findings"),
                    TextColumn("{task.description}"), TimeElapsedColumn(), transient=True,
                    console=Console(stderr=True))


def run(args: argparse.Namespace) -> int:
    """Run ``numsentry trigger``; returns 0 (all confirmed, or nothing to do), 1 (some not) or 2."""
    _validate(args)
    require_runtime()
    from numsentry.cli.check import run_check_args
    from numsentry.search.trigger import targets_for

    interactive = sys.stderr.isatty() and not args.no_progress
    result = run_check_args(args, show_progress=interactive)
    model = result.model
    targets = targets_for(model, result, args.node or None)
    uopt = unit_options(args)
    unit_outs, sys_outs = _run_unit(model, result, targets, uopt, args, interactive), []
    write_all(unit_outs, targets, args, result, model.dims)
    if args.system:
        from numsentry.search.system import SystemOptions

        loss = args.loss or (model.graph.outputs[0].name if model.graph.outputs else None)
        if loss is None:
            raise UserError("the model has no graph output to train", hint="pass --loss NAME")
        sopt = SystemOptions(loss=loss, lr=args.lr, steps=args.steps, trainable=args.trainable, seed=args.seed,
                             budget_s=2 * args.budget, denormal_as_zero=args.denormal_as_zero,
                             threads=args.threads or None)
        sys_outs = _run_system(model, result, targets, sopt, args, interactive)
        write_all(sys_outs, targets, args, result, model.dims)
    out = render(result, targets, unit_outs, sys_outs, args)
    if args.output:
        try:
            Path(args.output).write_text(out, encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write {args.output}: {e.strerror or e}") from e
    else:
        sys.stdout.write(out)
    every = unit_outs + sys_outs
    return 0 if all(o.confirmed for o in every) else 1


def _run_unit(model: Any, result: Any, targets: list[Any], opt: Any, args: argparse.Namespace,
              interactive: bool) -> list[Any]:
    from numsentry.search.baseline import random_unit
    from numsentry.search.trigger import trigger

    fn = random_unit if args.baseline else trigger
    with _progress(interactive, len(targets), "unit tests") as bar:
        if bar is None:
            return fn(model, result, targets, opt)
        task = bar.add_task("", total=len(targets))
        return fn(model, result, targets, opt,
                  progress=lambda o: bar.update(task, advance=1, description=f"{o.node}: "
                                                + ("confirmed" if o.confirmed else "unconfirmed")))


def _run_system(model: Any, result: Any, targets: list[Any], opt: Any, args: argparse.Namespace,
                interactive: bool) -> list[Any]:
    from numsentry.search.baseline import random_system
    from numsentry.search.system import system_trigger

    fn = random_system if args.baseline else system_trigger
    with _progress(interactive, len(targets), "system tests") as bar:
        if bar is None:
            return fn(model, result, targets, opt)
        task = bar.add_task("", total=len(targets))
        return fn(model, result, targets, opt,
                  progress=lambda o: bar.update(task, advance=1, description=f"{o.node}: "
                                                + ("confirmed" if o.confirmed else "unconfirmed")))


def render(result: Any, targets: list[Any], unit: list[Any], system: list[Any], args: argparse.Namespace) -> str:
    """The report: JSON (``version: 1``) or text."""
    from numsentry import __version__

    m = result.model
    rows = []
    for i, o in enumerate(unit):
        row = o.to_dict()
        row["after_earlier_finding"] = targets[i].after_earlier
        if system:
            row["system"] = system[i].to_dict()
        rows.append(row)
    if args.output_format == "json":
        doc = {"version": 1, "tool": {"name": "numsentry", "version": __version__},
               "model": {"path": m.path, "dims": m.dims, "weights": result.options.weights},
               "search": {"method": "random" if args.baseline else "gradient", "seed": args.seed,
                          "budget_s": args.budget, "denormal_as_zero": args.denormal_as_zero},
               "ranges": [r.to_dict() for r in result.ranges], "results": rows,
               "stats": {"targets": len(unit), "confirmed": sum(o.confirmed for o in unit),
                         "system_confirmed": sum(o.confirmed for o in system) if system else None,
                         "seconds": round(sum(o.seconds for o in unit + system), 4)}}
        return json.dumps(doc, indent=2) + "\n"
    return _text(m, unit, system, args)


def _text(m: Any, unit: list[Any], system: list[Any], args: argparse.Namespace) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    con = Console(file=buf, width=140, highlight=False, no_color=True)
    con.print(f"{m.path}: {len(unit)} finding(s) to trigger"
              + (" (random sampling baseline)" if args.baseline else ""))
    if unit:
        t = Table(box=None, header_style="bold", pad_edge=False)
        for c in ("rule", "node", "unit test", *(["system test"] if system else []), "details"):
            t.add_column(c, overflow="fold")
        for i, o in enumerate(unit):
            cells = [o.rule, o.node, _status(o)]
            if system:
                cells.append(_status(system[i]))
            detail = o.witness.observed if o.witness else f"tried: {o.tried()}"
            if system and system[i].witness is not None:
                detail += f"; system: {system[i].witness.observed}"
            elif system:
                detail += f"; system tried: {system[i].tried()}"
            t.add_row(*cells, detail)
        con.print(t)
    n = sum(o.confirmed for o in unit)
    line = f"{n}/{len(unit)} confirmed by a unit test"
    if system:
        line += f", {sum(o.confirmed for o in system)}/{len(system)} by a system test"
    if n or any(o.confirmed for o in system):
        line += f"; reproductions in {args.witness_dir}/ (run them with pytest)"
    con.print(line)
    return buf.getvalue()


def _status(o: Any) -> str:
    if not o.confirmed:
        return "unconfirmed"
    return f"confirmed ({o.seconds:.1f} s)" + (f" {o.path}" if o.path else "")

"""``numsentry check``: argument parsing and the run, shared by the CLI and `numsentry.api`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from numsentry.errors import UserError

__all__ = ["add_check_parser", "options_from_args", "run_check_args"]


def add_check_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``check`` subcommand to ``sub`` (argparse subparsers)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "check", help="find operators that can receive invalid inputs (static, no torch)",
        description="Static interval analysis: every operator that can receive an invalid input "
                    "(log of <= 0, division by 0, exp overflow, sqrt of < 0, dtype overflow...) for "
                    "any inputs and weights inside the declared ranges.")
    p.add_argument("model", help="an .onnx file, or pkg.module:factory returning (torch module, example inputs)")
    p.add_argument("--range", action="append", default=[], metavar="NAME=LO,HI",
                   help="range of a graph input or initializer (repeatable)")
    p.add_argument("--ranges", metavar="FILE", help="JSON or YAML file {name: [lo, hi]}")
    p.add_argument("--weights", choices=["stored", "trainable"], default="stored",
                   help="stored: the stored weight values; trainable: stored span widened to "
                        "[min-span, max+span] (all-equal tensors [-10, 10])")
    p.add_argument("--as-dtype", choices=["float16", "bfloat16", "float32", "float64"],
                   help="analyse float32 tensors as if the model were deployed in this dtype")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=N",
                   help="value of a symbolic dimension (default 1)")
    p.add_argument("--unsupported", choices=["top", "error"], default="top",
                   help="ops without rules: outputs become [-inf, inf] (top) or exit 2 (error)")
    p.add_argument("--select", action="append", help="only these rule codes or prefixes (e.g. NUM001,NUM003)")
    p.add_argument("--ignore", action="append", help="skip these rule codes or prefixes")
    p.add_argument("--output-format", choices=["text", "json", "sarif", "github"], default="text")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of stdout")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks on errors")
    from numsentry.cli.trigger import add_search_arguments

    c = p.add_argument_group("confirmation (needs torch and onnxruntime)")
    c.add_argument("--confirm", action="store_true",
                   help="search a failure-exhibiting unit test for every finding and label it confirmed/unconfirmed")
    add_search_arguments(c)
    return p


def _parse_dims(items: list[str]) -> dict[str, int]:
    dims: dict[str, int] = {}
    for it in items:
        name, sep, val = it.partition("=")
        try:
            n = int(val)
            if not sep or not name or n < 0:
                raise ValueError
        except ValueError:
            raise UserError(f"--dim {it!r}: expected NAME=N with N >= 0", hint="e.g. --dim batch=8") from None
        dims[name.strip()] = n
    return dims


def options_from_args(args: argparse.Namespace, model_path: str | None) -> tuple[Any, dict[str, int]]:
    """Build `CheckOptions` (and dims) from parsed arguments, pyproject ranges included."""
    from numsentry.analyses.check import CheckOptions
    from numsentry.analyses.ranges import load_pyproject_ranges, load_ranges_file, parse_range_arg
    from numsentry.reports.rules import select_rules

    start = Path(model_path).resolve().parent if model_path and Path(model_path).exists() else Path.cwd()
    ranges = dict(load_pyproject_ranges(start))
    if args.ranges:
        ranges.update(load_ranges_file(args.ranges))
    for spec in args.range:
        name, pair = parse_range_arg(spec)
        ranges[name] = pair
    opts = CheckOptions(ranges=ranges, weights=args.weights, as_dtype=args.as_dtype,
                        unsupported=args.unsupported, rules=select_rules(args.select, args.ignore))
    return opts, _parse_dims(args.dim)


def run_check_args(args: argparse.Namespace, show_progress: bool = False) -> Any:
    """Load the model named in ``args`` and run the check; returns a `CheckResult`."""
    from numsentry.analyses.check import run_check
    from numsentry.ir.load import load_model

    model_arg = args.model
    is_file = model_arg.endswith(".onnx") or Path(model_arg).exists() or ":" not in model_arg
    opts, dims = options_from_args(args, model_arg if is_file else None)
    if is_file:
        model = load_model(model_arg, dims=dims)
    else:
        from numsentry.frontends.torch import export_factory

        model = load_model(export_factory(model_arg), dims=dims)
    if not show_progress:
        res = run_check(model, opts)
    else:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("checking"), BarColumn(), TextColumn("{task.completed}/{task.total} nodes"),
                      TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("check", total=len(model.graph.nodes))
            res = run_check(model, opts, progress=lambda n: bar.advance(task))
    if getattr(args, "confirm", False):
        confirm_findings(res, args, show_progress)
    return res


def confirm_findings(res: Any, args: argparse.Namespace, show_progress: bool = False) -> None:
    """``--confirm``: the unit-test search for every finding; sets ``confirmed`` and ``witness``."""
    from numsentry.cli.trigger import _run_unit, require_runtime, unit_options, write_all
    from numsentry.search.trigger import targets_for

    if not res.findings:
        return
    require_runtime()
    args.baseline = False
    targets = targets_for(res.model, res)
    outcomes = _run_unit(res.model, res, targets, unit_options(args), args, show_progress)
    write_all(outcomes, targets, args, res, res.model.dims)
    for f, o in zip(res.findings, outcomes, strict=True):
        f.confirmed = o.confirmed
        f.witness = o.path
        if not o.confirmed:
            f.extra["tried"] = o.tried()

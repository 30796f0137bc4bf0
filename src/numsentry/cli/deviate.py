"""``numsentry deviate``: run a model under many execution configurations; ``deviate report`` merges results.

Usage::

    numsentry deviate MODEL.onnx [--inputs X.npy | --random N] [--boundary N] [--configs SET|FILE]
                      [--only GLOBS] [--skip GLOBS] [--baseline NAME] [--repeats N] [--layers]
                      [--db FILE | --no-db] [--output-format text|json] [-o FILE] [--html FILE]
    numsentry deviate report A.db [B.db ...] [--output-format text|json] [-o FILE]

Exit codes: 0 done (``--fail-on`` not met), 1 ``--fail-on`` met, 2 error. Nothing heavy is
imported at module level: ``numsentry check`` must stay light.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from numsentry.errors import UserError

__all__ = ["register", "run"]

_USAGE = ("numsentry deviate MODEL.onnx [--inputs X.npy | --random N] [--boundary N] [options]\n"
          "       numsentry deviate report DB [DB ...] [--output-format text|json] [-o FILE]")


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the ``deviate`` subcommand (and its ``report`` sub-subcommand) to ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "deviate", usage=_USAGE, help="measure, localise and explain output deviations across execution configurations",
        description="Run the model under a matrix of execution configurations (runtime, threads, SIMD caps, oneDNN, "
                    "memory format, batch size, MKL/OpenBLAS settings, onnxruntime optimisation level, dtype), each in "
                    "a fresh subprocess; report bit-identical classes, remaining precision, ULP distances, label "
                    "flips, the knobs that change the output and what pinning them costs. "
                    "`deviate report A.db B.db ...` merges results databases from several machines.")
    p.add_argument("target", nargs="+", metavar="MODEL | report DB",
                   help="the .onnx model, or `report` followed by results databases")
    g = p.add_argument_group("inputs")
    g.add_argument("--inputs", metavar="FILE", help=".npy (first graph input) or .npz (inputs by name)")
    g.add_argument("--random", type=int, metavar="N", help="N seeded uniform random inputs (see --random-range)")
    g.add_argument("--random-range", default="0,1", metavar="LO,HI", help="range of --random values (default 0,1)")
    g.add_argument("--boundary", type=int, metavar="N",
                   help="replace the inputs by N boundary samples (top-2 margin within a few ULP), bisected "
                        "between the given or random inputs of different labels")
    g.add_argument("--telltale", metavar="FILE", default="telltale.npz",
                   help="with --boundary: where to save the inputs whose label differs between configurations "
                        "(default telltale.npz)")
    g.add_argument("--seed", type=int, default=0, help="seed of --random and of the boundary search")
    g.add_argument("--label-output", metavar="NAME", help="output to take labels from (default: first with a class axis)")
    c = p.add_argument_group("configurations")
    c.add_argument("--configs", default="default", metavar="SET|FILE",
                   help="default, all, or a YAML/TOML/JSON matrix file (see docs/deviate.md)")
    c.add_argument("--only", action="append", metavar="GLOBS", help="keep configurations matching these name globs")
    c.add_argument("--skip", action="append", metavar="GLOBS", help="drop configurations matching these name globs")
    c.add_argument("--baseline", metavar="NAME", help="configuration to compare against (default: the set's)")
    c.add_argument("--repeats", type=int, metavar="N", help="runs per configuration in one process (default 3)")
    c.add_argument("--list", action="store_true", help="list the configurations and why any would be skipped; run nothing")
    c.add_argument("--jobs", type=int, default=1, help="configurations at once (default 1: comparable timings)")
    c.add_argument("--timeout", type=float, default=300.0, help="seconds per configuration (default 300)")
    a = p.add_argument_group("analysis and output")
    a.add_argument("--layers", action="store_true", help="compare every intermediate tensor; name the first diverging node")
    a.add_argument("--layer-tables", type=int, default=1, metavar="N", help="per-layer tables to print (default 1)")
    a.add_argument("--db", metavar="FILE", default="numsentry-deviate.db",
                   help="SQLite results database to record into (default numsentry-deviate.db)")
    a.add_argument("--no-db", action="store_true", help="do not record the run")
    a.add_argument("--output-format", choices=["text", "json"], default="text")
    a.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of stdout")
    a.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with plots")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.add_argument("--fail-on", choices=["never", "flips", "bits"], default="never",
                   help="exit 1 when a configuration flips a label (flips) or differs at all (bits) from the baseline")
    p.set_defaults(func=run)
    return p


def _write(path: str | None, text: str) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from e


def _range(spec: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in spec.split(","))
    except ValueError:
        raise UserError(f"--random-range {spec!r}: expected LO,HI", hint="e.g. --random-range -1,1") from None
    if not lo < hi:
        raise UserError(f"--random-range {spec!r}: LO must be below HI")
    return lo, hi


def run(args: argparse.Namespace) -> int:
    """Run ``deviate`` (or ``deviate report``); returns the exit code."""
    if args.target[0] == "report":
        return _report(args)
    if len(args.target) != 1:
        raise UserError(f"deviate takes one model, got {len(args.target)} arguments",
                        hint="numsentry deviate MODEL.onnx ...; to merge databases: numsentry deviate report A.db B.db")
    return _deviate(args)


def _report(args: argparse.Namespace) -> int:
    from numsentry.deviation.report import cross_platform_json, print_cross_platform
    from numsentry.deviation.store import merge_report

    merged = merge_report(args.target[1:])
    if args.output_format == "json":
        _write(args.output, cross_platform_json(merged))
        return 0
    from rich.console import Console

    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            print_cross_platform(merged, Console(file=fh, width=160))
    else:
        print_cross_platform(merged)
    return 0


def _deviate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from numsentry.deviation.configs import availability, load_matrix, select
    from numsentry.deviation.sweep import load_inputs, run_deviate

    model = args.target[0]
    if not Path(model).is_file():
        raise UserError(f"{model}: no such model file", hint="numsentry deviate MODEL.onnx --inputs X.npy")
    if args.inputs and args.random:
        raise UserError("--inputs and --random exclude each other")
    if args.repeats is not None and args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    if args.boundary is not None and args.boundary < 1:
        raise UserError("--boundary must be at least 1")
    matrix = select(load_matrix(args.configs), args.only, args.skip, args.repeats)
    if args.baseline:
        matrix.get(args.baseline)
        matrix.baseline = args.baseline
    if args.list:
        for cfg in matrix.configs:
            why = availability(cfg)
            env = " ".join(f"{k}={v}" for k, v in cfg.env().items())
            print(f"{cfg.name:<40} {env:<40} {'skip: ' + why if why else ''}".rstrip())
        return 0
    lo, hi = _range(args.random_range)
    feeds, source = load_inputs(model, args.inputs, args.random, lo, hi, seed=args.seed)
    from rich.console import Console

    err = Console(stderr=True)
    show = sys.stderr.isatty() and not args.no_progress
    progress_cb = None
    prog = None
    if show:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        prog = Progress(TextColumn("[bold]deviate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.description}"), console=err, transient=True)
        task = prog.add_task("", total=len(matrix.configs))

        def progress_cb(event: str, cfg: Any, result: Any) -> None:
            if event == "start":
                prog.update(task, description=cfg.name)
            else:
                prog.advance(task)

        prog.start()
    try:
        res = run_deviate(model, feeds, matrix, layers=args.layers, boundary=args.boundary, label=args.label_output,
                          jobs=max(1, args.jobs), timeout=args.timeout, progress=progress_cb, input_source=source,
                          seed=args.seed)
    finally:
        if prog is not None:
            prog.stop()
    telltale = count = None
    if res.boundary is not None:
        from numsentry.deviation.boundary import save_telltale

        labels = {r.name: r.labels for r in res.rows if r.labels is not None}
        count = save_telltale(args.telltale, res.boundary, labels, next(iter(res.inputs)))
        telltale = args.telltale
    if not args.no_db:
        from numsentry.deviation.store import record

        record(args.db, model, res.model_hash, res.input_hash, [r.result for r in res.rows], res.platform)
    from numsentry.deviation.report import print_text, to_html, to_json

    if args.output_format == "json":
        _write(args.output, to_json(res, telltale=telltale, telltale_count=count))
    elif args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            print_text(res, Console(file=fh, width=160), args.layer_tables, telltale, count)
    else:
        print_text(res, None, args.layer_tables, telltale, count)
    if args.html:
        _write(args.html, to_html(res, telltale=telltale, telltale_count=count))
    if not args.no_db and args.output_format == "text" and not args.output:
        err.print(f"[dim]recorded in {args.db}[/dim]")
    return _exit(res, args.fail_on)


def _exit(res: Any, fail_on: str) -> int:
    for r in res.rows:
        vb = r.vs_baseline
        if vb is None:
            continue
        if fail_on == "flips" and vb.top1_flips:
            return 1
        if fail_on == "bits" and not vb.identical:
            return 1
    return 0

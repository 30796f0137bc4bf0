"""The ``numsentry`` command: check, ops, rule.

Exit codes follow ruff: 0 clean, 1 findings, 2 error. A user's mistake prints one
``error: ...`` line with a hint and no traceback (``-v`` shows it).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from numsentry import __version__
from numsentry.cli.check import add_check_parser, run_check_args
from numsentry.errors import InternalError, UserError

__all__ = ["build_parser", "main"]

#: Modules that add a subcommand: each defines ``register(sub)`` which adds its parser and sets
#: ``func=run`` (``run(args) -> exit code``) as a default. They must import nothing heavy (torch,
#: onnxruntime) at module level, so that ``numsentry check`` starts fast.
PLUGINS = ("numsentry.cli.trigger", "numsentry.cli.deviate", "numsentry.cli.flip")


def build_parser() -> argparse.ArgumentParser:
    """The top-level argument parser."""
    p = argparse.ArgumentParser(prog="numsentry", description="Make neural networks numerically trustworthy.")
    p.add_argument("--version", action="version", version=f"numsentry {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    add_check_parser(sub)
    ops = sub.add_parser("ops", help="list the operators numsentry has rules for")
    ops.add_argument("--output-format", choices=["text", "json"], default="text")
    rule = sub.add_parser("rule", help="explain a rule, e.g. `numsentry rule NUM001`")
    rule.add_argument("code", nargs="?", help="rule code or name; omit to list all rules")
    import importlib

    for name in PLUGINS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # the plugin exists but something it imports is missing
                raise
            continue
        mod.register(sub)
    return p


def _cmd_check(args: argparse.Namespace) -> int:
    from numsentry.reports.render import render

    interactive = sys.stderr.isatty() and not args.no_progress
    res = run_check_args(args, show_progress=interactive)
    color = args.output is None and args.output_format == "text" and sys.stdout.isatty()
    out = render(res, args.output_format, color=color)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(out)
        except OSError as e:
            raise UserError(f"cannot write {args.output}: {e.strerror or e}") from e
    else:
        sys.stdout.write(out)
    return 1 if res.findings and not args.exit_zero else 0


def _cmd_ops(args: argparse.Namespace) -> int:
    import json

    from numsentry.ops import REGISTRY

    rows: list[dict[str, Any]] = []
    for op in REGISTRY.latest():
        rows.append({"op_type": op.op_type, "domain": op.domain or "ai.onnx", "since": op.since,
                     "versions": [o.since for o in REGISTRY.all() if o.op_type == op.op_type],
                     "interval": op.property, "hazards": sorted({h.rule for h in op.hazards}
                                                                 | ({op.overflow_rule} if op.overflow_rule else set())),
                     "ulps": op.ulps, "doc": op.doc})
    if args.output_format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(rows)} operators", box=None, header_style="bold")
    for c in ("op", "since", "interval rule", "hazards", "ulps", "what"):
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(r["op_type"], ",".join(map(str, r["versions"])), r["interval"], " ".join(r["hazards"]),
                  str(r["ulps"]), r["doc"])
    Console(width=140).print(t)
    return 0


def _cmd_rule(args: argparse.Namespace) -> int:
    from numsentry.reports.rules import RULES, get_rule

    if not args.code:
        for r in RULES.values():
            print(f"{r.code} {r.name:<26} {r.summary}")
        return 0
    r = get_rule(args.code)
    print(f"{r.code} {r.name}: {r.summary}\n\n{r.explanation}\n\nExample:\n    {r.example}\n\nFix:\n    {r.fix}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``numsentry`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        builtin = {"check": _cmd_check, "ops": _cmd_ops, "rule": _cmd_rule}
        cmd = builtin.get(args.command) or args.func
        return int(cmd(args))
    except UserError as e:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
    except (InternalError, Exception) as e:  # a bug of ours: say so, clearly
        if args.verbose:
            traceback.print_exc()
        print(f"error: internal error ({type(e).__name__}: {e}); please report it "
              "(run with -v for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

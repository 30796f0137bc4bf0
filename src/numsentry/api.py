"""Programmatic entry points (no torch, no onnxruntime imported)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_json", "check_model"]


def check_json(model_path: str, args: Sequence[str] = ()) -> dict[str, Any]:
    """Run ``numsentry check MODEL ARGS...`` in-process and return the JSON report as a dict.

    Args:
        model_path: Path of the .onnx file.
        args: The CLI arguments that would follow the model path.

    Raises:
        UserError: As the CLI would report with exit 2.
    """
    from numsentry.cli.check import run_check_args
    from numsentry.cli.main import build_parser
    from numsentry.reports.render import to_json_dict

    ns = build_parser().parse_args(["check", model_path, *args])
    return to_json_dict(run_check_args(ns))


def check_model(model: Any, ranges: Mapping[str, tuple[float, float]] | None = None, *,
                weights: str = "stored", as_dtype: str | None = None,
                dims: Mapping[str, int] | None = None) -> Any:
    """Check a path, bytes or ModelProto; returns a `numsentry.analyses.check.CheckResult`."""
    from numsentry.analyses.check import CheckOptions, run_check
    from numsentry.ir.load import load_model

    m = load_model(model, dims=dims)
    return run_check(m, CheckOptions(ranges=dict(ranges or {}), weights=weights, as_dtype=as_dtype))

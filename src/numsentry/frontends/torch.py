"""PyTorch front end: export a module to ONNX with ``torch.onnx.export`` and check it.

Needs the ``torch`` extra (torch + onnxscript). The exporter records each node's Python stack
trace in node metadata; `numsentry.ir.load` maps findings back to the user's file and line.
"""

from __future__ import annotations

import importlib
import io
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx

from numsentry.errors import UserError

__all__ = ["check", "export_factory", "export_module"]


def _torch() -> Any:
    try:
        import torch
    except ModuleNotFoundError:
        raise UserError("checking a PyTorch module needs torch",
                        hint="pip install 'numsentry[torch]' -c constraints.txt") from None
    return torch


def export_module(module: Any, example_inputs: Sequence[Any] | Any,
                  input_names: Sequence[str] | None = None, opset: int = 18) -> onnx.ModelProto:
    """Export ``module`` called on ``example_inputs`` to an ONNX ModelProto.

    Args:
        module: A ``torch.nn.Module``.
        example_inputs: A tensor or tuple of tensors (shapes define the analysed shapes).
        input_names: Names of the graph inputs (default ``input_0``...; used by ranges).
        opset: ONNX opset to export.

    Raises:
        UserError: When torch is missing or the export fails.
    """
    torch = _torch()
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    names = list(input_names) if input_names else [f"input_{i}" for i in range(len(args))]
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = io.StringIO()
            old = sys.stdout
            sys.stdout = out  # the exporter prints its progress; keep our output clean
            try:
                prog = torch.onnx.export(module, args, input_names=names, opset_version=opset, dynamo=True)
            finally:
                sys.stdout = old
    except Exception as e:
        raise UserError(f"torch.onnx.export failed: {str(e).splitlines()[0][:300]}",
                        hint="the module must be exportable by torch.onnx.export(dynamo=True)") from e
    finally:
        module.train(was_training)
    return prog.model_proto


def export_factory(spec: str) -> onnx.ModelProto:
    """Export ``pkg.module:factory``: ``factory()`` returns ``(module, example_inputs)``.

    The current directory is on the import path, as for ``python -m``.
    """
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise UserError(f"{spec!r}: expected pkg.module:factory")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:
        raise UserError(f"cannot import {mod_name!r}: {e}") from e
    fn = getattr(mod, attr, None)
    if fn is None:
        raise UserError(f"{mod_name!r} has no attribute {attr!r}")
    made = fn() if callable(fn) else fn
    if not (isinstance(made, (tuple, list)) and len(made) == 2):
        raise UserError(f"{spec}: the factory must return (module, example_inputs)")
    return export_module(made[0], made[1])


def check(module: Any, example_inputs: Sequence[Any] | Any,
          ranges: Mapping[str, tuple[float, float]] | None = None, *, weights: str = "stored",
          as_dtype: str | None = None, input_names: Sequence[str] | None = None) -> Any:
    """Export ``module`` and run the static check; returns a `CheckResult`.

    Findings carry ``source`` (file, line) from the exporter's stack traces.
    """
    from numsentry.api import check_model

    proto = export_module(module, example_inputs, input_names=input_names)
    return check_model(proto, ranges, weights=weights, as_dtype=as_dtype)

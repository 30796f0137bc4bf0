"""Applying an op's rule in a domain, with the framework's share of the work.

The interval step folds exact ops on point inputs through the concrete rule, calls the interval
rule otherwise, then for float outputs: turns NaN bounds into [-inf, inf] with the NaN flag,
rounds the bounds into the analysed format (modelling underflow to 0 and overflow to inf), adds
the op's kernel ULPs and clamps to its codomain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.dtypes import is_float_dtype, round_bounds
from numsentry.ops.kernels import NUMPY, Kernels
from numsentry.ops.registry import Ctx, OpDef

__all__ = ["apply_concrete", "apply_interval", "finalize"]


def _as_tuple(out: Any) -> tuple[Any, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def apply_concrete(op: OpDef, k: Kernels, inputs: Sequence[Any], attrs: dict[str, Any]) -> tuple[Any, ...]:
    """Run the concrete rule of ``op`` on backend ``k``."""
    if op.concrete is None:
        raise NotImplementedError(f"{op.op_type} has no concrete rule")
    return _as_tuple(op.concrete(k, *inputs, **attrs))


def finalize(op: OpDef, ctx: Ctx, box: Box, in_nan: bool) -> Box:
    """Round a float output box into its format and apply the op's declared facts."""
    if box.is_point or not is_float_dtype(box.dtype):
        return box
    lo, hi = box.bounds64()
    nan = box.nan or (in_nan and op.propagates_nan)
    bad = np.isnan(lo) | np.isnan(hi)
    if bad.any():
        lo, hi, nan = np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi), True
    fmt = ctx.fmt(box.dtype)
    lo, hi = round_bounds(lo, hi, fmt, op.ulps)
    if op.codomain is not None:
        lo = np.clip(lo, op.codomain[0], op.codomain[1])
        hi = np.clip(hi, op.codomain[0], op.codomain[1])
    return Box(lo, hi, box.shape, box.dtype, nan)


def apply_interval(op: OpDef, ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> tuple[Box, ...]:
    """Run ``op`` over boxes: fold exact point computations, else the interval rule."""
    if op.exact and op.concrete is not None and all(b is None or b.is_point for b in inputs):
        vals = [None if b is None else b.value for b in inputs]
        with np.errstate(all="ignore"):
            outs = apply_concrete(op, NUMPY, vals, attrs)
        points = []
        for o in outs:
            a = np.asarray(o)
            dt = ctx.analysed(a.dtype) if a.dtype.kind == "f" else a.dtype
            points.append(Box.point(a.astype(dt) if dt != a.dtype else a))
        return tuple(points)
    if op.interval is None:
        raise NotImplementedError(f"{op.op_type} has no interval rule")
    with np.errstate(all="ignore"):
        outs = _as_tuple(op.interval(ctx, *inputs, **attrs))
    in_nan = any(b is not None and b.nan for b in inputs)
    return tuple(finalize(op, ctx, o, in_nan) for o in outs)

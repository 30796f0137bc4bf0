"""Softmax and LogSoftmax (opset 13: one axis).

For element i along the axis, with bounds [l_j, h_j]::

    softmax_i in [1 / (1 + sum_{j != i} e^(h_j - l_i)),  1 / (1 + sum_{j != i} e^(l_j - h_i))]

The sums over j != i use prefix and suffix sums (no cancellation); along a coarse axis of
length n they are (n - 1) e^(h - l). Rounding into the dtype then makes probabilities below
half the smallest subnormal exactly 0, as the runtime's underflowing exp does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import draw_interval, draw_shape


def _log_others(x: np.ndarray, axis: int, n: int) -> np.ndarray:
    """log sum_{j != i} e^(x_j) along ``axis`` (x broadcastable; length-1 axis means coarse).

    Exclusive prefix and suffix log-sum-exps (``logaddexp.accumulate``): no subtraction, which
    would cancel when e_i dominates, and no common scaling, which would underflow when the
    elements lie far apart.
    """
    if x.shape[axis] == 1:
        return np.log(n - 1.0) + x if n > 1 else np.full(x.shape, -np.inf)
    k = x.shape[axis]
    pad = np.full_like(np.take(x, [0], axis=axis), -np.inf)
    inc = np.logaddexp.accumulate(x, axis=axis)
    pre = np.concatenate([pad, np.take(inc, range(k - 1), axis=axis)], axis=axis)
    rev = np.flip(np.logaddexp.accumulate(np.flip(x, axis=axis), axis=axis), axis=axis)
    suf = np.concatenate([np.take(rev, range(1, k), axis=axis), pad], axis=axis)
    return np.logaddexp(pre, suf)


def _softmax_parts(x: Box, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """log(sum_{j!=i} e^(h_j)) - l_i and log(sum_{j!=i} e^(l_j)) - h_i, elementwise."""
    axis = axis % x.rank if x.rank else 0
    n = x.shape[axis]
    lo, hi = x.bounds64()
    lo = lo.reshape((1,) * (x.rank - lo.ndim) + lo.shape)
    hi = hi.reshape((1,) * (x.rank - hi.ndim) + hi.shape)
    if lo.shape != hi.shape:
        lo, hi = (np.array(a) for a in np.broadcast_arrays(lo, hi))
    with np.errstate(all="ignore"):
        t_lo = _log_others(hi, axis, n) - lo  # the lower bound faces the largest competitors
        t_hi = _log_others(lo, axis, n) - hi
    return t_lo, t_hi


def _sum_error(ctx: Ctx, x: Box, axis: int) -> float:
    """Relative error of the runtime's n-term sum of exponentials (each a few ULPs off).

    A single term is exp(0) = 1 exactly, so a length-1 axis has no error. The rounding of
    x - max (relative eps, absolute up to eps * spread) is amplified by exp into a relative
    error of the same size.
    """
    n = x.shape[axis % x.rank] if x.rank else 1
    if n <= 1:
        return 0.0
    fmt = ctx.fmt(x.dtype)
    # beyond -log(tiny) below the max, exp underflows: the term is 0 (or subnormal, covered by
    # the subnormal slack of the ULP widening), so its relative error no longer matters
    spread = min(x.max() - x.min(), -np.log(fmt.tiny))
    return (5 * (n - 1) + 2 * spread) * fmt.eps


def _softmax_c(k: Any, x: Any, axis: int = -1) -> Any:
    xp = k.xp
    m = xp.max(x, axis=axis, keepdims=True)
    e = xp.exp(x - m)
    return e / xp.sum(e, axis=axis, keepdims=True)


def _softmax_iv(ctx: Ctx, x: Box, axis: int = -1) -> Box:
    if x.rank == 0:
        return Box.range(1.0, 1.0, x.shape, x.dtype, x.nan)
    t_lo, t_hi = _softmax_parts(x, axis)
    rel = _sum_error(ctx, x, axis)
    with np.errstate(all="ignore"):
        lo = 1.0 / (1.0 + np.exp(t_lo)) * (1 - rel)
        hi = 1.0 / (1.0 + np.exp(t_hi)) * (1 + rel)
    nan = x.nan or not (np.isfinite(x.min()) and np.isfinite(x.max()))
    return Box(lo, hi, x.shape, x.dtype, nan)


def _logsoftmax_c(k: Any, x: Any, axis: int = -1) -> Any:
    xp = k.xp
    m = xp.max(x, axis=axis, keepdims=True)
    s = x - m
    return s - xp.log(xp.sum(xp.exp(s), axis=axis, keepdims=True))


def _logsoftmax_iv(ctx: Ctx, x: Box, axis: int = -1) -> Box:
    if x.rank == 0:
        return Box.range(0.0, 0.0, x.shape, x.dtype, x.nan)
    t_lo, t_hi = _softmax_parts(x, axis)
    rel = _sum_error(ctx, x, axis)
    with np.errstate(all="ignore"):
        lo = -np.logaddexp(0.0, t_lo)
        hi = -np.logaddexp(0.0, t_hi)
        # the runtime's log(sum) has an absolute error of about the sum's relative error, which
        # ULPs of a result near 0 do not cover (numpy and onnxruntime return exactly 0)
        lo = lo - rel * (1 + np.abs(lo))
        hi = hi + rel
    nan = x.nan or not (np.isfinite(x.min()) and np.isfinite(x.max()))
    return Box(lo, np.minimum(hi, 0.0), x.shape, x.dtype, nan)


def _sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3)
    if not shape:
        shape = (3,)
    lo, hi = draw_interval(draw, -30, 30)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return [BoxSpec(lo, hi, shape)], {"axis": axis}


register(
    "Softmax", since=13, concrete=_softmax_c, interval=_softmax_iv, ulps=4, codomain=(0.0, 1.0),
    overflow_rule=None, property="custom (competitor sums)", sample=_sample,
    doc="normalised exponentials along one axis; can underflow to exactly 0",
)
register(
    "LogSoftmax", since=13, concrete=_logsoftmax_c, interval=_logsoftmax_iv, ulps=4,
    codomain=(-np.inf, 0.0), overflow_rule="NUM007", property="custom (competitor sums)", sample=_sample,
    doc="log of softmax, computed stably; -inf once the input spread exceeds the dtype's max",
)

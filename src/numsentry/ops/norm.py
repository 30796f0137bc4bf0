"""Normalisations: BatchNormalization InstanceNormalization LayerNormalization
GroupNormalization RMSNormalization (LpNormalization and LRN live with the reductions).

A normalised value ``y_i = (x_i - mu) / sqrt(var + eps)`` over a group of n elements is bounded
whatever the inputs: ``|x_i - mu| <= sqrt(n - 1) sigma`` (the other n - 1 deviations sum to
``-(x_i - mu)``, Cauchy-Schwarz does the rest), hence ``var >= d_i^2 / (n - 1)`` and

    |y_i| <= g(|d_i|),   g(D) = D / sqrt(D^2 / (n - 1) + eps),

which is increasing in D, close to D / sqrt(eps) for small deviations and below sqrt(n - 1).
The deviation itself is bounded by the box: ``d_i in [l_i - (S_h - h_i + l_i)/n,
h_i - (S_l - l_i + h_i)/n]`` (S the sums of the bounds over the group; for a coarse group of
[l, h] this is ``±(n-1)/n (h - l)``).

Runtimes do not compute var exactly, and how they err matters:

* *centred* (onnxruntime's LayerNormalization, InstanceNormalization and training-mode
  BatchNormalization kernels, numpy): deviations from a rounded centre c,
  ``var' >= (1 - gamma) var_c`` with var_c the variance around c; ``|x_i - c| <= sqrt(n var_c)``
  holds around any centre, so the bound keeps its shape with n for n - 1. Constant groups give
  exactly var' = 0 (measured up to 1e8). onnxruntime's LayerNormalization also errs by up to
  ~1.6 u max|x| max|x - c| on rows of fewer than 8 elements (measured), modelled with a margin
  (`_ln_lin_k`); |y| can then exceed sqrt(n) slightly. The output
  is unbounded only when epsilon is (near) 0 and the group can be constant: NUM002.
* *naive* (the ONNX function body of GroupNormalization, which onnxruntime 1.31 runs):
  ``var' = mean(x*x) - mean(x)^2`` in float32, which cancels catastrophically: a constant group
  of 0.7 gives a negative var' and NaN on onnxruntime (measured). Its error is bounded by
  ``delta ~ 3 gamma_{n+1} mean(x^2)``; when ``eps - delta`` can be <= 0 the hazards NUM004 /
  NUM002 fire and the output is unbounded.

onnxruntime's InstanceNormalization and BatchNormalization apply ``x * a + b`` with
``a = scale / sqrt(var + eps)`` and ``b = bias - mean * a``: the cancellation costs an absolute
``~eps (|x| + |mean|) |a|`` (0.25 for a constant channel of 12345.6, measured), added here.
BatchNormalization in inference mode divides by ``sqrt(var + eps)`` of its inputs: NUM004 when
that can be negative, NUM002 when it can be 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.dtypes import FloatFormat
from numsentry.ops.linalg import accumulation_error
from numsentry.ops.reduce import (
    align,
    interval_mul,
    reduce_count,
    reduce_max,
    reduce_min,
    reduce_sum,
)
from numsentry.ops.registry import BoxSpec, Ctx, Hazard, register
from numsentry.ops.rules import draw_interval

_DOUBLE_U = 2.0**-53


def _gamma(n: int, fmt: FloatFormat) -> float:
    return float(accumulation_error(n, np.ones(()), fmt.eps))


# ---- group statistics ---------------------------------------------------------------------


@dataclass
class _Stats:
    """Bounds of one group's statistics (arrays keep the group axes as length 1)."""

    n: int
    s_lo: np.ndarray  # sum of lower bounds
    s_hi: np.ndarray
    m1: np.ndarray  # mean of max |x|
    big: np.ndarray  # max |x|
    m2: np.ndarray  # mean of max x^2
    var_lo: np.ndarray  # exact population variance bounds
    var_hi: np.ndarray
    e: np.ndarray  # bound on |computed mean - mean|


def _stats(lo: np.ndarray, hi: np.ndarray, axes: Sequence[int], shape: Sequence[int], fmt: FloatFormat) -> _Stats:
    n = reduce_count(shape, axes)
    mag = np.maximum(np.abs(lo), np.abs(hi))
    s_lo, s_hi = reduce_sum(lo, axes, shape), reduce_sum(hi, axes, shape)
    m1 = reduce_sum(mag, axes, shape) / n
    m2 = reduce_sum(mag * mag, axes, shape) / n
    var_lo = _var_lo(lo, hi, axes, shape, n)
    spread = reduce_max(hi, axes, shape) - reduce_min(lo, axes, shape)
    # var <= mean((x_i - c)^2) for any c; c = the mean of the midpoints is exact for points
    c = (s_lo + s_hi) / (2 * n)
    around = reduce_sum(np.maximum((lo - c) ** 2, (hi - c) ** 2), axes, shape) / n
    var_hi = np.minimum(spread * spread / 4, around) * (1 + 4 * n * _DOUBLE_U)  # and Popoviciu
    # |computed mean - mean| <= (gamma_{n-1} + u) m1 <= gamma_n m1; exact for one element
    e = _gamma(n, fmt) * m1 if n > 1 else np.zeros_like(m1)
    return _Stats(n, s_lo, s_hi, m1, reduce_max(mag, axes, shape), m2, var_lo, var_hi, e)


def _var_lo(lo: np.ndarray, hi: np.ndarray, axes: Sequence[int], shape: Sequence[int], n: int) -> np.ndarray:
    """Smallest population variance over the box: ``min_c mean(dist(c, [l_i, h_i])^2)``.

    (For fixed c the closest x_i are best, and the variance is the least mean square about any
    centre.) The objective is convex in c: bisect on its derivative, then subtract the tangent
    slack ``|f'(c)| (b - a)`` so the result stays a lower bound; 0 when the ranges share a point.
    """
    a, b = reduce_min(lo, axes, shape), reduce_max(hi, axes, shape)
    with np.errstate(all="ignore"):
        for _ in range(40):
            c = (a + b) / 2
            g = reduce_sum(np.maximum(c - hi, 0.0) - np.maximum(lo - c, 0.0), axes, shape)
            a, b = np.where(g < 0, c, a), np.where(g < 0, b, c)
        c = (a + b) / 2
        above, below = np.maximum(c - hi, 0.0), np.maximum(lo - c, 0.0)
        f = reduce_sum(above * above + below * below, axes, shape) / n
        slope = 2 * np.abs(reduce_sum(above - below, axes, shape)) / n
        v = (f - slope * (b - a)) * (1 - 4 * n * _DOUBLE_U)
    return np.where(np.isfinite(v), np.maximum(v, 0.0), 0.0)


def _deviation(lo: np.ndarray, hi: np.ndarray, st: _Stats) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of x_i - mean (exact arithmetic), using that x_i is one of the summands."""
    n = st.n
    d_lo = lo - (st.s_hi - hi + lo) / n
    d_hi = hi - (st.s_lo - lo + hi) / n
    return d_lo, d_hi


@dataclass
class _Norm:
    """Bounds of the normalised values and of the computed variance."""

    y_lo: np.ndarray
    y_hi: np.ndarray
    v_lo: np.ndarray  # computed variance (before + eps)
    v_hi: np.ndarray
    mean_lo: np.ndarray
    mean_hi: np.ndarray
    unbounded: bool


def _signed(d_lo: np.ndarray, d_hi: np.ndarray, e: np.ndarray, mag_bound: Any,
            den_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y bounds from deviation bounds: magnitude via ``mag_bound(D)``, same sign as d."""
    with np.errstate(all="ignore"):
        up, dn = d_hi + e, d_lo - e
        y_hi = np.where(up > 0, mag_bound(np.maximum(d_hi, 0.0)), up / den_max)
        y_lo = np.where(dn < 0, -mag_bound(np.maximum(-d_lo, 0.0)), dn / den_max)
    return y_lo, y_hi


def _normalise(lo: np.ndarray, hi: np.ndarray, axes: Sequence[int], shape: Sequence[int], eps: float,
               fmt: FloatFormat, naive: bool, lin_k: float = 0.0) -> _Norm:
    """Bounds of (x - mean) / sqrt(var + eps) over groups ``axes`` as a runtime computes it.

    ``lin_k``: the centred variance may also err by ``2 lin_k u max|x| max|x - c|`` (measured on
    onnxruntime's LayerNormalization, see `_ln_lin_k`).
    """
    st = _stats(lo, hi, axes, shape, fmt)
    n, e = st.n, st.e
    d_lo, d_hi = _deviation(lo, hi, st)
    with np.errstate(all="ignore"):
        if naive:
            g1 = _gamma(n + 1, fmt)
            u = fmt.eps
            mu = st.m1 + e
            # mean(x^2) errs by gamma_{n+1} m2; mean(x)^2 by (2 m1 + e) e + u mu^2; their
            # difference is rounded once more, relative to the result (at most var_hi + delta0)
            delta0 = g1 * st.m2 + (2 * st.m1 + e) * e + u * mu * mu
            delta = delta0 + u * (st.var_hi + delta0)
            v_lo, v_hi = st.var_lo - delta, st.var_hi + delta
            eff = eps - delta  # var' + eps >= d^2/(n-1) + eff
            inv_n1 = 1.0 / (n - 1) if n > 1 else 0.0

            def mag(dd: np.ndarray) -> np.ndarray:
                a = np.where(eff > 0, (dd * (1.0 if n > 1 else 0.0)) / np.sqrt(dd * dd * inv_n1 + eff)
                             + e / np.sqrt(eff), np.inf)
                b = np.where(v_lo + eps > 0, (dd + e) / np.sqrt(v_lo + eps), np.inf)
                return np.minimum(a, b)
        else:
            g3 = _gamma(n + 3, fmt)
            delta = n * fmt.tiny  # squares that underflow
            # var' >= (1 - g3) w - b sqrt(n w) - delta with w = var_c >= var_lo (the largest
            # deviation is at most sqrt(n w)); increasing in w beyond w_star
            b = 2 * lin_k * fmt.eps * st.big
            w0 = np.maximum(st.var_lo, (b * np.sqrt(n) / (2 * (1 - g3))) ** 2)
            v_lo = (1 - g3) * w0 - b * np.sqrt(n * w0) - delta
            w1 = st.var_hi + e * e
            v_hi = (1 + g3) * w1 + b * np.sqrt(n * w1) + delta
            kappa = (1 - g3) / (n * (1 + fmt.eps) ** 2)
            eff = eps - delta
            # |y| <= D / sqrt(kappa D^2 - b D + eff) for |x_i - c| <= D (var_c >= D^2 / n), defined
            # when the quadratic stays positive, increasing up to D = 2 eff / b
            quad_ok = eff > b * b / (4 * kappa)

            def mag(dd: np.ndarray) -> np.ndarray:
                dp = dd + e
                ds = np.where(b > 0, np.minimum(dp, 2 * eff / np.where(b > 0, b, 1.0)), dp)
                a = np.where(quad_ok, ds / np.sqrt(kappa * ds * ds - b * ds + eff), np.inf)
                c = np.where(v_lo + eps > 0, dp / np.sqrt(v_lo + eps), np.inf)
                return np.minimum(a, c)

        y_lo, y_hi = _signed(d_lo, d_hi, e, mag, np.sqrt(np.maximum(v_hi + eps, 0.0)))
        y_lo = y_lo - 4 * fmt.eps * np.abs(y_lo)
        y_hi = y_hi + 4 * fmt.eps * np.abs(y_hi)
    unbounded = bool(np.any(~np.isfinite(y_lo)) or np.any(~np.isfinite(y_hi)))
    y_lo, y_hi = np.where(np.isnan(y_lo), -np.inf, y_lo), np.where(np.isnan(y_hi), np.inf, y_hi)
    return _Norm(y_lo, y_hi, v_lo, v_hi, st.s_lo / n - e, st.s_hi / n + e, unbounded)


def _var_hazards(name: str, naive: bool, parts: Any) -> tuple[Hazard, ...]:
    """NUM002 (and NUM004 for the naive variance) from ``parts(ctx, inputs, attrs)``."""

    def zero(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
        r = parts(ctx, inputs, attrs)
        if r is None:
            return None
        v_lo, v_hi, eps = r
        if np.any((v_lo + eps <= 0) & (v_hi + eps >= 0)):
            return (f"{name}: variance + epsilon can be 0 (division by zero; epsilon={eps:g}), "
                    f"input range {inputs[0].describe() if inputs[0] is not None else '?'}")
        return None

    def negative(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
        r = parts(ctx, inputs, attrs)
        if r is None:
            return None
        v_lo, _, eps = r
        if np.any(v_lo + eps < 0):
            return (f"{name}: variance computed as mean(x^2) - mean(x)^2 can cancel below -epsilon "
                    f"(sqrt of a negative; epsilon={eps:g}), input range "
                    f"{inputs[0].describe() if inputs[0] is not None else '?'}")
        return None

    hz = (Hazard("NUM002", zero),)
    return (Hazard("NUM004", negative), *hz) if naive else hz


# ---- scale and bias -----------------------------------------------------------------------


def _channel(b: Box | None, rank: int, c_axis: int = 1, repeat: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel parameter bounds shaped (1, C, 1, ...); ``repeat`` expands per-group ones."""
    if b is None:
        return None
    lo, hi = b.bounds64()
    out = []
    for a in (lo, hi):
        a = np.asarray(a, dtype=np.float64).reshape(-1)
        if a.size > 1 and repeat > 1:
            a = np.repeat(a, repeat)
        shape = [1] * rank
        shape[c_axis] = a.size
        out.append(a.reshape(shape))
    return out[0], out[1]


def _affine(y_lo: np.ndarray, y_hi: np.ndarray, scale: tuple[np.ndarray, np.ndarray] | None,
            bias: tuple[np.ndarray, np.ndarray] | None, fmt: FloatFormat,
            extra: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``y * scale + bias`` with the rounding of the multiply (the add is rounded by finalize)."""
    lo, hi = y_lo, y_hi
    if scale is not None:
        lo, hi = interval_mul(lo, hi, scale[0], scale[1])
    with np.errstate(all="ignore"):
        err = 2 * fmt.eps * np.maximum(np.abs(lo), np.abs(hi)) + extra
        if bias is not None:
            err = err + 2 * fmt.eps * np.maximum(np.abs(bias[0]), np.abs(bias[1]))
            lo, hi = lo + bias[0], hi + bias[1]
        lo, hi = lo - err, hi + err
    return np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)


def _top(shape: Sequence[int], dtype: np.dtype) -> Box:
    return Box.range(-np.inf, np.inf, shape, dtype, nan=True)


def _finite(*boxes: Box | None) -> bool:
    return all(b is None or b.finite for b in boxes)


def _stash_fmt(ctx: Ctx, x: Box, stash_type: int) -> FloatFormat:
    """The format statistics are computed in (float32 for stash_type 1)."""
    if stash_type == 1:
        return ctx.fmt(ctx.analysed(np.dtype(np.float32)))
    return ctx.fmt(x.dtype)


# ---- concrete helpers ---------------------------------------------------------------------


def _to_stash(k: Any, x: Any, stash_type: int) -> Any:
    if stash_type == 1 and str(x.dtype).endswith(("float16", "bfloat16")):
        return k.xp.astype(x, k.dtype(np.dtype(np.float32)))
    return x


def _back(k: Any, y: Any, like: Any) -> Any:
    return y if y.dtype == like.dtype else k.xp.astype(y, like.dtype)


def _moments(k: Any, x: Any, axes: tuple[int, ...]) -> tuple[Any, Any]:
    xp = k.xp
    mean = xp.mean(x, axis=axes, keepdims=True)
    d = x - mean
    return mean, xp.mean(d * d, axis=axes, keepdims=True)


def _per_channel(k: Any, p: Any, rank: int) -> Any:
    return k.xp.reshape(p, (1, -1) + (1,) * (rank - 2))


# ---- LayerNormalization -------------------------------------------------------------------


def _ln_axes(rank: int, axis: int) -> tuple[int, ...]:
    return tuple(range(axis % rank if rank else 0, rank))


def _ln_c(k: Any, x: Any, scale: Any, b: Any = None, axis: int = -1, epsilon: float = 1e-5,
          stash_type: int = 1) -> Any:
    xs = _to_stash(k, x, stash_type)
    axes = _ln_axes(len(tuple(x.shape)), axis)
    mean, var = _moments(k, xs, axes)
    inv = 1.0 / k.xp.sqrt(var + epsilon)
    y = _back(k, (xs - mean) * inv, x) * scale
    if b is not None:
        y = y + b
    return y, mean, inv


# onnxruntime 1.31's LayerNormalization kernel: its variance errs by up to ~1.6 u max|x| max|x - c|
# for rows of fewer than 8 elements and by < 2e-4 u max|x| max|x - c| for longer rows (measured
# on constant-plus-noise rows); the factors below leave a margin
def _ln_lin_k(n: int) -> float:
    return 2.0 if n < 8 else 0.01


def _ln_parts(ctx: Ctx, x: Box, axis: int, epsilon: float, stash_type: int) -> _Norm:
    axes = _ln_axes(x.rank, axis)
    lo, hi = x.bounds64()
    return _normalise(align(lo, x.rank), align(hi, x.rank), axes, x.shape, float(epsilon),
                      _stash_fmt(ctx, x, stash_type), naive=False, lin_k=_ln_lin_k(reduce_count(x.shape, axes)))


def _stat_dtype(ctx: Ctx, x: Box, stash_type: int, index: int) -> np.dtype:
    dts = ctx.output_dtypes
    if len(dts) > index and dts[index] is not None:
        return ctx.analysed(dts[index])  # type: ignore[arg-type]
    return ctx.analysed(np.dtype(np.float32)) if stash_type == 1 else x.dtype


def _ln_iv(ctx: Ctx, x: Box, scale: Box, b: Box | None = None, axis: int = -1, epsilon: float = 1e-5,
           stash_type: int = 1) -> tuple[Box, Box, Box]:
    axes = _ln_axes(x.rank, axis)
    stat_shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    dt_m, dt_i = _stat_dtype(ctx, x, stash_type, 1), _stat_dtype(ctx, x, stash_type, 2)
    if not _finite(x, scale, b) or not axes:
        return _top(x.shape, x.dtype), _top(stat_shape, dt_m), _top(stat_shape, dt_i)
    r = _ln_parts(ctx, x, axis, epsilon, stash_type)
    sc = tuple(align(a, x.rank) for a in scale.bounds64())
    bb = tuple(align(a, x.rank) for a in b.bounds64()) if b is not None else None
    lo, hi = _affine(r.y_lo, r.y_hi, sc, bb, ctx.fmt(x.dtype))  # type: ignore[arg-type]
    with np.errstate(all="ignore"):
        v_lo, v_hi = np.maximum(r.v_lo, 0.0) + epsilon, r.v_hi + epsilon
        i_lo = 1.0 / np.sqrt(v_hi)
        i_hi = np.where(v_lo > 0, 1.0 / np.sqrt(v_lo), np.inf)
    nan = r.unbounded or bool(np.any(r.v_lo + epsilon <= 0) and epsilon <= 0)
    y = Box(lo, hi, x.shape, x.dtype, nan)
    return (y, Box(r.mean_lo, r.mean_hi, stat_shape, dt_m),
            Box(i_lo, i_hi, stat_shape, dt_i, bool(np.any(~np.isfinite(i_hi)))))


def _ln_hz(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float] | None:
    x = inputs[0]
    if x is None or not x.finite or x.rank == 0:
        return None
    eps = float(attrs.get("epsilon", 1e-5))
    r = _ln_parts(ctx, x, int(attrs.get("axis", -1)), eps, int(attrs.get("stash_type", 1)))
    return r.v_lo, r.v_hi, eps


def _ln_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    axis = draw(st.integers(-rank, rank - 1))
    tail = shape[axis % rank:]
    lo, hi = draw_interval(draw, -10, 10)
    s_lo, s_hi = draw_interval(draw, -2, 2)
    b_lo, b_hi = draw_interval(draw, -1, 1)
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.5]))
    bias = BoxSpec(b_lo, b_hi, tail) if draw(st.booleans()) else None
    return [BoxSpec(lo, hi, shape), BoxSpec(s_lo, s_hi, tail), bias], {"axis": axis, "epsilon": eps}


register(
    "LayerNormalization", since=17, concrete=_ln_c, interval=_ln_iv, ulps=2,
    hazards=_var_hazards("LayerNormalization", False, _ln_hz), overflow_rule="NUM007",
    property="custom (|x - mean| <= sqrt(n) sigma, centred variance)", sample=_ln_sample,
    doc="(x - mean) / sqrt(var + eps) * scale + bias over axes [axis, rank); also Mean, InvStdDev",
)


# ---- InstanceNormalization ----------------------------------------------------------------


def _in_c(k: Any, x: Any, scale: Any, b: Any, epsilon: float = 1e-5) -> Any:
    rank = len(tuple(x.shape))
    mean, var = _moments(k, x, tuple(range(2, rank)))
    return (x - mean) / k.xp.sqrt(var + epsilon) * _per_channel(k, scale, rank) + _per_channel(k, b, rank)


def _fused_error(x_lo: np.ndarray, x_hi: np.ndarray, mean_mag: np.ndarray, a_mag: np.ndarray,
                 fmt: FloatFormat) -> np.ndarray:
    """Absolute error of ``x * a + (bias - mean * a)`` beyond what `_affine` adds.

    The roundings of ``x a``, ``mean a``, ``bias - mean a`` and of ``a`` itself (relative 3u,
    times ``|x - mean| |a|``, 2u of it in `_affine`) sum to at most ``3u (|x| + |mean|) |a|``
    besides `_affine`'s ``2u |y scale| + 2u |bias|``.
    """
    mag = np.maximum(np.abs(x_lo), np.abs(x_hi))
    with np.errstate(all="ignore"):
        return 3 * fmt.eps * (mag + mean_mag) * a_mag


def _fused(r: _Norm, lo: np.ndarray, hi: np.ndarray, sc: tuple[np.ndarray, np.ndarray] | None,
           epsilon: float, fmt: FloatFormat) -> np.ndarray:
    """`_fused_error` for statistics computed from x (``a = scale / sqrt(var' + eps)``)."""
    assert sc is not None
    with np.errstate(all="ignore"):
        inv = np.where(r.v_lo + epsilon > 0, 1.0 / np.sqrt(np.maximum(r.v_lo + epsilon, 0.0)), np.inf)
        a_mag = inv * np.maximum(np.abs(sc[0]), np.abs(sc[1]))
        mean_mag = np.maximum(np.abs(r.mean_lo), np.abs(r.mean_hi))
    return _fused_error(lo, hi, mean_mag, a_mag, fmt)


def _in_parts(ctx: Ctx, x: Box, epsilon: float) -> tuple[_Norm, np.ndarray, np.ndarray]:
    lo, hi = (align(a, x.rank) for a in x.bounds64())
    return _normalise(lo, hi, tuple(range(2, x.rank)), x.shape, float(epsilon), ctx.fmt(x.dtype),
                      naive=False), lo, hi


def _in_iv(ctx: Ctx, x: Box, scale: Box, b: Box, epsilon: float = 1e-5) -> Box:
    if not _finite(x, scale, b) or x.rank < 2:
        return _top(x.shape, x.dtype)
    r, lo, hi = _in_parts(ctx, x, epsilon)
    fmt = ctx.fmt(x.dtype)
    sc, bb = _channel(scale, x.rank), _channel(b, x.rank)
    out_lo, out_hi = _affine(r.y_lo, r.y_hi, sc, bb, fmt, _fused(r, lo, hi, sc, epsilon, fmt))
    return Box(out_lo, out_hi, x.shape, x.dtype, r.unbounded)


def _in_hz(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float] | None:
    x = inputs[0]
    if x is None or not x.finite or x.rank < 2:
        return None
    eps = float(attrs.get("epsilon", 1e-5))
    r, _, _ = _in_parts(ctx, x, eps)
    return r.v_lo, r.v_hi, eps


def _nc_sample(groups: bool = False, per_group: bool = False) -> Any:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        if groups:
            # ranges around 0: groups far from 0 make mean(x^2) - mean^2 cancel, and then
            # onnxruntime itself is off by far more than the exactness test's 256 ULPs
            lo, hi = -draw(st.floats(1, 10, width=32)), draw(st.floats(1, 10, width=32))
        else:
            lo, hi = draw_interval(draw, -10, 10)

        g = draw(st.integers(1, 3)) if groups else 1
        c = g * draw(st.integers(1, 2)) if groups else draw(st.integers(1, 4))
        spatial = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
        if groups:  # groups of >= 4 values: pairs of close values cancel in mean(x^2) - mean^2
            spatial = (draw(st.integers(4, 6)), *spatial[1:])
        shape = (draw(st.integers(1, 2)), c, *spatial)
        s_lo, s_hi = draw_interval(draw, -2, 2)
        b_lo, b_hi = draw_interval(draw, -1, 1)
        p = (g,) if per_group else (c,)
        # with small epsilons, groups of nearly equal values make x * a + (bias - mean * a)
        # (InstanceNormalization, BatchNormalization) or mean(x^2) - mean^2 (GroupNormalization)
        # cancel on onnxruntime: a sound box is then wider than the exactness test's 256 ULPs.
        # tests/ops/test_reduce_norm.py covers epsilon 1e-5.
        attrs: dict[str, Any] = {"epsilon": draw(st.sampled_from([1e-2, 0.5]))}
        if groups:
            attrs["num_groups"] = g
        return [BoxSpec(lo, hi, shape), BoxSpec(s_lo, s_hi, p), BoxSpec(b_lo, b_hi, p)], attrs

    return sample


for _v in (6, 22):
    register(
        "InstanceNormalization", since=_v, concrete=_in_c, interval=_in_iv, ulps=2,
        hazards=_var_hazards("InstanceNormalization", False, _in_hz),
        property="custom (|x - mean| <= sqrt(n) sigma, fused x*a+b error)", sample=_nc_sample(),
        doc="per-instance, per-channel normalisation over the spatial axes",
    )


# ---- GroupNormalization -------------------------------------------------------------------


def _gn_c(num_groups_scale: bool) -> Any:
    def c(k: Any, x: Any, scale: Any, b: Any, num_groups: int = 1, epsilon: float = 1e-5,
          stash_type: int = 1) -> Any:
        xp = k.xp
        shape = tuple(x.shape)
        n_, ch = shape[0], shape[1]
        xs = _to_stash(k, x, stash_type)
        x3 = xp.reshape(xs, (n_, num_groups, -1))
        mean, var = _moments(k, x3, (2,))
        y = xp.reshape(_back(k, (x3 - mean) / xp.sqrt(var + epsilon), x), shape)
        rank = len(shape)
        if num_groups_scale:  # opset 18: one scale and bias per group
            rep = ch // num_groups
            scale = xp.reshape(xp.broadcast_to(xp.reshape(scale, (-1, 1)), (num_groups, rep)), (ch,))
            b = xp.reshape(xp.broadcast_to(xp.reshape(b, (-1, 1)), (num_groups, rep)), (ch,))
        return y * _per_channel(k, scale, rank) + _per_channel(k, b, rank)

    return c


def _gn_parts(ctx: Ctx, x: Box, num_groups: int, epsilon: float, stash_type: int) -> tuple[_Norm, Any]:
    """Normalise in the (N, G, C/G, *spatial) view; returns the norm and a map back to x's shape."""
    n_, ch, *sp = x.shape
    g = int(num_groups)
    if g <= 0 or ch % g:
        raise ValueError(f"GroupNormalization: {ch} channels not divisible into {g} groups")
    gshape = (n_, g, ch // g, *sp)
    lo, hi = (align(a, x.rank) for a in x.bounds64())

    def to_g(a: np.ndarray) -> np.ndarray:
        if a.shape[1] == 1:
            return a.reshape(a.shape[0], 1, 1, *a.shape[2:])
        return a.reshape(a.shape[0], g, ch // g, *a.shape[2:])

    def back(a: np.ndarray) -> np.ndarray:
        a = align(a, len(gshape))
        if a.shape[1] == 1 and a.shape[2] == 1:
            return a.reshape(a.shape[0], 1, *a.shape[3:])
        full = (a.shape[0], g, ch // g, *a.shape[3:])
        return np.broadcast_to(a, full).reshape(a.shape[0], ch, *a.shape[3:])

    r = _normalise(to_g(lo), to_g(hi), tuple(range(2, len(gshape))), gshape, float(epsilon),
                   _stash_fmt(ctx, x, stash_type), naive=True)
    return r, back


def _gn_iv(per_group: bool) -> Any:
    def rule(ctx: Ctx, x: Box, scale: Box, b: Box, num_groups: int = 1, epsilon: float = 1e-5,
             stash_type: int = 0 if per_group else 1) -> Box:
        if not _finite(x, scale, b) or x.rank < 2:
            return _top(x.shape, x.dtype)
        r, back = _gn_parts(ctx, x, num_groups, epsilon, stash_type)
        if r.unbounded:
            return _top(x.shape, x.dtype)
        rep = x.shape[1] // int(num_groups) if per_group else 1
        sc, bb = _channel(scale, x.rank, repeat=rep), _channel(b, x.rank, repeat=rep)
        lo, hi = _affine(back(r.y_lo), back(r.y_hi), sc, bb, ctx.fmt(x.dtype))
        return Box(lo, hi, x.shape, x.dtype, False)

    return rule


def _gn_hz(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float] | None:
    x = inputs[0]
    if x is None or not x.finite or x.rank < 2:
        return None
    eps = float(attrs.get("epsilon", 1e-5))
    try:
        # opset 18 has no stash_type: it computes in the input's own type
        r, _ = _gn_parts(ctx, x, int(attrs.get("num_groups", 1)), eps, int(attrs.get("stash_type", 0)))
    except ValueError:
        return None
    return r.v_lo, r.v_hi, eps


for _v, _pg in ((18, True), (21, False)):
    register(
        "GroupNormalization", since=_v, concrete=_gn_c(_pg), interval=_gn_iv(_pg), ulps=2,
        hazards=_var_hazards("GroupNormalization", True, _gn_hz),
        property="custom (naive mean(x^2) - mean^2 variance, as the ONNX function body)",
        sample=_nc_sample(groups=True, per_group=_pg),
        doc="normalisation over groups of channels; onnxruntime's variance can cancel to < 0",
    )


# ---- BatchNormalization -------------------------------------------------------------------


def _bn_c(k: Any, x: Any, scale: Any, b: Any, mean: Any, var: Any, epsilon: float = 1e-5,
          momentum: float = 0.9, training_mode: int = 0, **_: Any) -> Any:
    xp = k.xp
    rank = len(tuple(x.shape))
    if training_mode:
        axes = (0, *range(2, rank))
        cur_mean, cur_var = _moments(k, x, axes)
        y = (x - cur_mean) / xp.sqrt(cur_var + epsilon) * _per_channel(k, scale, rank) + _per_channel(k, b, rank)
        r_mean = mean * momentum + xp.reshape(cur_mean, (-1,)) * (1 - momentum)
        r_var = var * momentum + xp.reshape(cur_var, (-1,)) * (1 - momentum)
        return y, r_mean, r_var
    pc = _per_channel
    return (x - pc(k, mean, rank)) / xp.sqrt(pc(k, var, rank) + epsilon) * pc(k, scale, rank) + pc(k, b, rank)


def _bn_den(var: Box, epsilon: float, rank: int) -> tuple[np.ndarray, np.ndarray]:
    v = _channel(var, rank)
    assert v is not None
    return v[0] + epsilon, v[1] + epsilon


def _bn_train_iv(ctx: Ctx, x: Box, scale: Box, b: Box, mean: Box, var: Box, epsilon: float,
                 momentum: float) -> tuple[Box, Box, Box]:
    fmt = ctx.fmt(x.dtype)
    c = x.shape[1]
    if not _finite(x, scale, b, mean, var):
        return _top(x.shape, x.dtype), _top((c,), mean.dtype), _top((c,), var.dtype)
    lo, hi = (align(a, x.rank) for a in x.bounds64())
    sc = _channel(scale, x.rank)
    r = _normalise(lo, hi, (0, *range(2, x.rank)), x.shape, float(epsilon), fmt, naive=False)
    y_lo, y_hi = _affine(r.y_lo, r.y_hi, sc, _channel(b, x.rank), fmt, _fused(r, lo, hi, sc, epsilon, fmt))
    outs = []
    for running, cur_lo, cur_hi in ((mean, r.mean_lo, r.mean_hi), (var, np.maximum(r.v_lo, 0.0), r.v_hi)):
        rl, rh = (np.asarray(a, np.float64).reshape(-1) for a in running.bounds64())
        cl, ch_ = cur_lo.reshape(-1), cur_hi.reshape(-1)
        m = float(momentum)
        a_lo, a_hi = (rl * m, rh * m) if m >= 0 else (rh * m, rl * m)
        b_lo, b_hi = (cl * (1 - m), ch_ * (1 - m)) if m <= 1 else (ch_ * (1 - m), cl * (1 - m))
        olo, ohi = a_lo + b_lo, a_hi + b_hi
        err = 3 * fmt.eps * np.maximum(np.abs(a_lo) + np.abs(b_lo), np.abs(a_hi) + np.abs(b_hi))
        outs.append(Box(np.broadcast_to(olo - err, (c,)) if olo.size > 1 else olo - err,
                        np.broadcast_to(ohi + err, (c,)) if ohi.size > 1 else ohi + err, (c,), running.dtype))
    return Box(y_lo, y_hi, x.shape, x.dtype, r.unbounded), outs[0], outs[1]


def _bn_iv(ctx: Ctx, x: Box, scale: Box, b: Box, mean: Box, var: Box, epsilon: float = 1e-5,
           momentum: float = 0.9, training_mode: int = 0, **_: Any) -> Box | tuple[Box, Box, Box]:
    if x.rank < 2:
        raise ValueError("BatchNormalization needs an input of rank >= 2")
    if training_mode:
        return _bn_train_iv(ctx, x, scale, b, mean, var, epsilon, momentum)
    if len(ctx.output_shapes) > 1:  # opsets 9-13 signal training by the number of outputs
        raise NotImplementedError("BatchNormalization with running-statistics outputs before opset 14")
    if not _finite(x, scale, b, mean, var):
        return _top(x.shape, x.dtype)
    fmt = ctx.fmt(x.dtype)
    rank = x.rank
    v_lo, v_hi = _bn_den(var, epsilon, rank)
    m = _channel(mean, rank)
    sc = _channel(scale, rank)
    assert m is not None and sc is not None
    xl, xh = (align(a, rank) for a in x.bounds64())
    bad = v_lo <= 0  # sqrt of a negative or division by zero: unbounded
    with np.errstate(all="ignore"):
        s_lo, s_hi = np.sqrt(np.maximum(v_lo, 0.0)), np.sqrt(np.maximum(v_hi, 0.0))
        inv_lo, inv_hi = 1.0 / s_hi, np.where(bad, np.inf, 1.0 / s_lo)
        a_lo, a_hi = interval_mul(sc[0], sc[1], inv_lo, inv_hi)
        d_lo, d_hi = xl - m[1], xh - m[0]
        a_mag = np.maximum(np.abs(a_lo), np.abs(a_hi))
        mean_mag = np.maximum(np.abs(m[0]), np.abs(m[1]))
    y_lo, y_hi = interval_mul(d_lo, d_hi, a_lo, a_hi)
    lo, hi = _affine(y_lo, y_hi, None, _channel(b, rank), fmt, _fused_error(xl, xh, mean_mag, a_mag, fmt))
    lo, hi = np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi)
    return Box(lo, hi, x.shape, x.dtype, bool(np.any(bad)))


def _bn_hz(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float] | None:
    x, var = inputs[0], inputs[4] if len(inputs) > 4 else None
    if x is None or var is None or x.rank < 2:
        return None
    eps = float(attrs.get("epsilon", 1e-5))
    if attrs.get("training_mode", 0):
        if not x.finite:
            return None
        lo, hi = (align(a, x.rank) for a in x.bounds64())
        r = _normalise(lo, hi, (0, *range(2, x.rank)), x.shape, eps, ctx.fmt(x.dtype), naive=False)
        return r.v_lo, r.v_hi, eps
    v_lo, v_hi = _bn_den(var, 0.0, x.rank)
    return v_lo, v_hi, eps


def _bn_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    specs, attrs = _nc_sample()(draw)
    c = specs[0].shape[1]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    mean = rng.uniform(-2, 2, c).astype(np.float32)
    var = rng.uniform(0.01, 3, c).astype(np.float32)
    return [*specs, mean, var], attrs


_BN_HAZ = (Hazard("NUM004", lambda ctx, ins, at: _bn_neg(ctx, ins, at)),
           Hazard("NUM002", lambda ctx, ins, at: _bn_zero(ctx, ins, at)))


def _bn_neg(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
    r = _bn_hz(ctx, inputs, attrs)
    if r is None or attrs.get("training_mode", 0):
        return None
    if np.any(r[0] + r[2] < 0):
        return f"BatchNormalization: sqrt of a negative: var + epsilon can be < 0 (epsilon={r[2]:g})"
    return None


def _bn_zero(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
    r = _bn_hz(ctx, inputs, attrs)
    if r is None:
        return None
    v_lo, v_hi, eps = r
    if np.any((v_lo + eps <= 0) & (v_hi + eps >= 0)):
        return f"BatchNormalization: division by zero: var + epsilon can be 0 (epsilon={eps:g})"
    return None


for _v in (9, 15):
    register(
        "BatchNormalization", since=_v, concrete=_bn_c, interval=_bn_iv, ulps=2, hazards=_BN_HAZ,
        property="bilinear in (x - mean) and scale / sqrt(var + eps) (+ fused x*a+b error)",
        sample=_bn_sample, doc="per-channel (x - mean) / sqrt(var + eps) * scale + bias; training mode too",
    )


# ---- RMSNormalization ---------------------------------------------------------------------


def _rms_c(k: Any, x: Any, scale: Any, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1) -> Any:
    xp = k.xp
    xs = _to_stash(k, x, stash_type)
    axes = _ln_axes(len(tuple(x.shape)), axis)
    ms = xp.mean(xs * xs, axis=axes, keepdims=True)
    return _back(k, xs / xp.sqrt(ms + epsilon), x) * scale


def _rms_parts(ctx: Ctx, x: Box, axis: int, epsilon: float, stash_type: int) -> tuple[np.ndarray, ...]:
    fmt = _stash_fmt(ctx, x, stash_type)
    axes = _ln_axes(x.rank, axis)
    lo, hi = (align(a, x.rank) for a in x.bounds64())
    n = reduce_count(x.shape, axes)
    straddle = (lo <= 0) & (hi >= 0)
    mn = np.where(straddle, 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    mx = np.maximum(np.abs(lo), np.abs(hi))
    g1 = _gamma(n + 1, fmt)
    ms_lo = (1 - g1) * reduce_sum(mn * mn, axes, x.shape) / n - n * fmt.tiny
    ms_hi = (1 + g1) * reduce_sum(mx * mx, axes, x.shape) / n + n * fmt.tiny
    eff = epsilon - n * fmt.tiny
    kappa = (1 - g1) / n

    def mag(v: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            a = np.where(eff > 0, v / np.sqrt(kappa * v * v + eff), np.inf)
            b = np.where(ms_lo + epsilon > 0, v / np.sqrt(ms_lo + epsilon), np.inf)
        return np.minimum(a, b)

    with np.errstate(all="ignore"):
        den = np.sqrt(np.maximum(ms_hi + epsilon, 0.0))
        y_hi = np.where(hi > 0, mag(np.maximum(hi, 0.0)), hi / den)
        y_lo = np.where(lo < 0, -mag(np.maximum(-lo, 0.0)), lo / den)
        y_lo, y_hi = y_lo - 4 * fmt.eps * np.abs(y_lo), y_hi + 4 * fmt.eps * np.abs(y_hi)
    return y_lo, y_hi, ms_lo, ms_hi


def _rms_iv(ctx: Ctx, x: Box, scale: Box, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1) -> Box:
    if not _finite(x, scale) or x.rank == 0:
        return _top(x.shape, x.dtype)
    y_lo, y_hi, _, _ = _rms_parts(ctx, x, axis, float(epsilon), stash_type)
    if not (np.all(np.isfinite(y_lo)) and np.all(np.isfinite(y_hi))):
        return _top(x.shape, x.dtype)
    sc = tuple(align(a, x.rank) for a in scale.bounds64())
    lo, hi = _affine(y_lo, y_hi, sc, None, ctx.fmt(x.dtype))  # type: ignore[arg-type]
    return Box(lo, hi, x.shape, x.dtype, False)


def _rms_hz(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float] | None:
    x = inputs[0]
    if x is None or not x.finite or x.rank == 0:
        return None
    eps = float(attrs.get("epsilon", 1e-5))
    _, _, ms_lo, ms_hi = _rms_parts(ctx, x, int(attrs.get("axis", -1)), eps, int(attrs.get("stash_type", 1)))
    return ms_lo, ms_hi, eps


def _rms_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    specs, attrs = _ln_sample(draw)
    return specs[:2], attrs


register(
    "RMSNormalization", since=23, concrete=_rms_c, interval=_rms_iv, ulps=2,
    hazards=_var_hazards("RMSNormalization", False, _rms_hz),
    property="custom (|x_i| <= sqrt(n mean(x^2)))", sample=_rms_sample,
    doc="x / sqrt(mean(x^2) + eps) * scale over axes [axis, rank)",
)

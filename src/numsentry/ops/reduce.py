"""Reductions: ReduceSum ReduceMean ReduceProd ReduceMax ReduceMin ReduceL1 ReduceL2
ReduceSumSquare ReduceLogSum ReduceLogSumExp; and LpNormalization, LRN.

Bounds are reduced block by block: along a *coarse* dimension (one block of length n) a sum
of n values in [lo, hi] is [n lo, n hi] and a max is [lo, hi]; along a refined dimension the
per-index bounds are summed (maxed). Dimensions that are not reduced keep their partition.

Float sums carry the runtime's rounding error: any summation order of N terms differs from the
real sum by at most gamma_N * sum |x_i| (Higham 3.1; `linalg.accumulation_error`). Since
``x + gamma |x|`` is increasing in x, the computed sum is at most ``sum_i (h_i + gamma |h_i|)``
and at least ``sum_i (l_i - gamma |l_i|)``. A partial sum can overflow to inf even when the
total would not (``[6e4, 6e4, -6e4]`` in float16): when the positive (negative) parts can exceed
the format's max, the upper (lower) bound becomes +inf (-inf), and NaN when both can.

Runtime facts (onnxruntime 1.31 CPU, measured): ReduceLogSumExp is computed stably
(``log(sum(exp(x - max))) + max``, and ±inf inputs are special-cased), so it overflows only
when the true result exceeds the format; ReduceL2 is ``sqrt(sum(x*x))`` and overflows as soon
as the sum of squares does; ``noop_with_empty_axes`` still applies the elementwise part (abs,
square, log...). Integer reductions are exact unless they leave the dtype's range, in which
case the whole range is the (sound) answer.

LpNormalization and LRN scale x by a function of a reduction (the p-norm along an axis, the sum
of squares over a window of channels) and live here. LpNormalization returns 0 for a zero norm
on onnxruntime and in the reference evaluator, so it has no division hazard; its squares can
underflow, which pushes |y| above 1 (up to sqrt(1.5): 1.22 measured for a unit vector of
4.6e-23), bounded here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.dtypes import is_float_dtype, round_bounds
from numsentry.ops._nan import nan_tolerant
from numsentry.ops.linalg import accumulation_error
from numsentry.ops.registry import BoxSpec, Ctx, Hazard, register
from numsentry.ops.rules import draw_interval, draw_shape

__all__ = [
    "align",
    "guard_inf",
    "interval_mul",
    "reduce_count",
    "reduce_max",
    "reduce_min",
    "reduce_sum",
    "resolve_axes",
    "sum_bounds",
    "widen_ulps",
]


# ---- block-wise reductions of bound arrays ------------------------------------------------


def align(a: np.ndarray, rank: int) -> np.ndarray:
    """``a`` with leading unit dimensions added up to ``rank``."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape((1,) * (rank - a.ndim) + a.shape) if a.ndim < rank else a


def reduce_count(shape: Sequence[int], axes: Sequence[int]) -> int:
    """Number of elements one reduced output element combines."""
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def reduce_sum(a: np.ndarray, axes: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Sum of bounds over ``axes`` (keepdims); a coarse axis of length n multiplies by n."""
    out = align(a, len(shape))
    for ax in axes:
        if out.shape[ax] == 1:
            if shape[ax] != 1:
                with np.errstate(invalid="ignore", over="ignore"):
                    out = np.where(out == 0, 0.0, out * shape[ax])  # keep 0 * n exact, inf * n inf
        else:
            with np.errstate(invalid="ignore", over="ignore"):
                out = np.sum(out, axis=ax, keepdims=True)
    return out


def reduce_max(a: np.ndarray, axes: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Max of bounds over ``axes`` (keepdims); a coarse axis changes nothing."""
    out = align(a, len(shape))
    for ax in axes:
        if out.shape[ax] != 1:
            out = np.max(out, axis=ax, keepdims=True)
    return out


def reduce_min(a: np.ndarray, axes: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Min of bounds over ``axes`` (keepdims)."""
    out = align(a, len(shape))
    for ax in axes:
        if out.shape[ax] != 1:
            out = np.min(out, axis=ax, keepdims=True)
    return out


def sum_bounds(
    tl: np.ndarray, th: np.ndarray, axes: Sequence[int], shape: Sequence[int], fmt: Any | None,
    products: bool = False,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Bounds of a float sum of terms in [tl, th] over ``axes`` as a runtime computes it.

    Args:
        tl: Lower bounds of the terms (broadcastable to ``shape``).
        th: Upper bounds of the terms.
        axes: Reduced axes.
        shape: Shape of the terms' tensor.
        fmt: The float format summed in, or ``None`` for exact (integer) sums.
        products: The terms are real products the runtime rounds first (x*x, x*w): their
            relative rounding is in gamma_N, their underflow (up to tiny/2 each) is added.

    Returns:
        (lo, hi, nan) with keepdims shapes; ``nan`` says +inf and -inf partial sums can meet.
    """
    rank = len(shape)
    tl, th = align(tl, rank), align(th, rank)
    with np.errstate(invalid="ignore", over="ignore"):
        lo = reduce_sum(tl, axes, shape)
        hi = reduce_sum(th, axes, shape)
    if fmt is None:
        return lo, hi, False
    n = reduce_count(shape, axes)
    # n terms take n - 1 roundings (a single term is returned exactly); products add their own
    k = n if products else max(n - 1, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        lo = lo - accumulation_error(k, reduce_sum(np.abs(tl), axes, shape), fmt.eps)
        hi = hi + accumulation_error(k, reduce_sum(np.abs(th), axes, shape), fmt.eps)
        if products:  # each nonzero product below the smallest normal errs by up to tiny / 2
            small = (np.maximum(np.abs(tl), np.abs(th)) < 2 * fmt.tiny * 2.0 ** _mantissa_bits(fmt))
            small = small & ((tl != 0) | (th != 0))
            under = reduce_sum(np.where(small, fmt.tiny / 2, 0.0), axes, shape)
            lo, hi = lo - under, hi + under
        g = 1.0 + accumulation_error(k, np.ones(()), fmt.eps)
        pos = reduce_sum(np.maximum(th, 0.0), axes, shape) * g
        neg = reduce_sum(np.minimum(tl, 0.0), axes, shape) * g
    over_hi = pos > fmt.max
    over_lo = neg < -fmt.max
    lo, hi = np.where(over_lo, -np.inf, lo), np.where(over_hi, np.inf, hi)
    nan = bool(np.any(over_hi & over_lo))
    lo, hi = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
    return lo, hi, nan


# ---- axes ---------------------------------------------------------------------------------


def _axes_list(axes: Any) -> list[int] | None:
    """Axes from an attribute (list), an input (Box or array) or ``None``."""
    if axes is None:
        return None
    if isinstance(axes, Box):
        if not axes.is_point:
            raise NotImplementedError("reduction axes computed at run time (not a constant)")
        axes = axes.value
    if hasattr(axes, "shape") and not isinstance(axes, np.ndarray):
        from numsentry.ops.kernels import backend_of

        axes = backend_of(axes).to_numpy(axes)
    return [int(a) for a in np.asarray(axes, dtype=np.int64).reshape(-1)]


def resolve_axes(rank: int, axes: Any, noop_with_empty_axes: int = 0) -> tuple[int, ...]:
    """Sorted non-negative axes to reduce; ``()`` means no reduction (noop or rank 0)."""
    lst = _axes_list(axes)
    if not lst:
        return () if noop_with_empty_axes else tuple(range(rank))
    out = sorted({a % rank if rank else 0 for a in lst})
    for a in lst:
        if not -rank <= a < max(rank, 1):
            raise ValueError(f"reduction axis {a} out of range for rank {rank}")
    return tuple(out)


def _out_shape(shape: Sequence[int], axes: Sequence[int], keepdims: int) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _squeeze(a: np.ndarray, axes: Sequence[int], keepdims: int, rank: int) -> np.ndarray:
    a = align(a, rank)
    return a if keepdims or not axes else np.squeeze(a, axis=tuple(axes))


def guard_inf(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace a +inf lower (-inf upper) bound by the largest finite float64.

    ``dtypes.round_bounds`` turns such ends into NaN (``inf - inf`` when nudging outwards),
    which ``apply.finalize`` does not catch; a finite end keeps the box sound and finite-sized.
    """
    big = np.finfo(np.float64).max
    return np.where(np.isposinf(lo), big, lo), np.where(np.isneginf(hi), -big, hi)


def widen_ulps(lo: np.ndarray, hi: np.ndarray, fmt: Any, ulps: int) -> tuple[np.ndarray, np.ndarray]:
    """``round_bounds`` with ``ulps`` that keeps 0-d bounds 0-d.

    ``dtypes.shift_ulps`` returns shape (1,) for 0-d input (``np.ascontiguousarray``), which
    makes a rank-0 output box malformed; ops with rank-0 outputs therefore declare ``ulps=0``
    and widen here.
    """
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    l2, h2 = round_bounds(np.atleast_1d(lo), np.atleast_1d(hi), fmt, ulps)
    return l2.reshape(lo.shape), h2.reshape(hi.shape)


def _finish(x: Box, lo: np.ndarray, hi: np.ndarray, axes: Sequence[int], keepdims: int,
            nan: bool = False, dtype: np.dtype | None = None, ulps: tuple[Any, int] | None = None) -> Box:
    dt = np.dtype(dtype if dtype is not None else x.dtype)
    lo, hi = _squeeze(lo, axes, keepdims, x.rank), _squeeze(hi, axes, keepdims, x.rank)
    if is_float_dtype(dt):
        lo, hi = guard_inf(lo, hi)
        if ulps is not None:  # kernel error (the op declares ulps=0, see widen_ulps)
            lo, hi = widen_ulps(lo, hi, ulps[0], ulps[1])
    if dt.kind in "iub":
        info = np.iinfo(dt) if dt.kind != "b" else None
        if info is not None and (np.min(lo) < info.min or np.max(hi) > info.max):
            lo, hi = np.full_like(lo, float(info.min)), np.full_like(hi, float(info.max))
    return Box(lo, hi, _out_shape(x.shape, axes, keepdims), dt, x.nan or nan)


def _fmt_of(ctx: Ctx, x: Box) -> Any | None:
    return ctx.fmt(x.dtype) if is_float_dtype(x.dtype) else None


# ---- concrete rules -----------------------------------------------------------------------


def _c_axes(x: Any, axes: Any, noop: int) -> tuple[int, ...]:
    return resolve_axes(len(tuple(x.shape)), axes, noop)


def _c_reduce(fn: Callable[..., Any], elem: Callable[[Any, Any], Any] | None = None,
              post: Callable[[Any, Any], Any] | None = None, typed: bool = False) -> Callable[..., Any]:
    """Concrete rule: elementwise ``elem``, reduce with ``fn`` (xp.sum...), then ``post``."""

    def c(k: Any, data: Any, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Any:
        ax = _c_axes(data, axes, noop_with_empty_axes)
        y = elem(k, data) if elem is not None else data
        if ax:
            kw: dict[str, Any] = {"axis": ax, "keepdims": bool(keepdims)}
            if typed:
                kw["dtype"] = y.dtype
            y = fn(k.xp)(y, **kw)
        return post(k, y) if post is not None else y

    return c


def _c_mean(k: Any, data: Any, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Any:
    ax = _c_axes(data, axes, noop_with_empty_axes)
    if not ax:
        return data
    xp = k.xp
    s = xp.sum(data, axis=ax, keepdims=bool(keepdims), dtype=data.dtype)
    n = reduce_count(tuple(data.shape), ax)
    if xp.isdtype(data.dtype, "integral"):
        q = xp.abs(s) // n
        return xp.where(s < 0, -q, q)  # C integer division truncates toward 0
    return s / n


def _c_logsumexp(k: Any, data: Any, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Any:
    ax = _c_axes(data, axes, noop_with_empty_axes)
    if not ax:
        return data
    xp = k.xp
    # the max of the finite values, as onnxruntime and the reference evaluator take it
    finite = xp.where(xp.isinf(data), xp.full_like(data, -np.inf), data)
    m = xp.max(finite, axis=ax, keepdims=True)
    m = xp.where(xp.isinf(m), xp.zeros_like(m), m)
    s = xp.sum(xp.exp(data - m), axis=ax, keepdims=True, dtype=data.dtype)
    y = xp.log(s) + m
    if not keepdims:
        y = xp.squeeze(y, axis=ax)
    return y


# ---- interval rules -----------------------------------------------------------------------


def _prep(x: Box, axes: Any, noop: int) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    ax = resolve_axes(x.rank, axes, noop)
    if ax and reduce_count(x.shape, ax) == 0:
        raise NotImplementedError("reduction over an empty dimension")
    lo, hi = x.bounds64()
    return ax, align(lo, x.rank), align(hi, x.rank)


def _abs_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    straddle = (lo <= 0) & (hi >= 0)
    return np.where(straddle, 0.0, np.minimum(np.abs(lo), np.abs(hi))), np.maximum(np.abs(lo), np.abs(hi))


def _sq_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _abs_bounds(lo, hi)
    with np.errstate(over="ignore"):
        return a * a, b * b


def _sum_iv(ctx: Ctx, x: Box, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Box:
    ax, lo, hi = _prep(x, axes, noop_with_empty_axes)
    slo, shi, nan = sum_bounds(lo, hi, ax, x.shape, _fmt_of(ctx, x))
    return _finish(x, slo, shi, ax, keepdims, nan)


def _sumsquare_iv(ctx: Ctx, x: Box, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Box:
    ax, lo, hi = _prep(x, axes, noop_with_empty_axes)
    tl, th = _sq_bounds(lo, hi)
    slo, shi, nan = sum_bounds(tl, th, ax, x.shape, _fmt_of(ctx, x), products=True)
    return _finish(x, slo, shi, ax, keepdims, nan)


def _l1_iv(ctx: Ctx, x: Box, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Box:
    ax, lo, hi = _prep(x, axes, noop_with_empty_axes)
    tl, th = _abs_bounds(lo, hi)
    slo, shi, nan = sum_bounds(tl, th, ax, x.shape, _fmt_of(ctx, x))
    return _finish(x, np.maximum(slo, 0.0), shi, ax, keepdims, nan)


def _stored(ctx: Ctx, x: Box, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The intermediate sum as the runtime stores it (rounded into the format: may become inf)."""
    fmt = _fmt_of(ctx, x)
    return round_bounds(lo, hi, fmt) if fmt is not None else (lo, hi)


def _l2_iv(ctx: Ctx, x: Box, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Box:
    ax, lo, hi = _prep(x, axes, noop_with_empty_axes)
    tl, th = _sq_bounds(lo, hi)
    slo, shi, nan = sum_bounds(tl, th, ax, x.shape, _fmt_of(ctx, x), products=True)
    slo, shi = _stored(ctx, x, np.maximum(slo, 0.0), shi)
    return _finish(x, np.sqrt(np.maximum(slo, 0.0)), np.sqrt(shi), ax, keepdims, nan)


def _mean_iv(ctx: Ctx, x: Box, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Box:
    ax, lo, hi = _prep(x, axes, noop_with_empty_axes)
    if not ax:
        return x
    slo, shi, nan = sum_bounds(lo, hi, ax, x.shape, _fmt_of(ctx, x))
    n = reduce_count(x.shape, ax)
    if _fmt_of(ctx, x) is None:
        return _finish(x, np.floor(slo / n), np.ceil(shi / n), ax, keepdims)
    slo, shi = _stored(ctx, x, slo, shi)  # the sum is stored before the division: it may overflow
    # 1 ulp for runtimes multiplying by a rounded 1/N (a mean of one element is that element)
    return _finish(x, slo / n, shi / n, ax, keepdims, nan, ulps=(ctx.fmt(x.dtype), 1 if n > 1 else 0))


def _logsum_sum(ctx: Ctx, x: Box, axes: Any, noop: int) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, bool]:
    ax, lo, hi = _prep(x, axes, noop)
    slo, shi, nan = sum_bounds(lo, hi, ax, x.shape, _fmt_of(ctx, x))
    slo, shi = _stored(ctx, x, slo, shi)
    return ax, slo, shi, nan


def _logsum_iv(ctx: Ctx, x: Box, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Box:
    ax, slo, shi, nan = _logsum_sum(ctx, x, axes, noop_with_empty_axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(slo > 0, np.log(np.maximum(slo, 1e-320)), -np.inf)
        hi = np.where(shi > 0, np.log(np.maximum(shi, 1e-320)), -np.inf)
    nan = nan or bool(np.any(slo < 0))
    return _finish(x, lo, hi, ax, keepdims, nan, ulps=(ctx.fmt(x.dtype), 4))


def _logsum_check(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
    x = inputs[0]
    if x is None:
        return None
    axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("axes")
    try:
        _, slo, _, _ = _logsum_sum(ctx, x, axes, int(attrs.get("noop_with_empty_axes", 0)))
    except (NotImplementedError, ValueError):
        return f"log of a sum that can be <= 0: input range {x.describe()}"
    if float(np.min(slo)) <= 0:
        return f"log of a sum that can be <= 0 (sum >= {float(np.min(slo)):.6g}), input range {x.describe()}"
    return None


def _lse(a: np.ndarray, ax: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Stable log-sum-exp of bound arrays in float64 (coarse axes count n times)."""
    with np.errstate(all="ignore"):
        m = reduce_max(a, ax, shape)
        m_safe = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(align(a, len(shape)) - m_safe)
        s = reduce_sum(e, ax, shape)
        out = np.log(s) + m_safe
    return np.where(np.isposinf(m), np.inf, np.where(np.isneginf(m), -np.inf, out))


def _logsumexp_iv(ctx: Ctx, x: Box, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Box:
    ax, lo, hi = _prep(x, axes, noop_with_empty_axes)
    if not ax:
        return x
    # log-sum-exp is increasing in every argument: the ends are attained at lo and at hi
    a, b = _lse(lo, ax, x.shape), _lse(hi, ax, x.shape)
    n = reduce_count(x.shape, ax)
    fmt = ctx.fmt(x.dtype)
    # the runtime's exp/sum/log/add of log(sum exp(x - m)) + m: the sum's relative error
    # gamma_N and a few ulps become an absolute error on the log, plus the final addition
    with np.errstate(invalid="ignore", over="ignore"):
        err = (n + 8) * fmt.eps * (1.0 + np.log1p(n)) + 2 * fmt.eps * np.maximum(np.abs(a), np.abs(b))
        err = np.where(np.isfinite(err) & (n > 1), err, 0.0)  # n = 1: log(exp(0)) + x is x
        a, b = a - err, b + err
    nan = bool(np.any(np.isposinf(hi)))  # onnxruntime special-cases inf, numpy may give inf - inf
    return _finish(x, a, b, ax, keepdims, nan, ulps=(fmt, 4))


def _minmax_iv(red: Callable[..., np.ndarray]) -> Callable[..., Box]:
    def rule(ctx: Ctx, x: Box, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Box:
        ax, lo, hi = _prep(x, axes, noop_with_empty_axes)
        return _finish(x, red(lo, ax, x.shape), red(hi, ax, x.shape), ax, keepdims)

    return rule


# ---- ReduceProd -----------------------------------------------------------------------------


def interval_mul(al: np.ndarray, ah: np.ndarray, bl: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact interval product of independent factors (0 * inf counted as 0)."""
    with np.errstate(invalid="ignore", over="ignore"):
        ps = [al * bl, al * bh, ah * bl, ah * bh]
    ps = [np.where(np.isnan(p), 0.0, p) for p in ps]
    return np.minimum.reduce(ps), np.maximum.reduce(ps)


def _pow_iv(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Product of n independent factors each in [lo, hi] (binary powering of intervals)."""
    rl, rh = np.ones_like(lo), np.ones_like(hi)
    bl, bh = lo, hi
    while n:
        if n & 1:
            rl, rh = interval_mul(rl, rh, bl, bh)
        n >>= 1
        if n:
            bl, bh = interval_mul(bl, bh, bl, bh)  # two independent copies, not a square
    return rl, rh


def _prod_bounds(lo: np.ndarray, hi: np.ndarray, ax: Sequence[int], shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = align(lo, len(shape)), align(hi, len(shape))
    for a in ax:
        if lo.shape[a] == 1 and hi.shape[a] == 1:
            lo, hi = _pow_iv(lo, hi, shape[a])
            continue
        full = list(np.broadcast_shapes(lo.shape, hi.shape))
        full[a] = shape[a]
        lo_b, hi_b = np.broadcast_to(lo, full), np.broadcast_to(hi, full)
        rl = np.take(lo_b, [0], axis=a)
        rh = np.take(hi_b, [0], axis=a)
        for i in range(1, shape[a]):
            rl, rh = interval_mul(rl, rh, np.take(lo_b, [i], axis=a), np.take(hi_b, [i], axis=a))
        lo, hi = rl, rh
    return lo, hi


def _prod_iv(ctx: Ctx, x: Box, axes: Any = None, keepdims: int = 1, noop_with_empty_axes: int = 0) -> Box:
    ax, lo, hi = _prep(x, axes, noop_with_empty_axes)
    if not ax:
        return x
    plo, phi = _prod_bounds(lo, hi, ax, x.shape)
    fmt = _fmt_of(ctx, x)
    if fmt is None:
        return _finish(x, plo, phi, ax, keepdims)
    n = reduce_count(x.shape, ax)
    mlo, mhi = _abs_bounds(lo, hi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # every partial product (any order) is at most prod max(|x|, 1) and at least
        # prod min(|x|, 1) in magnitude: beyond max it can overflow, below the smallest normal
        # it loses relative accuracy (subnormal or 0) before later factors scale it back up
        log_big = reduce_sum(np.log(np.maximum(mhi, 1.0)), ax, x.shape)
        log_small = reduce_sum(np.log(np.minimum(mlo, 1.0)), ax, x.shape)
        big = np.exp(log_big)
        gamma = accumulation_error(n, np.ones(()), fmt.eps)
        rel = gamma * np.maximum(np.abs(plo), np.abs(phi))
        plo, phi = plo - rel, phi + rel
        normal_min = fmt.tiny * 2.0 ** _mantissa_bits(fmt)
        under = log_small < np.log(normal_min) + np.log1p(gamma)
        absolute = n * fmt.tiny * big
        plo = np.where(under, plo - absolute, plo)
        phi = np.where(under, phi + absolute, phi)
        over = log_big + np.log1p(gamma) > np.log(fmt.max)
    can_pos = phi > 0
    can_neg = plo < 0
    phi = np.where(over & can_pos, np.inf, phi)
    plo = np.where(over & can_neg, -np.inf, plo)
    zero = reduce_max(np.where((lo <= 0) & (hi >= 0), 1.0, 0.0), ax, x.shape) > 0
    nan = bool(np.any(over & (zero | under)))  # inf * 0 (a zero factor or an underflowed part)
    return _finish(x, plo, phi, ax, keepdims, nan)


def _mantissa_bits(fmt: Any) -> int:
    """Explicit mantissa bits of a format (from its unit roundoff)."""
    return round(float(-np.log2(fmt.eps))) - 1


# ---- samplers -----------------------------------------------------------------------------


def _sampler(input_axes: bool, low: float = -10.0, high: float = 10.0, noop: bool = True) -> Callable[..., Any]:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        shape = draw_shape(draw, max_rank=3) or (3,)
        rank = len(shape)
        lo, hi = draw_interval(draw, low, high)
        k = draw(st.integers(0, rank))
        axes = sorted(draw(st.permutations(range(rank)))[:k])
        axes = [a - rank if draw(st.booleans()) else a for a in axes]
        attrs: dict[str, Any] = {"keepdims": draw(st.integers(0, 1))}
        if input_axes:
            if noop and not axes:
                attrs["noop_with_empty_axes"] = draw(st.integers(0, 1))
            return [BoxSpec(lo, hi, shape), np.asarray(axes, dtype=np.int64)], attrs
        if axes:
            attrs["axes"] = axes
        return [BoxSpec(lo, hi, shape)], attrs

    return sample


# ---- registrations ------------------------------------------------------------------------


def _reg(name: str, attr_since: int, input_since: int, concrete: Any, interval: Any, doc: str,
         prop: str, low: float = -10.0, high: float = 10.0, **kw: Any) -> None:
    register(name, since=attr_since, concrete=concrete, interval=interval, property=prop,
             sample=_sampler(False, low, high), doc=doc + " (axes attribute)", **kw)
    register(name, since=input_since, concrete=concrete, interval=interval, property=prop,
             sample=_sampler(True, low, high), doc=doc + " (axes input)", **kw)


def _xp(name: str) -> Callable[[Any], Any]:
    return lambda xp: getattr(xp, name)


_reg("ReduceSum", 1, 13, _c_reduce(_xp("sum"), typed=True), _sum_iv,
     "sum over axes (rounded: gamma_N * sum |x|)", "sum of block bounds + accumulation error")
_reg("ReduceMean", 1, 18, _c_mean, _mean_iv, "mean over axes (the sum may overflow first)",
     "sum of block bounds / N")
_reg("ReduceSumSquare", 1, 18, _c_reduce(_xp("sum"), elem=lambda k, x: x * x, typed=True),
     _sumsquare_iv, "sum of squares over axes", "sum of square bounds (0 inside)")
_reg("ReduceL1", 1, 18, _c_reduce(_xp("sum"), elem=lambda k, x: k.xp.abs(x), typed=True), _l1_iv,
     "sum of |x| over axes", "sum of abs bounds", overflow_rule="NUM007")
_reg("ReduceL2", 1, 18, _c_reduce(_xp("sum"), elem=lambda k, x: x * x, post=lambda k, y: k.xp.sqrt(y), typed=True),
     _l2_iv, "sqrt of the sum of squares (naive: overflows with the squares)",
     "sqrt of the sum of square bounds", codomain=(0.0, np.inf))
_reg("ReduceLogSum", 1, 18, _c_reduce(_xp("sum"), post=lambda k, y: k.xp.log(y), typed=True), _logsum_iv,
     "log of the sum over axes", "log of the sum bounds (monotone)", low=0.125, high=10.0,
     hazards=(Hazard("NUM001", _logsum_check),), overflow_rule=None)
_reg("ReduceLogSumExp", 1, 18, _c_logsumexp, _logsumexp_iv,
     "log of the sum of exponentials, computed stably (max subtracted) as onnxruntime does",
     "monotone increasing in every argument", low=-20.0, high=20.0, overflow_rule="NUM003")
_reg("ReduceProd", 1, 18, _c_reduce(_xp("prod"), typed=True), _prod_iv,
     "product over axes (partial products may overflow or underflow)",
     "interval product of independent factors + rounding", low=-3.0, high=3.0)
_reg("ReduceMax", 1, 18, _c_reduce(_xp("max")), nan_tolerant(_minmax_iv(reduce_max), largest=True), "max over axes",
     "monotone (max of block bounds)", exact=True, overflow_rule=None)
_reg("ReduceMin", 1, 18, _c_reduce(_xp("min")), nan_tolerant(_minmax_iv(reduce_min), largest=False), "min over axes",
     "monotone (min of block bounds)", exact=True, overflow_rule=None)


# ---- LpNormalization ----------------------------------------------------------------------


def _lp_c(k: Any, x: Any, axis: int = -1, p: int = 2) -> Any:
    xp = k.xp
    if p == 1:
        norm = xp.sum(xp.abs(x), axis=axis, keepdims=True)
    else:
        norm = xp.sqrt(xp.sum(x * x, axis=axis, keepdims=True))
    safe = xp.where(norm == 0, xp.ones_like(norm), norm)
    return xp.where(norm == 0, xp.zeros_like(x), x / safe)  # a zero norm gives 0, as onnxruntime


def _lp_iv(ctx: Ctx, x: Box, axis: int = -1, p: int = 2) -> Box:
    if p not in (1, 2):
        raise NotImplementedError(f"LpNormalization with p={p}")
    if not x.finite or x.rank == 0:
        return Box.range(-np.inf, np.inf, x.shape, x.dtype, nan=True)
    fmt = ctx.fmt(x.dtype)
    ax = (axis % x.rank,)
    n = reduce_count(x.shape, ax)
    lo, hi = (align(a, x.rank) for a in x.bounds64())
    straddle = (lo <= 0) & (hi >= 0)
    mn = np.where(straddle, 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    mx = np.maximum(np.abs(lo), np.abs(hi))
    gam = float(accumulation_error(n + 1, np.ones(()), fmt.eps))
    with np.errstate(all="ignore"):
        if p == 2:
            t_mn, t_mx = mn * mn, mx * mx
        else:
            t_mn, t_mx = mn, mx
        r_min = np.maximum(reduce_sum(t_mn, ax, x.shape) - t_mn, 0.0)  # the others' smallest share
        r_max = reduce_sum(t_mx, ax, x.shape) - t_mx

        def f(v: np.ndarray, r: np.ndarray) -> np.ndarray:  # v / ||(v, rest)||, increasing in v
            if p == 2:
                return np.where(v == 0, 0.0, v / np.sqrt(v * v + r))
            return np.where(v == 0, 0.0, v / (np.abs(v) + r))

        y_hi = np.where(hi > 0, f(hi, r_min), f(hi, r_max))
        y_lo = np.where(lo < 0, f(lo, r_min), f(lo, r_max))
        if p == 2:
            # squares can underflow (absolute error <= n * tiny on the sum of squares): relative
            # to the largest guaranteed square q; and |y| <= sqrt(1.5) whatever happens
            q = reduce_max(t_mn, ax, x.shape)
            shrink = np.where(q > 0, 1 - gam - n * fmt.tiny / np.where(q > 0, q, 1.0), 0.0)
            up = np.where(shrink > 0, 1.0 / np.sqrt(np.maximum(shrink, 1e-300)), np.inf)
            up = np.minimum(up, np.sqrt(1.5)) * (1 + gam + 4 * fmt.eps)
            cap = np.sqrt(1.5) * (1 + gam + 4 * fmt.eps)
            down = (1 - 4 * fmt.eps) / np.sqrt(1 + gam + n * fmt.tiny / np.where(q > 0, q, fmt.tiny))
        else:
            up = np.asarray((1 + 4 * fmt.eps) / (1 - gam))
            cap = up
            down = np.asarray((1 - 4 * fmt.eps) / (1 + gam))
        y_hi = np.where(y_hi > 0, np.minimum(y_hi * up, cap), y_hi * down)
        y_lo = np.where(y_lo < 0, np.maximum(y_lo * up, -cap), y_lo * down)
        # exactly 0 when the norm can be 0 (all elements 0, or all squares underflow: guarded
        # on onnxruntime) or inf (the sum overflows: x / inf)
        zero = reduce_max(t_mn, ax, x.shape) <= (fmt.tiny if p == 2 else 0.0)
        zero = zero | (reduce_sum(t_mx, ax, x.shape) * (1 + gam) > fmt.max)
        y_lo, y_hi = np.where(zero, np.minimum(y_lo, 0.0), y_lo), np.where(zero, np.maximum(y_hi, 0.0), y_hi)
    return Box(y_lo, y_hi, x.shape, x.dtype, False)


def _lp_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    p = draw(st.sampled_from([1, 2]))
    # onnx's reference evaluator (1.23) forgets |x| for p = 1: keep its inputs non-negative
    lo, hi = draw_interval(draw, 0 if p == 1 else -10, 10)
    return [BoxSpec(lo, hi, shape)], {"axis": draw(st.integers(-rank, rank - 1)), "p": p}


for _v in (1, 22):
    register(
        "LpNormalization", since=_v, concrete=_lp_c, interval=_lp_iv, codomain=(-1.5, 1.5),
        overflow_rule=None, property="custom (x / sqrt(x^2 + others), increasing in x)", sample=_lp_sample,
        doc="x / ||x||_p along an axis (p = 1, 2); a zero norm gives 0 on onnxruntime",
    )


# ---- LRN ----------------------------------------------------------------------------------


def _lrn_window(c: int, size: int) -> tuple[int, int]:
    return (size - 1) // 2, size - 1 - (size - 1) // 2  # channels before, after


def _lrn_c(k: Any, x: Any, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0, size: int = 1) -> Any:
    xp = k.xp
    shape = tuple(x.shape)
    c = shape[1]
    pre, post = _lrn_window(c, size)
    sq = x * x
    parts = []
    if pre:
        parts.append(xp.zeros((shape[0], pre, *shape[2:]), dtype=x.dtype))
    parts.append(sq)
    if post:
        parts.append(xp.zeros((shape[0], post, *shape[2:]), dtype=x.dtype))
    padded = xp.concat(parts, axis=1) if len(parts) > 1 else sq
    s = padded[:, 0:c, ...]
    for i in range(1, size):
        s = s + padded[:, i:i + c, ...]
    return x / (bias + (alpha / size) * s) ** beta


def _lrn_iv(ctx: Ctx, x: Box, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0, size: int = 1) -> Box:
    if not x.finite or x.rank < 2:
        return Box.range(-np.inf, np.inf, x.shape, x.dtype, nan=True)
    fmt = ctx.fmt(x.dtype)
    c = x.shape[1]
    pre, post = _lrn_window(c, size)
    lo, hi = (align(a, x.rank) for a in x.bounds64())
    straddle = (lo <= 0) & (hi >= 0)
    mn = np.where(straddle, 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    mx = np.maximum(np.abs(lo), np.abs(hi))
    s_lo, s_hi = [], []
    for t in (mn * mn, mx * mx):
        if t.shape[1] == 1:  # coarse channels: windows hold between k_min and k_max of them
            k_min = min(min(c - 1, i + post) - max(0, i - pre) + 1 for i in range(c))
            k_max = max(min(c - 1, i + post) - max(0, i - pre) + 1 for i in range(c))
            s_lo.append(t * k_min)
            s_hi.append(t * k_max)
        else:
            cs = np.concatenate([np.zeros_like(t[:, :1]), np.cumsum(t, axis=1)], axis=1)
            idx = np.arange(c)
            a, b = np.maximum(idx - pre, 0), np.minimum(idx + post, c - 1) + 1
            w = np.take(cs, b, axis=1) - np.take(cs, a, axis=1)
            s_lo.append(w)
            s_hi.append(w)
    g = float(accumulation_error(size + 2, np.ones(()), fmt.eps))
    with np.errstate(all="ignore"):
        base_lo = bias + alpha / size * s_lo[0] * (1 - g)
        base_hi = bias + alpha / size * s_hi[1] * (1 + g)
        bad = base_lo <= 0
        p1, p2 = np.power(np.maximum(base_lo, 0.0), -beta), np.power(np.maximum(base_hi, 0.0), -beta)
        f_lo, f_hi = np.minimum(p1, p2), np.maximum(p1, p2)  # factor x * base^-beta
        y_lo, y_hi = interval_mul(lo, hi, f_lo, f_hi)
        err = (size + 10) * fmt.eps * np.maximum(np.abs(y_lo), np.abs(y_hi))
        y_lo, y_hi = y_lo - err, y_hi + err
    y_lo, y_hi = np.where(bad, -np.inf, y_lo), np.where(bad, np.inf, y_hi)
    return Box(y_lo, y_hi, x.shape, x.dtype, bool(np.any(bad)))


def _lrn_check(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
    bias = float(attrs.get("bias", 1.0))
    if bias <= 0 and inputs[0] is not None:
        return f"LRN: bias + alpha/size * sum(x^2) can be 0 (bias={bias:g}): division by zero"
    return None


def _lrn_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    x, _ = draw_interval(draw, -10, 10), None
    # onnxruntime runs 4-D inputs and odd sizes only; onnx's reference evaluator (1.23) loops
    # over the batch dimension where it means channels, so it agrees only when N == C
    c = draw(st.integers(1, 3))
    shape = (c, c, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    specs = [BoxSpec(x[0], x[1], shape)]
    attrs = {"size": draw(st.sampled_from([1, 3, 5])), "alpha": draw(st.sampled_from([1e-4, 0.1, 1.0])),
             "beta": draw(st.sampled_from([0.75, 0.5, 1.0])), "bias": draw(st.sampled_from([1.0, 2.0, 0.5]))}
    return [specs[0]], attrs


for _v in (1, 13):
    register(
        "LRN", since=_v, concrete=_lrn_c, interval=_lrn_iv, ulps=4, hazards=(Hazard("NUM002", _lrn_check),),
        overflow_rule=None, property="x times a monotone function of the window's sum of squares",
        sample=_lrn_sample, doc="local response normalisation across channels",
    )

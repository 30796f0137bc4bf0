"""Pooling: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.

A spatially coarse input box stays coarse: a max (or a convex combination) of elements of one
interval lies in that interval. What padding brings in is accounted for from the tap patterns
of each spatial dim (see `numsentry.ops.conv.combine_patterns`): MaxPool windows without any
input element give the dtype's lowest finite value (onnxruntime starts its maximum there);
AveragePool with ``count_include_pad`` divides a sum of ``nv`` valid elements by ``D >= nv``
counted taps, so the output lies in ``[r * lo, r * hi]`` over the occurring ratios
``r = nv / D``. Refined inputs go through the pooling kernels on the materialised bounds
(both are monotone in every input element). Averages add the accumulation error of their sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops import conv_kernels as ck
from numsentry.ops._nan import nan_tolerant
from numsentry.ops.conv import combine_patterns, spatially_coarse
from numsentry.ops.kernels import NUMPY
from numsentry.ops.linalg import accumulation_error
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import bcast

_EPS64 = 2.0**-53


def _geometry(x_shape: tuple[int, ...], auto_pad: str, ceil_mode: int, dilations: Any, kernel_shape: Any,
              pads: Any, strides: Any) -> tuple[Any, ...]:
    if not kernel_shape:
        raise ValueError("pooling without kernel_shape")
    ins = list(x_shape[2:])
    auto = auto_pad or "NOTSET"
    out, pb, pe, s, d = ck.pool_geometry(ins, kernel_shape, strides, dilations, pads, auto, int(ceil_mode or 0))
    variants = ck.pool_pad_variants(ins, kernel_shape, strides, dilations, auto, pb, pe)
    return out, pb, pe, s, d, [int(k) for k in kernel_shape], variants


def _coarse(x: Box) -> bool:
    return spatially_coarse(x) and not x.is_point


# ---- MaxPool ------------------------------------------------------------------------------


def _maxpool_c(k: Any, x: Any, auto_pad: str = "NOTSET", ceil_mode: int = 0, dilations: Any = None,
               kernel_shape: Any = None, pads: Any = None, storage_order: int = 0, strides: Any = None) -> Any:
    out, pb, _, s, d, kern, _ = _geometry(tuple(x.shape), auto_pad, ceil_mode, dilations, kernel_shape, pads, strides)
    return ck.max_pool(k, x, kern, s, d, pb, out, indices=True, storage_order=int(storage_order))


def _indices_box(x_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Box:
    """Flat indices of (n, c)'s maxima lie in that plane: [(n*C+c)*P, (n*C+c+1)*P - 1]."""
    n_, c = x_shape[0], x_shape[1]
    plane = int(np.prod(x_shape[2:], dtype=np.int64))
    base = ((np.arange(n_)[:, None] * c + np.arange(c)[None, :]) * plane).astype(np.float64)
    base = base.reshape((n_, c) + (1,) * (len(x_shape) - 2))
    return Box(base, base + (plane - 1), out_shape, np.dtype(np.int64))


def _maxpool_iv(ctx: Ctx, x: Box, auto_pad: str = "NOTSET", ceil_mode: int = 0, dilations: Any = None,
                kernel_shape: Any = None, pads: Any = None, storage_order: int = 0,
                strides: Any = None) -> tuple[Box, Box]:
    out, _, _, s, d, kern, variants = _geometry(x.shape, auto_pad, ceil_mode, dilations, kernel_shape, pads, strides)
    out_shape = (x.shape[0], x.shape[1], *out)
    low = float(np.iinfo(x.dtype).min) if x.dtype.kind in "iu" else -ctx.fmt(x.dtype).max
    if _coarse(x):
        lo, hi = bcast(x, x.rank)
        empty = False
        for vpb, _ in variants:
            masks = combine_patterns([ck.tap_masks(out[i], x.shape[2 + i], kern[i], s[i], d[i], vpb[i])
                                      for i in range(len(out))])
            empty = empty or not bool(masks.any(axis=1).all())
        if empty:
            lo = np.minimum(lo, low)
    else:
        xl, xh = x.full()
        lo = np.min([ck.max_pool(NUMPY, xl, kern, s, d, vpb, out) for vpb, _ in variants], axis=0)
        hi = np.max([ck.max_pool(NUMPY, xh, kern, s, d, vpb, out) for vpb, _ in variants], axis=0)
    lo, hi = np.maximum(lo, low), np.maximum(hi, low)
    return Box(lo, hi, out_shape, x.dtype, x.nan), _indices_box(x.shape, out_shape)


def _wide_interval(draw: Any) -> tuple[float, float]:
    """An interval at least 1 wide: sampled points rarely tie (max gradients are defined)."""
    from hypothesis import strategies as st

    lo = draw(st.floats(-5, 4, width=32))
    return lo, lo + draw(st.floats(1, 5, width=32))


def _pool_sample(avg: bool) -> Any:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        nsp = draw(st.integers(1, 3))
        ins = [draw(st.integers(1, 5)) for _ in range(nsp)]
        ker = [draw(st.integers(1, 3)) for _ in range(nsp)]
        s = [draw(st.integers(1, 2)) for _ in range(nsp)]
        # onnx.reference diverges from onnxruntime on dilated or ceil-mode windows that run
        # into the padding, and on SAME padding; sample the configurations they agree on
        auto = draw(st.sampled_from(["NOTSET", "NOTSET", "NOTSET", "VALID"]))
        ceil = draw(st.integers(0, 1)) if auto == "NOTSET" else 0
        d = [1] * nsp if (avg or ceil) else [draw(st.integers(1, 2)) for _ in range(nsp)]
        pads = [draw(st.integers(0, k - 1)) for k in ker] + [draw(st.integers(0, k - 1)) for k in ker]
        if auto == "VALID" or ceil:
            pads = [0] * (2 * nsp)
        ins = [max(i, (k - 1) * dd + 1) for i, k, dd in zip(ins, ker, d, strict=True)]
        if ceil:
            for i in range(nsp):
                span = ins[i] + pads[i] + pads[nsp + i] - ker[i]
                if (-(-span // s[i])) * s[i] >= ins[i] + pads[i]:
                    ceil = 0  # older ONNX shape inference keeps a window that starts in the pad
        lo, hi = _wide_interval(draw)
        x = BoxSpec(lo, hi, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *ins))
        attrs: dict[str, Any] = {"kernel_shape": ker, "strides": s}
        if auto == "NOTSET":
            attrs["pads"] = pads
            attrs["ceil_mode"] = ceil
        else:
            attrs["auto_pad"] = auto
        if any(v > 1 for v in d):
            attrs["dilations"] = d
        if avg:
            attrs["count_include_pad"] = draw(st.integers(0, 1))
        else:
            attrs["storage_order"] = draw(st.integers(0, 1))
        return [x], attrs

    return sample


for _v in (12, 22):
    register(
        "MaxPool", since=_v, concrete=_maxpool_c, interval=nan_tolerant(_maxpool_iv, largest=True), exact=True, overflow_rule=None,
        property="monotone in every element (coarse boxes stay coarse)", sample=_pool_sample(avg=False),
        doc="max over windows (pads, dilations, ceil_mode); Indices output",
    )


# ---- AveragePool --------------------------------------------------------------------------


def _avgpool_c(k: Any, x: Any, auto_pad: str = "NOTSET", ceil_mode: int = 0, count_include_pad: int = 0,
               dilations: Any = None, kernel_shape: Any = None, pads: Any = None, strides: Any = None) -> Any:
    out, pb, pe, s, d, kern, _ = _geometry(tuple(x.shape), auto_pad, ceil_mode, dilations, kernel_shape, pads, strides)
    return ck.avg_pool(k, x, kern, s, d, pb, pe, out, int(count_include_pad))


def _ratio_range(ins: list[int], out: list[int], kern: list[int], s: list[int], d: list[int],
                 variants: list[tuple[list[int], list[int]]], cip: int) -> tuple[float, float]:
    """Smallest and largest ``valid taps / divisor`` over all windows (0 for empty windows)."""
    r_min, r_max = np.inf, -np.inf
    for vpb, vpe in variants:
        lo_p, hi_p = 1.0, 1.0
        for i in range(len(out)):
            idx = np.arange(out[i])[:, None] * s[i] + np.arange(kern[i])[None, :] * d[i] - vpb[i]
            nv = ((idx >= 0) & (idx < ins[i])).sum(axis=1)
            lo_b, hi_b = (-vpb[i], ins[i] + vpe[i]) if cip else (0, ins[i])
            den = ((idx >= lo_b) & (idx < hi_b)).sum(axis=1)
            r = np.where(den > 0, nv / np.maximum(den, 1), 0.0)
            lo_p *= float(r.min())
            hi_p *= float(r.max())
        r_min, r_max = min(r_min, lo_p), max(r_max, hi_p)
    return r_min, r_max


def _window_sum_overflow(window: Any) -> Any:
    """Wrap an averaging rule: the runtime sums a window in the dtype before dividing, so the
    sum can overflow (two elements of 3e38 give inf) and +inf + -inf gives NaN."""

    def wrap(rule: Any) -> Any:
        def wrapped(ctx: Ctx, x: Box, *args: Any, **kwargs: Any) -> Box:
            out: Box = rule(ctx, x, *args, **kwargs)
            if x.dtype.kind != "f" or out.is_point:
                return out
            n = window(x, kwargs)
            fmax = ctx.fmt(x.dtype).max
            with np.errstate(over="ignore", invalid="ignore"):
                up = x.max() > 0 and n * x.max() > fmax
                down = x.min() < 0 and n * x.min() < -fmax
            if not (up or down):
                return out
            lo, hi = out.bounds64()
            lo = np.full_like(lo, -np.inf) if down else lo
            hi = np.full_like(hi, np.inf) if up else hi
            return Box(lo, hi, out.shape, out.dtype, out.nan or (up and down))

        wrapped.__doc__ = rule.__doc__
        return wrapped

    return wrap


def _avgpool_iv(ctx: Ctx, x: Box, auto_pad: str = "NOTSET", ceil_mode: int = 0, count_include_pad: int = 0,
                dilations: Any = None, kernel_shape: Any = None, pads: Any = None, strides: Any = None) -> Box:
    out, _, _, s, d, kern, variants = _geometry(x.shape, auto_pad, ceil_mode, dilations, kernel_shape, pads, strides)
    out_shape = (x.shape[0], x.shape[1], *out)
    k_terms = int(np.prod(kern, dtype=np.int64))
    eps = ctx.fmt(x.dtype).eps
    cip = int(count_include_pad)
    if _coarse(x):
        lo, hi = bcast(x, x.rank)
        r_min, r_max = _ratio_range(list(x.shape[2:]), out, kern, s, d, variants, cip)
        mag = np.maximum(np.abs(lo), np.abs(hi))
        out_lo = np.where(lo >= 0, r_min * lo, r_max * lo)
        out_hi = np.where(hi >= 0, r_max * hi, r_min * hi)
        magsum = r_max * mag
    else:
        xl, xh = x.full()
        mag_full = np.maximum(np.abs(xl), np.abs(xh))
        res = [[ck.avg_pool(NUMPY, a, kern, s, d, vpb, vpe, out, cip) for a in (xl, xh, mag_full)]
               for vpb, vpe in variants]
        out_lo = np.min([r[0] for r in res], axis=0)
        out_hi = np.max([r[1] for r in res], axis=0)
        magsum = np.max([r[2] for r in res], axis=0)
    err = accumulation_error(k_terms + 1, magsum, eps) + accumulation_error(k_terms + 2, magsum, _EPS64)
    return Box(out_lo - err, out_hi + err, out_shape, x.dtype, x.nan)


for _v in (11, 19, 22):
    register(
        "AveragePool", since=_v, concrete=_avgpool_c, overflow_rule="NUM007",
        interval=_window_sum_overflow(lambda x, kw: int(np.prod(kw.get("kernel_shape") or [1])))(_avgpool_iv),
        property="monotone in every element; convex combination (coarse boxes stay coarse)",
        sample=_pool_sample(avg=True),
        doc="mean over windows (count_include_pad, ceil_mode, dilations from opset 19)",
    )


# ---- global pools -------------------------------------------------------------------------


def _gap_c(k: Any, x: Any) -> Any:
    axes = tuple(range(2, x.ndim))
    return k.xp.mean(x, axis=axes, keepdims=True)


def _gmp_c(k: Any, x: Any) -> Any:
    axes = tuple(range(2, x.ndim))
    return k.xp.max(x, axis=axes, keepdims=True)


def _global_shape(x: Box) -> tuple[int, ...]:
    return (x.shape[0], x.shape[1]) + (1,) * (x.rank - 2)


def _gap_iv(ctx: Ctx, x: Box) -> Box:
    lo, hi = bcast(x, x.rank)
    axes = tuple(range(2, x.rank))
    lo = lo.mean(axis=axes, keepdims=True)
    hi = hi.mean(axis=axes, keepdims=True)
    l0, h0 = bcast(x, x.rank)
    mag = np.maximum(np.abs(l0), np.abs(h0)).max(axis=axes, keepdims=True)
    p = int(np.prod(x.shape[2:], dtype=np.int64))
    eps = ctx.fmt(x.dtype).eps
    err = accumulation_error(p + 1, mag, eps) + accumulation_error(p + 2, mag, _EPS64)
    return Box(lo - err, hi + err, _global_shape(x), x.dtype, x.nan)


def _gmp_iv(ctx: Ctx, x: Box) -> Box:
    lo, hi = bcast(x, x.rank)
    axes = tuple(range(2, x.rank))
    return Box(lo.max(axis=axes, keepdims=True), hi.max(axis=axes, keepdims=True), _global_shape(x), x.dtype, x.nan)


def _global_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    rank = draw(st.integers(3, 5))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    lo, hi = _wide_interval(draw)
    return [BoxSpec(lo, hi, shape)], {}


for _v in (1, 22):
    register(
        "GlobalAveragePool", since=_v, concrete=_gap_c, overflow_rule="NUM007",
        interval=_window_sum_overflow(lambda x, kw: int(np.prod(x.shape[2:])))(_gap_iv),
        property="monotone in every element (mean over spatial dims)", sample=_global_sample,
        doc="mean over all spatial dims",
    )
    register(
        "GlobalMaxPool", since=_v, concrete=_gmp_c, interval=nan_tolerant(_gmp_iv, largest=True), exact=True, overflow_rule=None,
        property="monotone in every element (max over spatial dims)", sample=_global_sample,
        doc="max over all spatial dims",
    )

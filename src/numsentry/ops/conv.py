"""Conv and ConvTranspose: bilinear, bounded in centre-radius form plus accumulation error.

Two interval paths:

* **Spatially coarse input** (the common case: bounds of shape ``[1 or N, 1 or C, 1, ...]``).
  Every input element of channel ``c`` lies in the same interval, so the output bounds need
  no convolution. Per (output channel, kernel tap) the *tap interval* ``T = sum_c W * x_c``
  is computed once in centre-radius form; an output element is the bias plus the sum of
  ``T`` over the taps that read inside the input there (zero padding adds exactly 0). Along
  each spatial dim only a few tap patterns occur (left border, interior, right border), so
  the output's bounds are the min/max over the combinations of those patterns. The result
  stays coarse spatially (bounds ``[.., M, 1, ...]``) and costs a few passes over the weights.
* **Spatially refined input**: full centre-radius convolutions on the materialised bounds,
  ``conv(mid, W)`` and ``conv(rad, |W|)`` for point weights (plus ``|mid| conv rad_W`` and
  ``rad conv rad_W`` terms when the weights are a box too).

Both add the float accumulation error ``gamma_{K+1} * (|W| conv mag(x) + |b|)`` of a
K-term dot product plus bias (see `numsentry.ops.linalg.accumulation_error`). Inputs with
infinite bounds make the output channels of their group unbounded (and possibly NaN).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops import conv_kernels as ck
from numsentry.ops.kernels import NUMPY
from numsentry.ops.linalg import accumulation_error
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import bcast, draw_interval

__all__ = ["combine_patterns", "spatially_coarse"]

_EPS64 = 2.0**-53


# ---- shared helpers (also used by pool.py) ------------------------------------------------


def spatially_coarse(box: Box) -> bool:
    """True when a box's bounds hold one interval per (batch, channel) at most."""
    lo, hi = bcast(box, box.rank)
    return all(n == 1 for n in lo.shape[2:]) and all(n == 1 for n in hi.shape[2:])


def combine_patterns(per_dim: list[np.ndarray]) -> np.ndarray:
    """All tap masks that occur: ``[P, prod(k)]`` from per-dim ``[out_i, k_i]`` masks.

    Along each dim only the distinct rows matter; the masks of an output element are the
    outer product of its per-dim rows, so the product of the distinct rows covers every one.
    """
    uniq = [np.unique(m, axis=0) for m in per_dim]
    combo = np.ones((1, 1), dtype=bool)
    for u in uniq:
        # [P, K] x [p, k] -> [P * p, K * k]
        combo = (combo[:, None, :, None] & u[None, :, None, :]).reshape(combo.shape[0] * u.shape[0], -1)
    return combo


def _mid_rad(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mid = lo / 2 + hi / 2
    rad = hi / 2 - lo / 2
    return mid, rad, np.maximum(np.abs(lo), np.abs(hi))


def _channel_bounds(box: Box) -> tuple[np.ndarray, np.ndarray]:
    """``[N', C]`` bounds of a spatially coarse box (N' is 1 or N)."""
    lo, hi = bcast(box, box.rank)
    lo, hi = np.broadcast_arrays(lo, hi)
    n_, c_ = lo.shape[0], lo.shape[1]
    c = box.shape[1]
    lo = np.broadcast_to(lo.reshape(n_, c_), (n_, c))
    hi = np.broadcast_to(hi.reshape(n_, c_), (n_, c))
    return lo, hi


def _weight_parts(w: Box) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Weights as float64 (mid, rad or None for a point, |W| upper bound), full shape."""
    if w.is_point:
        wm = w.value.astype(np.float64)
        return wm, None, np.abs(wm)
    lo, hi = w.full()
    wm, wr, mag = _mid_rad(lo, hi)
    return wm, wr, mag


def _bias_bounds(b: Box | None, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if b is None:
        z = np.zeros(m)
        return z, z, z
    lo, hi = b.bounds64()
    lo = np.broadcast_to(lo.reshape(-1), (m,))
    hi = np.broadcast_to(hi.reshape(-1), (m,))
    return lo, hi, np.maximum(np.abs(lo), np.abs(hi))


def _finite_or_top(x: Box, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds with infinities zeroed, and a per-group mask of groups reading an infinity.

    Returns ``(lo, hi, bad_groups)`` with lo/hi broadcast to rank; ``bad_groups[n, g]``.
    """
    lo, hi = bcast(x, x.rank)
    lo, hi = np.broadcast_arrays(lo, hi)
    inf = ~(np.isfinite(lo) & np.isfinite(hi))
    c = x.shape[1]
    per_c = inf.reshape(inf.shape[0], inf.shape[1], -1).any(axis=2)
    per_c = np.broadcast_to(per_c, (per_c.shape[0], c))
    bad = per_c.reshape(per_c.shape[0], group, c // group).any(axis=2)
    if inf.any():
        lo = np.where(inf, 0.0, lo)
        hi = np.where(inf, 0.0, hi)
    return lo, hi, np.asarray(bad)


def _apply_bad(lo: np.ndarray, hi: np.ndarray, bad: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Make the output channels of groups that read an infinity unbounded."""
    if not bad.any():
        return lo, hi, False
    g = bad.shape[1]
    per_m = np.repeat(bad, m // g, axis=1)  # [N', M]
    mask = per_m.reshape(per_m.shape + (1,) * (lo.ndim - 2))
    lo = np.where(mask, -np.inf, lo)
    hi = np.where(mask, np.inf, hi)
    return lo, hi, True


# ---- Conv ---------------------------------------------------------------------------------


def _conv_attrs(x_shape: tuple[int, ...], w_shape: tuple[int, ...], auto_pad: str, dilations: Any,
                kernel_shape: Any, pads: Any, strides: Any) -> tuple[list[int], ...]:
    kernel = list(kernel_shape) if kernel_shape else list(w_shape[2:])
    out, pb, pe, s, d = ck.conv_geometry(list(x_shape[2:]), kernel, strides, dilations, pads, auto_pad or "NOTSET")
    return out, pb, pe, s, d


def _conv_c(k: Any, x: Any, w: Any, b: Any = None, auto_pad: str = "NOTSET", dilations: Any = None,
            group: int = 1, kernel_shape: Any = None, pads: Any = None, strides: Any = None) -> Any:
    out, pb, pe, s, d = _conv_attrs(tuple(x.shape), tuple(w.shape), auto_pad, dilations, kernel_shape, pads, strides)
    return ck.conv(k, x, w, b, s, d, pb, pe, int(group), out)


def _gw(arr: np.ndarray, group: int, transpose: bool) -> np.ndarray:
    """Weights ``[M, C/g, *k]`` (or ConvTranspose's ``[C, M/g, *k]``) as ``[G, Mg, Cg, K]``."""
    a = arr.reshape(arr.shape[0], arr.shape[1], -1)
    if transpose:
        cg, mg = a.shape[0] // group, a.shape[1]
        return a.reshape(group, cg, mg, -1).transpose(0, 2, 1, 3)
    return a.reshape(group, a.shape[0] // group, a.shape[1], -1)


def _contract(w: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``out[n, g, m, j, k] = sum_c w[g, m, c, k] * xs[n, g, j, c]``.

    ``w`` is ``[G, Mg, Cg, K]`` (any dim may be 1: broadcast), ``xs`` is ``[N', G, J, Cg]``.
    A 1x1 kernel is one matrix product per group; larger kernels batch over output channels.
    """
    cg, kk = w.shape[2], w.shape[3]
    if cg == 1:
        # one channel per group (depthwise), or a weight constant over channels: sum x first
        return w[None, :, :, None, 0, :] * xs.sum(axis=3)[:, :, None, :, None]
    if kk == 1:
        # [G, Mg, Cg] @ [N', G, Cg, J] -> [N', G, Mg, J]
        return np.matmul(w[..., 0], np.swapaxes(xs, 2, 3))[..., None]
    # [N', G, 1, J, Cg] @ [G, Mg, Cg, K] -> [N', G, Mg, J, K]
    return np.matmul(xs[:, :, None], w)


_BLOCK_BYTES = 1 << 21  # float64 weight blocks of ~2 MB stay in cache


def _point_taps(w: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``W x1``, ``|W| x2[0]`` and ``sum_k |W| (x2[0] + x2[1])`` for point weights ``[G, Mg, Cg, K]``.

    The weights are converted to float64 a block of output channels at a time into one reused
    buffer: converting them whole costs more in fresh memory than the products themselves.
    """
    g, mg, cg, kk = w.shape
    n_ = x1.shape[0]
    tm = np.empty((n_, g, mg, kk))
    tr = np.empty((n_, g, mg, kk))
    magsum = np.empty((n_, g, mg))
    step = max(1, _BLOCK_BYTES // (8 * g * cg * kk))
    buf = np.empty((g, min(step, mg), cg, kk))
    for m0 in range(0, mg, step):
        m1 = min(m0 + step, mg)
        blk = buf[:, : m1 - m0]
        np.copyto(blk, w[:, m0:m1], casting="unsafe")
        tm[:, :, m0:m1] = _contract(blk, x1)[:, :, :, 0]
        np.abs(blk, out=blk)
        both = _contract(blk, x2)
        tr[:, :, m0:m1] = both[:, :, :, 0]
        magsum[:, :, m0:m1] = (both[:, :, :, 0] + both[:, :, :, 1]).sum(axis=-1)
    return tm, tr, magsum


def _tap_intervals(lo_c: np.ndarray, hi_c: np.ndarray, w: Box, group: int,
                   transpose: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (batch, out channel, tap): centre and radius of ``sum_c W x_c``; and sum |W| mag(x).

    ``lo_c``/``hi_c`` are ``[N', C]`` (finite); ``w`` holds ``[M, C/g, *k]`` (Conv) or
    ``[C, M/g, *k]`` (ConvTranspose). Returns ``[N', M, K]`` centre and radius and the
    ``[N', M]`` magnitude sum over channels and taps (for the accumulation error). Point
    weights go through matrix products in centre-radius form (exact); weight boxes take the
    exact product interval of every term.
    """
    n_, c = lo_c.shape
    cg = c // group
    xm, xr, xmag = _mid_rad(lo_c, hi_c)

    def xg(*parts: np.ndarray) -> np.ndarray:
        return np.stack([p_.reshape(n_, group, cg) for p_ in parts], axis=2)  # [N', G, J, Cg]

    kk = int(np.prod(w.shape[2:], dtype=np.int64))
    if w.is_point:
        tm, tr, magsum = _point_taps(_gw(w.value, group, transpose), xg(xm), xg(xr, np.abs(xm)))
    else:
        wl, wh = w.bounds64()
        wl = wl.reshape((1,) * (w.rank - wl.ndim) + wl.shape)
        wh = wh.reshape((1,) * (w.rank - wh.ndim) + wh.shape)
        mg = w.shape[0] // group if not transpose else w.shape[1]
        if wl.size == 1 and wh.size == 1:  # one range for the whole tensor (--weights trainable)
            wl4 = wl.reshape(1, 1, 1, 1)
            wh4 = wh.reshape(1, 1, 1, 1)
        else:
            full = np.broadcast_arrays(wl, wh, np.empty(w.shape, dtype=np.bool_))
            wl4, wh4 = (_gw(np.ascontiguousarray(a), group, transpose) for a in full[:2])
        xl5 = lo_c.reshape(n_, group, 1, cg, 1)
        xh5 = hi_c.reshape(n_, group, 1, cg, 1)
        prods = [wl4[None] * xl5, wl4[None] * xh5, wh4[None] * xl5, wh4[None] * xh5]
        t_lo = np.minimum(np.minimum(prods[0], prods[1]), np.minimum(prods[2], prods[3])).sum(axis=3)
        t_hi = np.maximum(np.maximum(prods[0], prods[1]), np.maximum(prods[2], prods[3])).sum(axis=3)
        t_lo, t_hi = _bshape(t_lo, mg, kk), _bshape(t_hi, mg, kk)
        tm, tr = t_lo / 2 + t_hi / 2, t_hi / 2 - t_lo / 2
        wmag = np.maximum(np.abs(wl4), np.abs(wh4))
        magsum = _bshape(_contract(wmag, xg(xmag))[:, :, :, 0], mg, kk).sum(axis=-1)
    m = tm.shape[1] * tm.shape[2]
    return tm.reshape(n_, m, kk), tr.reshape(n_, m, kk), magsum.reshape(n_, m)


def _bshape(a: np.ndarray, mg: int, kk: int) -> np.ndarray:
    """Broadcast ``[N', G, 1 or Mg, 1 or K]`` to ``[N', G, Mg, K]``."""
    return np.broadcast_to(a, (a.shape[0], a.shape[1], mg, kk))


def _dot_error(ctx: Ctx, x: Box, k_terms: int, magsum: np.ndarray) -> np.ndarray:
    """Rounding error of a K-term dot product plus bias in the analysed format.

    Higham's gamma bound covers relative errors; each product can also underflow, with an
    absolute error of up to half the smallest subnormal. Our own float64 sums are covered too.
    """
    fmt = ctx.fmt(x.dtype)
    err = accumulation_error(k_terms + 1, magsum, fmt.eps)
    return err + accumulation_error(2 * k_terms + 2, magsum, _EPS64) + (k_terms + 1) * fmt.tiny


def _coarse_out(ctx: Ctx, tm: np.ndarray, tr: np.ndarray, magsum: np.ndarray, masks: np.ndarray,
                b: Box | None, k_terms: int, x: Box, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounds ``[N', M, 1...]`` from tap intervals and the occurring tap masks ``[P, K]``."""
    mf = masks.astype(np.float64).T  # [K, P]
    lo = np.min((tm - tr) @ mf, axis=2)
    hi = np.max((tm + tr) @ mf, axis=2)
    m = tm.shape[1]
    b_lo, b_hi, b_mag = _bias_bounds(b, m)
    magsum = magsum + b_mag
    err = _dot_error(ctx, x, k_terms, magsum)
    lo = lo + b_lo - err
    hi = hi + b_hi + err
    shape = lo.shape + (1,) * (rank - 2)
    return lo.reshape(shape), hi.reshape(shape)


def _full_conv_bounds(ctx: Ctx, x: Box, w: Box, b: Box | None, xl: np.ndarray, xh: np.ndarray,
                      run: Any, k_terms: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounds at full resolution: centre-radius convolutions via ``run(x, w)``."""
    xl, xh = np.broadcast_to(xl, x.shape), np.broadcast_to(xh, x.shape)
    b_lo, b_hi, b_mag = _bias_bounds(b, m)
    sh = (1, m) + (1,) * (x.rank - 2)
    if not w.is_point and w.lo.size == 1 and w.hi.size == 1:
        # one weight range: the exact product interval of every element, summed over windows
        wl, wh = float(w.lo.reshape(())), float(w.hi.reshape(()))
        prods = [wl * xl, wl * xh, wh * xl, wh * xh]
        ones = np.ones(w.shape)
        lo = run(np.minimum(np.minimum(prods[0], prods[1]), np.minimum(prods[2], prods[3])), ones)
        hi = run(np.maximum(np.maximum(prods[0], prods[1]), np.maximum(prods[2], prods[3])), ones)
        ymag = run(np.maximum(np.abs(xl), np.abs(xh)), ones) * max(abs(wl), abs(wh)) + b_mag.reshape(sh)
        err = _dot_error(ctx, x, k_terms, ymag)
        return lo + b_lo.reshape(sh) - err, hi + b_hi.reshape(sh) + err
    xm, xr, xmag = _mid_rad(xl, xh)
    wm, wr, wmag = _weight_parts(w)
    ym = run(xm, wm)
    point_x = not np.any(xr)
    yr = 0.0 if point_x else run(xr, np.abs(wm))
    if wr is not None:
        yr = yr + run(xmag, wr)
    ymag = run(xmag, wmag) + b_mag.reshape(sh)
    err = _dot_error(ctx, x, k_terms, ymag)
    return ym - yr + b_lo.reshape(sh) - err, ym + yr + b_hi.reshape(sh) + err


def _conv_iv(ctx: Ctx, x: Box, w: Box, b: Box | None = None, auto_pad: str = "NOTSET",
             dilations: Any = None, group: int = 1, kernel_shape: Any = None, pads: Any = None,
             strides: Any = None) -> Box:
    group = int(group)
    out, pb, pe, s, d = _conv_attrs(x.shape, w.shape, auto_pad, dilations, kernel_shape, pads, strides)
    m = w.shape[0]
    cg = x.shape[1] // group
    if x.shape[1] != w.shape[1] * group or m % group:
        raise ValueError(f"Conv: channels {x.shape[1]} do not match weights {w.shape} with group {group}")
    kern = list(w.shape[2:])
    k_terms = cg * int(np.prod(kern, dtype=np.int64))
    out_shape = (x.shape[0], m, *out)
    nan = x.nan or w.nan or (b is not None and b.nan)
    xl, xh, bad = _finite_or_top(x, group)
    if spatially_coarse(x) and not x.is_point:
        lo_c, hi_c = _channel_bounds(Box(xl, xh, x.shape, x.dtype))
        tm, tr, magsum = _tap_intervals(lo_c, hi_c, w, group, transpose=False)
        masks = combine_patterns([ck.tap_masks(out[i], x.shape[2 + i], kern[i], s[i], d[i], pb[i])
                                  for i in range(len(out))])
        lo, hi = _coarse_out(ctx, tm, tr, magsum, masks, b, k_terms, x, x.rank)
    else:
        def run(a: np.ndarray, wt: np.ndarray) -> np.ndarray:
            return ck.conv(NUMPY, a, wt, None, s, d, pb, pe, group, out)

        lo, hi = _full_conv_bounds(ctx, x, w, b, xl, xh, run, k_terms, m)
    lo, hi, unb = _apply_bad(lo, hi, bad, m)
    return Box(lo, hi, out_shape, x.dtype, nan or unb)


def _small_kernel(draw: Any, nsp: int) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    from hypothesis import strategies as st

    ins = [draw(st.integers(1, 5)) for _ in range(nsp)]
    ker = [draw(st.integers(1, 3)) for _ in range(nsp)]
    s = [draw(st.integers(1, 2)) for _ in range(nsp)]
    d = [draw(st.integers(1, 2)) for _ in range(nsp)]
    pads = [draw(st.integers(0, 2)) for _ in range(2 * nsp)]
    return ins, ker, s, d, pads


def _weights(draw: Any, shape: tuple[int, ...], fixed: bool) -> Any:
    from hypothesis import strategies as st

    n = int(np.prod(shape))
    if fixed:
        vals = draw(st.lists(st.floats(-2, 2, width=32), min_size=n, max_size=n))
        return np.asarray(vals, dtype=np.float32).reshape(shape)
    lo, hi = draw_interval(draw, -2, 2)
    return BoxSpec(lo, hi, shape)


def _conv_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    nsp = draw(st.integers(1, 3))
    group = draw(st.sampled_from([1, 1, 2]))
    cg = draw(st.integers(1, 2))
    mg = draw(st.integers(1, 2))
    ins, ker, s, d, pads = _small_kernel(draw, nsp)
    auto = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto.startswith("SAME"):
        d = [1] * nsp  # onnxruntime rejects dilated SAME convolutions
    k_eff = [(k - 1) * dd + 1 for k, dd in zip(ker, d, strict=True)]
    if auto == "VALID":
        ins = [max(i, ke) for i, ke in zip(ins, k_eff, strict=True)]
    elif auto == "NOTSET":
        ins = [max(i, ke - pads[j] - pads[nsp + j]) for j, (i, ke) in enumerate(zip(ins, k_eff, strict=True))]
    n = draw(st.integers(1, 2))
    lo, hi = draw_interval(draw, -4, 4)
    x = BoxSpec(lo, hi, (n, group * cg, *ins))
    w = _weights(draw, (group * mg, cg, *ker), fixed=draw(st.booleans()))
    b = _weights(draw, (group * mg,), fixed=draw(st.booleans())) if draw(st.booleans()) else None
    attrs: dict[str, Any] = {"group": group, "strides": s, "dilations": d, "kernel_shape": ker}
    if auto == "NOTSET":
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto
    return [x, w, b], attrs


for _v in (11, 22):
    register(
        "Conv", since=_v, concrete=_conv_c, interval=_conv_iv, overflow_rule="NUM007",
        property="bilinear (centre-radius; coarse inputs via per-tap intervals and tap patterns)",
        sample=_conv_sample, doc="N-d convolution (groups, strides, dilations, pads, auto_pad)",
    )


# ---- ConvTranspose ------------------------------------------------------------------------


def _convt_attrs(x_shape: tuple[int, ...], w_shape: tuple[int, ...], auto_pad: str, dilations: Any,
                 kernel_shape: Any, output_padding: Any, output_shape: Any, pads: Any,
                 strides: Any) -> tuple[Any, ...]:
    kernel = list(kernel_shape) if kernel_shape else list(w_shape[2:])
    return ck.conv_transpose_geometry(list(x_shape[2:]), kernel, strides, dilations, pads, auto_pad or "NOTSET",
                                      output_padding, output_shape)


def _convt_c(k: Any, x: Any, w: Any, b: Any = None, auto_pad: str = "NOTSET", dilations: Any = None,
             group: int = 1, kernel_shape: Any = None, output_padding: Any = None, output_shape: Any = None,
             pads: Any = None, strides: Any = None) -> Any:
    out, pbs, s, d = _convt_attrs(tuple(x.shape), tuple(w.shape), auto_pad, dilations, kernel_shape,
                                  output_padding, output_shape, pads, strides)
    return ck.conv_transpose(k, x, w, b, s, d, [p[0] for p in pbs], int(group), out)


def _convt_iv(ctx: Ctx, x: Box, w: Box, b: Box | None = None, auto_pad: str = "NOTSET",
              dilations: Any = None, group: int = 1, kernel_shape: Any = None, output_padding: Any = None,
              output_shape: Any = None, pads: Any = None, strides: Any = None) -> Box:
    group = int(group)
    out, pbs, s, d = _convt_attrs(x.shape, w.shape, auto_pad, dilations, kernel_shape, output_padding,
                                  output_shape, pads, strides)
    if x.shape[1] != w.shape[0] or x.shape[1] % group:
        raise ValueError(f"ConvTranspose: channels {x.shape[1]} do not match weights {w.shape} with group {group}")
    m = w.shape[1] * group
    cg = x.shape[1] // group
    kern = list(w.shape[2:])
    k_terms = cg * int(np.prod(kern, dtype=np.int64))
    out_shape = (x.shape[0], m, *out)
    nan = x.nan or w.nan or (b is not None and b.nan)
    xl, xh, bad = _finite_or_top(x, group)
    if spatially_coarse(x) and not x.is_point:
        lo_c, hi_c = _channel_bounds(Box(xl, xh, x.shape, x.dtype))
        tm, tr, magsum = _tap_intervals(lo_c, hi_c, w, group, transpose=True)
        per_dim = [np.concatenate([ck.tap_masks_transpose(out[i], x.shape[2 + i], kern[i], s[i], d[i], p)
                                   for p in pbs[i]]) for i in range(len(out))]
        lo, hi = _coarse_out(ctx, tm, tr, magsum, combine_patterns(per_dim), b, k_terms, x, x.rank)
    else:
        res = []
        for cand in itertools.product(*pbs):
            def run(a: np.ndarray, wt: np.ndarray, cand: Any = cand) -> np.ndarray:
                return ck.conv_transpose(NUMPY, a, wt, None, s, d, list(cand), group, out)

            res.append(_full_conv_bounds(ctx, x, w, b, xl, xh, run, k_terms, m))
        lo = np.min([r[0] for r in res], axis=0)
        hi = np.max([r[1] for r in res], axis=0)
    lo, hi, unb = _apply_bad(lo, hi, bad, m)
    return Box(lo, hi, out_shape, x.dtype, nan or unb)


def _convt_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    # onnx.reference's ConvTranspose mishandles groups, batches above 1, dilations and
    # output_shape; onnxruntime and the spec disagree on SAME pads: sample what all agree on
    # (the interval rule covers the rest by joining over the runtimes' conventions).
    nsp = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    m = draw(st.integers(1, 2))
    ins = [draw(st.integers(1, 4)) for _ in range(nsp)]
    ker = [draw(st.integers(1, 3)) for _ in range(nsp)]
    s = [draw(st.integers(1, 3)) for _ in range(nsp)]
    opad = [draw(st.integers(0, max(0, si - 1))) for si in s]
    pb = [draw(st.integers(0, k - 1)) for k in ker]
    pe = [draw(st.integers(0, k - 1)) for k in ker]
    for i in range(nsp):
        full = s[i] * (ins[i] - 1) + opad[i] + ker[i]
        if pb[i] + pe[i] >= full:
            pb[i], pe[i] = min(pb[i], full - 1), 0
    pads = pb + pe
    lo, hi = draw_interval(draw, -4, 4)
    x = BoxSpec(lo, hi, (1, c, *ins))
    w = _weights(draw, (c, m, *ker), fixed=draw(st.booleans()))
    b = _weights(draw, (m,), fixed=True) if draw(st.booleans()) else None
    return [x, w, b], {"strides": s, "pads": pads, "output_padding": opad, "kernel_shape": ker}


for _v in (11, 22):
    register(
        "ConvTranspose", since=_v, concrete=_convt_c, interval=_convt_iv, overflow_rule="NUM007",
        property="bilinear (centre-radius; coarse inputs via per-tap intervals and tap patterns)",
        sample=_convt_sample, doc="N-d transposed convolution (groups, output_padding, output_shape)",
    )

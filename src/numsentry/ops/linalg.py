"""MatMul and Gemm: bilinear, bounded in centre-radius form plus float accumulation error.

For ``A @ B`` with A in mid_a ± rad_a and B in mid_b ± rad_b (elementwise)::

    A @ B  in  mid_a @ mid_b  ±  (|mid_a| @ rad_b + rad_a @ |mid_b| + rad_a @ rad_b)

which is exact (the best interval) when one factor is a point, e.g. stored weights. A runtime
summing K products in the dtype differs from the real sum by at most gamma_K * (|A| @ |B|)
(Higham, Accuracy and Stability of Numerical Algorithms, 3.1), gamma_K = K u / (1 - K u); that
term is added before rounding into the format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import draw_interval

__all__ = ["accumulation_error", "matmul_bounds"]


def _mid_rad(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", over="ignore"):
        mid = lo / 2 + hi / 2
        rad = hi / 2 - lo / 2
    mag = np.maximum(np.abs(lo), np.abs(hi))
    return mid, rad, mag


def accumulation_error(k: int, mag_sum: np.ndarray, eps: float, tiny: float = 0.0) -> np.ndarray:
    """Higham's gamma_k bound on the rounding error of a k-term dot product.

    Pass the format's smallest subnormal as ``tiny`` for sums of *products*: a product that
    underflows carries an absolute error (up to half a subnormal) that gamma_k does not cover.
    """
    ku = k * eps
    gamma = ku / (1 - ku) if ku < 1 else np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        return gamma * mag_sum + k * tiny


def _expand(arr: np.ndarray, axis: int, n: int) -> np.ndarray:
    if arr.shape[axis] == n:
        return arr
    shape = list(arr.shape)
    shape[axis] = n
    return np.broadcast_to(arr, shape)


def _point_rhs(m: np.ndarray, r: np.ndarray, b: np.ndarray, block: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """``m @ b`` and ``r @ |b|`` in float64 for a point ``b``, converting ``b`` in row blocks."""
    k = b.shape[-2]
    rows = max(1, block // max(1, b.shape[-1]))
    if k <= rows:
        b64 = b.astype(np.float64)
        return m @ b64, r @ np.abs(b64)
    c = r_out = None
    for s0 in range(0, k, rows):
        b64 = b[..., s0:s0 + rows, :].astype(np.float64)
        pc = m[..., s0:s0 + rows] @ b64
        pr = r[..., s0:s0 + rows] @ np.abs(b64)
        c = pc if c is None else c + pc
        r_out = pr if r_out is None else r_out + pr
    assert c is not None and r_out is not None
    return c, r_out


def matmul_bounds(a: Box, b: Box, eps: float, tiny: float = 0.0) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Bounds of ``a @ b`` (numpy matmul semantics, 2-D or batched) and the result shape.

    ``eps`` and ``tiny`` are the unit roundoff and smallest subnormal of the format the
    runtime accumulates in.
    """
    sa, sb = a.shape, b.shape
    al, ah = a.bounds64()
    # a point right-hand side (stored weights) stays in its own dtype: converted in blocks below
    bl, bh = (b.lo, b.hi) if b.is_point and b.lo.dtype.kind == "f" else b.bounds64()
    al, ah = np.broadcast_arrays(al.reshape((1,) * (len(sa) - al.ndim) + al.shape), ah)
    bl, bh = np.broadcast_arrays(bl.reshape((1,) * (len(sb) - bl.ndim) + bl.shape), bh)
    squeeze_front = squeeze_back = False
    if len(sa) == 1:
        sa, al, ah, squeeze_front = (1, *sa), al[None], ah[None], True
    if len(sb) == 1:
        sb, bl, bh, squeeze_back = (*sb, 1), bl[:, None], bh[:, None], True
    k = sa[-1]
    if sb[-2] != k:
        raise ValueError(f"MatMul: inner dimensions differ ({sa} @ {sb})")
    al, ah = _expand(al, -1, k), _expand(ah, -1, k)
    bl, bh = _expand(bl, -2, k), _expand(bh, -2, k)
    ma, ra, ga = _mid_rad(al, ah)
    ku = k * eps
    gamma = ku / (1 - ku) if ku < 1 else np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        if b.is_point:
            # exact for point weights; blocked over K so a large weight matrix is never copied
            # to float64 whole (VGG's 25088 x 4096 would be 822 MB per array)
            c, r = _point_rhs(ma, ra + gamma * ga, bl)
            r = r + k * tiny
        else:
            mb, rb, gb = _mid_rad(bl, bh)
            c = ma @ mb
            r = np.abs(ma) @ rb
            if not a.is_point:
                r = r + ra @ np.abs(mb) + ra @ rb
            r = r + accumulation_error(k, ga @ gb, eps, tiny)
        lo, hi = c - r, c + r
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    shape = (*batch, sa[-2], sb[-1])
    if squeeze_front:
        shape = shape[:-2] + shape[-1:]
        lo, hi = lo[..., 0, :], hi[..., 0, :]
    if squeeze_back:
        shape = shape[:-1]
        lo, hi = lo[..., 0], hi[..., 0]
    return lo, hi, shape


def _matmul_iv(ctx: Ctx, a: Box, b: Box) -> Box:
    fmt = ctx.fmt(a.dtype)
    lo, hi, shape = matmul_bounds(a, b, fmt.eps, fmt.tiny)
    return Box(lo, hi, shape, a.dtype, a.nan or b.nan)


def _matmul_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
    lo, hi = draw_interval(draw, -5, 5)
    if draw(st.booleans()):
        w = np.asarray(draw(st.lists(st.floats(-3, 3, width=32), min_size=k * n, max_size=k * n)),
                       dtype=np.float32).reshape(k, n)
        return [BoxSpec(lo, hi, (*batch, m, k)), w], {}
    lo2, hi2 = draw_interval(draw, -5, 5)
    return [BoxSpec(lo, hi, (*batch, m, k)), BoxSpec(lo2, hi2, (k, n))], {}


register(
    "MatMul", since=9, concrete=lambda k, a, b: k.xp.matmul(a, b), interval=_matmul_iv,
    property="bilinear (centre-radius)", sample=_matmul_sample, doc="matrix product (numpy semantics)",
)


def _transpose2(b: Box) -> Box:
    if b.is_point:
        return Box.point(b.value.T)
    return Box(b.lo.T if b.lo.ndim == 2 else b.lo, b.hi.T if b.hi.ndim == 2 else b.hi, b.shape[::-1], b.dtype, b.nan)


def _gemm_c(k: Any, a: Any, b: Any, c: Any = None, alpha: float = 1.0, beta: float = 1.0,
            transA: int = 0, transB: int = 0) -> Any:
    xp = k.xp
    if transA:
        a = xp.matrix_transpose(a)
    if transB:
        b = xp.matrix_transpose(b)
    y = xp.matmul(a, b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


def _gemm_iv(ctx: Ctx, a: Box, b: Box, c: Box | None = None, alpha: float = 1.0, beta: float = 1.0,
             transA: int = 0, transB: int = 0) -> Box:
    from numsentry.ops.rules import bcast, imul

    a2 = _transpose2(a) if transA else a
    b2 = _transpose2(b) if transB else b
    fmt = ctx.fmt(a.dtype)
    lo, hi, shape = matmul_bounds(a2, b2, fmt.eps, fmt.tiny)
    if alpha != 1.0:
        lo, hi = (lo * alpha, hi * alpha) if alpha >= 0 else (hi * alpha, lo * alpha)
    nan = a.nan or b.nan
    if c is not None:
        cb = c
        if beta != 1.0:
            cl, ch = cb.bounds64()
            cl, ch = (cl * beta, ch * beta) if beta >= 0 else (ch * beta, cl * beta)
            cb = Box(cl, ch, c.shape, c.dtype, c.nan)
        cl, ch = bcast(cb, 2)
        lo, hi = lo + cl, hi + ch
        # the final addition rounds once more
        mag = np.maximum(np.abs(lo), np.abs(hi))
        lo, hi = lo - mag * fmt.eps, hi + mag * fmt.eps
        nan = nan or cb.nan
        _ = imul
    return Box(lo, hi, shape, a.dtype, nan)


def _gemm_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    ta, tb = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    lo, hi = draw_interval(draw, -5, 5)
    lo2, hi2 = draw_interval(draw, -2, 2)
    lo3, hi3 = draw_interval(draw, -1, 1)
    attrs = {"transA": ta, "transB": tb, "alpha": draw(st.sampled_from([1.0, 0.5, -2.0])),
             "beta": draw(st.sampled_from([1.0, 0.25]))}
    return [BoxSpec(lo, hi, (k, m) if ta else (m, k)), BoxSpec(lo2, hi2, (n, k) if tb else (k, n)),
            BoxSpec(lo3, hi3, (n,))], attrs


register(
    "Gemm", since=11, concrete=_gemm_c, interval=_gemm_iv, property="bilinear (centre-radius)",
    sample=_gemm_sample, doc="alpha * A' @ B' + beta * C",
)

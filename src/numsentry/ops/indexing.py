"""Indexing and selection: Gather GatherElements GatherND ScatterElements ScatterND NonZero OneHot
TopK ArgMax ArgMin Hardmax Trilu.

With point indices these ops move bounds like the data movement ops in `numsentry.ops.shape`:
Gather along a coarse axis stays coarse, a gather from refined dimensions takes the same
elements of the bound arrays. With box (non-point) indices the result is the hull of the
elements that can be addressed, which is sound whatever the runtime picks. Scatters with point
indices put the updates' bounds where they land (the hull of all updates landing on one place
when indices repeat) and bound ``add``/``mul`` reductions with their float rounding error.
Selections (TopK, ArgMax, Hardmax) use order statistics of the bounds: the j-th largest of
elements in [l_i, h_i] lies between the j-th largest l and the j-th largest h.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.kernels import NUMPY, Kernels
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import draw_interval, draw_shape
from numsentry.ops.shape import block_bounds, draw_box, ints, move, need_point, refine

_INT = np.dtype(np.int64)


def _axis(axis: int, rank: int) -> int:
    if not -max(rank, 1) <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def _norm(idx: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Negative indices count from the end; out-of-range ones are an error (as on runtimes)."""
    out = np.where(idx < 0, idx + n, idx)
    if out.size and ((out < 0).any() or (out >= n).any()):
        raise IndexError(f"index out of range [-{n}, {n})")
    return out


def _index_positions(b: Box, n: int) -> tuple[int, int] | None:
    """Range of axis positions a box of indices can address (negative ones wrap), or None."""
    lo, hi = int(np.ceil(b.min())), int(np.floor(b.max()))
    ranges = []
    if hi >= 0 and lo <= n - 1:
        ranges.append((max(lo, 0), min(hi, n - 1)))
    if lo <= -1 and hi >= -n:
        ranges.append((max(lo, -n) + n, min(hi, -1) + n))
    if not ranges:
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _hull_along(x: Box, ax: int, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Block bounds of ``x`` reduced over positions first..last of ``ax`` (keepdims)."""
    lo, hi = block_bounds(x)
    if lo.shape[ax] > 1:
        sl = [slice(None)] * lo.ndim
        sl[ax] = slice(first, last + 1)
        lo, hi = lo[tuple(sl)].min(axis=ax, keepdims=True), hi[tuple(sl)].max(axis=ax, keepdims=True)
    return lo, hi


def _int_box(lo: Any, hi: Any, shape: tuple[int, ...]) -> Box:
    return Box(np.asarray(lo, np.float64), np.asarray(hi, np.float64), shape, _INT)


# ---- Gather -----------------------------------------------------------------------------


def _gather_c(k: Kernels, x: Any, indices: Any, axis: int = 0) -> Any:
    ax = _axis(axis, len(x.shape))
    i = _norm(ints(k, indices), int(x.shape[ax]))
    flat = k.xp.take(x, k.asarray(i.reshape(-1)), axis=ax)
    return k.xp.reshape(flat, tuple(x.shape[:ax]) + i.shape + tuple(x.shape[ax + 1:]))


def _gather_iv(ctx: Ctx, x: Box, indices: Box, axis: int = 0) -> Box:
    ax = _axis(axis, x.rank)
    shape = x.shape[:ax] + indices.shape + x.shape[ax + 1:]
    if indices.is_point:
        i = _norm(np.asarray(indices.value).astype(np.int64), x.shape[ax])

        def fn(a: np.ndarray) -> np.ndarray:
            if not x.is_point and a.shape[ax] == 1:  # every gathered element shares the block
                return a.reshape(a.shape[:ax] + (1,) * i.ndim + a.shape[ax + 1:])
            return np.take(a, i, axis=ax)

        return move(x, fn, shape)
    pos = _index_positions(indices, x.shape[ax])
    if pos is None:
        raise IndexError(f"Gather indices {indices.describe()} are all out of range")
    lo, hi = _hull_along(x, ax, *pos)
    one = (1,) * indices.rank
    lo = lo.reshape(lo.shape[:ax] + one + lo.shape[ax + 1:])
    hi = hi.reshape(hi.shape[:ax] + one + hi.shape[ax + 1:])
    return Box(lo, hi, shape, x.dtype, x.nan).coarsen()


def _gather_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3) or (3,)
    ax = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[ax]
    ishape = draw_shape(draw, max_rank=2)
    x = draw_box(draw, shape)
    if draw(st.integers(0, 3)) == 0:  # computed indices: a box
        a, b = sorted((draw(st.integers(-n, n - 1)), draw(st.integers(-n, n - 1))))
        if a < 0 <= b:
            a = 0
        return [x, BoxSpec(float(a), float(b), ishape, "int64")], {"axis": ax}
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return [x, rng.integers(-n, n, ishape).astype(np.int64)], {"axis": ax}


register(
    "Gather", since=13, concrete=_gather_c, interval=_gather_iv, exact=True, overflow_rule=None,
    property="shape-only (coarse axis stays coarse; box indices: hull of addressable elements)",
    sample=_gather_sample, doc="take elements along an axis",
)


def _crop(k: Kernels, x: Any, shape: tuple[int, ...], ax: int) -> Any:
    """``x`` cut down to ``shape`` along every axis but ``ax``."""
    if all(int(s) == t or d == ax for d, (s, t) in enumerate(zip(x.shape, shape, strict=True))):
        return x
    return x[tuple(slice(None) if d == ax else slice(0, t) for d, t in enumerate(shape))]


def _gather_el_c(k: Kernels, x: Any, indices: Any, axis: int = 0) -> Any:
    ax = _axis(axis, len(x.shape))
    i = _norm(ints(k, indices), int(x.shape[ax]))
    return k.xp.take_along_axis(_crop(k, x, i.shape, ax), k.asarray(i), axis=ax)


def _gather_el_iv(ctx: Ctx, x: Box, indices: Box, axis: int = 0) -> Box:
    ax = _axis(axis, x.rank)
    shape = indices.shape
    if indices.is_point:
        i = _norm(np.asarray(indices.value).astype(np.int64), x.shape[ax])

        def fn(a: np.ndarray) -> np.ndarray:
            if not x.is_point and a.shape[ax] == 1:
                return np.asarray(_crop(NUMPY, a, tuple(1 if s == 1 else t for s, t in zip(a.shape, shape, strict=True)), ax))
            full = refine(a, x.shape, range(a.ndim)) if not x.is_point else a
            return np.take_along_axis(np.asarray(_crop(NUMPY, full, shape, ax)), i, axis=ax)

        return move(x, fn, shape)
    pos = _index_positions(indices, x.shape[ax])
    if pos is None:
        raise IndexError(f"GatherElements indices {indices.describe()} are all out of range")
    lo, hi = _hull_along(x, ax, *pos)
    tgt = tuple(1 if s == 1 else t for s, t in zip(lo.shape, shape, strict=True))
    lo, hi = np.asarray(_crop(NUMPY, lo, tgt, ax)), np.asarray(_crop(NUMPY, hi, tgt, ax))
    return Box(lo, hi, shape, x.dtype, x.nan).coarsen()


def _gather_el_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3) or (3,)
    ax = draw(st.integers(0, len(shape) - 1))  # onnx.reference mishandles a negative axis
    n = shape[ax]
    # onnx.reference wants the other dims equal (the spec and onnxruntime allow smaller ones)
    ishape = tuple(draw(st.integers(1, 3)) if d == ax % len(shape) else s for d, s in enumerate(shape))
    x = draw_box(draw, shape)
    if draw(st.integers(0, 3)) == 0:
        a, b = sorted((draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))))
        return [x, BoxSpec(float(a), float(b), ishape, "int64")], {"axis": ax}
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return [x, rng.integers(-n, n, ishape).astype(np.int64)], {"axis": ax}


register(
    "GatherElements", since=13, concrete=_gather_el_c, interval=_gather_el_iv, exact=True,
    overflow_rule=None, property="shape-only (box indices: hull of addressable elements)",
    sample=_gather_el_sample, doc="take elements along an axis, one index per output element",
)


def _gather_nd(k: Kernels, x: Any, i: np.ndarray, batch_dims: int) -> Any:
    """GatherND on a (block) array ``x`` with normalised int64 indices ``i``."""
    b = int(batch_dims)
    shape = tuple(int(s) for s in x.shape)
    m = int(i.shape[-1])
    bshape, inner, rest = shape[:b], shape[b:b + m], shape[b + m:]
    nb, ni = int(np.prod(bshape, dtype=np.int64)), int(np.prod(inner, dtype=np.int64))
    lin = np.zeros(i.shape[:-1], np.int64)
    for d in range(m):
        lin = lin * inner[d] + i[..., d]
    lin = lin.reshape(nb, -1) + (np.arange(nb, dtype=np.int64) * ni)[:, None]
    xr = k.xp.reshape(x, (nb * ni, *rest))
    out = k.xp.take(xr, k.asarray(lin.reshape(-1)), axis=0)
    return k.xp.reshape(out, tuple(i.shape[:-1]) + rest)


def _nd_indices(shape: tuple[int, ...], idx: np.ndarray, b: int) -> np.ndarray:
    m = idx.shape[-1]
    dims = np.asarray(shape[b:b + m], np.int64)
    return _norm(idx.astype(np.int64), dims)


def _gather_nd_c(k: Kernels, x: Any, indices: Any, batch_dims: int = 0) -> Any:
    i = _nd_indices(tuple(x.shape), ints(k, indices), batch_dims)
    return _gather_nd(k, x, i, batch_dims)


def _gather_nd_iv(ctx: Ctx, x: Box, indices: Box, batch_dims: int = 0) -> Box:
    b = int(batch_dims)
    m = indices.shape[-1]
    shape = indices.shape[:-1] + x.shape[b + m:]
    if indices.is_point:
        i = _nd_indices(x.shape, np.asarray(indices.value), b)

        def fn(a: np.ndarray) -> np.ndarray:
            if not x.is_point:
                a = refine(a, x.shape, range(b + m))  # the addressed dims, exactly
            return np.asarray(_gather_nd(NUMPY, a, i, b))

        return move(x, fn, shape)
    h = x.hull()
    return Box.range(h.lo, h.hi, shape, x.dtype, x.nan)


def _gather_nd_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3) or (2,)
    b = draw(st.integers(0, len(shape) - 1))
    m = draw(st.integers(1, len(shape) - b))
    q = draw_shape(draw, max_rank=1)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    dims = np.asarray(shape[b:b + m])
    idx = (rng.integers(0, 2**20, (*shape[:b], *q, m)) % dims).astype(np.int64)
    if draw(st.booleans()):
        idx = np.where(rng.integers(0, 2, idx.shape) == 1, idx - dims, idx)
    x = draw_box(draw, shape)
    if draw(st.integers(0, 4)) == 0:
        return [x, BoxSpec(0.0, float(min(shape[b:b + m]) - 1), idx.shape, "int64")], {"batch_dims": b}
    return [x, idx], {"batch_dims": b}


register(
    "GatherND", since=13, concrete=_gather_nd_c, interval=_gather_nd_iv, exact=True, overflow_rule=None,
    property="shape-only (box indices: hull of the input)", sample=_gather_nd_sample,
    doc="gather slices addressed by index tuples",
)


# ---- ScatterElements / ScatterND ----------------------------------------------------------


def _pos_elements(shape: tuple[int, ...], idx: np.ndarray, axis: int) -> np.ndarray:
    ax = _axis(axis, len(shape))
    i = _norm(idx.astype(np.int64), shape[ax])
    grid: list[np.ndarray] = list(np.indices(i.shape, sparse=True))
    grid[ax] = i
    full = tuple(np.broadcast_arrays(*grid))
    return np.asarray(np.ravel_multi_index(full, shape)).reshape(-1).astype(np.int64)


def _pos_nd(shape: tuple[int, ...], idx: np.ndarray) -> np.ndarray:
    m = idx.shape[-1]
    i = _nd_indices(shape, idx, 0)
    rest = int(np.prod(shape[m:], dtype=np.int64))
    base = np.zeros(i.shape[:-1], np.int64)
    for d in range(m):
        base = base * shape[d] + i[..., d]
    return (base[..., None] * rest + np.arange(rest, dtype=np.int64)).reshape(-1)


def _scatter(k: Kernels, data: Any, pos: np.ndarray, upd: Any, reduction: str) -> Any:
    xp = k.xp
    flat = xp.reshape(data, (-1,))
    u = xp.reshape(upd, (-1,))
    if k.name == "torch":
        import torch

        p = torch.as_tensor(pos)
        if reduction == "none":
            out = flat.index_put((p,), u)
        elif reduction == "add":
            out = flat.index_put((p,), u, accumulate=True)
        else:
            red = {"mul": "prod", "max": "amax", "min": "amin"}[reduction]
            out = torch.scatter_reduce(flat, 0, p, u, reduce=red, include_self=True)
    else:
        out = np.array(flat, copy=True)
        u = np.asarray(u)
        if reduction == "none":
            out[pos] = u
        else:
            ufunc = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}[reduction]
            ufunc.at(out, pos, u)
    return xp.reshape(out, tuple(data.shape))


def _gamma(n: np.ndarray, eps: float) -> np.ndarray:
    nu = n * eps
    with np.errstate(divide="ignore"):
        return np.where(nu < 1, nu / np.maximum(1 - nu, 1e-300), np.inf)


def _scatter_box(ctx: Ctx, data: Box, pos: np.ndarray, upd: Box, reduction: str) -> Box:
    """Bounds of a scatter with known flat positions ``pos`` (one per update element)."""
    dlo, dhi = (np.array(a, dtype=np.float64).reshape(-1) for a in data.full())
    ulo, uhi = (np.asarray(a, dtype=np.float64).reshape(-1) for a in upd.full())
    n = dlo.size
    nan = data.nan or upd.nan
    if reduction == "none":
        alo, ahi = np.full(n, np.inf), np.full(n, -np.inf)
        np.minimum.at(alo, pos, ulo)  # repeated indices: the hull of what may land there
        np.maximum.at(ahi, pos, uhi)
        hit = np.zeros(n, bool)
        hit[pos] = True
        lo, hi = np.where(hit, alo, dlo), np.where(hit, ahi, dhi)
    elif reduction in ("max", "min"):
        f = np.maximum if reduction == "max" else np.minimum
        lo, hi = dlo.copy(), dhi.copy()
        f.at(lo, pos, ulo)
        f.at(hi, pos, uhi)
    elif reduction == "add":
        lo, hi = dlo.copy(), dhi.copy()
        np.add.at(lo, pos, ulo)
        np.add.at(hi, pos, uhi)
        if data.dtype.kind == "f" or data.dtype.name == "bfloat16":
            cnt = np.bincount(pos, minlength=n).astype(np.float64)
            mag = np.maximum(np.abs(dlo), np.abs(dhi))
            np.add.at(mag, pos, np.maximum(np.abs(ulo), np.abs(uhi)))
            # the runtime's roundings (Higham's gamma) plus our own float64 ones
            err = (_gamma(cnt, ctx.fmt(data.dtype).eps) + _gamma(cnt + 1, 2.0**-53)) * mag
            lo, hi = lo - err, hi + err
        nan = nan or bool(np.isinf(dlo).any() or np.isinf(dhi).any() or np.isinf(ulo).any() or np.isinf(uhi).any())
    elif reduction == "mul":
        lo, hi = dlo.copy(), dhi.copy()
        order = np.argsort(pos, kind="stable")
        sp = pos[order]
        start = np.r_[0, np.flatnonzero(sp[1:] != sp[:-1]) + 1] if sp.size else np.zeros(0, np.int64)
        rank_sorted = np.arange(sp.size) - np.repeat(start, np.diff(np.r_[start, sp.size]))
        rank = np.empty_like(rank_sorted)
        rank[order] = rank_sorted
        for r in range(int(rank.max()) + 1 if rank.size else 0):
            sel = rank == r  # positions are distinct within one level
            p = pos[sel]
            with np.errstate(invalid="ignore"):
                c = np.stack([lo[p] * ulo[sel], lo[p] * uhi[sel], hi[p] * ulo[sel], hi[p] * uhi[sel]])
            c = np.where(np.isnan(c), 0.0, c)
            lo[p], hi[p] = c.min(axis=0), c.max(axis=0)
        if data.dtype.kind == "f" or data.dtype.name == "bfloat16":
            cnt = np.bincount(pos, minlength=n).astype(np.float64)
            err = (_gamma(cnt, ctx.fmt(data.dtype).eps) + _gamma(2 * cnt + 1, 2.0**-53)) * np.maximum(
                np.abs(lo), np.abs(hi))
            lo, hi = lo - err, hi + err
        nan = nan or bool(np.isinf(dlo).any() or np.isinf(dhi).any() or np.isinf(ulo).any() or np.isinf(uhi).any())
    else:
        raise ValueError(f"unknown reduction {reduction!r}")
    return Box(lo.reshape(data.shape), hi.reshape(data.shape), data.shape, data.dtype, nan).coarsen()


def _scatter_anywhere(data: Box, upd: Box, reduction: str) -> Box:
    """Box indices: every element keeps its value or receives some update."""
    if reduction not in ("none", "max", "min"):
        raise NotImplementedError(f"scatter with reduction {reduction!r} and computed indices")
    dlo, dhi = block_bounds(data)
    umin, umax = upd.min(), upd.max()
    lo = dlo if reduction == "max" else np.minimum(dlo, umin)
    hi = dhi if reduction == "min" else np.maximum(dhi, umax)
    return Box(lo, hi, data.shape, data.dtype, data.nan or upd.nan)


def _scatter_el_c(k: Kernels, data: Any, indices: Any, updates: Any, axis: int = 0,
                  reduction: str = "none") -> Any:
    return _scatter(k, data, _pos_elements(tuple(data.shape), ints(k, indices), axis), updates, reduction)


def _scatter_el_iv(ctx: Ctx, data: Box, indices: Box, updates: Box, axis: int = 0,
                   reduction: str = "none") -> Box:
    if not indices.is_point:
        return _scatter_anywhere(data, updates, reduction)
    return _scatter_box(ctx, data, _pos_elements(data.shape, np.asarray(indices.value), axis), updates, reduction)


def _scatter_nd_c(k: Kernels, data: Any, indices: Any, updates: Any, reduction: str = "none") -> Any:
    return _scatter(k, data, _pos_nd(tuple(data.shape), ints(k, indices)), updates, reduction)


def _scatter_nd_iv(ctx: Ctx, data: Box, indices: Box, updates: Box, reduction: str = "none") -> Box:
    if not indices.is_point:
        return _scatter_anywhere(data, updates, reduction)
    return _scatter_box(ctx, data, _pos_nd(data.shape, np.asarray(indices.value)), updates, reduction)


def _reductions(version: int) -> list[str]:
    return ["none"] + (["add", "mul"] if version >= 16 else []) + (["max", "min"] if version >= 18 else [])


def _scatter_el_sample(version: int) -> Callable[[Any], tuple[list[Any], dict[str, Any]]]:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        shape = draw_shape(draw, max_rank=3) or (3,)
        ax = draw(st.integers(-len(shape), len(shape) - 1))
        n = shape[ax % len(shape)]
        red = draw(st.sampled_from(_reductions(version)))
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        ishape = tuple(draw(st.integers(1, n)) if d == ax % len(shape) else draw(st.integers(1, s))
                       for d, s in enumerate(shape))
        if red == "none":  # distinct targets along the axis (repeats are undefined there)
            perm = np.argsort(rng.uniform(size=(*ishape[:ax % len(shape)], n, *ishape[ax % len(shape) + 1:])),
                              axis=ax)
            idx = np.take(perm, np.arange(ishape[ax]), axis=ax).astype(np.int64)
        else:
            idx = rng.integers(-n, n, ishape).astype(np.int64)
        data = draw_box(draw, shape, -3, 3)
        attrs: dict[str, Any] = {"axis": ax}
        if version >= 16:
            attrs["reduction"] = red
        if draw(st.integers(0, 4)) == 0 and (red in ("max", "min") or (red == "none" and version < 16)):
            # computed indices (a single update for `none`: repeated targets are undefined there)
            if red == "none":
                ishape = (1,) * len(shape)
            return [data, BoxSpec(0.0, float(n - 1), ishape, "int64"), draw_box(draw, ishape, -3, 3)], attrs
        return [data, idx, draw_box(draw, ishape, -3, 3)], attrs

    return sample


def _scatter_nd_sample(version: int) -> Callable[[Any], tuple[list[Any], dict[str, Any]]]:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        shape = draw_shape(draw, max_rank=3) or (3,)
        m = draw(st.integers(1, len(shape)))
        red = draw(st.sampled_from(_reductions(version)))
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        cells = int(np.prod(shape[:m]))
        q = draw(st.integers(1, cells))
        flat = rng.permutation(cells)[:q] if red == "none" else rng.integers(0, cells, q)
        idx = np.stack(np.unravel_index(flat, shape[:m]), axis=-1).astype(np.int64)
        data = draw_box(draw, shape, -3, 3)
        upd = draw_box(draw, (q, *shape[m:]), -3, 3)
        attrs = {"reduction": red} if version >= 16 else {}
        if draw(st.integers(0, 4)) == 0 and (red in ("max", "min") or (red == "none" and q == 1)):
            return [data, BoxSpec(0.0, float(min(shape[:m]) - 1), idx.shape, "int64"), upd], attrs
        return [data, idx, upd], attrs

    return sample


for _v in (13, 16, 18):
    register(
        "ScatterElements", since=_v, concrete=_scatter_el_c, interval=_scatter_el_iv, exact=True,
        property="shape-only (updates' bounds put in place; add/mul with rounding error)",
        sample=_scatter_el_sample(_v), doc="write updates along an axis (reduction: " + "/".join(_reductions(_v)) + ")",
    )
    register(
        "ScatterND", since=_v, concrete=_scatter_nd_c, interval=_scatter_nd_iv, exact=True,
        property="shape-only (updates' bounds put in place; add/mul with rounding error)",
        sample=_scatter_nd_sample(_v), doc="write slices at index tuples (reduction: " + "/".join(_reductions(_v)) + ")",
    )


# ---- NonZero / OneHot -------------------------------------------------------------------


def _nonzero_c(k: Kernels, x: Any) -> Any:
    xp = k.xp
    if len(x.shape) == 0:
        raise ValueError("NonZero of a scalar")
    nz = xp.nonzero(x)
    return xp.astype(xp.stack(list(nz), axis=0), xp.int64)


def _nonzero_iv(ctx: Ctx, x: Box) -> Box:
    if x.rank == 0:
        raise ValueError("NonZero of a scalar")
    lo, hi = x.bounds64()
    if bool(((lo > 0) | (hi < 0)).all()):  # no element can be 0: all of them are listed
        return Box.point(np.stack(np.nonzero(np.ones(x.shape, bool)), axis=0).astype(np.int64))
    if not x.nan and bool(((lo == 0) & (hi == 0)).all()):
        return Box.point(np.zeros((x.rank, 0), np.int64))
    raise NotImplementedError("NonZero: the number of non-zero elements depends on the values")


def _nonzero_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return [BoxSpec(0.5, 4.0, shape)], {}
    if kind == 1:
        return [BoxSpec(-4.0, -0.25, shape)], {}
    return [BoxSpec(0.0, 0.0, shape)], {}


register(
    "NonZero", since=13, concrete=_nonzero_c, interval=_nonzero_iv, exact=True, overflow_rule=None,
    differentiable=False, property="shape-only (known when no element or every element can be 0)",
    sample=_nonzero_sample, doc="indices of non-zero elements (data-dependent shape)",
)


def _onehot_mask(idx: np.ndarray, depth: int, axis: int) -> np.ndarray:
    r = idx.ndim
    ax = _axis(axis, r + 1)
    i = np.where(idx < 0, idx + depth, idx)
    i = np.expand_dims(i, ax)
    tgt = np.arange(depth).reshape((1,) * ax + (depth,) + (1,) * (r - ax))
    return i == tgt


def _depth(v: Any) -> int:
    d = np.asarray(v).reshape(-1)
    if d.size != 1:
        raise ValueError("OneHot depth must hold one value")
    return int(d[0])


def _onehot_c(k: Kernels, indices: Any, depth: Any, values: Any, axis: int = -1) -> Any:
    mask = _onehot_mask(np.asarray(k.to_numpy(indices)).astype(np.int64), _depth(k.to_numpy(depth)), axis)
    v = k.xp.reshape(values, (-1,))
    return k.xp.where(k.asarray(mask), v[1], v[0])


def _onehot_iv(ctx: Ctx, indices: Box, depth: Box, values: Box, axis: int = -1) -> Box:
    d = _depth(need_point(depth, "OneHot depth"))
    r = indices.rank
    ax = _axis(axis, r + 1)
    shape = (*indices.shape[:ax], d, *indices.shape[ax:])
    vlo, vhi = (np.asarray(a).reshape(-1) for a in values.bounds64())
    (off_lo, on_lo), (off_hi, on_hi) = vlo[:2], vhi[:2]
    if indices.is_point:
        mask = _onehot_mask(np.asarray(indices.value).astype(np.int64), d, axis)
        if values.is_point:
            return Box.point(np.where(mask, values.value.reshape(-1)[1], values.value.reshape(-1)[0]))
        return Box(np.where(mask, on_lo, off_lo), np.where(mask, on_hi, off_hi), shape, values.dtype,
                   values.nan).coarsen()
    # unknown indices: position j along the depth axis is `on` only if some index can hit it
    possible = np.zeros(d, bool)
    pos = _index_positions(indices, d)
    lo_i, hi_i = int(np.ceil(indices.min())), int(np.floor(indices.max()))
    if pos is not None:
        j = np.arange(d)
        possible = ((j >= lo_i) & (j <= hi_i)) | ((j - d >= lo_i) & (j - d <= hi_i))
    blk = (1,) * ax + (d,) + (1,) * (r - ax)
    lo = np.where(possible, min(on_lo, off_lo), off_lo).reshape(blk)
    hi = np.where(possible, max(on_hi, off_hi), off_hi).reshape(blk)
    return Box(lo, hi, shape, values.dtype, values.nan).coarsen()


def _onehot_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    ishape = draw_shape(draw, max_rank=2) or (2,)
    depth = draw(st.integers(1, 5))
    ax = draw(st.integers(-len(ishape) - 1, len(ishape)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    a, b = draw_interval(draw, -3, 3)
    c, e = draw_interval(draw, -3, 3)
    values: Any = np.array([a, b], np.float32)
    if draw(st.booleans()):  # [off, on] themselves boxes
        values = BoxSpec(np.array([a, c]), np.array([b, e]), (2,))  # type: ignore[arg-type]
    if draw(st.integers(0, 3)) == 0:
        lo, hi = sorted((draw(st.integers(-depth, depth - 1)), draw(st.integers(-depth, depth - 1))))
        idx: Any = BoxSpec(float(lo), float(hi), ishape, "int64")
    else:
        idx = rng.integers(-depth, depth + 1, ishape).astype(np.int64)
    # depth as a scalar: onnx.reference rejects the (also valid) one-element vector
    return [idx, np.array(depth, np.int64), values], {"axis": ax}


register(
    "OneHot", since=11, concrete=_onehot_c, interval=_onehot_iv, exact=True, overflow_rule=None,
    property="shape-only (unknown indices: off or on where reachable)", sample=_onehot_sample,
    doc="one-hot encoding with [off, on] values",
)


# ---- TopK / ArgMax / ArgMin / Hardmax ---------------------------------------------------


def _topk_k(v: Any) -> int:
    kk = np.asarray(v).reshape(-1)
    if kk.size != 1 or kk[0] < 0:
        raise ValueError("TopK K must be one non-negative value")
    return int(kk[0])


def _topk_c(k: Kernels, x: Any, K: Any, axis: int = -1, largest: int = 1, sorted: int = 1) -> Any:
    xp = k.xp
    ax = _axis(axis, len(x.shape))
    kk = _topk_k(k.to_numpy(K))
    # stable: among equal values the lower index comes first, as ONNX asks (largest or not)
    idx = xp.argsort(x, axis=ax, descending=bool(largest), stable=True)
    idx = xp.take(idx, k.asarray(np.arange(kk, dtype=np.int64)), axis=ax)
    return xp.take_along_axis(x, idx, axis=ax), xp.astype(idx, xp.int64)


def _topk_iv(ctx: Ctx, x: Box, K: Box, axis: int = -1, largest: int = 1, sorted: int = 1) -> tuple[Box, Box]:
    ax = _axis(axis, x.rank)
    kk = _topk_k(need_point(K, "TopK K"))
    n = x.shape[ax]
    if kk > n:
        raise ValueError(f"TopK K={kk} exceeds the axis length {n}")
    shape = (*x.shape[:ax], kk, *x.shape[ax + 1:])
    if x.is_point:
        v, i = _topk_c(NUMPY, np.asarray(x.value), np.asarray([kk]), axis, largest, sorted)
        return Box.point(np.asarray(v)), Box.point(np.asarray(i))
    lo, hi = block_bounds(x)
    if lo.shape[ax] > 1 and not x.nan:
        # the j-th largest element is monotone in every element: order statistics of the bounds
        slo, shi = np.sort(lo, axis=ax), np.sort(hi, axis=ax)
        if largest:
            slo, shi = np.flip(slo, axis=ax), np.flip(shi, axis=ax)
        take = np.arange(kk)
        lo, hi = np.take(slo, take, axis=ax), np.take(shi, take, axis=ax)
        if not sorted:  # any order of the k values
            lo, hi = lo.min(axis=ax, keepdims=True), hi.max(axis=ax, keepdims=True)
    elif lo.shape[ax] > 1:  # NaN can sit anywhere in the order: values are some of the inputs
        lo, hi = lo.min(axis=ax, keepdims=True), hi.max(axis=ax, keepdims=True)
    values = Box(lo, hi, shape, x.dtype, x.nan).coarsen()
    return values, Box.range(0.0, float(max(n - 1, 0)), shape, _INT)


def _topk_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3) or (4,)
    ax = draw(st.integers(-len(shape), len(shape) - 1))
    kk = draw(st.integers(0, shape[ax]))
    attrs = {"axis": ax, "largest": draw(st.integers(0, 1)), "sorted": 1}
    return [draw_box(draw, shape), np.array([kk], np.int64)], attrs


register(
    "TopK", since=11, concrete=_topk_c, interval=_topk_iv, exact=True, overflow_rule=None,
    property="order statistics of the bounds (values); indices in [0, n-1]", sample=_topk_sample,
    doc="k largest or smallest values along an axis, with their indices",
)


def _arg_c(largest: bool) -> Callable[..., Any]:
    def c(k: Kernels, x: Any, axis: int = 0, keepdims: int = 1, select_last_index: int = 0) -> Any:
        xp = k.xp
        ax = _axis(axis, len(x.shape))
        f = xp.argmax if largest else xp.argmin
        if select_last_index:
            n = int(x.shape[ax])
            i = (n - 1) - f(xp.flip(x, axis=ax), axis=ax, keepdims=bool(keepdims))
        else:
            i = f(x, axis=ax, keepdims=bool(keepdims))
        return xp.astype(i, xp.int64)

    return c


def _arg_iv(largest: bool) -> Callable[..., Box]:
    def rule(ctx: Ctx, x: Box, axis: int = 0, keepdims: int = 1, select_last_index: int = 0) -> Box:
        ax = _axis(axis, x.rank)
        n = x.shape[ax]
        shape = x.shape[:ax] + ((1,) if keepdims else ()) + x.shape[ax + 1:]
        if x.is_point:
            return Box.point(np.asarray(_arg_c(largest)(NUMPY, np.asarray(x.value), axis, keepdims,
                                                        select_last_index)))
        lo, hi = block_bounds(x)
        if lo.shape[ax] == 1 or x.nan:
            first, last = np.zeros(lo.shape[:ax] + lo.shape[ax + 1:]), np.full(lo.shape[:ax] + lo.shape[ax + 1:], n - 1.0)
        else:
            # i can win only if it can reach the best value some other element surely attains
            cand = hi >= lo.max(axis=ax, keepdims=True) if largest else lo <= hi.min(axis=ax, keepdims=True)
            first = np.argmax(cand, axis=ax).astype(np.float64)
            last = (n - 1) - np.argmax(np.flip(cand, axis=ax), axis=ax).astype(np.float64)
        if keepdims:
            first, last = np.expand_dims(first, ax), np.expand_dims(last, ax)
        return Box(first, last, shape, _INT).coarsen()

    return rule


def _arg_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3) or (3,)
    ax = draw(st.integers(-len(shape), len(shape) - 1))
    attrs = {"axis": ax, "keepdims": draw(st.integers(0, 1)), "select_last_index": draw(st.integers(0, 1))}
    return [draw_box(draw, shape)], attrs


for _name, _largest in (("ArgMax", True), ("ArgMin", False)):
    register(
        _name, since=13, concrete=_arg_c(_largest), interval=_arg_iv(_largest), exact=True,
        overflow_rule=None, differentiable=False,
        property="candidates whose bounds can reach the extreme", sample=_arg_sample,
        doc=f"index of the {'largest' if _largest else 'smallest'} element along an axis (int64)",
    )


def _hardmax_c(k: Kernels, x: Any, axis: int = -1) -> Any:
    xp = k.xp
    ax = _axis(axis, len(x.shape))
    n = int(x.shape[ax])
    if n == 0 or 0 in tuple(x.shape):
        return x
    i = xp.argmax(x, axis=ax, keepdims=True)
    pos = xp.reshape(xp.arange(n), (1,) * ax + (n,) + (1,) * (len(x.shape) - ax - 1))
    return xp.astype(pos == i, x.dtype)


def _hardmax_iv(ctx: Ctx, x: Box, axis: int = -1) -> Box:
    ax = _axis(axis, x.rank)
    n = x.shape[ax]
    lo, hi = block_bounds(x)
    if n == 1:
        return Box(np.ones_like(lo), np.ones_like(hi), x.shape, x.dtype, False)
    if lo.shape[ax] == 1 or x.nan:
        return Box(np.zeros_like(lo), np.ones_like(hi), x.shape, x.dtype, False).coarsen()
    # surely 1: above every other element's upper bound; surely 0: below someone's lower bound
    top2 = -np.sort(-hi, axis=ax)
    m1 = np.take(top2, [0], axis=ax)
    m2 = np.take(top2, [1], axis=ax)
    others_hi = np.where(hi == m1, m2, m1)
    out_lo = (lo > others_hi).astype(np.float64)
    out_hi = (hi >= lo.max(axis=ax, keepdims=True)).astype(np.float64)
    return Box(out_lo, out_hi, x.shape, x.dtype, False).coarsen()


def _hardmax_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3) or (3,)
    return [draw_box(draw, shape)], {"axis": draw(st.integers(-len(shape), len(shape) - 1))}


register(
    "Hardmax", since=13, concrete=_hardmax_c, interval=_hardmax_iv, exact=True, overflow_rule=None,
    codomain=(0.0, 1.0), differentiable=False, property="candidates whose bounds can reach the max",
    sample=_hardmax_sample, doc="one-hot of the (first) maximum along an axis",
)


# ---- Trilu ------------------------------------------------------------------------------


def _trilu_k(v: Any) -> int:
    return 0 if v is None else int(np.asarray(v).reshape(-1)[0])


def _trilu_mask(rows: int, cols: int, kk: int, upper: int) -> np.ndarray:
    d = np.arange(cols)[None, :] - np.arange(rows)[:, None]
    return d >= kk if upper else d <= kk


def _trilu_c(k: Kernels, x: Any, kk: Any = None, upper: int = 1) -> Any:
    off = _trilu_k(None if kk is None else k.to_numpy(kk))
    return k.xp.triu(x, k=off) if upper else k.xp.tril(x, k=off)


def _trilu_iv(ctx: Ctx, x: Box, kk: Box | None = None, upper: int = 1) -> Box:
    off = _trilu_k(need_point(kk, "Trilu k"))
    if x.rank < 2:
        raise ValueError("Trilu needs rank >= 2")
    mask = _trilu_mask(x.shape[-2], x.shape[-1], off, upper)
    if mask.all():
        return x
    lo, hi = block_bounds(x)
    if not mask.any():
        return Box(np.zeros_like(lo), np.zeros_like(hi), x.shape, x.dtype, x.nan).coarsen()
    lo = np.where(mask, refine(lo, x.shape, (-2 + x.rank, -1 + x.rank)), 0.0)
    hi = np.where(mask, refine(hi, x.shape, (-2 + x.rank, -1 + x.rank)), 0.0)
    return Box(lo, hi, x.shape, x.dtype, x.nan).coarsen()


def _trilu_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=3)))
    x = draw_box(draw, shape)
    attrs = {"upper": draw(st.integers(0, 1))}
    if draw(st.booleans()):
        return [x], attrs
    return [x, np.array(draw(st.integers(-4, 4)), np.int64)], attrs


register(
    "Trilu", since=14, concrete=_trilu_c, interval=_trilu_iv, exact=True, overflow_rule=None,
    property="shape-only (masked part is exactly 0)", sample=_trilu_sample,
    doc="upper or lower triangle of the last two dims",
)

_ = draw_interval

"""Data movement: Concat Split Squeeze Unsqueeze Transpose Expand Tile Slice Pad DepthToSpace
SpaceToDepth Size.

These ops only move values, so their interval rules move the *bounds*: the lo/hi arrays of a
box (one entry per block: a dimension is either one block or exact) go through the same
movement as the data. A dimension the op does not mix keeps its partition, so a coarse box stays
coarse (Transpose permutes the block arrays, Slice of a coarse dimension is still one block,
Tile of a coarse dimension needs no copies). Where an op mixes dimensions (DepthToSpace) the
mixed dimensions are refined first and `Box.coarsen` recompresses the result. Point boxes move
exactly in their own dtype; shape-like inputs (axes, pads, repeats, starts...) must be points.

The helpers `ints`, `block_bounds` and `move` are shared with `numsentry.ops.indexing` and
`numsentry.ops.generate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.kernels import NUMPY, Kernels
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import draw_interval, draw_shape

__all__ = ["block_bounds", "draw_box", "ints", "move", "need_point", "refine", "slice_indices"]


# ---- shared helpers ---------------------------------------------------------------------


def ints(k: Kernels, x: Any) -> np.ndarray:
    """An int64 NumPy copy of a shape/axes/indices input given as an array of backend ``k``."""
    return np.asarray(k.to_numpy(x) if not isinstance(x, np.ndarray) else x).astype(np.int64)


def need_point(b: Box | None, what: str) -> np.ndarray | None:
    """The exact value of a shape-like input, or NotImplementedError when it is not known."""
    if b is None:
        return None
    if not b.is_point:
        raise NotImplementedError(f"{what} is computed, not constant (range {b.describe()})")
    return np.asarray(b.value)


def block_bounds(x: Box) -> tuple[np.ndarray, np.ndarray]:
    """A box's float64 bounds with one axis per tensor dimension and one common block shape.

    Each axis has length 1 (one block) or the dimension's length (exact).
    """
    lo, hi = x.bounds64()
    r = x.rank
    lo = lo.reshape((1,) * (r - lo.ndim) + lo.shape)
    hi = hi.reshape((1,) * (r - hi.ndim) + hi.shape)
    if lo.shape != hi.shape:
        lo, hi = np.broadcast_arrays(lo, hi)
    return lo, hi


def move(x: Box, fn: Callable[[np.ndarray], np.ndarray], shape: Sequence[int]) -> Box:
    """Apply a data movement ``fn`` to a point's value, or to the block bounds of a box.

    ``fn`` must map a block array (length 1 along coarse dimensions) to the output's block array
    (length 1 or the output's length along each dimension).
    """
    if x.is_point:
        return Box.point(np.asarray(fn(np.asarray(x.value))))
    lo, hi = block_bounds(x)
    return Box(np.asarray(fn(lo)), np.asarray(fn(hi)), tuple(int(s) for s in shape), x.dtype, x.nan).coarsen()


def refine(a: np.ndarray, shape: Sequence[int], axes: Sequence[int]) -> np.ndarray:
    """Broadcast a block array to full length along ``axes`` (other axes unchanged)."""
    target = list(a.shape)
    for ax in axes:
        target[ax] = int(shape[ax])
    return np.broadcast_to(a, tuple(target))


def _axis(axis: int, rank: int) -> int:
    if not -max(rank, 1) <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def slice_indices(dim: int, start: int, end: int, step: int) -> np.ndarray:
    """Indices ONNX Slice takes along one dimension (starts/ends clamped as the spec says)."""
    if step == 0:
        raise ValueError("Slice step cannot be 0")
    start, end = int(start), int(end)
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return np.arange(start, end, step, dtype=np.int64)


def draw_box(draw: Any, shape: Sequence[int], low: float = -5.0, high: float = 5.0,
             dtype: str = "float32") -> BoxSpec:
    """Test helper: a BoxSpec that is coarse, or refined along some dimensions (array bounds)."""
    from hypothesis import strategies as st

    shape = tuple(int(s) for s in shape)
    if not shape or draw(st.booleans()):
        lo, hi = draw_interval(draw, low, high)
        if hi - lo < 0.25:  # keep points of the box distinct (ties make gradients ambiguous)
            lo, hi = (lo, lo + 0.5) if lo + 0.5 <= high else (hi - 0.5, hi)
        return BoxSpec(lo, hi, shape, dtype)
    blk = tuple(s if draw(st.booleans()) else 1 for s in shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    a = rng.uniform(low, high, blk).astype(np.float32).astype(np.float64)
    b = rng.uniform(low, high, blk).astype(np.float32).astype(np.float64)
    if dtype != "float32":
        a, b = np.round(a), np.round(b)
    return BoxSpec(np.minimum(a, b), np.maximum(a, b), shape, dtype)  # type: ignore[arg-type]


def _take(k: Kernels, x: Any, idx: np.ndarray, axis: int) -> Any:
    return k.xp.take(x, k.asarray(idx.astype(np.int64)), axis=axis)


# ---- Concat / Split ---------------------------------------------------------------------


def _concat_c(k: Kernels, *xs: Any, axis: int = 0) -> Any:
    return k.xp.concat(list(xs), axis=axis)


def _concat_iv(ctx: Ctx, *xs: Box, axis: int = 0) -> Box:
    r = xs[0].rank
    ax = _axis(axis, r)
    shape = list(xs[0].shape)
    shape[ax] = sum(x.shape[ax] for x in xs)
    if all(x.is_point for x in xs):
        return Box.point(np.concatenate([np.asarray(x.value) for x in xs], axis=ax))
    parts = [block_bounds(x) for x in xs]
    other = tuple(np.broadcast_shapes(*(tuple(1 if d == ax else s for d, s in enumerate(lo.shape))
                                        for lo, _ in parts)))
    nonempty = [(x, lo, hi) for x, (lo, hi) in zip(xs, parts, strict=True) if x.shape[ax] > 0]
    nan = any(x.nan for x in xs)
    if nonempty and all(lo.shape[ax] == 1 for _, lo, _ in nonempty):
        lo0 = np.broadcast_to(nonempty[0][1], other)
        hi0 = np.broadcast_to(nonempty[0][2], other)
        if all(np.array_equal(np.broadcast_to(lo, other), lo0) and np.array_equal(np.broadcast_to(hi, other), hi0)
               for _, lo, hi in nonempty):
            return Box(lo0, hi0, tuple(shape), xs[0].dtype, nan)  # equal coarse parts stay coarse
    los, his = [], []
    for x, (lo, hi) in zip(xs, parts, strict=True):
        tgt = tuple(x.shape[ax] if d == ax else s for d, s in enumerate(other))
        los.append(np.broadcast_to(lo, tgt))
        his.append(np.broadcast_to(hi, tgt))
    return Box(np.concatenate(los, axis=ax), np.concatenate(his, axis=ax), tuple(shape), xs[0].dtype,
               nan).coarsen()


def _concat_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3) or (2,)
    ax = draw(st.integers(-len(shape), len(shape) - 1))
    n = draw(st.integers(1, 3))
    same = draw(st.booleans())
    lo0, hi0 = draw_interval(draw, -5, 5)
    specs: list[Any] = []
    for _ in range(n):
        s = list(shape)
        s[ax] = draw(st.integers(1, 3))
        if draw(st.integers(0, 4)) == 0:
            specs.append(np.arange(int(np.prod(s)), dtype=np.float32).reshape(s))
            continue
        if same:
            specs.append(BoxSpec(lo0, hi0, tuple(s)))
        else:
            specs.append(draw_box(draw, s))
    return specs, {"axis": ax}


register(
    "Concat", since=13, concrete=_concat_c, interval=_concat_iv, exact=True, overflow_rule=None,
    property="shape-only (bounds concatenated; equal coarse parts stay coarse)", sample=_concat_sample,
    doc="join tensors along an axis",
)


def split_sizes(n: int, count: int, split: np.ndarray | None, num_outputs: int | None) -> list[int]:
    """Chunk lengths of Split (explicit ``split``, or ``num_outputs``/``count`` near-equal chunks)."""
    if split is not None:
        sizes = [int(s) for s in np.asarray(split).reshape(-1)]
        if sum(sizes) != n:
            raise ValueError(f"Split sizes {sizes} do not add up to {n}")
        return sizes
    parts = int(num_outputs) if num_outputs else count
    if parts <= 0:
        raise ValueError("Split needs `split`, `num_outputs` or a known number of outputs")
    if n % parts == 0:
        return [n // parts] * parts
    div = n // parts + 1  # as the spec: equal chunks, the last one smaller
    sizes = [div] * parts
    sizes[-1] += n - sum(sizes)
    if sizes[-1] < 0:
        raise ValueError(f"cannot split {n} into {parts} chunks")
    return sizes


def _split_c(k: Kernels, x: Any, split: Any = None, axis: int = 0, num_outputs: int | None = None) -> Any:
    ax = _axis(axis, len(x.shape))
    sp = None if split is None else ints(k, split)
    if sp is None and not num_outputs:
        raise NotImplementedError("Split without `split`: the number of outputs is not known here")
    sizes = split_sizes(int(x.shape[ax]), 0, sp, num_outputs)
    out, pos = [], 0
    for s in sizes:
        out.append(_take(k, x, np.arange(pos, pos + s), ax))
        pos += s
    return tuple(out)


def _split_iv(ctx: Ctx, x: Box, split: Box | None = None, axis: int = 0,
              num_outputs: int | None = None) -> tuple[Box, ...]:
    ax = _axis(axis, x.rank)
    sp = need_point(split, "Split sizes")
    sizes = split_sizes(x.shape[ax], len(ctx.output_shapes), sp, num_outputs)
    outs, pos = [], 0
    for s in sizes:
        idx = np.arange(pos, pos + s)
        shape = list(x.shape)
        shape[ax] = s

        def fn(a: np.ndarray, idx: np.ndarray = idx) -> np.ndarray:
            return a if a.shape[ax] == 1 and not x.is_point else np.take(a, idx, ax)

        outs.append(move(x, fn, shape))
        pos += s
    return tuple(outs)


def _split_sample(version: int) -> Callable[[Any], tuple[list[Any], dict[str, Any]]]:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        shape = draw_shape(draw, max_rank=3) or (4,)
        ax = draw(st.integers(-len(shape), len(shape) - 1))
        n = shape[ax]
        x = draw_box(draw, shape)
        if version >= 18 and draw(st.booleans()):
            parts = draw(st.integers(1, n))
            if n % parts and (n // parts + 1) * (parts - 1) >= n:
                parts = 1  # that split would leave an empty or negative last chunk
            return [x], {"axis": ax, "num_outputs": parts}
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=2)))
        sizes = np.diff([0, *cuts, n]).astype(np.int64)
        return [x, sizes], {"axis": ax}

    return sample


register(
    "Split", since=13, concrete=_split_c, interval=_split_iv, overflow_rule=None,
    property="shape-only (slices of the bounds)", sample=_split_sample(13),
    doc="split a tensor into chunks along an axis (sizes from the `split` input)",
)
register(
    "Split", since=18, concrete=_split_c, interval=_split_iv, exact=True, overflow_rule=None,
    property="shape-only (slices of the bounds)", sample=_split_sample(18),
    doc="split a tensor into chunks along an axis (`split` input or `num_outputs`)",
)


# ---- Squeeze / Unsqueeze / Transpose / Expand / Tile ------------------------------------


def _squeeze_axes(shape: Sequence[int], axes: np.ndarray | None) -> tuple[int, ...]:
    r = len(shape)
    if axes is None:
        return tuple(i for i, s in enumerate(shape) if s == 1)
    out = tuple(sorted({_axis(int(a), r) for a in np.asarray(axes).reshape(-1)}))
    if any(shape[a] != 1 for a in out):
        raise ValueError(f"Squeeze of a dimension that is not 1: shape {tuple(shape)}, axes {out}")
    return out


def _squeeze_c(k: Kernels, x: Any, axes: Any = None) -> Any:
    ax = _squeeze_axes(tuple(x.shape), None if axes is None else ints(k, axes))
    return k.xp.reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in ax))


def _squeeze_iv(ctx: Ctx, x: Box, axes: Box | None = None) -> Box:
    ax = _squeeze_axes(x.shape, need_point(axes, "Squeeze axes"))
    shape = tuple(s for i, s in enumerate(x.shape) if i not in ax)
    return move(x, lambda a: np.squeeze(a, axis=ax), shape)


def _unsqueeze_shape(shape: Sequence[int], axes: np.ndarray) -> tuple[int, ...]:
    r = len(shape) + int(np.asarray(axes).size)
    ax = sorted({_axis(int(a), r) for a in np.asarray(axes).reshape(-1)})
    if len(ax) != int(np.asarray(axes).size):
        raise ValueError("Unsqueeze axes repeat")
    it = iter(shape)
    return tuple(1 if i in ax else next(it) for i in range(r))


def _unsqueeze_c(k: Kernels, x: Any, axes: Any) -> Any:
    return k.xp.reshape(x, _unsqueeze_shape(tuple(x.shape), ints(k, axes)))


def _unsqueeze_iv(ctx: Ctx, x: Box, axes: Box) -> Box:
    ax = need_point(axes, "Unsqueeze axes")
    assert ax is not None
    shape = _unsqueeze_shape(x.shape, ax)
    return move(x, lambda a: a.reshape(_unsqueeze_shape(a.shape, ax)), shape)


def _squeeze_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3)
    pos = draw(st.integers(0, len(shape)))
    shape = (*shape[:pos], 1, *shape[pos:])
    x = draw_box(draw, shape)
    if draw(st.booleans()):
        return [x, None], {}
    ones = [i for i, s in enumerate(shape) if s == 1]
    picked = draw(st.lists(st.sampled_from(ones), min_size=1, max_size=len(ones), unique=True))
    neg = draw(st.booleans())
    return [x, np.array([a - len(shape) if neg else a for a in picked], np.int64)], {}


def _unsqueeze_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3)
    n = draw(st.integers(1, 2))
    r = len(shape) + n
    axes = draw(st.lists(st.integers(-r, r - 1), min_size=n, max_size=n,
                         unique_by=lambda a: a % r))
    return [draw_box(draw, shape), np.array(axes, np.int64)], {}


register(
    "Squeeze", since=13, concrete=_squeeze_c, interval=_squeeze_iv, exact=True, overflow_rule=None,
    property="shape-only", sample=_squeeze_sample, doc="drop dimensions of length 1",
)
register(
    "Unsqueeze", since=13, concrete=_unsqueeze_c, interval=_unsqueeze_iv, exact=True, overflow_rule=None,
    property="shape-only", sample=_unsqueeze_sample, doc="insert dimensions of length 1",
)


def _perm(rank: int, perm: Sequence[int] | None) -> tuple[int, ...]:
    if perm is None:
        return tuple(range(rank))[::-1]
    p = tuple(_axis(int(a), rank) for a in perm)
    if sorted(p) != list(range(rank)):
        raise ValueError(f"Transpose perm {list(perm)} is not a permutation of rank {rank}")
    return p


def _transpose_c(k: Kernels, x: Any, perm: Sequence[int] | None = None) -> Any:
    return k.xp.permute_dims(x, _perm(len(x.shape), perm))


def _transpose_iv(ctx: Ctx, x: Box, perm: Sequence[int] | None = None) -> Box:
    p = _perm(x.rank, perm)
    return move(x, lambda a: np.transpose(a, p), tuple(x.shape[i] for i in p))


def _transpose_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=4)
    x = draw_box(draw, shape)
    if not shape or draw(st.booleans()):
        return [x], {}
    return [x], {"perm": list(draw(st.permutations(range(len(shape)))))}


register(
    "Transpose", since=13, concrete=_transpose_c, interval=_transpose_iv, exact=True, overflow_rule=None,
    property="shape-only (bounds permuted)", sample=_transpose_sample, doc="permute dimensions",
)


def _expand_shape(shape: Sequence[int], target: np.ndarray) -> tuple[int, ...]:
    return tuple(int(s) for s in np.broadcast_shapes(tuple(shape), tuple(int(t) for t in target.reshape(-1))))


def _expand_c(k: Kernels, x: Any, shape: Any) -> Any:
    return k.xp.broadcast_to(x, _expand_shape(tuple(x.shape), ints(k, shape)))


def _expand_iv(ctx: Ctx, x: Box, shape: Box) -> Box:
    tgt = need_point(shape, "Expand shape")
    assert tgt is not None
    out = _expand_shape(x.shape, tgt)
    if x.is_point:
        return Box.point(np.broadcast_to(x.value, out))
    lo, hi = block_bounds(x)
    pad = (1,) * (len(out) - lo.ndim)
    # copies of one element share its bounds: a broadcast dimension stays one block
    return Box(lo.reshape(pad + lo.shape), hi.reshape(pad + hi.shape), out, x.dtype, x.nan)


def _expand_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3)
    x = tuple(s if draw(st.booleans()) else 1 for s in shape)
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
    tgt = extra + tuple(s if draw(st.booleans()) else 1 for s in shape)
    return [draw_box(draw, x), np.array(tgt, np.int64)], {}


register(
    "Expand", since=13, concrete=_expand_c, interval=_expand_iv, exact=True, overflow_rule=None,
    property="shape-only (broadcast dims stay one block)", sample=_expand_sample,
    doc="broadcast to a shape",
)


def _tile_c(k: Kernels, x: Any, repeats: Any) -> Any:
    return k.xp.tile(x, tuple(int(r) for r in ints(k, repeats).reshape(-1)))


def _tile_iv(ctx: Ctx, x: Box, repeats: Box) -> Box:
    reps = need_point(repeats, "Tile repeats")
    assert reps is not None
    reps = reps.reshape(-1).astype(np.int64)
    if reps.size != x.rank or (reps < 0).any():
        raise ValueError(f"Tile repeats {reps.tolist()} do not fit rank {x.rank}")
    shape = tuple(int(s * r) for s, r in zip(x.shape, reps, strict=True))

    def fn(a: np.ndarray) -> np.ndarray:
        # one block repeated is still one block; exact dimensions are tiled
        eff = tuple(int(r) if (x.is_point or a.shape[d] > 1 or r == 0) else 1 for d, r in enumerate(reps))
        return np.tile(a, eff)

    return move(x, fn, shape)


def _tile_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3)
    reps = [draw(st.integers(1, 3)) for _ in shape]
    return [draw_box(draw, shape), np.array(reps, np.int64)], {}


register(
    "Tile", since=13, concrete=_tile_c, interval=_tile_iv, exact=True, overflow_rule=None,
    property="shape-only (coarse dims need no copies)", sample=_tile_sample, doc="repeat a tensor",
)


# ---- Slice ------------------------------------------------------------------------------


def _slice_plan(shape: Sequence[int], starts: np.ndarray, ends: np.ndarray, axes: np.ndarray | None,
                steps: np.ndarray | None) -> dict[int, np.ndarray]:
    r = len(shape)
    starts, ends = starts.reshape(-1), ends.reshape(-1)
    ax = list(range(len(starts))) if axes is None else [_axis(int(a), r) for a in axes.reshape(-1)]
    st = np.ones(len(starts), np.int64) if steps is None else steps.reshape(-1)
    if len(set(ax)) != len(ax):
        raise ValueError("Slice axes repeat")
    return {a: slice_indices(shape[a], int(s), int(e), int(t)) for a, s, e, t in zip(ax, starts, ends, st, strict=True)}


def _slice_c(k: Kernels, x: Any, starts: Any, ends: Any, axes: Any = None, steps: Any = None) -> Any:
    plan = _slice_plan(tuple(x.shape), ints(k, starts), ints(k, ends),
                       None if axes is None else ints(k, axes), None if steps is None else ints(k, steps))
    for a, idx in plan.items():
        x = _take(k, x, idx, a)
    return x


def _slice_iv(ctx: Ctx, x: Box, starts: Box, ends: Box, axes: Box | None = None,
              steps: Box | None = None) -> Box:
    s, e = need_point(starts, "Slice starts"), need_point(ends, "Slice ends")
    assert s is not None and e is not None
    plan = _slice_plan(x.shape, s, e, need_point(axes, "Slice axes"), need_point(steps, "Slice steps"))
    shape = list(x.shape)
    for a, idx in plan.items():
        shape[a] = len(idx)

    def fn(arr: np.ndarray) -> np.ndarray:
        for a, idx in plan.items():
            if x.is_point or arr.shape[a] > 1:  # a slice of one block is that block
                arr = np.take(arr, idx, axis=a)
        return arr

    return move(x, fn, shape)


def _slice_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3) or (4,)
    r = len(shape)
    axes = draw(st.lists(st.integers(0, r - 1), min_size=1, max_size=r, unique=True))
    starts, ends, steps = [], [], []
    for a in axes:
        n = shape[a]
        step = draw(st.sampled_from([1, 1, 2, -1, -2]))
        starts.append(draw(st.integers(-n - 1, n + 1)))
        ends.append(draw(st.sampled_from([draw(st.integers(-n - 1, n + 1)), 2**62, -(2**62)])))
        steps.append(step)
    x = draw_box(draw, shape)
    ax = np.array([a - r if draw(st.booleans()) else a for a in axes], np.int64)
    if draw(st.booleans()) and all(t == 1 for t in steps) and axes == list(range(len(axes))):
        return [x, np.array(starts, np.int64), np.array(ends, np.int64)], {}
    return [x, np.array(starts, np.int64), np.array(ends, np.int64), ax, np.array(steps, np.int64)], {}


register(
    "Slice", since=13, concrete=_slice_c, interval=_slice_iv, exact=True, overflow_rule=None,
    property="shape-only (a slice of a coarse dim stays coarse)", sample=_slice_sample,
    doc="strided slice along some axes",
)


# ---- Pad ----------------------------------------------------------------------------------


def _pad_index(n: int, begin: int, end: int, mode: str) -> np.ndarray:
    """Source index of every output position along one axis (non-constant modes, pads >= 0)."""
    pos = np.arange(-begin, n + end, dtype=np.int64)
    if mode == "edge":
        return np.clip(pos, 0, n - 1)
    if mode == "wrap":
        return np.mod(pos, n)
    if mode == "reflect":
        if n == 1:
            return np.zeros_like(pos)
        period = 2 * (n - 1)
        j = np.mod(pos, period)
        return np.where(j >= n, period - j, j)
    raise ValueError(f"Pad mode {mode!r} is not one of constant, reflect, edge, wrap")


def _pad_axis(k: Kernels, x: Any, ax: int, begin: int, end: int, mode: str, value: Any) -> Any:
    """Pad (or crop, for negative pads) ``x`` along one axis."""
    n = int(x.shape[ax])
    if begin < 0 or end < 0:  # negative pads remove elements first
        x = _take(k, x, np.arange(max(-begin, 0), n - max(-end, 0)), ax)
        begin, end, n = max(begin, 0), max(end, 0), int(x.shape[ax])
    if begin == 0 and end == 0:
        return x
    if mode != "constant":
        if n == 0:
            raise ValueError(f"Pad mode {mode!r} of an empty axis")
        return _take(k, x, _pad_index(n, begin, end, mode), ax)
    xp = k.xp
    parts = []
    for m in (begin, end):
        shape = list(x.shape)
        shape[ax] = m
        # zeros + value (not full): value may be a 0-d tensor whose gradient we keep
        parts.append(xp.zeros(tuple(shape), dtype=x.dtype) + value if m else None)
    return xp.concat([p for p in (parts[0], x, parts[1]) if p is not None], axis=ax)


def _pad_plan(rank: int, pads: np.ndarray, axes: np.ndarray | None) -> list[tuple[int, int, int]]:
    ax = list(range(rank)) if axes is None else [_axis(int(a), rank) for a in axes.reshape(-1)]
    p = pads.reshape(-1)
    if len(p) != 2 * len(ax):
        raise ValueError(f"Pad: {len(p)} pads for {len(ax)} axes")
    return [(a, int(p[i]), int(p[i + len(ax)])) for i, a in enumerate(ax)]


def _scalar(k: Kernels, v: Any, dtype: Any) -> Any:
    if v is None:
        return 0
    if k.name == "torch":
        return k.xp.reshape(v, ())
    return np.asarray(v).reshape(-1)[0].astype(dtype) if np.asarray(v).size else 0


def _pad_c(k: Kernels, x: Any, pads: Any, constant_value: Any = None, axes: Any = None,
           mode: str = "constant") -> Any:
    plan = _pad_plan(len(x.shape), ints(k, pads), None if axes is None else ints(k, axes))
    value = _scalar(k, constant_value, x.dtype) if mode == "constant" else 0
    for a, b, e in plan:
        x = _pad_axis(k, x, a, b, e, mode, value)
    return x


def _pad_iv(ctx: Ctx, x: Box, pads: Box, constant_value: Box | None = None, axes: Box | None = None,
            mode: str = "constant") -> Box:
    p = need_point(pads, "Pad pads")
    assert p is not None
    plan = _pad_plan(x.rank, p, need_point(axes, "Pad axes"))
    shape = list(x.shape)
    for a, b, e in plan:
        shape[a] += b + e
    if x.is_point and (mode != "constant" or constant_value is None or constant_value.is_point):
        cv = None if constant_value is None or mode != "constant" else constant_value.value
        return Box.point(_pad_c(NUMPY, x.value, p, cv, None if axes is None else axes.value, mode))
    c_lo = c_hi = 0.0
    if mode == "constant" and constant_value is not None:
        cl, ch = constant_value.bounds64()
        c_lo, c_hi = (float(cl.reshape(-1)[0]), float(ch.reshape(-1)[0])) if cl.size else (0.0, 0.0)
    lo, hi = block_bounds(x)
    nan = x.nan or (constant_value is not None and constant_value.nan)
    for a, b, e in plan:
        grows = max(b, 0) + max(e, 0) > 0
        if x.shape[a] == 0:  # an empty axis: only the padding remains
            lo, hi = np.take(lo, [], axis=a), np.take(hi, [], axis=a)
        if lo.shape[a] == 1 and x.shape[a] > 0:
            # a coarse dimension stays one block: cropping keeps its bounds, edge/reflect/wrap
            # copy its own values, a constant pad joins the constant into the block
            if mode == "constant" and grows:
                lo, hi = np.minimum(lo, c_lo), np.maximum(hi, c_hi)
            continue
        lo = _pad_axis(NUMPY, lo, a, b, e, mode, c_lo)
        hi = _pad_axis(NUMPY, hi, a, b, e, mode, c_hi)
    return Box(lo, hi, tuple(shape), x.dtype, nan).coarsen()


def _pad_sample(version: int) -> Callable[[Any], tuple[list[Any], dict[str, Any]]]:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        shape = draw_shape(draw, max_rank=3) or (3,)
        modes = ["constant", "reflect", "edge"] + (["wrap"] if version >= 19 else [])
        mode = draw(st.sampled_from(modes))
        r = len(shape)
        axes = list(range(r))
        if version >= 18 and draw(st.booleans()):
            axes = draw(st.lists(st.integers(0, r - 1), min_size=1, max_size=r, unique=True))
        pads = []
        for a in axes:
            top = shape[a] - 1 if mode == "reflect" else (shape[a] if mode == "wrap" else 3)
            pads.append(draw(st.integers(0, max(top, 0))))
        for a in axes:
            top = shape[a] - 1 if mode == "reflect" else (shape[a] if mode == "wrap" else 3)
            pads.append(draw(st.integers(0, max(top, 0))))
        ins: list[Any] = [draw_box(draw, shape), np.array(pads, np.int64)]
        if mode == "constant" and draw(st.booleans()):
            ins.append(np.array(draw(st.sampled_from([0.0, 1.5, -7.0])), np.float32))
        elif axes != list(range(r)):
            ins.append(None)
        if axes != list(range(r)):
            ins.append(np.array(axes, np.int64))
        return ins, {"mode": mode}

    return sample


register(
    "Pad", since=13, concrete=_pad_c, interval=_pad_iv, exact=True, overflow_rule=None,
    property="shape-only (constant pads join a coarse dim)", sample=_pad_sample(13),
    doc="pad with a constant or by reflect/edge",
)
register(
    "Pad", since=18, concrete=_pad_c, interval=_pad_iv, exact=True, overflow_rule=None,
    property="shape-only (constant pads join a coarse dim)", sample=_pad_sample(18),
    doc="pad with a constant or by reflect/edge, on chosen axes",
)
register(
    "Pad", since=19, concrete=_pad_c, interval=_pad_iv, exact=True, overflow_rule=None,
    property="shape-only (constant pads join a coarse dim)", sample=_pad_sample(19),
    doc="pad with a constant or by reflect/edge/wrap, on chosen axes",
)


# ---- DepthToSpace / SpaceToDepth ----------------------------------------------------------


def _d2s_c(k: Kernels, x: Any, blocksize: int = 1, mode: str = "DCR") -> Any:
    xp = k.xp
    b, c, h, w = (int(s) for s in x.shape)
    bs = int(blocksize)
    if c % (bs * bs):
        raise ValueError(f"DepthToSpace: {c} channels not divisible by {bs}^2")
    if mode == "DCR":
        t = xp.permute_dims(xp.reshape(x, (b, bs, bs, c // (bs * bs), h, w)), (0, 3, 4, 1, 5, 2))
    elif mode == "CRD":
        t = xp.permute_dims(xp.reshape(x, (b, c // (bs * bs), bs, bs, h, w)), (0, 1, 4, 2, 5, 3))
    else:
        raise ValueError(f"DepthToSpace mode {mode!r}")
    return xp.reshape(t, (b, c // (bs * bs), h * bs, w * bs))


def _s2d_c(k: Kernels, x: Any, blocksize: int = 1, mode: str = "DCR") -> Any:
    xp = k.xp
    b, c, h, w = (int(s) for s in x.shape)
    bs = int(blocksize)
    if h % bs or w % bs:
        raise ValueError(f"SpaceToDepth: {h}x{w} not divisible by {bs}")
    t = xp.reshape(x, (b, c, h // bs, bs, w // bs, bs))
    if mode == "DCR":
        t = xp.permute_dims(t, (0, 3, 5, 1, 2, 4))
    elif mode == "CRD":
        t = xp.permute_dims(t, (0, 1, 3, 5, 2, 4))
    else:
        raise ValueError(f"SpaceToDepth mode {mode!r}")
    return xp.reshape(t, (b, c * bs * bs, h // bs, w // bs))


def _mixing_iv(conc: Callable[..., Any], out_shape: Callable[[tuple[int, ...], int], tuple[int, ...]]) -> Any:
    def rule(ctx: Ctx, x: Box, blocksize: int = 1, mode: str = "DCR") -> Box:
        if x.rank != 4:
            raise ValueError(f"{ctx.op_type} needs a 4-D input, got {x.shape}")
        shape = out_shape(x.shape, int(blocksize))

        def fn(a: np.ndarray) -> np.ndarray:
            if not x.is_point and a.shape[1:] == (1, 1, 1):
                return a  # one block over C, H and W: every element shares it
            if not x.is_point:
                a = refine(a, x.shape, (1, 2, 3))
            return np.asarray(conc(NUMPY, a, blocksize=blocksize, mode=mode))

        return move(x, fn, shape)

    return rule


def _d2s_shape(s: tuple[int, ...], bs: int) -> tuple[int, ...]:
    return (s[0], s[1] // (bs * bs), s[2] * bs, s[3] * bs)


def _s2d_shape(s: tuple[int, ...], bs: int) -> tuple[int, ...]:
    return (s[0], s[1] * bs * bs, s[2] // bs, s[3] // bs)


def _space_sample(depth_to_space: bool, with_mode: bool) -> Callable[[Any], tuple[list[Any], dict[str, Any]]]:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        bs = draw(st.integers(1, 2))
        n, c, h, w = (draw(st.integers(1, 2)) for _ in range(4))
        shape = (n, c * bs * bs, h, w) if depth_to_space else (n, c, h * bs, w * bs)
        attrs: dict[str, Any] = {"blocksize": bs}
        if with_mode:
            attrs["mode"] = draw(st.sampled_from(["DCR", "CRD"]))
        return [draw_box(draw, shape)], attrs

    return sample


register(
    "DepthToSpace", since=13, concrete=_d2s_c, interval=_mixing_iv(_d2s_c, _d2s_shape), exact=True,
    overflow_rule=None, property="shape-only (C, H, W refined unless one block)",
    sample=_space_sample(True, True), doc="move channel blocks into space (DCR or CRD)",
)
register(
    "SpaceToDepth", since=13, concrete=_s2d_c, interval=_mixing_iv(_s2d_c, _s2d_shape), exact=True,
    overflow_rule=None, property="shape-only (C, H, W refined unless one block)",
    sample=_space_sample(False, False), doc="move spatial blocks into channels",
)
register(
    "SpaceToDepth", since=28, concrete=_s2d_c, interval=_mixing_iv(_s2d_c, _s2d_shape), exact=True,
    overflow_rule=None, property="shape-only (C, H, W refined unless one block)",
    sample=_space_sample(False, True), doc="move spatial blocks into channels (DCR or CRD)",
)


# ---- Size ---------------------------------------------------------------------------------


def _size_c(k: Kernels, x: Any) -> Any:
    return k.asarray(np.asarray(int(np.prod(tuple(x.shape), dtype=np.int64)), dtype=np.int64))


register(
    "Size", since=13, concrete=_size_c,
    interval=lambda ctx, x: Box.point(np.asarray(x.size, dtype=np.int64)),
    overflow_rule=None, differentiable=False, property="shape-only",
    sample=lambda draw: ([BoxSpec(-1.0, 1.0, draw_shape(draw))], {}), doc="number of elements (int64)",
)

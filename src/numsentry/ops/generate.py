"""Generators, random ops, quantisation and accumulations: Range ConstantOfShape EyeLike
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Dropout QuantizeLinear
DequantizeLinear CumSum Einsum.

* Range, ConstantOfShape and EyeLike produce exact tensors from exact shapes (Range needs its
  inputs exact to know its length; a step that can be 0 is hazard NUM009).
* Random ops: RandomUniform lies in [low, high]; a normal sample is unbounded, so RandomNormal is
  [-inf, inf] (never NaN). Their concrete rules draw with a generator seeded from the ``seed``
  attribute exactly as ``onnx.reference`` does (``RandomState(seed)``), so seeded models conform.
* Dropout at inference is the identity; in training mode each element is 0 or ``x / (1 - ratio)``.
* QuantizeLinear is ``saturate(round_half_even(x / scale) + zero_point)``: monotone in x, scale
  (for scale > 0) and zero point, so the corners of the boxes give exact bounds (onnxruntime
  divides, as measured, so the division is correctly rounded: the op is exact).
* CumSum and Einsum sum products: bounded exactly in float64 (prefix sums of the bounds; the
  centre-radius form of a multilinear sum) plus the runtime's accumulation error
  gamma_K * sum |terms| (Higham), as in `numsentry.ops.linalg`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from onnx import helper as onnx_helper

from numsentry.domains.box import Box
from numsentry.dtypes import np_dtype_of, round_bounds
from numsentry.ops.kernels import NUMPY, Kernels
from numsentry.ops.registry import BoxSpec, Ctx, Hazard, register
from numsentry.ops.rules import draw_interval, draw_shape, imul
from numsentry.ops.shape import block_bounds, draw_box, ints, need_point, refine


def _gamma(n: np.ndarray | float, eps: float) -> np.ndarray:
    """Higham's gamma_n = n u / (1 - n u) (inf when n u >= 1)."""
    nu = np.asarray(n, dtype=np.float64) * eps
    return np.where(nu < 1, nu / np.maximum(1 - nu, 1e-300), np.inf)


def _is_float(dt: np.dtype) -> bool:
    return dt.kind == "f" or dt.name == "bfloat16"


# ---- Range --------------------------------------------------------------------------------


def _range_len(start: float, limit: float, delta: float) -> int:
    if delta == 0:
        raise ValueError("Range with a zero step")
    return len(np.arange(start, limit, delta))


def _range_c(k: Kernels, start: Any, limit: Any, delta: Any, stash_type: int = 1) -> Any:
    s, lim, d = (np.asarray(k.to_numpy(v)).reshape(()) for v in (start, limit, delta))
    n = _range_len(s.item(), lim.item(), d.item())
    dt = s.dtype
    if dt.kind in "iu":
        out = s + np.arange(n, dtype=dt) * d
    else:  # numpy's (and onnx.reference's) arange: start + i * step, computed in float64
        out = np.arange(s.item(), lim.item(), d.item())
    return k.asarray(out.astype(dt))


def _range_iv(ctx: Ctx, start: Box, limit: Box, delta: Box, stash_type: int = 1) -> Box:
    dt = start.dtype
    if delta.is_point and float(np.asarray(delta.value)) == 0:
        return Box.point(np.zeros((0,), dt))  # the runtime fails (NUM009); nothing flows on
    if start.is_point and limit.is_point and delta.is_point:
        s, lim, d = (np.asarray(b.value).reshape(()) for b in (start, limit, delta))
        if dt.kind in "iu":
            return Box.point(np.asarray(_range_c(NUMPY, s, lim, d)))
        n = len(np.arange(s.item(), lim.item(), d.item()))
        i = np.arange(n, dtype=np.float64)
        exact = float(s) + i * float(d)
        # a runtime may add the step n times (onnxruntime) instead of multiplying
        err = _gamma(i + 1, ctx.fmt(dt).eps) * (abs(float(s)) + i * abs(float(d)))
        return Box(exact - err, exact + err, (n,), dt)
    shape = ctx.output_shapes[0] if ctx.output_shapes else None
    if shape is None or len(shape) != 1:
        raise NotImplementedError("Range with computed inputs: its length depends on their values")
    n = int(shape[0])
    i = np.arange(n, dtype=np.float64)
    sl, sh = start.min(), start.max()
    dl, dh = delta.min(), delta.max()
    lo, hi = sl + np.minimum(i * dl, i * dh), sh + np.maximum(i * dl, i * dh)
    if _is_float(dt):
        err = _gamma(i + 1, ctx.fmt(dt).eps) * (max(abs(sl), abs(sh)) + i * max(abs(dl), abs(dh)))
        lo, hi = lo - err, hi + err
    return Box(lo, hi, (n,), dt)


def _range_zero(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
    d = inputs[2]
    if d is not None and d.min() <= 0 <= d.max():
        return f"Range step can be 0: step {d.describe()}"
    return None


def _range_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    if draw(st.booleans()):
        dt: Any = draw(st.sampled_from([np.int64, np.int32]))
        s, lim = draw(st.integers(-10, 10)), draw(st.integers(-10, 10))
        d = draw(st.sampled_from([1, 2, 3, -1, -2]))
    else:
        dt = np.float32
        s, lim = draw(st.integers(-20, 20)) / 4, draw(st.integers(-20, 20)) / 4
        d = draw(st.sampled_from([0.5, 1.0, 0.25, -0.5, -1.5, 0.3]))
    return [np.array(s, dt), np.array(lim, dt), np.array(d, dt)], {}


register(
    "Range", since=11, concrete=_range_c, interval=_range_iv, hazards=(Hazard("NUM009", _range_zero),),
    overflow_rule=None, differentiable=False,
    property="exact for exact inputs (plus the rounding of repeated steps for floats)",
    sample=_range_sample, doc="start, start + step, ... up to limit (exclusive)",
)


# ---- ConstantOfShape / EyeLike ------------------------------------------------------------

_POINT_LIMIT = 1 << 16  # larger float constants become one coarse block instead of a point


def _cos_value(value: Any) -> np.ndarray:
    v = np.zeros((1,), np.float32) if value is None else np.asarray(value)
    if v.size != 1:
        raise ValueError("ConstantOfShape value must hold one element")
    return v.reshape(())


def _cos_c(k: Kernels, shape: Any, value: Any = None) -> Any:
    v = _cos_value(value)
    dims = tuple(int(s) for s in ints(k, shape).reshape(-1))
    return k.xp.full(dims, v.item(), dtype=k.dtype(v.dtype))


def _cos_iv(ctx: Ctx, shape: Box, value: Any = None) -> Box:
    dims = need_point(shape, "ConstantOfShape shape")
    assert dims is not None
    v = _cos_value(value)
    dt = ctx.analysed(v.dtype)
    out = tuple(int(s) for s in dims.reshape(-1))
    if not _is_float(dt) or int(np.prod(out, dtype=np.int64)) <= _POINT_LIMIT:
        return Box.point(np.full(out, v, dtype=dt))
    return Box.range(float(v), float(v), out, dt, bool(np.isnan(v)))


def _cos_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = np.array(draw_shape(draw, max_rank=3), np.int64)
    dt = draw(st.sampled_from([np.float32, np.int64, np.int32, np.float16]))
    attrs = {} if draw(st.integers(0, 3)) == 0 else {"value": np.array([draw(st.integers(-3, 3))], dt)}
    return [shape], attrs


register(
    "ConstantOfShape", since=9, concrete=_cos_c, interval=_cos_iv, overflow_rule=None,
    differentiable=False, property="constant", sample=_cos_sample,
    doc="a tensor of the given shape filled with one value",
)


def _eye_dtype(x_dtype: np.dtype, dtype: int | None) -> np.dtype:
    return np.dtype(x_dtype) if not dtype else np_dtype_of(int(dtype))


def _eyelike_c(kern: Kernels, x: Any, dtype: int | None = None, **kw: Any) -> Any:
    # the kernels are not called `k` here: EyeLike has an attribute of that name
    off = int(kw.get("k", 0))
    if len(x.shape) != 2:
        raise ValueError("EyeLike needs a 2-D input")
    dt = _eye_dtype(np.dtype(kern.to_numpy(x[:0, :0]).dtype), dtype)
    return kern.asarray(np.eye(int(x.shape[0]), int(x.shape[1]), k=off, dtype=dt))


def _eyelike_iv(ctx: Ctx, x: Box, dtype: int | None = None, **kw: Any) -> Box:
    if x.rank != 2:
        raise ValueError("EyeLike needs a 2-D input")
    dt = ctx.analysed(_eye_dtype(x.dtype, dtype))
    return Box.point(np.eye(x.shape[0], x.shape[1], k=int(kw.get("k", 0)), dtype=dt))


def _eyelike_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    attrs: dict[str, Any] = {"k": draw(st.integers(-3, 3))}
    if draw(st.booleans()):
        attrs["dtype"] = draw(st.sampled_from([1, 7, 11]))
    return [BoxSpec(-2.0, 2.0, shape)], attrs


register(
    "EyeLike", since=9, concrete=_eyelike_c, interval=_eyelike_iv, overflow_rule=None,
    differentiable=False, property="constant (depends on the shape only)", sample=_eyelike_sample,
    doc="identity matrix (shifted by k) shaped like the input",
)


# ---- random ops ---------------------------------------------------------------------------


def _state(seed: float | None) -> Any:
    if seed is None or np.isnan(seed):
        return np.random.RandomState()
    return np.random.RandomState(seed=int(seed))


def _rand_dtype(dtype: int | None, like: np.dtype | None) -> np.dtype:
    if dtype:
        return np_dtype_of(int(dtype))
    return np.dtype(like) if like is not None else np.dtype(np.float32)


def _uniform_c(k: Kernels, *like: Any, dtype: int | None = None, high: float = 1.0, low: float = 0.0,
               seed: float | None = None, shape: Sequence[int] | None = None) -> Any:
    src = np.asarray(k.to_numpy(like[0])) if like else None
    dt = _rand_dtype(dtype, None if src is None else src.dtype)
    dims = tuple(src.shape) if src is not None else tuple(int(s) for s in shape or ())
    res = _state(seed).rand(*dims).astype(dt)
    res *= high - low  # the reference's exact arithmetic, so seeded models conform
    res += low
    return k.asarray(np.asarray(res, dtype=dt))


def _normal_c(k: Kernels, *like: Any, dtype: int | None = None, mean: float = 0.0, scale: float = 1.0,
              seed: float | None = None, shape: Sequence[int] | None = None) -> Any:
    src = np.asarray(k.to_numpy(like[0])) if like else None
    dt = _rand_dtype(dtype, None if src is None else src.dtype)
    dims = tuple(src.shape) if src is not None else tuple(int(s) for s in shape or ())
    res = _state(seed).randn(*dims).astype(dt)
    res *= scale
    res += mean
    return k.asarray(np.asarray(res, dtype=dt))


def _uniform_iv(ctx: Ctx, *like: Box, dtype: int | None = None, high: float = 1.0, low: float = 0.0,
                seed: float | None = None, shape: Sequence[int] | None = None) -> Box:
    dt = ctx.analysed(_rand_dtype(dtype, like[0].dtype if like else None))
    dims = like[0].shape if like else tuple(int(s) for s in shape or ())
    return Box.range(min(low, high), max(low, high), dims, dt)


def _normal_iv(ctx: Ctx, *like: Box, dtype: int | None = None, mean: float = 0.0, scale: float = 1.0,
               seed: float | None = None, shape: Sequence[int] | None = None) -> Box:
    dt = ctx.analysed(_rand_dtype(dtype, like[0].dtype if like else None))
    dims = like[0].shape if like else tuple(int(s) for s in shape or ())
    if scale == 0:
        return Box.range(mean, mean, dims, dt)
    # a normal sample has no bound: any finite value can come out (never NaN)
    return Box.range(-np.inf, np.inf, dims, dt)


def _random_sample(like: bool, uniform: bool) -> Callable[[Any], tuple[list[Any], dict[str, Any]]]:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        attrs: dict[str, Any] = {"seed": float(draw(st.integers(0, 1000)))}
        if uniform:
            lo, hi = draw_interval(draw, -5, 5)
            attrs.update(low=lo, high=hi)
        else:
            attrs.update(mean=draw(st.sampled_from([0.0, 1.5])), scale=draw(st.sampled_from([1.0, 0.5])))
        if like:
            if draw(st.booleans()):
                attrs["dtype"] = 1
            return [BoxSpec(-1.0, 1.0, shape)], attrs
        attrs["shape"] = list(shape)
        return [], attrs

    return sample


_RANDOM_DOC = "seeded from the `seed` attribute like onnx.reference"
register(
    "RandomUniform", since=1, concrete=_uniform_c, interval=_uniform_iv, ulps=2, overflow_rule=None,
    differentiable=False, property="constant range [low, high]", sample=_random_sample(False, True),
    doc=f"uniform samples in [low, high] ({_RANDOM_DOC})",
)
register(
    "RandomUniformLike", since=1, concrete=_uniform_c, interval=_uniform_iv, ulps=2, overflow_rule=None,
    differentiable=False, property="constant range [low, high]", sample=_random_sample(True, True),
    doc=f"uniform samples in [low, high] shaped like the input ({_RANDOM_DOC})",
)
register(
    "RandomNormal", since=1, concrete=_normal_c, interval=_normal_iv, overflow_rule=None,
    differentiable=False, property="unbounded: [-inf, inf], never NaN", sample=_random_sample(False, False),
    doc=f"normal samples; unbounded, so [-inf, inf] ({_RANDOM_DOC})",
)
register(
    "RandomNormalLike", since=1, concrete=_normal_c, interval=_normal_iv, overflow_rule=None,
    differentiable=False, property="unbounded: [-inf, inf], never NaN", sample=_random_sample(True, False),
    doc=f"normal samples shaped like the input; unbounded ({_RANDOM_DOC})",
)


# ---- Dropout ------------------------------------------------------------------------------


def _dropout_c(k: Kernels, x: Any, ratio: Any = None, training_mode: Any = None, seed: int | None = None) -> Any:
    xp = k.xp
    r = 0.5 if ratio is None else float(np.asarray(k.to_numpy(ratio)).reshape(()))
    train = training_mode is not None and bool(np.asarray(k.to_numpy(training_mode)).reshape(()))
    if not train or r == 0:
        return x, k.asarray(np.ones(tuple(x.shape), bool))
    mask = np.random.RandomState(seed).uniform(0, 1.0, tuple(x.shape)) >= r
    scale = 1.0 / (1.0 - r)
    return x * xp.astype(k.asarray(mask), x.dtype) * scale, k.asarray(mask)


def _dropout_iv(ctx: Ctx, x: Box, ratio: Box | None = None, training_mode: Box | None = None,
                seed: int | None = None) -> tuple[Box, Box]:
    ones = Box.point(np.ones(x.shape, bool)) if x.size <= _POINT_LIMIT else Box.range(1, 1, x.shape, np.dtype(bool))
    tl, th = (0.0, 0.0) if training_mode is None else (training_mode.min(), training_mode.max())
    rl, rh = (0.5, 0.5) if ratio is None else (ratio.min(), ratio.max())
    if th == 0 or rh == 0:  # inference (or nothing dropped): the identity
        return x, ones
    if rh >= 1:
        raise ValueError(f"Dropout ratio {ratio.describe() if ratio else rh} reaches 1")
    # training: each element is dropped (0) or kept and scaled by 1 / (1 - ratio)
    scale = Box.range(1.0 / (1.0 - rl), 1.0 / (1.0 - rh), (), np.dtype(np.float64))
    lo, hi, nan = imul(x, scale)
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    if tl == 0:  # maybe not training: the input itself
        xl, xh = block_bounds(x)
        lo, hi = np.minimum(lo, xl), np.maximum(hi, xh)
    return Box(lo, hi, x.shape, x.dtype, x.nan or nan), Box.range(0.0, 1.0, x.shape, np.dtype(bool))


def _dropout_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=3)
    x = draw_box(draw, shape)
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return [x], {}
    ratio = np.array(draw(st.sampled_from([0.0, 0.25, 0.5])), np.float32)
    if kind == 1:
        return [x, ratio], {}
    # training mode draws a random mask that onnxruntime draws differently: only ratio 0 keeps
    # it deterministic for the registry tests (tests/ops/test_shape_indexing.py covers the rest)
    if kind == 3:
        return [x, np.array(0.0, np.float32), np.array(True)], {"seed": draw(st.integers(0, 100))}
    return [x, ratio, np.array(False)], {}


register(
    "Dropout", since=13, concrete=_dropout_c, interval=_dropout_iv, property="identity at inference; "
    "0 or x / (1 - ratio) in training", sample=_dropout_sample,
    doc="identity at inference; in training each element is 0 or scaled (mask output)",
)


# ---- QuantizeLinear / DequantizeLinear ----------------------------------------------------

_QTYPES = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32)}


def _qparam(k: Kernels, p: Any, rank: int, dim: int, axis: int, block_size: int) -> Any:
    """A scale or zero point reshaped (and repeated, for blocks) to broadcast against x."""
    xp = k.xp
    nd = len(p.shape)
    if nd == 0 or (nd == 1 and int(p.shape[0]) == 1 and not block_size):
        return xp.reshape(p, ())
    ax = axis % rank if rank else 0
    if block_size:
        p = xp.repeat(p, int(block_size), axis=ax)
        return p[tuple(slice(0, dim) if d == ax else slice(None) for d in range(rank))]
    if nd != 1:
        raise ValueError("per-axis scale must be 1-D")
    return xp.reshape(p, tuple(int(p.shape[0]) if d == ax else 1 for d in range(rank)))


def _axis_len(shape: tuple[int, ...], axis: int) -> int:
    """Length of the quantisation axis (the default axis 1 may not exist for per-tensor use)."""
    r = len(shape)
    return int(shape[axis]) if r and -r <= axis < r else 1


def _q_out_dtype(zero_point: Any, output_dtype: int) -> np.dtype:
    if output_dtype:
        dt = np_dtype_of(int(output_dtype))
    elif zero_point is not None:
        dt = np.dtype(zero_point.dtype) if isinstance(zero_point.dtype, np.dtype) else \
            np.dtype(str(zero_point.dtype).replace("torch.", ""))
    else:
        dt = np.dtype(np.uint8)
    if dt not in _QTYPES:
        raise NotImplementedError(f"quantisation to {dt} (float8 / 4-bit types are not modelled)")
    return dt


def _quantize(k: Kernels, x: Any, s: Any, z: Any, odt: np.dtype, cdt: Any) -> Any:
    xp = k.xp
    info = np.iinfo(odt)
    q = xp.round(xp.astype(x, cdt) / xp.astype(s, cdt))  # round half to even
    if z is not None:
        q = q + xp.astype(z, cdt)
    return xp.astype(xp.clip(q, float(info.min), float(info.max)), k.dtype(odt))


def _quantize_c(k: Kernels, x: Any, y_scale: Any, y_zero_point: Any = None, axis: int = 1, saturate: int = 1,
                output_dtype: int = 0, block_size: int = 0, precision: int = 0) -> Any:
    odt = _q_out_dtype(y_zero_point, output_dtype)
    rank, dim = len(x.shape), _axis_len(tuple(x.shape), axis)
    s = _qparam(k, y_scale, rank, dim, axis, block_size)
    z = None if y_zero_point is None else _qparam(k, y_zero_point, rank, dim, axis, block_size)
    cdt = k.dtype(np_dtype_of(int(precision))) if precision else y_scale.dtype
    if k.name == "torch" and cdt == k.dtype(np.dtype(np.int32)):
        cdt = x.dtype
    return _quantize(k, x, s, z, odt, cdt)


def _corners(b: Box | None, param: bool = False) -> list[np.ndarray | None]:
    """The values to try for an input: its point, or its lower and upper bounds.

    A computed scale or zero point (``param``) is bounded by its hull: one interval for all of it.
    """
    if b is None:
        return [None]
    if b.is_point:
        return [np.asarray(b.value)]
    if param:
        return [np.asarray(b.min()), np.asarray(b.max())]
    return list(block_bounds(b))


def _quantize_iv(ctx: Ctx, x: Box, y_scale: Box, y_zero_point: Box | None = None, axis: int = 1,
                 saturate: int = 1, output_dtype: int = 0, block_size: int = 0, precision: int = 0) -> Box:
    odt = _q_out_dtype(None if y_zero_point is None else np.zeros(0, y_zero_point.dtype), output_dtype)
    info = np.iinfo(odt)
    if y_scale.min() <= 0 or x.nan or y_scale.nan:  # no order to rely on: the whole range
        return Box.range(float(info.min), float(info.max), x.shape, odt)
    rank, dim = x.rank, _axis_len(x.shape, axis)
    cdt = np_dtype_of(int(precision)) if precision else y_scale.dtype
    xs = _corners(x)
    if block_size and not x.is_point:
        xs = [np.ascontiguousarray(refine(a, x.shape, (axis % rank,))) for a in xs if a is not None]
    xs = [np.asarray(a).astype(x.dtype) for a in xs if a is not None]
    ss = [_qparam(NUMPY, np.asarray(a).astype(y_scale.dtype), rank, dim, axis, block_size)
          for a in _corners(y_scale, True) if a is not None]
    zs = [None if a is None else _qparam(NUMPY, np.asarray(a).astype(odt), rank, dim, axis, block_size)
          for a in _corners(y_zero_point, True)]
    # saturate(round(x / s) + z) is monotone in x, in s (for s > 0) and in z: corners bound it
    with np.errstate(all="ignore"):
        vals = [np.asarray(_quantize(NUMPY, a, s, z, odt, cdt), np.float64)
                for a, s, z in itertools.product(xs, ss, zs)]
    lo = np.minimum.reduce(np.broadcast_arrays(*vals))
    hi = np.maximum.reduce(np.broadcast_arrays(*vals))
    lo = lo.reshape((1,) * (rank - lo.ndim) + lo.shape)
    hi = hi.reshape((1,) * (rank - hi.ndim) + hi.shape)
    return Box(lo, hi, x.shape, odt).coarsen()


def _dequantize_c(k: Kernels, x: Any, x_scale: Any, x_zero_point: Any = None, axis: int = 1,
                  block_size: int = 0, output_dtype: int = 0) -> Any:
    xp = k.xp
    rank, dim = len(x.shape), _axis_len(tuple(x.shape), axis)
    s = _qparam(k, x_scale, rank, dim, axis, block_size)
    odt = k.dtype(np_dtype_of(int(output_dtype))) if output_dtype else x_scale.dtype
    d = xp.astype(x, xp.int64)
    if x_zero_point is not None:
        d = d - xp.astype(_qparam(k, x_zero_point, rank, dim, axis, block_size), xp.int64)
    return xp.astype(d, odt) * xp.astype(s, odt)


def _param_bounds(b: Box) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of a scale or zero point: exact for a point, else its hull."""
    if b.is_point:
        v = np.asarray(b.value, dtype=np.float64)
        return v, v
    return np.asarray(b.min()), np.asarray(b.max())


def _dequantize_iv(ctx: Ctx, x: Box, x_scale: Box, x_zero_point: Box | None = None, axis: int = 1,
                   block_size: int = 0, output_dtype: int = 0) -> Box:
    odt = ctx.analysed(np_dtype_of(int(output_dtype)) if output_dtype else x_scale.dtype)
    if x.dtype not in _QTYPES:
        raise NotImplementedError(f"dequantisation of {x.dtype}")
    rank, dim = x.rank, _axis_len(x.shape, axis)
    xl, xh = block_bounds(x)
    if block_size:
        xl, xh = refine(xl, x.shape, (axis % rank,)), refine(xh, x.shape, (axis % rank,))
    if x_zero_point is not None:
        zl, zh = (np.asarray(_qparam(NUMPY, a, rank, dim, axis, block_size))
                  for a in _param_bounds(x_zero_point))
        xl, xh = xl - zh, xh - zl
    fmt = ctx.fmt(odt)
    dl, dh = round_bounds(np.asarray(xl), np.asarray(xh), fmt)  # int -> float can round (int32)
    sl, sh = (np.asarray(_qparam(NUMPY, a, rank, dim, axis, block_size)) for a in _param_bounds(x_scale))
    lo, hi, nan = imul(Box(dl, dh, x.shape, odt), Box(sl, sh, x.shape, odt))  # one rounding, in finalize
    return Box(lo, hi, x.shape, odt, nan or x_scale.nan).coarsen()


def _scale_zero_hazard(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
    s = inputs[1]
    if s is not None and s.min() <= 0:
        return f"quantisation scale can be <= 0: scale {s.describe()}"
    return None


def _quant_sample(version: int, dequant: bool) -> Callable[[Any], tuple[list[Any], dict[str, Any]]]:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
        rank = len(shape)
        qts = [np.uint8, np.int8] + ([np.uint16, np.int16] if version >= 21 else [])
        qt = np.dtype(draw(st.sampled_from(qts)))
        info = np.iinfo(qt)
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        kind = draw(st.sampled_from(["tensor", "axis"] + (["block"] if version >= 21 and rank >= 2 else [])))
        axis = draw(st.integers(-rank, rank - 1))
        attrs: dict[str, Any] = {}
        if kind == "tensor":
            pshape: tuple[int, ...] = ()
        elif kind == "axis":
            pshape = (shape[axis],)
            attrs["axis"] = axis
        else:
            bs = draw(st.integers(1, shape[axis]))
            pshape = tuple(-(-s // bs) if d == axis % rank else s for d, s in enumerate(shape))
            attrs.update(axis=axis, block_size=bs)
        scale = rng.uniform(0.01, 0.2, pshape).astype(np.float32)
        span = min(int(info.max) - int(info.min), 200)
        zp = rng.integers(int(info.min), int(info.min) + span + 1, pshape).astype(qt) if \
            draw(st.integers(0, 3)) else None
        if zp is None and not dequant:  # the output type then comes from output_dtype (21+)
            if version >= 21:
                attrs["output_dtype"] = int(onnx_helper.np_dtype_to_tensor_dtype(qt))
            else:
                qt, info = np.dtype(np.uint8), np.iinfo(np.uint8)
        if dequant:
            lo = float(draw(st.integers(int(info.min), int(info.min) + span)))
            x: Any = BoxSpec(lo, lo + float(draw(st.integers(0, 60))), shape, qt.name)
        else:
            a, b = draw_interval(draw, -30, 30)
            x = draw_box(draw, shape, -30, 30) if draw(st.booleans()) else BoxSpec(a, b, shape)
        return [x, scale, zp], attrs

    return sample


for _v in (13, 19, 21):
    register(
        "QuantizeLinear", since=_v, concrete=_quantize_c, interval=_quantize_iv, exact=True,
        hazards=(Hazard("NUM002", _scale_zero_hazard),), overflow_rule=None, differentiable=False,
        property="monotone in x, scale (> 0) and zero point: corners", sample=_quant_sample(_v, False),
        doc="saturate(round_half_even(x / scale) + zero_point); per-tensor/axis/block",
    )
    register(
        "DequantizeLinear", since=_v, concrete=_dequantize_c, interval=_dequantize_iv, exact=True,
        property="bilinear in (x - zero_point) and scale", sample=_quant_sample(_v, True),
        doc="(x - zero_point) * scale; per-tensor/axis/block",
    )


# ---- CumSum -------------------------------------------------------------------------------


def _cumsum_c(k: Kernels, x: Any, axis: Any, exclusive: int = 0, reverse: int = 0) -> Any:
    xp = k.xp
    a = np.asarray(k.to_numpy(axis) if not isinstance(axis, (int, np.integer)) else axis).reshape(-1)
    rank = len(x.shape)
    ax = int(a[0]) % rank if rank else 0
    if reverse:
        x = xp.flip(x, axis=ax)
    y = xp.cumulative_sum(x, axis=ax, dtype=x.dtype)
    n = int(x.shape[ax])
    if exclusive and n:  # shift by one: 0, x0, x0 + x1, ... (not y - x, which rounds)
        head = xp.zeros_like(xp.take(y, k.asarray(np.zeros(1, np.int64)), axis=ax))
        y = xp.concat([head, xp.take(y, k.asarray(np.arange(n - 1, dtype=np.int64)), axis=ax)], axis=ax)
    if reverse:
        y = xp.flip(y, axis=ax)
    return y


def _cumsum_iv(ctx: Ctx, x: Box, axis: Box, exclusive: int = 0, reverse: int = 0) -> Box:
    a = need_point(axis, "CumSum axis")
    assert a is not None
    if x.rank == 0:
        raise ValueError("CumSum of a scalar")
    ax = int(np.asarray(a).reshape(-1)[0]) % x.rank
    if x.is_point and not _is_float(x.dtype):
        return Box.point(np.asarray(_cumsum_c(NUMPY, np.asarray(x.value), ax, exclusive, reverse)))
    lo, hi = block_bounds(x)
    lo, hi = refine(lo, x.shape, (ax,)), refine(hi, x.shape, (ax,))  # the sums grow along the axis
    with np.errstate(all="ignore"):
        slo = np.asarray(_cumsum_c(NUMPY, np.ascontiguousarray(lo), ax, exclusive, reverse))
        shi = np.asarray(_cumsum_c(NUMPY, np.ascontiguousarray(hi), ax, exclusive, reverse))
        nan = x.nan or bool(np.isinf(lo).any() or np.isinf(hi).any())
        if _is_float(x.dtype):
            mag = np.maximum(np.abs(lo), np.abs(hi))
            smag = np.asarray(_cumsum_c(NUMPY, np.ascontiguousarray(mag), ax, exclusive, reverse))
            cnt = np.asarray(_cumsum_c(NUMPY, np.ones(x.shape[ax]), 0, exclusive, reverse))
            cnt = cnt.reshape(tuple(x.shape[ax] if d == ax else 1 for d in range(x.rank)))
            # runtime summation error plus that of our own float64 prefix sums
            err = (_gamma(cnt, ctx.fmt(x.dtype).eps) + 2 * _gamma(cnt + 1, 2.0**-53)) * smag
            slo, shi = slo - err, shi + err
    return Box(slo, shi, x.shape, x.dtype, nan).coarsen()


def _cumsum_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    ax = draw(st.integers(-len(shape), len(shape) - 1))
    attrs = {"exclusive": draw(st.integers(0, 1)), "reverse": draw(st.integers(0, 1))}
    if draw(st.integers(0, 3)) == 0:
        return [BoxSpec(-5.0, 5.0, shape, "int64"), np.array(ax, np.int64)], attrs
    return [draw_box(draw, shape, -10, 10), np.array(ax, np.int32)], attrs


register(
    "CumSum", since=11, concrete=_cumsum_c, interval=_cumsum_iv,
    property="prefix sums of the bounds (a coarse axis: k * [lo, hi]) plus accumulation error",
    sample=_cumsum_sample, doc="cumulative sum along an axis (exclusive / reverse)",
)


# ---- Einsum -------------------------------------------------------------------------------


def _einsum_parse(equation: str, shapes: Sequence[tuple[int, ...]]) -> tuple[list[str], str, dict[str, int]]:
    """Explicit per-operand subscripts (ellipsis spelled out), output subscripts, letter sizes."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"Einsum equation {equation!r} names {len(terms)} operands, got {len(shapes)}")
    used = set(eq) - set(",->.")
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    n_ell = max((len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes, strict=True) if "..." in t),
                default=0)
    ell = "".join(free[:n_ell])
    subs = []
    for t, s in zip(terms, shapes, strict=True):
        if "..." in t:
            k = len(s) - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k:] if k else "")
        if len(t) != len(s):
            raise ValueError(f"Einsum term {t!r} does not match rank {len(s)}")
        subs.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {c: sum(t.count(c) for t in subs) for c in set("".join(subs))}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    sizes: dict[str, int] = {}
    for t, s in zip(subs, shapes, strict=True):
        for c, d in zip(t, s, strict=True):
            sizes[c] = max(sizes.get(c, 1), int(d))
    return subs, out, sizes


def _einsum_c(k: Kernels, *xs: Any, equation: str = "") -> Any:
    return k.xp.einsum(equation, *xs)


def _einsum_iv(ctx: Ctx, *xs: Box, equation: str = "") -> Box:
    subs, out, sizes = _einsum_parse(equation, [x.shape for x in xs])
    eq = ",".join(subs) + "->" + out
    shape = tuple(sizes[c] for c in out)
    dt = xs[0].dtype
    nan = any(x.nan for x in xs)
    if not all(np.isfinite(x.min()) and np.isfinite(x.max()) for x in xs):
        return Box.range(-np.inf, np.inf, shape, dt, True)
    full = []
    for x, t in zip(xs, subs, strict=True):
        lo, hi = block_bounds(x)
        tgt = tuple(sizes[c] for c in t)
        full.append((np.broadcast_to(lo, tgt), np.broadcast_to(hi, tgt)))
    summed = set("".join(subs)) - set(out)
    terms = int(np.prod([sizes[c] for c in summed], dtype=np.int64)) if summed else 1
    opt = "greedy" if len(xs) > 2 else False
    with np.errstate(all="ignore"):
        if len(xs) == 1:  # a sum with coefficients 1 of one operand: monotone
            lo, hi = np.einsum(eq, full[0][0]), np.einsum(eq, full[0][1])
            mag = np.einsum(eq, np.maximum(np.abs(full[0][0]), np.abs(full[0][1])))
        else:
            mids = [lo / 2 + hi / 2 for lo, hi in full]
            amid = [np.abs(m) for m in mids]
            mags = [np.maximum(np.abs(lo), np.abs(hi)) for lo, hi in full]
            c = np.einsum(eq, *mids, optimize=opt)
            # |prod x_i - prod m_i| <= prod(|m_i| + r_i) - prod |m_i|, summed over the terms
            mag = np.einsum(eq, *mags, optimize=opt)
            r = np.maximum(mag - np.einsum(eq, *amid, optimize=opt), 0.0)
            lo, hi = c - r, c + r
        if terms > 1 or len(xs) > 1:
            n = terms + len(xs)
            err = (_gamma(n, ctx.fmt(dt).eps) + 4 * _gamma(n + 2, 2.0**-53)) * mag
            lo, hi = lo - err, hi + err
    lo, hi = np.asarray(lo, np.float64).reshape(shape), np.asarray(hi, np.float64).reshape(shape)
    return Box(lo, hi, shape, dt, nan).coarsen()


_EQUATIONS = ["ij,jk->ik", "bij,bjk->bik", "ii->i", "ij->ji", "i,i->", "ij->", "bhqd,bhkd->bhqk",
              "...ij,...jk->...ik", "ij,jk,kl->il", "i,j->ij", "ij", "ij,ij->ij", "bi,bi->b", "ii"]


def _einsum_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    eq = draw(st.sampled_from(_EQUATIONS))
    sizes = {c: draw(st.integers(1, 3)) for c in "bhqdkijl"}
    lhs = eq.split("->")[0]
    batch = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    ins: list[Any] = []
    for t in lhs.split(","):
        shape = (batch if "..." in t else ()) + tuple(sizes[c] for c in t.replace("...", ""))
        if len(ins) == 1 and draw(st.booleans()):
            rng = np.random.default_rng(draw(st.integers(0, 2**31)))
            ins.append(rng.uniform(-2, 2, shape).astype(np.float32))
        else:
            ins.append(draw_box(draw, shape, -3, 3))
    return ins, {"equation": eq}


register(
    "Einsum", since=12, concrete=_einsum_c, interval=_einsum_iv,
    property="multilinear centre-radius bound plus accumulation error", sample=_einsum_sample,
    doc="Einstein summation (products and sums over named indices)",
)

"""Identity, Constant, Shape, Reshape, Flatten, Cast, CastLike: values pass through exactly."""

from __future__ import annotations

from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.dtypes import is_float_dtype, np_dtype_of
from numsentry.ops.registry import BoxSpec, Ctx, Hazard, register
from numsentry.ops.rules import draw_interval, draw_shape, elementwise_sample

register(
    "Identity", since=1, concrete=lambda k, x: x, interval=lambda ctx, x: x, exact=True,
    overflow_rule=None, property="shape-only", sample=elementwise_sample(1), doc="x",
)


def _constant_c(k: Any, value: Any = None, value_float: Any = None, value_floats: Any = None,
                value_int: Any = None, value_ints: Any = None, **_: Any) -> Any:
    for v, dt in ((value, None), (value_float, np.float32), (value_floats, np.float32),
                  (value_int, np.int64), (value_ints, np.int64)):
        if v is not None:
            # a copy: attribute arrays are read-only, which torch warns about
            return k.asarray(np.array(v, dtype=dt))
    raise ValueError("Constant without a value")


def _constant_iv(ctx: Ctx, **attrs: Any) -> Box:
    v = np.asarray(_constant_c(_np(), **attrs))
    return Box.point(v.astype(ctx.analysed(v.dtype)))


def _np() -> Any:
    from numsentry.ops.kernels import NUMPY

    return NUMPY


register(
    "Constant", since=12, concrete=_constant_c, interval=_constant_iv, overflow_rule=None,
    differentiable=False, property="constant",
    sample=lambda draw: ([], {"value": np.arange(6, dtype=np.float32).reshape(2, 3)}),
    doc="a constant tensor",
)


def _shape_c(k: Any, x: Any, start: int = 0, end: int | None = None) -> Any:
    return k.asarray(np.asarray(tuple(x.shape)[start:end], dtype=np.int64))


register(
    "Shape", since=1, concrete=_shape_c,
    interval=lambda ctx, x, start=0, end=None: Box.point(np.asarray(x.shape[start:end], dtype=np.int64)),
    overflow_rule=None, differentiable=False, property="shape-only",
    sample=elementwise_sample(1), doc="the shape as int64",
)


def _target_shape(shape: tuple[int, ...], spec: np.ndarray, allowzero: int) -> tuple[int, ...]:
    out = [int(s) for s in spec]
    for i, s in enumerate(out):
        if s == 0 and not allowzero:
            out[i] = shape[i]
    if -1 in out:
        known = int(np.prod([s for s in out if s != -1], dtype=np.int64))
        total = int(np.prod(shape, dtype=np.int64))
        out[out.index(-1)] = total // known if known else 0
    if int(np.prod(out, dtype=np.int64)) != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"cannot reshape {shape} to {out}")
    return tuple(out)


def reshape_box(x: Box, new_shape: tuple[int, ...]) -> Box:
    """Reshape a box, keeping it coarse when it is coarse and materialising otherwise."""
    if x.is_point:
        return Box.point(x.value.reshape(new_shape))
    if all(d == 1 for d in np.shape(x.lo)) and all(d == 1 for d in np.shape(x.hi)):
        one = (1,) * len(new_shape)
        return Box(x.lo.reshape(one), x.hi.reshape(one), new_shape, x.dtype, x.nan)
    lo, hi = x.full()
    return Box(lo.reshape(new_shape), hi.reshape(new_shape), new_shape, x.dtype, x.nan).coarsen()


def _reshape_c(k: Any, x: Any, shape: Any, allowzero: int = 0) -> Any:
    spec = np.asarray(k.to_numpy(shape) if hasattr(k, "to_numpy") else shape).astype(np.int64)
    return k.xp.reshape(x, _target_shape(tuple(x.shape), spec, allowzero))


def _reshape_iv(ctx: Ctx, x: Box, shape: Box, allowzero: int = 0) -> Box:
    if not shape.is_point:
        raise NotImplementedError("Reshape with a computed, non-constant shape")
    return reshape_box(x, _target_shape(x.shape, np.asarray(shape.value), allowzero))


def _reshape_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    shape = draw_shape(draw, max_rank=3) or (2,)
    lo, hi = draw_interval(draw, -5, 5)
    n = int(np.prod(shape))
    return [BoxSpec(lo, hi, shape), np.array([-1, n] if n > 0 else [0], dtype=np.int64)[-1:] * 0 + n], {}


register(
    "Reshape", since=5, concrete=_reshape_c, interval=_reshape_iv, exact=True, overflow_rule=None,
    property="shape-only", sample=_reshape_sample, doc="same values, new shape",
)


def _flatten_c(k: Any, x: Any, axis: int = 1) -> Any:
    s = tuple(x.shape)
    axis = axis + len(s) if axis < 0 else axis
    a = int(np.prod(s[:axis], dtype=np.int64))
    return k.xp.reshape(x, (a, int(np.prod(s[axis:], dtype=np.int64))))


def _flatten_iv(ctx: Ctx, x: Box, axis: int = 1) -> Box:
    s = x.shape
    axis = axis + len(s) if axis < 0 else axis
    return reshape_box(x, (int(np.prod(s[:axis], dtype=np.int64)), int(np.prod(s[axis:], dtype=np.int64))))


def _flatten_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=4) or (2,)
    lo, hi = draw_interval(draw, -5, 5)
    return [BoxSpec(lo, hi, shape)], {"axis": draw(st.integers(-len(shape), len(shape)))}


register(
    "Flatten", since=11, concrete=_flatten_c, interval=_flatten_iv, exact=True, overflow_rule=None,
    property="shape-only", sample=_flatten_sample, doc="2-D view split at axis",
)


# ---- Cast -------------------------------------------------------------------------------


def _cast_c(k: Any, x: Any, to: int = 1, saturate: int = 1, round_mode: str = "up") -> Any:
    return k.xp.astype(x, k.dtype(np_dtype_of(to)))


def _cast_to(ctx: Ctx, x: Box, dt: np.dtype) -> Box:
    if x.is_point:
        with np.errstate(all="ignore"):
            return Box.point(np.asarray(x.value).astype(dt))
    lo, hi = x.bounds64()
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = np.clip(np.trunc(lo), info.min, info.max), np.clip(np.trunc(hi), info.min, info.max)
        return Box(lo, hi, x.shape, dt, False)
    if dt.kind == "b":
        zero = (lo <= 0) & (hi >= 0)
        nonzero = (lo != 0) | (hi != 0)
        return Box(np.where(zero, 0.0, 1.0), np.where(nonzero, 1.0, 0.0), x.shape, dt, False)
    return Box(lo, hi, x.shape, dt, x.nan)  # rounding into the new format happens in finalize


def _cast_iv(ctx: Ctx, x: Box, to: int = 1, saturate: int = 1, round_mode: str = "up") -> Box:
    return _cast_to(ctx, x, ctx.analysed(to))


def _castlike_c(k: Any, x: Any, like: Any, saturate: int = 1, round_mode: str = "up") -> Any:
    return k.xp.astype(x, like.dtype)


register(
    "Cast", since=6, concrete=_cast_c, interval=_cast_iv, overflow_rule="NUM008",
    property="monotone increasing", sample=lambda draw: ([elementwise_sample(1)(draw)[0][0]], {"to": 10}),
    doc="convert dtype; to a narrower float can overflow to inf",
)
register(
    "CastLike", since=15, concrete=_castlike_c,
    interval=lambda ctx, x, like, saturate=1, round_mode="up": _cast_to(ctx, x, like.dtype),
    overflow_rule="NUM008", property="monotone increasing",
    sample=lambda draw: ([elementwise_sample(1)(draw)[0][0], np.zeros((1,), np.float16)], {}),
    doc="convert to the dtype of the second input",
)

_ = (is_float_dtype, Hazard)

"""Step functions, comparisons and logic: Ceil Floor Round Sign, IsInf IsNaN, Not And Or Xor,
Equal Greater GreaterOrEqual Less LessOrEqual, Where.

Boolean results are boxes too: bounds 0/1 per element, ``lo = hi = 1`` definitely true,
``lo = hi = 0`` definitely false, ``[0, 1]`` unknown. A comparison is definite only when the
boxes decide it for every pair of values (``Greater(a, b)`` is true when ``a.lo > b.hi``), and
an operand that may be NaN can always make it false. All these ops are exact (IEEE comparisons
and rounding to integers are correctly rounded) and not differentiable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import draw_interval, draw_shape, elementwise_shape, monotone

_BOOL = np.dtype(np.bool_)
_EXACT_INT = 2.0**53




def _bounds(box: Box, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 bounds with leading unit dims up to ``rank``.

    Integer points beyond 2^53 are rounded outwards (``bounds64`` rounds them to nearest, which
    could make two different integers compare equal or in the wrong order).
    """
    lo, hi = box.bounds64()
    if box.is_point and box.dtype.kind in "iu":
        big = np.abs(lo) >= _EXACT_INT
        if big.any():
            lo = np.where(big, np.nextafter(lo, -np.inf), lo)
            hi = np.where(big, np.nextafter(hi, np.inf), hi)
    pad = (1,) * (rank - lo.ndim)
    return lo.reshape(pad + lo.shape), hi.reshape(pad + hi.shape)


def _bool_box(lo: np.ndarray, hi: np.ndarray, shape: tuple[int, ...]) -> Box:
    return Box(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64), shape, _BOOL, False)


# ---- Ceil Floor Round Sign --------------------------------------------------------------


def _step(name: str, since: int, fn: Callable[..., Any], doc: str, ints: bool = False) -> None:
    register(
        name, since=since, concrete=fn, interval=monotone(fn), exact=True, overflow_rule=None,
        differentiable=False, property="monotone non-decreasing (step function)",
        sample=lambda draw: _unary_sample(draw, -10.0, 10.0, ints), doc=doc,
    )


_step("Ceil", 13, lambda k, x: k.xp.ceil(x), "round up to an integer")
_step("Floor", 13, lambda k, x: k.xp.floor(x), "round down to an integer")
_step("Round", 11, lambda k, x: k.xp.round(x), "round to the nearest integer, ties to even")
_step("Sign", 13, lambda k, x: k.xp.sign(x), "-1, 0 or 1 (NaN stays NaN)", ints=True)


# ---- IsNaN IsInf ------------------------------------------------------------------------


def _isnan_iv(ctx: Ctx, x: Box) -> Box:
    one = (1,) * x.rank
    return _bool_box(np.zeros(one), np.full(one, 1.0 if x.nan else 0.0), x.shape)


def _isinf_c(k: Any, x: Any, detect_negative: int = 1, detect_positive: int = 1) -> Any:
    xp = k.xp
    inf = xp.isinf(x)
    pos = inf & (x > 0) if detect_positive else xp.zeros_like(inf)
    neg = inf & (x < 0) if detect_negative else xp.zeros_like(inf)
    return pos | neg


def _isinf_iv(ctx: Ctx, x: Box, detect_negative: int = 1, detect_positive: int = 1) -> Box:
    lo, hi = x.bounds64()
    may = np.zeros(np.broadcast_shapes(lo.shape, hi.shape), dtype=bool)
    sure = may.copy()
    if detect_positive:
        may = may | (hi == np.inf)
        sure = sure | (lo == np.inf)
    if detect_negative:
        may = may | (lo == -np.inf)
        sure = sure | (hi == -np.inf)
    if x.nan:  # a NaN element is not inf
        sure = np.zeros_like(sure)
    return _bool_box(sure, may, x.shape)


register(
    "IsNaN", since=13, concrete=lambda k, x: k.xp.isnan(x), interval=_isnan_iv, exact=True,
    overflow_rule=None, differentiable=False, property="true only where the box may be NaN",
    sample=lambda draw: _unary_sample(draw, -10.0, 10.0), doc="x != x",
)
register(
    "IsInf", since=10, concrete=_isinf_c, interval=_isinf_iv, exact=True, overflow_rule=None,
    differentiable=False, property="true only where a bound is infinite",
    sample=lambda draw: _unary_sample(draw, -10.0, 10.0, attrs=_pick(
        draw, [{}, {"detect_negative": 0}, {"detect_positive": 0}])),
    doc="x is ±inf (detect_negative / detect_positive select the signs)",
)


# ---- Not And Or Xor ---------------------------------------------------------------------


def _not_iv(ctx: Ctx, x: Box) -> Box:
    lo, hi = x.bounds64()
    return _bool_box(1.0 - hi, 1.0 - lo, x.shape)


def _binary_bool(combine: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                                   tuple[np.ndarray, np.ndarray]]) -> Callable[..., Box]:
    def rule(ctx: Ctx, a: Box, b: Box) -> Box:
        shape = elementwise_shape(a, b)
        al, ah = _bounds(a, len(shape))
        bl, bh = _bounds(b, len(shape))
        lo, hi = combine(al, ah, bl, bh)
        return _bool_box(lo, hi, shape)

    return rule


def _xor(al: np.ndarray, ah: np.ndarray, bl: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    known = (al == ah) & (bl == bh)
    return known & (al != bl), ~(known & (al == bl))


register(
    "Not", since=1, concrete=lambda k, x: k.xp.logical_not(x), interval=_not_iv, exact=True,
    overflow_rule=None, differentiable=False, property="monotone decreasing", sample=lambda draw: _bool_sample(draw, 1),
    doc="logical not",
)
register(
    "And", since=7, concrete=lambda k, a, b: k.xp.logical_and(a, b),
    interval=_binary_bool(lambda al, ah, bl, bh: (np.minimum(al, bl), np.minimum(ah, bh))),
    exact=True, overflow_rule=None, differentiable=False, property="monotone increasing in each argument (min)",
    sample=lambda draw: _bool_sample(draw, 2), doc="logical and (broadcast)",
)
register(
    "Or", since=7, concrete=lambda k, a, b: k.xp.logical_or(a, b),
    interval=_binary_bool(lambda al, ah, bl, bh: (np.maximum(al, bl), np.maximum(ah, bh))),
    exact=True, overflow_rule=None, differentiable=False, property="monotone increasing in each argument (max)",
    sample=lambda draw: _bool_sample(draw, 2), doc="logical or (broadcast)",
)
register(
    "Xor", since=7, concrete=lambda k, a, b: k.xp.logical_xor(a, b), interval=_binary_bool(_xor),
    exact=True, overflow_rule=None, differentiable=False, property="definite only when both inputs are",
    sample=lambda draw: _bool_sample(draw, 2), doc="logical xor (broadcast)",
)


# ---- comparisons ------------------------------------------------------------------------


def _compare(test: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                            tuple[np.ndarray, np.ndarray]], swap: bool = False) -> Callable[..., Box]:
    """Comparison rule from ``test(al, ah, bl, bh) -> (surely true, possibly true)``."""

    def rule(ctx: Ctx, a: Box, b: Box) -> Box:
        if swap:
            a, b = b, a
        shape = elementwise_shape(a, b)
        al, ah = _bounds(a, len(shape))
        bl, bh = _bounds(b, len(shape))
        sure, may = test(al, ah, bl, bh)
        if a.nan or b.nan:  # NaN compares false
            sure = np.zeros_like(sure)
        return _bool_box(sure, may, shape)

    return rule


def _gt(al: np.ndarray, ah: np.ndarray, bl: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return al > bh, ah > bl


def _ge(al: np.ndarray, ah: np.ndarray, bl: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return al >= bh, ah >= bl


def _eq(al: np.ndarray, ah: np.ndarray, bl: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sure = (al == ah) & (bl == bh) & (al == bl)
    return sure, (ah >= bl) & (bh >= al)


def _cmp(name: str, since: int, fn: Callable[..., Any], rule: Callable[..., Box], doc: str) -> None:
    register(
        name, since=since, concrete=fn, interval=rule, exact=True, overflow_rule=None,
        differentiable=False, property="definite where the boxes decide it for all values",
        sample=lambda draw: _compare_sample(draw), doc=doc,
    )


_cmp("Equal", 13, lambda k, a, b: a == b, _compare(_eq), "a == b (broadcast)")
_cmp("Greater", 13, lambda k, a, b: a > b, _compare(_gt), "a > b (broadcast)")
_cmp("GreaterOrEqual", 12, lambda k, a, b: a >= b, _compare(_ge), "a >= b (broadcast)")
_cmp("Less", 13, lambda k, a, b: a < b, _compare(_gt, swap=True), "a < b (broadcast)")
_cmp("LessOrEqual", 12, lambda k, a, b: a <= b, _compare(_ge, swap=True), "a <= b (broadcast)")


# ---- Where ------------------------------------------------------------------------------


def _where_iv(ctx: Ctx, cond: Box, x: Box, y: Box) -> Box:
    shape = elementwise_shape(cond, x, y)
    rank = len(shape)
    cl, ch = _bounds(cond, rank)
    xl, xh = _bounds(x, rank)
    yl, yh = _bounds(y, rank)
    sure_x, sure_y = cl >= 1, ch <= 0
    lo = np.where(sure_x, xl, np.where(sure_y, yl, np.minimum(xl, yl)))
    hi = np.where(sure_x, xh, np.where(sure_y, yh, np.maximum(xh, yh)))
    nan = (x.nan and bool((ch >= 1).any())) or (y.nan and bool((cl <= 0).any()))
    return Box(lo, hi, shape, x.dtype, nan)


register(
    "Where", since=9, concrete=lambda k, c, x, y: k.xp.where(c, x, y), interval=_where_iv, exact=True,
    overflow_rule=None, propagates_nan=False, property="x where cond is surely true, y where surely false, their join elsewhere",
    sample=lambda draw: _where_sample(draw), doc="elementwise select (broadcast)",
)


# ---- samplers ---------------------------------------------------------------------------


def _pick(draw: Any, options: list[Any]) -> Any:
    from hypothesis import strategies as st

    return draw(st.sampled_from(options))


def _unary_sample(draw: Any, low: float, high: float, ints: bool = False,
                  attrs: dict[str, Any] | None = None) -> tuple[list[BoxSpec], dict[str, Any]]:
    dtype = _pick(draw, ["float32", "int32"]) if ints else "float32"
    lo, hi = draw_interval(draw, low, high)
    if dtype != "float32":
        lo, hi = float(np.floor(lo)), float(np.ceil(hi))
    return [BoxSpec(lo, hi, draw_shape(draw), dtype)], dict(attrs or {})


def _suffix(draw: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` or a broadcastable suffix of it."""
    if not shape or _pick(draw, [True, False]):
        return shape
    return shape[_pick(draw, list(range(len(shape) + 1))):]


def _bool_sample(draw: Any, arity: int) -> tuple[list[Any], dict[str, Any]]:
    shape = draw_shape(draw)
    ins: list[Any] = []
    for i in range(arity):
        s = shape if i == 0 else _suffix(draw, shape)
        if _pick(draw, [True, False]):
            ins.append(BoxSpec(0.0, 1.0, s, "bool"))
        else:  # an exact mask
            ins.append(np.asarray(np.random.default_rng(draw(_seed())).random(s) < 0.5))
    return ins, {}


def _seed() -> Any:
    from hypothesis import strategies as st

    return st.integers(0, 2**31 - 1)


def _compare_sample(draw: Any) -> tuple[list[BoxSpec], dict[str, Any]]:
    shape = draw_shape(draw)
    dtype = _pick(draw, ["float32", "int32", "int64"])
    specs = []
    for i in range(2):
        s = shape if i == 0 else _suffix(draw, shape)
        lo, hi = draw_interval(draw, -5.0, 5.0)
        if dtype != "float32":
            lo, hi = float(np.floor(lo)), float(np.ceil(hi))
        specs.append(BoxSpec(lo, hi, s, dtype))
    return specs, {}


def _where_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    shape = draw_shape(draw)
    cond = _bool_sample(draw, 1)[0][0]
    if isinstance(cond, BoxSpec):
        cond = BoxSpec(0.0, 1.0, _suffix(draw, shape), "bool")
    else:
        cond = np.asarray(np.random.default_rng(draw(_seed())).random(_suffix(draw, shape)) < 0.5)
    x = BoxSpec(*draw_interval(draw, -10.0, 10.0), _suffix(draw, shape))
    y = BoxSpec(*draw_interval(draw, -10.0, 10.0), shape)
    return [cond, x, y], {}

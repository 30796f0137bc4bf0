"""Elementwise arithmetic: Add Sub Mul Div Neg Abs Reciprocal Max Min Sum Mean Pow Mod."""

from __future__ import annotations

from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.dtypes import round_bounds
from numsentry.ops.registry import BoxSpec, Ctx, Hazard, register
from numsentry.ops.rules import (
    bcast,
    draw_interval,
    draw_shape,
    elementwise_sample,
    elementwise_shape,
    iadd,
    idiv,
    imul,
    isquare,
    monotone,
    zero_in,
)


def _same(a: Box, b: Box, lo: np.ndarray, hi: np.ndarray, nan: bool) -> Box:
    return Box(lo, hi, elementwise_shape(a, b), a.dtype, a.nan or b.nan or nan)


def _add_iv(ctx: Ctx, a: Box, b: Box) -> Box:
    return _same(a, b, *iadd(a, b))


def _neg(b: Box) -> Box:
    lo, hi = b.bounds64()
    return Box(-hi, -lo, b.shape, b.dtype, b.nan)


def _sub_iv(ctx: Ctx, a: Box, b: Box) -> Box:
    if a is b:  # x - x is exactly 0 for finite x
        z = np.zeros((1,) * a.rank)
        inf = not a.finite
        return Box(np.where(inf, -np.inf, z), np.where(inf, np.inf, z), a.shape, a.dtype, a.nan or inf)
    return _same(a, b, *iadd(a, _neg(b)))


def _mul_iv(ctx: Ctx, a: Box, b: Box) -> Box:
    return _same(a, b, *imul(a, b))


def _div_iv(ctx: Ctx, a: Box, b: Box) -> Box:
    if a.dtype.kind in "iu":
        lo, hi, _ = idiv(a, b)
        # integer division truncates toward zero: widen to the integers around the real bounds
        return _same(a, b, np.floor(np.minimum(lo, 0) + np.maximum(lo, 0)), np.ceil(hi), False)
    return _same(a, b, *idiv(a, b))


def _int_zero_div(rule: str) -> Hazard:
    base = zero_in(rule, "integer division by zero", 1)

    def check(ctx: Ctx, inputs: Any, attrs: dict[str, Any]) -> str | None:
        if inputs[0] is None or inputs[0].dtype.kind not in "iu":
            return None
        return base.check(ctx, inputs, attrs)

    return Hazard(rule, check)


def _float_zero_div(rule: str) -> Hazard:
    base = zero_in(rule, "division by zero", 1)

    def check(ctx: Ctx, inputs: Any, attrs: dict[str, Any]) -> str | None:
        if inputs[0] is None or inputs[0].dtype.kind in "iu":
            return None
        return base.check(ctx, inputs, attrs)

    return Hazard(rule, check)


def _nonzero_divisor_sample(draw: Any) -> tuple[list[BoxSpec], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw)
    lo, hi = draw_interval(draw, -10, 10)
    sign = draw(st.sampled_from([-1.0, 1.0]))
    d_lo, d_hi = draw_interval(draw, 0.1, 10)
    if sign < 0:
        d_lo, d_hi = -d_hi, -d_lo
    return [BoxSpec(lo, hi, shape), BoxSpec(d_lo, d_hi, shape)], {}


register(
    "Add", since=7, concrete=lambda k, a, b: a + b, interval=_add_iv, exact=True,
    property="monotone in each argument", sample=elementwise_sample(2),
    doc="a + b",
)
register(
    "Sub", since=7, concrete=lambda k, a, b: a - b, interval=_sub_iv, exact=True,
    property="monotone in each argument", sample=elementwise_sample(2), doc="a - b",
)
register(
    "Mul", since=7, concrete=lambda k, a, b: a * b, interval=_mul_iv, exact=True,
    property="bilinear", sample=elementwise_sample(2), doc="a * b (x*x is a square)",
)


def _div_c(k: Any, a: Any, b: Any) -> Any:
    if hasattr(a, "dtype") and str(a.dtype).startswith(("int", "uint", "torch.int")):
        q = k.xp.abs(a) // k.xp.abs(b)
        return k.xp.where((a < 0) != (b < 0), -q, q)  # ONNX integer Div truncates toward 0
    return a / b


register(
    "Div", since=7, concrete=_div_c, interval=_div_iv, exact=True,
    hazards=(_float_zero_div("NUM002"), _int_zero_div("NUM010")),
    property="monotone in each argument away from a zero divisor",
    sample=_nonzero_divisor_sample, doc="a / b",
)


def _recip_c(k: Any, x: Any) -> Any:
    return 1.0 / x


def _recip_iv(ctx: Ctx, x: Box) -> Box:
    one = Box.point(np.ones((), dtype=np.float64))
    lo, hi, nan = idiv(one, x)
    return Box(lo, hi, x.shape, x.dtype, x.nan or nan)


def _recip_sample(draw: Any) -> tuple[list[BoxSpec], dict[str, Any]]:
    specs, _ = _nonzero_divisor_sample(draw)
    return [specs[1]], {}


register(
    "Reciprocal", since=6, concrete=_recip_c, interval=_recip_iv, exact=True,
    hazards=(zero_in("NUM002", "reciprocal of zero", 0),), property="monotone on each side of 0",
    sample=_recip_sample, doc="1 / x",
)

register(
    "Neg", since=6, concrete=lambda k, x: -x, interval=lambda ctx, x: _neg(x), exact=True,
    overflow_rule=None, property="monotone decreasing", sample=elementwise_sample(1), doc="-x",
)


def _abs_iv(ctx: Ctx, x: Box) -> Box:
    lo, hi = x.bounds64()
    straddle = (lo <= 0) & (hi >= 0)
    out_lo = np.where(straddle, 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    return Box(out_lo, np.maximum(np.abs(lo), np.abs(hi)), x.shape, x.dtype, x.nan)


register(
    "Abs", since=6, concrete=lambda k, x: k.xp.abs(x), interval=_abs_iv, exact=True,
    overflow_rule=None, property="piecewise monotone (critical point 0)",
    sample=elementwise_sample(1), doc="|x|",
)


def _variadic(pairwise: Any, round_each: bool = False) -> Any:
    """Fold a pairwise rule over n inputs; ``round_each`` rounds every partial result into the
    format, as a runtime that adds one input at a time does."""

    def rule(ctx: Ctx, *xs: Box) -> Box:
        acc = xs[0]
        for x in xs[1:]:
            acc = pairwise(ctx, acc, x)
            if round_each and acc.dtype.kind == "f":
                lo, hi = acc.bounds64()
                acc = acc.with_bounds(*round_bounds(lo, hi, ctx.fmt(acc.dtype)))
        return acc

    return rule


def _max_iv(ctx: Ctx, a: Box, b: Box) -> Box:
    rank = len(elementwise_shape(a, b))
    (al, ah), (bl, bh) = bcast(a, rank), bcast(b, rank)
    return _same(a, b, np.maximum(al, bl), np.maximum(ah, bh), False)


def _min_iv(ctx: Ctx, a: Box, b: Box) -> Box:
    rank = len(elementwise_shape(a, b))
    (al, ah), (bl, bh) = bcast(a, rank), bcast(b, rank)
    return _same(a, b, np.minimum(al, bl), np.minimum(ah, bh), False)


def _fold(fn: Any) -> Any:
    def c(k: Any, *xs: Any) -> Any:
        acc = xs[0]
        for x in xs[1:]:
            acc = fn(k, acc, x)
        return acc

    return c


register(
    "Max", since=8, concrete=_fold(lambda k, a, b: k.xp.maximum(a, b)), interval=_variadic(_max_iv),
    exact=True, overflow_rule=None, property="monotone in each argument",
    sample=elementwise_sample(2), doc="elementwise max of n inputs",
)
register(
    "Min", since=8, concrete=_fold(lambda k, a, b: k.xp.minimum(a, b)), interval=_variadic(_min_iv),
    exact=True, overflow_rule=None, property="monotone in each argument",
    sample=elementwise_sample(2), doc="elementwise min of n inputs",
)
register(
    "Sum", since=8, concrete=_fold(lambda k, a, b: a + b), interval=_variadic(_add_iv, round_each=True),
    property="monotone in each argument", sample=elementwise_sample(3),
    doc="elementwise sum of n inputs (rounded after each addition)",
)


def _mean_c(k: Any, *xs: Any) -> Any:
    return _fold(lambda k, a, b: a + b)(k, *xs) / len(xs)


def _mean_iv(ctx: Ctx, *xs: Box) -> Box:
    s = _variadic(_add_iv, round_each=True)(ctx, *xs)  # the sum can overflow before the division
    lo, hi = s.bounds64()
    return s.with_bounds(lo / len(xs), hi / len(xs))


register(
    "Mean", since=8, concrete=_mean_c, interval=_mean_iv, ulps=2,
    property="monotone in each argument", sample=elementwise_sample(3), doc="elementwise mean",
)


# ---- Pow -------------------------------------------------------------------------------


def _pow_c(k: Any, x: Any, y: Any) -> Any:
    return k.xp.pow(x, k.xp.astype(y, x.dtype) if hasattr(y, "dtype") and y.dtype != x.dtype else y)


def _pow_iv(ctx: Ctx, x: Box, y: Box) -> Box:
    """x ** y, widened by 2 ULPs for the runtime's pow (even powers stay >= 0).

    Runtimes compute x ** 2 as x * x (onnxruntime special-cases it), which is correctly
    rounded: no widening there, so x ** 2 over [-50, 50] is exactly [0, 2500].
    """
    out = _pow_real(ctx, x, y)
    if out.dtype.kind != "f":
        return out
    e = float(np.asarray(y.value).reshape(())) if y.is_point and y.size == 1 else None
    lo, hi = out.bounds64()
    lo, hi = round_bounds(lo, hi, ctx.fmt(out.dtype), ulps=0 if e == 2.0 else 2)
    if e is not None and e == int(e) and int(e) % 2 == 0:
        lo = np.maximum(lo, 0.0)
    return out.with_bounds(lo, hi)


def _pow_real(ctx: Ctx, x: Box, y: Box) -> Box:
    shape = elementwise_shape(x, y)
    rank = len(shape)
    xl, xh = bcast(x, rank)
    if y.is_point and y.size == 1:
        e = float(np.asarray(y.value).reshape(()))
        if e == 2.0:
            lo, hi = isquare(Box(xl, xh, shape, x.dtype))
            return Box(lo, hi, shape, x.dtype, x.nan)
        if e == int(e):
            ei = int(e)
            with np.errstate(all="ignore"):
                a, b = np.power(xl, float(ei)), np.power(xh, float(ei))
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            if ei % 2 == 0 and ei > 0:
                lo = np.where((xl <= 0) & (xh >= 0), 0.0, lo)
            elif ei < 0:
                zero = (xl <= 0) & (xh >= 0)
                lo = np.where(zero, -np.inf if ei % 2 else lo, lo)
                hi = np.where(zero, np.inf, hi)
                if ei % 2 == 0:
                    lo = np.where(zero, np.minimum(a, b), lo)
            return Box(lo, hi, shape, x.dtype, x.nan)
    # general exponent: x^y = exp(y log x) for x > 0; x < 0 with non-integer y gives NaN
    yl, yh = bcast(y, rank)
    with np.errstate(all="ignore"):
        xl_p = np.maximum(xl, 0.0)
        cands = [np.power(xl_p, yl), np.power(xl_p, yh), np.power(xh, yl), np.power(xh, yh)]
        cands = [np.where(np.isnan(c), np.inf, c) for c in cands]
        lo = np.minimum.reduce(cands)
        hi = np.maximum.reduce(cands)
    # x crossing 1 makes y's sign matter: the extremes are at the corners already; a negative
    # base with integer y can take either sign: bound by the magnitudes
    neg = xl < 0
    if neg.any():
        # |x| ranges over [m0, m1]; |x|^y is monotone in |x| and in y, so corners bound it
        m1 = np.maximum(np.abs(xl), np.abs(xh))
        m0 = np.where((xl <= 0) & (xh >= 0), 0.0, np.minimum(np.abs(xl), np.abs(xh)))
        with np.errstate(all="ignore"):
            corners = [np.power(mg, e) for mg in (m0, m1) for e in (yl, yh)]
            m: np.ndarray = np.asarray(np.maximum.reduce([np.where(np.isnan(c), np.inf, c) for c in corners]))
        lo = np.where(neg, -m, lo)
        hi = np.where(neg, np.maximum(hi, m), hi)
    zero = (xl <= 0) & (xh >= 0) & (yl < 0)
    hi = np.where(zero, np.inf, hi)
    lo = np.where(zero & neg, -np.inf, lo)
    nan = bool((neg & ~((yl == yh) & (yl == np.round(yl)))).any())
    return Box(lo, hi, shape, x.dtype, x.nan or y.nan or nan)


def _pow_check(ctx: Ctx, inputs: Any, attrs: dict[str, Any]) -> str | None:
    x, y = inputs[0], inputs[1]
    shape = elementwise_shape(x, y)
    xl, xh = bcast(x, len(shape))
    yl, yh = bcast(y, len(shape))
    xl, xh, yl, yh = np.broadcast_arrays(xl, xh, yl, yh)
    int_y = (yl == yh) & (yl == np.round(yl))
    neg_frac = (xl < 0) & ~int_y
    zero_neg = (xl <= 0) & (xh >= 0) & (yl < 0)
    if neg_frac.any():
        return f"pow of a negative base with a non-integer exponent: base {x.describe()}, exponent {y.describe()}"
    if zero_neg.any():
        return f"pow of a zero base with a negative exponent: base {x.describe()}, exponent {y.describe()}"
    return None


def _pow_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw)
    if draw(st.booleans()):
        e = draw(st.sampled_from([2.0, 3.0, 0.5, -1.0, 1.5]))
        lo, hi = draw_interval(draw, -10 if e in (2.0, 3.0) else 0.1, 10)
        return [BoxSpec(lo, hi, shape), np.array(e, dtype=np.float32)], {}
    lo, hi = draw_interval(draw, 0.1, 5)
    elo, ehi = draw_interval(draw, -3, 3)
    return [BoxSpec(lo, hi, shape), BoxSpec(elo, ehi, shape)], {}


register(
    "Pow", since=7, concrete=_pow_c, interval=_pow_iv,
    hazards=(Hazard("NUM005", _pow_check),), property="monotone per exponent sign / even power",
    sample=_pow_sample, doc="x ** y",
)


# ---- Mod ----------------------------------------------------------------------------------


def _mod_c(k: Any, a: Any, b: Any, fmod: int = 0) -> Any:
    xp = k.xp
    r = xp.remainder(a, b)  # Python semantics: sign of the divisor
    if fmod:  # C semantics: sign of the dividend
        r = xp.where((r != 0) & ((r < 0) != (a < 0)), r - b, r)
    return r


def _mod_iv(ctx: Ctx, a: Box, b: Box, fmod: int = 0) -> Box:
    shape = elementwise_shape(a, b)
    rank = len(shape)
    bl, bh = bcast(b, rank)
    al, ah = bcast(a, rank)
    m = np.maximum(np.abs(bl), np.abs(bh))
    if fmod:  # sign of the dividend, |r| < |b|
        lo = np.where(al >= 0, 0.0, np.maximum(al, -m))
        hi = np.where(ah <= 0, 0.0, np.minimum(ah, m))
    else:  # sign of the divisor
        lo = np.where(bl >= 0, 0.0, -m)
        hi = np.where(bh <= 0, 0.0, m)
    zero = (bl <= 0) & (bh >= 0)
    nan = bool(zero.any()) and a.dtype.kind == "f"
    return Box(lo, hi, shape, a.dtype, a.nan or b.nan or nan)


register(
    "Mod", since=10, concrete=_mod_c, interval=_mod_iv, exact=True, overflow_rule=None,
    hazards=(_float_zero_div("NUM002"), _int_zero_div("NUM010")),
    property="bounded by the divisor", sample=_nonzero_divisor_sample,
    doc="remainder (fmod=1: C fmod)",
)

_ = monotone  # re-exported for op modules that derive monotone rules

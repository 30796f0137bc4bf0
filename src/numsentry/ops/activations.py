"""Activations: Erf Gelu Elu Celu Selu LeakyRelu PRelu HardSigmoid HardSwish Mish Softplus
Softsign Swish ThresholdedRelu Shrink Clip.

Several of these are *not* monotone: Gelu, Mish, Swish and HardSwish dip to a minimum at a
negative x (Swish with a negative ``alpha`` to a maximum at a positive x); their rules evaluate
the true critical point (found by bisection on the derivative at import) when it lies inside
the box.

Runtime error. The ``x * g(x)`` activations (Gelu, Mish, Swish, HardSwish) and the ``exp(x) - 1``
branch of Elu/Celu/Selu lose *relative* accuracy near their zeros on real kernels: onnxruntime
1.31 computes Gelu(-6) = -0 (true -6e-9), Swish(-17) = -1.5e-6 (true -7.0e-7: its sigmoid is off
by up to 1.4e-7 absolute around -12..-17), Elu(-1e-7) = -1.19e-7 (exp(x) - 1, no expm1). So
these rules bound the runtime as ``x * (g(x) ± E)`` or ``alpha * (expm1(x) ± E)`` with an
absolute error ``E`` in units of the format's unit roundoff ``eps``, measured on float32 grids
(2e6 points over [-30, 30] plus log-spaced magnitudes down to 1e-40) as max |error| / |x| / eps:
Gelu 1.9 (tanh form 3.0), Mish 4.8, Swish 3.3, HardSwish 1.1 (with |x|/6 + 1), Elu/Celu 1.1,
Selu 1.5; ``E`` keeps about 2x margin, and ``ulps`` adds relative slack on top. onnxruntime's
tanh overshoots ±1 by up to 2 ULPs, which makes Gelu(approximate="tanh") of about -5.15 come
out *positive* (+3.1e-7): that rule does not assume the sign of x. Softsign has no codomain
clamp for the same reason (onnxruntime returns up to 1.0000002 for |x| > 8.6e37).

Softplus, Erf and Softsign stay within 4, 1 and 2 ULPs. onnxruntime computes Softplus stably:
Softplus(100) = 100 and Softplus(-100) = 3.78e-44 in float32 (no exp overflow; so does the
concrete rule here), so NUM003 only fires where the true result overflows, which no finite
input of a supported format does. A runtime using the naive log(1 + exp(x)) would return inf
above log(max) (88.7 in float32); numsentry does not model that.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.dtypes import is_float_dtype
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import bcast, draw_interval, draw_shape, elementwise_shape

Bounds = tuple[np.ndarray, np.ndarray]

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715




def _register(op_type: str, **kwargs: Any) -> None:
    register(op_type, **kwargs)


def _f32(v: Any) -> float:
    """An attribute value as the float32 number the model carries."""
    return float(np.float32(v))


def _eps(ctx: Ctx, x: Box) -> float:
    return ctx.fmt(x.dtype).eps


_erf_u = np.frompyfunc(math.erf, 1, 1)
_erfc_u = np.frompyfunc(math.erfc, 1, 1)


def _erf64(x: np.ndarray) -> np.ndarray:
    return np.asarray(_erf_u(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def _erfc64(x: np.ndarray) -> np.ndarray:
    return np.asarray(_erfc_u(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def _erf(k: Any, x: Any) -> Any:
    """erf on the backend of ``x``; the NumPy path keeps 0-d arrays arrays (``NUMPY.erf``
    returns a Python float for them) and rounds the float64 result into ``x``'s dtype."""
    if k.name == "numpy":
        x = np.asarray(x)
        dt = x.dtype if is_float_dtype(x.dtype) else np.dtype(np.float64)
        return _erf64(x).astype(dt)
    return k.erf(x)


def _sigmoid64(u: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-u))


def _limit0(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``f`` with its limit 0 at ±inf where ``x * g(x)`` evaluates to inf * 0."""

    def g(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            y = np.asarray(f(x), dtype=np.float64)
        return np.where(np.isinf(x) & np.isnan(y), 0.0, y)

    return g


def _bisect_root(df: Callable[[float], float], a: float, b: float) -> float:
    """A root of ``df`` in [a, b] (``df(a)`` and ``df(b)`` of opposite signs)."""
    fa = df(a)
    for _ in range(200):
        m = 0.5 * (a + b)
        fm = df(m)
        if (fm < 0) == (fa < 0):
            a, fa = m, fm
        else:
            b = m
    return 0.5 * (a + b)


def _sig(u: float) -> float:
    return 1.0 / (1.0 + math.exp(-u))


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# critical points (minima) of the non-monotone activations
_GELU_MIN = _bisect_root(lambda x: 0.5 * math.erfc(-x * _SQRT1_2) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi), -3.0, -0.1)
_GELU_TANH_MIN = _bisect_root(
    lambda x: _sig(2 * _GELU_C * (x + _GELU_K * x**3))
    + x * _sig(2 * _GELU_C * (x + _GELU_K * x**3)) * (1 - _sig(2 * _GELU_C * (x + _GELU_K * x**3)))
    * 2 * _GELU_C * (1 + 3 * _GELU_K * x * x),
    -3.0, -0.1,
)
_MISH_MIN = _bisect_root(
    lambda x: math.tanh(_softplus(x)) + x * (1 - math.tanh(_softplus(x)) ** 2) * _sig(x), -3.0, -0.1
)
_SWISH_UNIT_MIN = _bisect_root(lambda u: _sig(u) + u * _sig(u) * (1 - _sig(u)), -3.0, -0.1)


# ---- shared interval machinery ----------------------------------------------------------


def _extrema(f: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray,
             crit: Sequence[float] = ()) -> Bounds:
    """Min and max of ``f`` over [a, b] (elementwise) for ``f`` monotone between ``crit``."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    with np.errstate(all="ignore"):
        fa, fb = f(a), f(b)
        lo, hi = np.minimum(fa, fb), np.maximum(fa, fb)
        for c in crit:
            inside = (a <= c) & (c <= b)
            if inside.any():
                fc = f(np.where(inside, c, a))
                lo = np.where(inside, np.minimum(lo, fc), lo)
                hi = np.where(inside, np.maximum(hi, fc), hi)
    return lo, hi


def _hull(*parts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Bounds:
    """Hull of the pieces ``(exists, lo, hi)`` that exist (at least one does everywhere)."""
    shape = np.broadcast_shapes(*(np.shape(p) for part in parts for p in part))
    lo = np.full(shape, np.inf)
    hi = np.full(shape, -np.inf)
    for m, a, b in parts:
        lo = np.where(m, np.minimum(lo, a), lo)
        hi = np.where(m, np.maximum(hi, b), hi)
    return lo, hi


def _scale(a: np.ndarray, b: np.ndarray, s: float) -> Bounds:
    """s * [a, b] with 0 * inf read as 0."""
    if s == 0:
        z = np.zeros(np.broadcast_shapes(np.shape(a), np.shape(b)))
        return z, z
    return np.minimum(s * a, s * b), np.maximum(s * a, s * b)


def _nan_at_inf(f_raw: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether an infinite bound is an input where the runtime formula gives inf * 0."""
    for v in (lo, hi):
        inf = np.isinf(v)
        if inf.any():
            with np.errstate(all="ignore"):
                if np.isnan(f_raw(np.where(inf, v, 0.0))).any():
                    return True
    return False


XG = tuple[Callable[[np.ndarray], np.ndarray], Sequence[float], bool]


def _xg_rule(make: Callable[..., XG], err: float, floor: float = 0.0) -> Callable[..., Box]:
    """Interval rule of ``x * g(x)`` with ``g`` in [0, 1], computed with |error of g| <= err*eps.

    ``make(**attrs)`` returns the exact function ``x * g(x)`` (float64), its critical points
    and whether the runtime's ``g`` surely stays >= 0. The runtime result is ``x * (g(x) + e)``;
    when its ``g`` stays in [0, 1] the result also keeps x's sign and stays within [-|x|, |x|]
    (up to the final rounding, which ``ulps`` covers). ``floor`` is a format-independent
    minimum of the error of ``g`` (kernels that compute ``g`` in float32 even for float64).
    """

    def rule(ctx: Ctx, x: Box, **attrs: Any) -> Box:
        f_raw, crit, sign_safe = make(**attrs)
        f = _limit0(f_raw)
        e = max(err * _eps(ctx, x), floor)
        lo, hi = x.bounds64()
        lo, hi = np.broadcast_arrays(lo, hi)
        nb = np.minimum(hi, 0.0)
        n_lo, n_hi = _extrema(f, lo, nb, crit)
        with np.errstate(invalid="ignore"):
            w = e * np.abs(lo)
            n_lo = np.maximum(lo, n_lo - w)
            n_hi = np.minimum(0.0, n_hi + w) if sign_safe else n_hi + w
        pa = np.maximum(lo, 0.0)
        p_lo, p_hi = _extrema(f, pa, hi, crit)
        with np.errstate(invalid="ignore"):
            w = e * np.abs(hi)
            p_lo = np.maximum(0.0, p_lo - w) if sign_safe else p_lo - w
            p_hi = np.minimum(hi, p_hi + w)
        out_lo, out_hi = _hull((lo < 0, n_lo, n_hi), (hi >= 0, p_lo, p_hi))
        return Box(out_lo, out_hi, x.shape, x.dtype, x.nan or _nan_at_inf(f_raw, lo, hi))

    rule.__doc__ = "x * g(x), piecewise monotone with a known critical point, absolute error in g"
    return rule


def _mono_rule(f: Callable[[np.ndarray], np.ndarray], nan_at_inf: bool = False) -> Callable[..., Box]:
    """Interval rule of an increasing function (``f`` float64, exact limits at ±inf)."""

    def rule(ctx: Ctx, x: Box) -> Box:
        lo, hi = x.bounds64()
        with np.errstate(all="ignore"):
            a, b = f(lo), f(hi)
        nan = nan_at_inf and bool(np.isinf(lo).any() or np.isinf(hi).any())
        return Box(a, b, x.shape, x.dtype, x.nan or nan)

    rule.__doc__ = "monotone increasing"
    return rule


# ---- Erf, Softplus, Softsign -----------------------------------------------------------


def _softplus_c(k: Any, x: Any) -> Any:
    # log(1 + exp(x)) rewritten so that exp never overflows: max(x, 0) + log1p(exp(-|x|))
    xp = k.xp
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def _softsign64(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        y = x / (1.0 + np.abs(x))
    return np.where(np.isinf(x), np.sign(x), y)


_register(
    "Erf", since=13, concrete=_erf, interval=_mono_rule(_erf64), ulps=4,
    codomain=(-1.0, 1.0), overflow_rule=None, property="monotone increasing",
    sample=lambda draw: _unary(draw, -5.0, 5.0), doc="error function",
)
_register(
    "Softplus", since=1, concrete=_softplus_c, interval=_mono_rule(lambda x: np.logaddexp(0.0, x)),
    ulps=10, codomain=(0.0, np.inf), overflow_rule="NUM003", property="monotone increasing",
    sample=lambda draw: _unary(draw, -30.0, 30.0, (-120.0, 120.0)),
    doc="log(1 + e^x); onnxruntime evaluates it without overflow (Softplus(100) = 100)",
)
_register(
    "Softsign", since=1, concrete=lambda k, x: x / (1 + k.xp.abs(x)),
    interval=_mono_rule(_softsign64, nan_at_inf=True), ulps=8, overflow_rule=None,
    property="monotone increasing", sample=lambda draw: _unary(draw, -100.0, 100.0),
    # no codomain clamp: onnxruntime returns up to 1.0000002 for |x| > ~8.6e37
    doc="x / (1 + |x|); NaN at ±inf (inf / inf)",
)


# ---- Gelu, Mish, Swish, HardSwish: x * g(x) ---------------------------------------------


def _gelu_mode(approximate: Any) -> str:
    mode = approximate.decode() if isinstance(approximate, bytes) else str(approximate)
    if mode not in ("none", "tanh"):
        raise ValueError(f"Gelu: unknown approximate={mode!r}")
    return mode


def _gelu_c(k: Any, x: Any, approximate: Any = "none") -> Any:
    if _gelu_mode(approximate) == "tanh":
        return 0.5 * x * (1 + k.xp.tanh(_GELU_C * (x + _GELU_K * x * x * x)))
    return 0.5 * x * (1 + _erf(k, x * _SQRT1_2))


def _gelu_make(approximate: Any = "none") -> XG:
    if _gelu_mode(approximate) == "tanh":
        # 0.5 * (1 + tanh(u)) = sigmoid(2u): no cancellation for negative x. onnxruntime's tanh
        # overshoots -1 by up to 2 ULPs, so 1 + tanh(u) can be negative: Gelu(-5.15) = +3.1e-7.
        return (lambda x: x * _sigmoid64(2 * _GELU_C * (x + _GELU_K * x**3))), [_GELU_TANH_MIN], False
    return (lambda x: x * 0.5 * _erfc64(-x * _SQRT1_2)), [_GELU_MIN], True


def _mish_c(k: Any, x: Any) -> Any:
    return x * k.xp.tanh(_softplus_c(k, x))


def _mish_make() -> XG:
    return (lambda x: x * np.tanh(np.logaddexp(0.0, x))), [_MISH_MIN], True


def _swish_c(k: Any, x: Any, alpha: float = 1.0) -> Any:
    return x * (1 / (1 + k.xp.exp(-_f32(alpha) * x)))


def _swish_make(alpha: float = 1.0) -> XG:
    a = _f32(alpha)
    if a == 0:
        return (lambda x: 0.5 * x), [], True
    return (lambda x: x * _sigmoid64(a * x)), [_SWISH_UNIT_MIN / a], True


_HS_ALPHA = 1.0 / 6.0


def _hardswish_c(k: Any, x: Any) -> Any:
    return x * k.xp.clip(x * _HS_ALPHA + 0.5, 0.0, 1.0)


def _hardswish_make() -> XG:
    return (lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)), [-1.5], True


_register(
    # onnxruntime's float64 Gelu(tanh) clamps tanh's argument at 9 as in float32: |g error| up
    # to 1.5e-8, hence the float32-level floor
    "Gelu", since=20, concrete=_gelu_c, interval=_xg_rule(_gelu_make, 8.0, floor=8 * 2.0**-24), ulps=4,
    overflow_rule=None,
    property=f"x * Phi(x): decreasing below its minimum at x = {_GELU_MIN:.4f} (tanh form {_GELU_TANH_MIN:.4f}), increasing above",
    sample=lambda draw: _unary(draw, -10.0, 10.0, attrs={"approximate": _pick(draw, ["none", "tanh"])}),
    doc="x * Phi(x) (approximate='tanh': tanh form); NaN at -inf",
)
_register(
    "Mish", since=18, concrete=_mish_c, interval=_xg_rule(lambda: _mish_make(), 10.0), ulps=16,
    overflow_rule=None,
    property=f"x * tanh(softplus(x)): decreasing below its minimum at x = {_MISH_MIN:.4f}, increasing above",
    sample=lambda draw: _unary(draw, -10.0, 10.0, (-60.0, 60.0)), doc="x * tanh(softplus(x)); NaN at -inf",
)
_register(
    "Swish", since=24, concrete=_swish_c, interval=_xg_rule(_swish_make, 8.0), ulps=4, overflow_rule=None,
    property=f"x * sigmoid(alpha x): one critical point at alpha x = {_SWISH_UNIT_MIN:.4f}",
    sample=lambda draw: _unary(draw, -10.0, 10.0, (-40.0, 40.0),
                               attrs={"alpha": _pick(draw, [1.0, 0.5, 2.0, -1.0, 1.702])}),
    doc="x * sigmoid(alpha * x) (SiLU for alpha=1); NaN at -inf (alpha > 0)",
)
_register(
    "HardSwish", since=14, concrete=_hardswish_c, interval=_xg_rule(lambda: _hardswish_make(), 4.0),
    ulps=2, overflow_rule=None,
    property="x * clip(x/6 + 1/2, 0, 1): decreasing on [-3, -1.5], increasing elsewhere (0 below -3)",
    sample=lambda draw: _unary(draw, -6.0, 6.0), doc="x * hardsigmoid(x); NaN at -inf",
)


# ---- Elu, Celu, Selu: x on the positive side, alpha * (exp - 1) on the negative side -------


def _exp_branch(ctx: Ctx, x: Box, coef: float, inv_scale: float, err: float, pos_scale: float) -> Box:
    """Bounds of ``pos_scale * x`` for x > 0 and ``coef * expm1(x * inv_scale)`` for x <= 0.

    The runtime computes ``exp(u) - 1`` after rounding ``u = x * inv_scale`` (relative
    ``eps``; none when ``inv_scale`` is 1). Its absolute error is at most ``err * eps`` (the
    rounding of ``exp(u)`` near 1 and of ``alpha * exp(u)``, measured 1.1 eps), and for
    |u| < eps/2, where ``exp(u)`` rounds to exactly 1, it is ``|u|`` (onnxruntime: Elu(-1e-10)
    = 0, Elu(-3e-8) = -5.96e-8). Hence the cap ``2 * err * |u|``: a point at 0 stays exact.
    """
    eps = _eps(ctx, x)
    lo, hi = x.bounds64()
    lo, hi = np.broadcast_arrays(lo, hi)
    with np.errstate(all="ignore"):
        u1, u2 = lo * inv_scale, np.minimum(hi, 0.0) * inv_scale
        u_lo, u_hi = np.minimum(u1, u2), np.maximum(u1, u2)
        if inv_scale != 1.0:
            u_lo = np.where(u_lo > 0, u_lo * (1 - eps), u_lo * (1 + eps))
            u_hi = np.where(u_hi > 0, u_hi * (1 + eps), u_hi * (1 - eps))
        n_lo, n_hi = _scale(np.expm1(u_lo), np.expm1(u_hi), coef)
        w = abs(coef) * np.minimum(err * eps, 2.0 * err * np.maximum(np.abs(u_lo), np.abs(u_hi)))
        n_lo, n_hi = n_lo - w, n_hi + w
        # exp(u) >= 0 on the runtime, so coef * (exp(u) - 1) stays on coef's side of -coef
        if coef > 0:
            n_lo = np.maximum(n_lo, -coef)
        elif coef < 0:
            n_hi = np.minimum(n_hi, -coef)
        p_lo, p_hi = _scale(np.maximum(lo, 0.0), hi, pos_scale)
    out_lo, out_hi = _hull((lo <= 0, n_lo, n_hi), (hi > 0, p_lo, p_hi))
    return Box(out_lo, out_hi, x.shape, x.dtype, x.nan)


def _nonpos(k: Any, x: Any) -> Any:
    """x where x <= 0, else 0: keeps exp from overflowing in the unused branch. (``where``, not
    ``minimum``: torch splits the gradient of a tie, which would halve it at x = 0.)"""
    return k.xp.where(x > 0, k.xp.zeros_like(x), x)


def _elu_c(k: Any, x: Any, alpha: float = 1.0) -> Any:
    return k.xp.where(x > 0, x, _f32(alpha) * k.xp.expm1(_nonpos(k, x)))


def _celu_c(k: Any, x: Any, alpha: float = 1.0) -> Any:
    # max(0, x) + min(0, alpha * expm1(x / alpha)) for any alpha != 0, written as one select
    a = _f32(alpha)
    return k.xp.where(x > 0, x, a * k.xp.expm1(_nonpos(k, x) / a))


_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875


def _selu_c(k: Any, x: Any, alpha: float = _SELU_ALPHA, gamma: float = _SELU_GAMMA) -> Any:
    return _f32(gamma) * k.xp.where(x > 0, x, _f32(alpha) * k.xp.expm1(_nonpos(k, x)))


_register(
    "Elu", since=6, concrete=_elu_c,
    interval=lambda ctx, x, alpha=1.0: _exp_branch(ctx, x, _f32(alpha), 1.0, 4.0, 1.0),
    ulps=4, overflow_rule=None, property="piecewise monotone (critical point 0)",
    sample=lambda draw: _unary(draw, -10.0, 10.0, attrs={"alpha": _pick(draw, [1.0, 0.5, 2.0, -0.5])}),
    doc="x for x > 0, alpha * (e^x - 1) otherwise",
)
def _celu_iv(ctx: Ctx, x: Box, alpha: float = 1.0) -> Box:
    a = _f32(alpha)
    if a == 0:
        raise ValueError("Celu with alpha = 0 divides by zero")
    return _exp_branch(ctx, x, a, 1.0 / a, 4.0, 1.0)


_register(
    "Celu", since=12, concrete=_celu_c, interval=_celu_iv,
    ulps=4, overflow_rule="NUM003", property="monotone increasing (any alpha != 0)",
    sample=lambda draw: _unary(draw, -10.0, 10.0, attrs={"alpha": _pick(draw, [1.0, 0.5, 2.0])}),
    doc="max(0, x) + min(0, alpha * (e^(x/alpha) - 1)); exp overflows for alpha < 0 and large -x",
)
_register(
    "Selu", since=6, concrete=_selu_c,
    interval=lambda ctx, x, alpha=_SELU_ALPHA, gamma=_SELU_GAMMA: _exp_branch(
        ctx, x, _f32(gamma) * _f32(alpha), 1.0, 4.0, _f32(gamma)),
    ulps=4, property="piecewise monotone (critical point 0)",
    sample=lambda draw: _unary(draw, -10.0, 10.0, attrs=_pick(draw, [{}, {"alpha": 1.5, "gamma": 2.0}])),
    doc="gamma * x for x > 0, gamma * alpha * (e^x - 1) otherwise; overflows for gamma > 1 near max",
)


# ---- piecewise linear: LeakyRelu PRelu ThresholdedRelu Shrink HardSigmoid Clip ----------


def _leaky_c(k: Any, x: Any, alpha: float = 0.01) -> Any:
    return k.xp.where(x >= 0, x, x * _f32(alpha))


def _attr_variants(v: float, dtype: np.dtype) -> list[float]:
    """An attribute as float32 and as rounded into ``dtype``: native float16 kernels
    (onnxruntime's LeakyRelu) round it, kernels run through float32 casts do not."""
    vals = {_f32(v)}
    if is_float_dtype(dtype) and dtype.itemsize < 4:
        vals.add(float(np.asarray(v, dtype=dtype)))
    return sorted(vals)


def _leaky_iv(ctx: Ctx, x: Box, alpha: float = 0.01) -> Box:
    lo, hi = x.bounds64()
    parts = [(hi >= 0, np.maximum(lo, 0.0), hi)]
    nan = False
    for a in _attr_variants(alpha, x.dtype):
        with np.errstate(invalid="ignore"):
            n_lo, n_hi = _scale(lo, np.minimum(hi, 0.0), a)
        parts.append((lo < 0, n_lo, n_hi))
        nan = nan or (a == 0 and bool(np.isinf(lo).any()))  # 0 * -inf
    out = _hull(*parts)
    return Box(*out, x.shape, x.dtype, x.nan or nan)


def _prelu_c(k: Any, x: Any, slope: Any) -> Any:
    return k.xp.where(x > 0, x, x * slope)


def _prelu_iv(ctx: Ctx, x: Box, slope: Box) -> Box:
    shape = elementwise_shape(x, slope)
    rank = len(shape)
    xl, xh = bcast(x, rank)
    sl, sh = bcast(slope, rank)
    # x > 0 passes; x <= 0 is multiplied by the slope (bilinear: corners of [xl, min(xh, 0)] x slope)
    nl, nh = xl, np.minimum(xh, 0.0)
    with np.errstate(invalid="ignore"):
        ps = [np.where(np.isnan(p), 0.0, p) for p in (nl * sl, nl * sh, nh * sl, nh * sh)]
    n_lo = np.minimum(np.minimum(ps[0], ps[1]), np.minimum(ps[2], ps[3]))
    n_hi = np.maximum(np.maximum(ps[0], ps[1]), np.maximum(ps[2], ps[3]))
    has_n = xl <= 0
    lo, hi = _hull((has_n, n_lo, n_hi), (xh > 0, np.maximum(xl, 0.0), xh))
    s_inf = np.isinf(sl) | np.isinf(sh)
    s_zero = (sl <= 0) & (sh >= 0)
    nan = bool((has_n & ((s_inf & (nh >= 0)) | (s_zero & np.isinf(xl)))).any())  # inf * 0
    return Box(lo, hi, shape, x.dtype, x.nan or slope.nan or nan)


def _prelu_sample(draw: Any) -> tuple[list[BoxSpec], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw, max_rank=4)
    s_shape = shape[draw(st.integers(0, len(shape))):] if shape else ()
    if s_shape and draw(st.booleans()):
        s_shape = tuple(1 if draw(st.booleans()) else d for d in s_shape)
    lo, hi = draw_interval(draw, -10.0, 10.0)
    s_lo, s_hi = draw_interval(draw, -2.0, 2.0)
    return [BoxSpec(lo, hi, shape), BoxSpec(s_lo, s_hi, s_shape)], {}


def _thresholded_c(k: Any, x: Any, alpha: float = 1.0) -> Any:
    return k.xp.where(x > _f32(alpha), x, k.xp.zeros_like(x))


def _thresholded_iv(ctx: Ctx, x: Box, alpha: float = 1.0) -> Box:
    a = _f32(alpha)
    lo, hi = x.bounds64()
    zero = np.zeros_like(lo)
    out = _hull((hi > a, np.maximum(lo, a), hi), (lo <= a, zero, zero))
    return Box(*out, x.shape, x.dtype, x.nan)


def _shrink_c(k: Any, x: Any, bias: float = 0.0, lambd: float = 0.5) -> Any:
    xp = k.xp
    b, lam = _f32(bias), _f32(lambd)
    return xp.where(x < -lam, x + b, xp.where(x > lam, x - b, xp.zeros_like(x)))


def _to_f32_outward(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float32 values enclosing [lo, hi]."""
    with np.errstate(over="ignore"):
        lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    lo32 = np.where(lo32.astype(np.float64) > lo, np.nextafter(lo32, np.float32(-np.inf)), lo32)
    hi32 = np.where(hi32.astype(np.float64) < hi, np.nextafter(hi32, np.float32(np.inf)), hi32)
    return lo32.astype(np.float64), hi32.astype(np.float64)


def _shrink_iv(ctx: Ctx, x: Box, bias: float = 0.0, lambd: float = 0.5) -> Box:
    b, lam = _f32(bias), _f32(lambd)
    lo, hi = x.bounds64()
    # onnxruntime runs float64 Shrink in float32 (Shrink(1.0000000001) = 1.0)
    f64 = x.dtype == np.float64
    if f64:
        lo, hi = _to_f32_outward(lo, hi)
    zero = np.zeros_like(lo)
    left = (lo < -lam, lo + b, np.minimum(hi, -lam) + b)  # x < -lambd: x + bias
    # x > lambd and not x < -lambd (the first test wins when lambd < 0)
    r_from = max(lam, -lam)
    right = ((hi > lam) & (hi >= -lam), np.maximum(lo, r_from) - b, hi - b)
    middle = ((lam >= 0) & (lo <= lam) & (hi >= -lam), zero, zero)
    out_lo, out_hi = _hull(left, right, middle)
    if f64:
        out_lo, out_hi = _to_f32_outward(out_lo, out_hi)
    if x.dtype.kind in "iu":
        out_lo, out_hi = np.floor(out_lo), np.ceil(out_hi)
    return Box(out_lo, out_hi, x.shape, x.dtype, x.nan)


def _hardsigmoid_c(k: Any, x: Any, alpha: float = 0.2, beta: float = 0.5) -> Any:
    return k.xp.clip(x * _f32(alpha) + _f32(beta), 0.0, 1.0)


def _hardsigmoid_iv(ctx: Ctx, x: Box, alpha: float = 0.2, beta: float = 0.5) -> Box:
    a, b = _f32(alpha), _f32(beta)
    eps = _eps(ctx, x)
    lo, hi = x.bounds64()
    cands = []
    with np.errstate(invalid="ignore", over="ignore"):
        for v in (lo, hi):
            ax = np.where(np.isnan(a * v), 0.0, a * v)  # a == 0: 0 * inf (flagged below)
            w = np.where(np.isinf(ax), 0.0, eps * np.abs(ax))  # fl(alpha * x) is within eps
            cands += [ax - w + b, ax + w + b]
    out_lo = np.clip(functools.reduce(np.minimum, cands), 0.0, 1.0)
    out_hi = np.clip(functools.reduce(np.maximum, cands), 0.0, 1.0)
    nan = a == 0 and bool(np.isinf(lo).any() or np.isinf(hi).any())
    return Box(out_lo, out_hi, x.shape, x.dtype, x.nan or nan)


def _clip_c(k: Any, x: Any, mn: Any = None, mx: Any = None) -> Any:
    xp = k.xp
    if mn is not None:
        x = xp.maximum(x, xp.astype(mn, x.dtype) if mn.dtype != x.dtype else mn)
    if mx is not None:
        x = xp.minimum(x, xp.astype(mx, x.dtype) if mx.dtype != x.dtype else mx)
    return x


def _clip_iv(ctx: Ctx, x: Box, mn: Box | None = None, mx: Box | None = None) -> Box:
    shape = elementwise_shape(x, mn, mx)
    rank = len(shape)
    lo, hi = bcast(x, rank)
    if mn is not None:
        ml, mh = bcast(mn, rank)
        lo, hi = np.maximum(lo, ml), np.maximum(hi, mh)
    if mx is not None:
        ml, mh = bcast(mx, rank)
        lo, hi = np.minimum(lo, ml), np.minimum(hi, mh)
    if x.dtype.kind == "f":
        # an omitted bound is the dtype's lowest/max (the spec's default): Clip(inf) = FLT_MAX
        fmax = ctx.fmt(x.dtype).max
        if mn is None:
            lo, hi = np.maximum(lo, -fmax), np.maximum(hi, -fmax)
        if mx is None:
            lo, hi = np.minimum(lo, fmax), np.minimum(hi, fmax)
    return Box(lo, hi, shape, x.dtype, x.nan)


def _clip_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    shape = draw_shape(draw)
    lo, hi = draw_interval(draw, -10.0, 10.0)
    ins: list[Any] = [BoxSpec(lo, hi, shape)]
    for bound in ("min", "max"):
        kind = draw(st.sampled_from(["none", "point", "box"]))
        if kind == "none":
            ins.append(None)
            continue
        centre = -3.0 if bound == "min" else 3.0
        if kind == "point":
            ins.append(np.array(draw(st.floats(centre - 3, centre + 3, width=32)), dtype=np.float32))
        else:
            ins.append(BoxSpec(*draw_interval(draw, centre - 3, centre + 3), ()))
    while ins and ins[-1] is None:
        ins.pop()
    return ins, {}


_register(
    # ulps=1: onnxruntime's native float16 kernel rounds subnormal results by up to 1 ULP
    # (-8.94e-6 * 0.01 gives 2 subnormal units, the correctly rounded result is 1)
    "LeakyRelu", since=6, concrete=_leaky_c, interval=_leaky_iv, exact=True, ulps=1,
    property="piecewise linear (critical point 0)",
    sample=lambda draw: _unary(draw, -10.0, 10.0, attrs={"alpha": _pick(draw, [0.01, 0.2, -0.5, 2.0])}),
    doc="x for x >= 0, alpha * x otherwise",
)
_register(
    "PRelu", since=9, concrete=_prelu_c, interval=_prelu_iv, exact=True,
    property="x for x > 0, bilinear slope * x for x <= 0 (corners of the slope box)",
    sample=_prelu_sample, doc="x for x > 0, slope * x otherwise (slope broadcast to x)",
)
_register(
    "ThresholdedRelu", since=10, concrete=_thresholded_c, interval=_thresholded_iv, exact=True,
    overflow_rule=None, property="x above alpha, 0 elsewhere (hull of both pieces)",
    sample=lambda draw: _unary(draw, -5.0, 5.0, attrs={"alpha": _pick(draw, [1.0, 0.0, -1.0, 2.5])}),
    doc="x for x > alpha, 0 otherwise",
)
_register(
    "Shrink", since=9, concrete=_shrink_c, interval=_shrink_iv, exact=True,
    property="three linear pieces (hull of the pieces the box meets)",
    sample=lambda draw: _unary(draw, -5.0, 5.0, attrs=_pick(
        draw, [{}, {"bias": 0.5, "lambd": 1.0}, {"bias": -0.25, "lambd": 0.0}, {"bias": 1.5, "lambd": 2.0}])),
    doc="x + bias below -lambd, x - bias above lambd, 0 between",
)
_register(
    "HardSigmoid", since=6, concrete=_hardsigmoid_c, interval=_hardsigmoid_iv, ulps=1, codomain=(0.0, 1.0),
    overflow_rule=None, property="monotone (direction of alpha), clamped to [0, 1]; alpha * x rounding widened",
    sample=lambda draw: _unary(draw, -6.0, 6.0, attrs=_pick(
        draw, [{}, {"alpha": 0.5, "beta": 0.25}, {"alpha": -0.25, "beta": 0.5}])),
    doc="max(0, min(1, alpha * x + beta))",
)
_register(
    "Clip", since=13, concrete=_clip_c, interval=_clip_iv, exact=True, overflow_rule=None,
    property="monotone increasing in x, min and max", sample=_clip_sample,
    doc="min(max(x, min), max); min and max are optional inputs",
)


# ---- samplers ---------------------------------------------------------------------------


def _pick(draw: Any, options: Sequence[Any]) -> Any:
    from hypothesis import strategies as st

    return draw(st.sampled_from(list(options)))


def _unary(draw: Any, low: float, high: float, wide: tuple[float, float] | None = None,
           attrs: dict[str, Any] | None = None) -> tuple[list[BoxSpec], dict[str, Any]]:
    """One float input in [low, high] (sometimes in ``wide``), attributes as given."""
    a, b = (low, high) if wide is None or _pick(draw, [True, False]) else wide
    lo, hi = draw_interval(draw, _f32(a), _f32(b))
    return [BoxSpec(lo, hi, draw_shape(draw))], dict(attrs or {})

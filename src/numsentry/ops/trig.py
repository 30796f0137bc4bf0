"""Trigonometric and hyperbolic ops: Sin Cos Tan, their inverses, Sinh Cosh and their inverses.

Interval rules are derived from each function's shape: monotone (Asin Atan Asinh Acosh Atanh
Sinh, Acos decreasing), even with one critical point (Cosh), periodic with critical points at
known phases (Sin Cos), monotone between poles (Tan). Inverse functions clip their input to the
domain first and set the NaN flag when the box leaves it (the NUM006 hazard reports it).

Kernel tolerances: onnxruntime 1.31's CPU kernels (float32), measured against a float64
reference on dense grids, on the float32 values nearest to the first 2e5 multiples of pi/2 and
on random arguments up to 3e38: Sin Cos Tan Atan Sinh Cosh Asinh Acosh Atanh within 3 ULPs
(range reduction is accurate, so there is no absolute error near zeros or poles), Acos Asin
within 4. NumPy's float32 Tan reaches 4 ULPs next to its poles. ``ulps`` below keeps a margin
above these numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import below, draw_interval, draw_shape, outside

_PI = np.pi
_TWO_PI = 2.0 * np.pi

# Beyond this magnitude float64 cannot place a non-degenerate interval relative to the period
# reliably; such intervals get the whole range (float32 values there are > 2*pi apart anyway).
_PERIODIC_LIMIT = 1e12

# absolute error of float64 Sin and Cos kernels, in units of eps
_ABS_ERR = 16.0

# |tan| of any finite float32, bfloat16 or float64 value stays far below this (the closest
# float64 to an odd multiple of pi/2 is ~2^-62 away, float32 much farther); float16 does
# overflow (tan(177.5) = 66347 > 65504), so it gets infinite bounds.
_TAN_FINITE_BOUND = 1e30




def _register(op_type: str, **kwargs: Any) -> None:
    register(op_type, **kwargs)


def _clip_domain(x: Box, low: float, high: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """Bounds clipped to [low, high] and whether some value lies outside (NaN on a runtime)."""
    lo, hi = x.bounds64()
    nan = bool((lo < low).any() or (hi > high).any())
    return np.clip(lo, low, high), np.clip(hi, low, high), nan


def _domain_rule(fn: Callable[[np.ndarray], np.ndarray], low: float, high: float,
                 increasing: bool = True) -> Callable[..., Box]:
    """Interval rule of a function monotone on its domain [low, high] and NaN outside it."""

    def rule(ctx: Ctx, x: Box) -> Box:
        lo, hi, nan = _clip_domain(x, low, high)
        with np.errstate(all="ignore"):
            a, b = fn(lo), fn(hi)
        if not increasing:
            a, b = b, a
        return Box(a, b, x.shape, x.dtype, x.nan or nan)

    rule.__doc__ = f"monotone on [{low:g}, {high:g}], NaN outside"
    return rule


def _has_phase(lo: np.ndarray, hi: np.ndarray, phase: float, period: float) -> np.ndarray:
    """Whether some ``phase + k * period`` lies in [lo, hi].

    Errs towards yes near the ends (the slack covers float64 error in locating ``k``): a false
    yes only adds an extreme value the function nearly reaches there anyway.
    """
    mag = np.maximum(np.abs(lo), np.abs(hi))
    slack = 1e-9 + 1e-15 * mag / period
    k = np.ceil((lo - phase) / period - slack)
    return phase + k * period <= hi + slack * period


def _periodic_rule(fn: Callable[[np.ndarray], np.ndarray], phase_max: float,
                   phase_min: float) -> Callable[..., Box]:
    """Interval rule of a 2*pi-periodic function with max 1 at ``phase_max`` and min -1 at
    ``phase_min`` (mod 2*pi), monotone in between."""

    def rule(ctx: Ctx, x: Box) -> Box:
        lo, hi = x.bounds64()
        lo, hi = np.broadcast_arrays(lo, hi)
        infinite = np.isinf(lo) | np.isinf(hi)
        with np.errstate(all="ignore"):
            a, b = fn(lo), fn(hi)
            out_lo, out_hi = np.minimum(a, b), np.maximum(a, b)
            wide = (lo < hi) & ((hi - lo >= _TWO_PI) | (np.maximum(np.abs(lo), np.abs(hi)) > _PERIODIC_LIMIT))
            span = lo < hi
            out_hi = np.where(span & _has_phase(lo, hi, phase_max, _TWO_PI), 1.0, out_hi)
            out_lo = np.where(span & _has_phase(lo, hi, phase_min, _TWO_PI), -1.0, out_lo)
        # onnxruntime's float64 kernels are off by up to 6 eps in absolute terms near zeros of
        # sin/cos (|x| >= 1); its float32 kernels and NumPy's are within 2 ULPs everywhere
        fmt = ctx.fmt(x.dtype)
        if fmt.bits == 64:
            w = _ABS_ERR * fmt.eps * np.minimum(1.0, np.maximum(np.abs(lo), np.abs(hi)))
            out_lo, out_hi = out_lo - w, out_hi + w
        full = wide | infinite
        out_lo = np.where(full, -1.0, out_lo)
        out_hi = np.where(full, 1.0, out_hi)
        # sin(±inf) and cos(±inf) are NaN
        return Box(out_lo, out_hi, x.shape, x.dtype, x.nan or bool(infinite.any()))

    rule.__doc__ = "periodic, piecewise monotone between critical points"
    return rule


def _tan_iv(ctx: Ctx, x: Box) -> Box:
    lo, hi = x.bounds64()
    lo, hi = np.broadcast_arrays(lo, hi)
    infinite = np.isinf(lo) | np.isinf(hi)
    with np.errstate(all="ignore"):
        a, b = np.tan(lo), np.tan(hi)
        pole = (lo < hi) & (
            (hi - lo >= _PI)
            | (np.maximum(np.abs(lo), np.abs(hi)) > _PERIODIC_LIMIT)
            | _has_phase(lo, hi, _PI / 2, _PI)
        )
    bound = _TAN_FINITE_BOUND if ctx.fmt(x.dtype).max > 1e6 else np.inf
    unbounded = pole | infinite
    out_lo = np.where(unbounded, -bound, a)
    out_hi = np.where(unbounded, bound, b)
    return Box(out_lo, out_hi, x.shape, x.dtype, x.nan or bool(infinite.any()))


def _cosh_iv(ctx: Ctx, x: Box) -> Box:
    lo, hi = x.bounds64()
    with np.errstate(over="ignore"):
        a, b = np.cosh(lo), np.cosh(hi)
    straddle = (lo <= 0) & (hi >= 0)
    return Box(np.where(straddle, 1.0, np.minimum(a, b)), np.maximum(a, b), x.shape, x.dtype, x.nan)


def _mono(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Box]:
    def rule(ctx: Ctx, x: Box) -> Box:
        lo, hi = x.bounds64()
        with np.errstate(all="ignore"):
            return Box(fn(lo), fn(hi), x.shape, x.dtype, x.nan)

    rule.__doc__ = "monotone increasing"
    return rule


# ---- samplers ---------------------------------------------------------------------------


def _sample_in(low: float, high: float, wide: tuple[float, float] | None = None) -> Callable[..., Any]:
    """Elementwise sampler inside [low, high], sometimes inside ``wide`` instead."""

    def sample(draw: Any) -> tuple[list[BoxSpec], dict[str, Any]]:
        from hypothesis import strategies as st

        a, b = (low, high) if wide is None or draw(st.booleans()) else wide
        lo, hi = draw_interval(draw, float(np.float32(a)), float(np.float32(b)))
        return [BoxSpec(lo, hi, draw_shape(draw))], {}

    return sample


# ---- registrations ----------------------------------------------------------------------

# `since`: the newest schema version <= 13 (models below opset 13 are upgraded to 13 on load);
# later versions only add element types, so one declaration serves every opset from 13 on.

_register(
    "Sin", since=7, concrete=lambda k, x: k.xp.sin(x), interval=_periodic_rule(np.sin, _PI / 2, -_PI / 2),
    ulps=4, codomain=(-1.0, 1.0), overflow_rule=None,
    property="periodic: extremes at critical points pi/2 + k*pi inside [lo, hi]; [-1, 1] when hi - lo >= 2*pi",
    sample=_sample_in(-7.0, 7.0, (-1e4, 1e4)), doc="sine (NaN at ±inf)",
)
_register(
    "Cos", since=7, concrete=lambda k, x: k.xp.cos(x), interval=_periodic_rule(np.cos, 0.0, _PI),
    ulps=4, codomain=(-1.0, 1.0), overflow_rule=None,
    property="periodic: extremes at critical points k*pi inside [lo, hi]; [-1, 1] when hi - lo >= 2*pi",
    sample=_sample_in(-7.0, 7.0, (-1e4, 1e4)), doc="cosine (NaN at ±inf)",
)
_register(
    "Tan", since=7, concrete=lambda k, x: k.xp.tan(x), interval=_tan_iv, ulps=6,
    property="monotone between poles pi/2 + k*pi; unbounded when [lo, hi] holds a pole",
    sample=_sample_in(-1.5, 1.5, (1.6, 4.7)),
    doc="tangent; a pole in the range gives ±1e30 (±inf in float16, where it can overflow)",
)
_register(
    "Asin", since=7, concrete=lambda k, x: k.xp.asin(x), interval=_domain_rule(np.arcsin, -1.0, 1.0),
    hazards=(outside("NUM006", "asin of a value outside [-1, 1]", -1.0, 1.0),), ulps=8,
    overflow_rule=None, property="monotone increasing on [-1, 1]", sample=_sample_in(-1.0, 1.0),
    doc="arcsine; NaN outside [-1, 1]",
)
_register(
    "Acos", since=7, concrete=lambda k, x: k.xp.acos(x),
    interval=_domain_rule(np.arccos, -1.0, 1.0, increasing=False),
    hazards=(outside("NUM006", "acos of a value outside [-1, 1]", -1.0, 1.0),), ulps=8,
    overflow_rule=None, property="monotone decreasing on [-1, 1]", sample=_sample_in(-1.0, 1.0),
    doc="arccosine; NaN outside [-1, 1]",
)
_register(
    "Atan", since=7, concrete=lambda k, x: k.xp.atan(x), interval=_mono(np.arctan), ulps=8,
    overflow_rule=None, property="monotone increasing",
    sample=_sample_in(-10.0, 10.0, (-1e6, 1e6)), doc="arctangent",
)
_register(
    "Sinh", since=9, concrete=lambda k, x: k.xp.sinh(x), interval=_mono(np.sinh), ulps=4,
    overflow_rule="NUM003", property="monotone increasing", sample=_sample_in(-10.0, 10.0),
    doc="hyperbolic sine; overflows beyond |x| ~ 89.4 in float32",
)
_register(
    "Cosh", since=9, concrete=lambda k, x: k.xp.cosh(x), interval=_cosh_iv, ulps=4,
    codomain=(1.0, np.inf), overflow_rule="NUM003",
    property="even: decreasing below 0, increasing above (critical point 0)",
    sample=_sample_in(-10.0, 10.0), doc="hyperbolic cosine; overflows beyond |x| ~ 89.4 in float32",
)
_register(
    "Asinh", since=9, concrete=lambda k, x: k.xp.asinh(x), interval=_mono(np.arcsinh), ulps=4,
    overflow_rule=None, property="monotone increasing", sample=_sample_in(-100.0, 100.0, (-1e6, 1e6)),
    doc="inverse hyperbolic sine",
)
_register(
    "Acosh", since=9, concrete=lambda k, x: k.xp.acosh(x),
    interval=_domain_rule(np.arccosh, 1.0, np.inf),
    hazards=(below("NUM006", "acosh of a value below 1", 1.0, strict=True),), ulps=4,
    codomain=(0.0, np.inf), overflow_rule=None, property="monotone increasing on [1, inf)",
    sample=_sample_in(1.01, 100.0, (1.0, 1e6)), doc="inverse hyperbolic cosine; NaN below 1",
)
_register(
    "Atanh", since=9, concrete=lambda k, x: k.xp.atanh(x),
    interval=_domain_rule(np.arctanh, -1.0, 1.0),
    hazards=(outside("NUM006", "atanh at or beyond ±1", -1.0, 1.0, closed=False),), ulps=4,
    overflow_rule=None, property="monotone increasing on (-1, 1); ±inf at ±1, NaN beyond",
    sample=_sample_in(-0.99, 0.99), doc="inverse hyperbolic tangent",
)

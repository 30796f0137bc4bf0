"""Core unary math: Exp Log Sqrt Relu Sigmoid Tanh (the hazards' home ground).

Kernel tolerances (``ulps``) and saturation facts come from measuring onnxruntime's CPU
kernels against a float64 reference (docs/runtime-accuracy.md, bench/ort_accuracy.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.registry import Ctx, Hazard, register
from numsentry.ops.rules import below, elementwise_sample, monotone

register(
    "Exp", since=6, concrete=lambda k, x: k.xp.exp(x), interval=monotone(lambda k, x: k.xp.exp(x)),
    ulps=4, codomain=(0.0, np.inf), overflow_rule="NUM003", property="monotone increasing",
    sample=elementwise_sample(1, -20, 20), doc="e^x; overflows above log(max) of the dtype",
)

register(
    "Log", since=6, concrete=lambda k, x: k.xp.log(x), interval=monotone(lambda k, x: k.xp.log(x)),
    hazards=(below("NUM001", "log of a non-positive value", 0.0),), ulps=6, overflow_rule=None,
    property="monotone increasing", sample=elementwise_sample(1, 0.01, 100), doc="natural log",
)

def _sqrt_zero_grad(ctx: Ctx, inputs: Any, attrs: dict[str, Any]) -> str | None:
    x = inputs[0]
    if x is None:
        return None
    lo, hi = x.bounds64()
    # only where the input cannot be negative (NUM004 covers that) but can be exactly 0
    if bool(((lo == 0) & (hi >= 0)).any()):
        return f"sqrt of a value that can be exactly 0: infinite gradient in training, range {x.describe()}"
    return None


register(
    "Sqrt", since=6, concrete=lambda k, x: k.xp.sqrt(x), interval=monotone(lambda k, x: k.xp.sqrt(x)),
    hazards=(below("NUM004", "sqrt of a negative value", 0.0, strict=True), Hazard("NUM011", _sqrt_zero_grad)),
    codomain=(0.0, np.inf),
    exact=True, overflow_rule=None, property="monotone increasing", sample=elementwise_sample(1, 0, 100),
    doc="square root (IEEE correctly rounded)",
)

register(
    "Relu", since=6, concrete=lambda k, x: k.xp.maximum(x, k.xp.zeros_like(x)),
    interval=monotone(lambda k, x: np.maximum(x, 0.0)), exact=True, overflow_rule=None,
    property="monotone increasing", sample=elementwise_sample(1), doc="max(x, 0)",
)


def _sigmoid(k: Any, x: Any) -> Any:
    return 1.0 / (1.0 + k.xp.exp(-x))


def _abs_band(fn: Any, k_eps: float, floor: float | None = None, relative: bool = False) -> Any:
    """Interval rule of a monotone op whose runtime kernel is accurate in *absolute* terms.

    onnxruntime's Sigmoid and Tanh are rational approximations: measured over 4e6 float32
    points in [-40, 40] they are off by up to 1.67e-7 (Sigmoid, 2.8 eps, i.e. a relative error
    of 8.6e-5 at outputs near 1e-3; exactly 0 at or below about -16.3 and not monotone between
    -18 and -16.3) and 3.3e-7 (Tanh, 5.5 eps; outputs reach ±1.0000002). So the true values at
    the endpoints are widened by ``k_eps`` units of the format's eps in absolute terms, and the
    result is not clamped to the mathematical codomain. With ``relative`` the band scales with
    the value (Tanh is relatively accurate near 0, where it returns x).
    """

    def rule(ctx: Ctx, x: Box) -> Box:
        lo, hi = x.bounds64()
        band = k_eps * ctx.fmt(x.dtype).eps
        with np.errstate(all="ignore"):
            fa = np.asarray(fn(lo), dtype=np.float64)
            fb = np.asarray(fn(hi), dtype=np.float64)
            a = fa - band * (np.abs(fa) if relative else 1.0)
            b = fb + band * (np.abs(fb) if relative else 1.0)
        if floor is not None:
            a = np.maximum(a, floor)
        return Box(a, b, x.shape, x.dtype, x.nan)

    return rule


register(
    "Sigmoid", since=6, concrete=_sigmoid, interval=_abs_band(lambda v: 1.0 / (1.0 + np.exp(-v)), 8.0, 0.0),
    ulps=2, overflow_rule=None, property="monotone increasing, widened by the runtime's absolute error",
    sample=elementwise_sample(1, -30, 30), doc="1 / (1 + e^-x); exactly 0 or 1 when saturated",
)

register(
    "Tanh", since=6, concrete=lambda k, x: k.xp.tanh(x), interval=_abs_band(np.tanh, 8.0, relative=True),
    ulps=2, overflow_rule=None, property="monotone increasing, widened by the runtime's absolute error",
    sample=elementwise_sample(1, -20, 20), doc="hyperbolic tangent",
)

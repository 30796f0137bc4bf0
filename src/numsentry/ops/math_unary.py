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
    hazards=(below("NUM001", "log of a non-positive value", 0.0),), ulps=4, overflow_rule=None,
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


# onnxruntime's Sigmoid returns exactly 0 at or below about -16.3 and is not monotone in
# [-18, -16.3]: below this threshold the lower bound is 0 and the upper bound the true value at
# the threshold (which exceeds every kernel output seen below it).
_SIGMOID_FLOOR = -15.0


def _sigmoid_iv(ctx: Ctx, x: Box) -> Box:
    lo, hi = x.bounds64()
    with np.errstate(over="ignore"):
        a = 1.0 / (1.0 + np.exp(-lo))
        b = 1.0 / (1.0 + np.exp(-hi))
    a = np.where(lo <= _SIGMOID_FLOOR, 0.0, a * (1 - 1e-6))
    b = np.where(hi <= _SIGMOID_FLOOR, np.maximum(b, 1.0 / (1.0 + np.exp(-_SIGMOID_FLOOR))), b * (1 + 1e-6))
    return Box(a, np.minimum(b, 1.0), x.shape, x.dtype, x.nan)


register(
    "Sigmoid", since=6, concrete=_sigmoid, interval=_sigmoid_iv, ulps=4, codomain=(0.0, 1.0),
    overflow_rule=None, property="monotone increasing (widened for runtime kernels)",
    sample=elementwise_sample(1, -30, 30), doc="1 / (1 + e^-x); exactly 0 or 1 when saturated",
)

register(
    "Tanh", since=6, concrete=lambda k, x: k.xp.tanh(x), interval=monotone(lambda k, x: k.xp.tanh(x)),
    ulps=4, codomain=(-1.0, 1.0), overflow_rule=None, property="monotone increasing",
    sample=elementwise_sample(1, -20, 20), doc="hyperbolic tangent",
)

"""Measure how far onnxruntime's CPU kernels deviate from correctly rounded results.

The interval analysis in numsentry must bound what a real runtime computes, not only what
real arithmetic computes.  This script sweeps every supported unary activation (plus
Softmax/LogSoftmax and MatMul/Gemm accumulation) through onnxruntime's
``CPUExecutionProvider`` and compares against a float64 reference:

* unary ops, float32: every 2^11-th float of the whole finite range (~2^21 log-spaced
  inputs, both signs), a 2^20-point linear grid over the op's interesting domain,
  exhaustive scans of selected windows of consecutive floats, and exhaustive scans of
  every float between the sample points that bracket a saturation threshold;
* unary ops, float16: every one of the 65536 bit patterns;
* both graph optimisation levels (default ``ORT_ENABLE_ALL`` and ``ORT_DISABLE_ALL``).

Reported per op and dtype: max error in integer ULPs of the output dtype relative to the
float64 reference rounded to that dtype, where it occurs, the fractional error
``|ort - f(x)| / ulp(f(x))``, monotonicity violations, saturation thresholds (first input
whose output is exactly the limit value, and the input beyond which it always is) versus
the correctly rounded function's thresholds, and outputs at special inputs.

The widening derived from these numbers is in docs/runtime-accuracy.md.

Run:  python bench/ort_accuracy.py [--only Sigmoid,Tanh] [--skip-unary] [--skip-softmax]
      [--skip-gemm] [--json out.json] [--exhaustive -4:5]   (about 2 minutes on 2 idle
      cores; --exhaustive adds every fp32 input of the given binades, ~3 s/binade/op)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

F64 = NDArray[np.float64]
Arr = NDArray[Any]
RefFn = Callable[[F64], F64]

OPSET = 20
LEVELS: dict[str, ort.GraphOptimizationLevel] = {
    "default": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
F32_MAX = float(np.finfo(np.float32).max)
F16_MAX = float(np.finfo(np.float16).max)
WINDOW_CAP = 1 << 21  # max floats evaluated per exhaustive window (stride beyond that)

# ONNX default attribute values, as the float32 numbers a model actually carries.
SELU_ALPHA = float(np.float32(1.67326319217681884765625))
SELU_GAMMA = float(np.float32(1.05070102214813232421875))
HSIG_ALPHA = float(np.float32(0.2))
HSIG_BETA = 0.5


# --------------------------------------------------------------------------------------
# float helpers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloatFmt:
    """Parameters of an IEEE binary format."""

    dtype: type[np.floating[Any]]
    name: str
    p: int  # precision incl. hidden bit
    emin: int
    tensor_type: int
    maxval: float

    @property
    def u(self) -> float:
        """Unit roundoff."""
        return 2.0 ** (-self.p)

    @property
    def tiny(self) -> float:
        """Smallest positive normal."""
        return 2.0**self.emin

    @property
    def denorm_min(self) -> float:
        return 2.0 ** (self.emin - self.p + 1)


FP32 = FloatFmt(np.float32, "fp32", 24, -126, TensorProto.FLOAT, F32_MAX)
FP16 = FloatFmt(np.float16, "fp16", 11, -14, TensorProto.FLOAT16, F16_MAX)


def ordkey(y: Arr) -> NDArray[np.int64]:
    """Map floats to integers so that consecutive floats differ by one (+0 and -0 -> 0)."""
    if y.dtype == np.float32:
        i = y.view(np.int32).astype(np.int64)
        mask = 0x7FFFFFFF
    elif y.dtype == np.float16:
        i = y.view(np.int16).astype(np.int64)
        mask = 0x7FFF
    else:
        raise TypeError(y.dtype)
    return np.where(i < 0, -(i & mask), i)


def from_ordkey(k: NDArray[np.int64], fmt: FloatFmt) -> Arr:
    bits = np.where(k < 0, (-k) | (1 << (8 * np.dtype(fmt.dtype).itemsize - 1)), k)
    if fmt is FP32:
        return bits.astype(np.uint32).view(np.float32)
    return bits.astype(np.uint16).view(np.float16)


def ulp_of(r: F64, fmt: FloatFmt) -> F64:
    """ulp in ``fmt`` of the (float64) real value r; the denormal spacing below tiny."""
    with np.errstate(all="ignore"):
        _, e = np.frexp(np.abs(np.where(np.isfinite(r), r, fmt.maxval)))
    e = np.maximum(e.astype(np.int64) - 1, fmt.emin)
    return np.ldexp(1.0, (e - (fmt.p - 1)).astype(np.int32))


def floats_between(a: float, b: float, fmt: FloatFmt, cap: int = WINDOW_CAP) -> Arr:
    """All floats of ``fmt`` in [a, b] (strided if more than ``cap``)."""
    ka = int(ordkey(np.array([a], fmt.dtype))[0])
    kb = int(ordkey(np.array([b], fmt.dtype))[0])
    lo, hi = min(ka, kb), max(ka, kb)
    step = max(1, (hi - lo + 1 + cap - 1) // cap)
    return from_ordkey(np.arange(lo, hi + 1, step, dtype=np.int64), fmt)


def fmt_x(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return str(v)
    if 1e-3 <= abs(v) < 1e6:
        return f"{v:.9g}"
    return f"{v:.6g}"


# --------------------------------------------------------------------------------------
# onnxruntime plumbing
# --------------------------------------------------------------------------------------


def make_session(model: onnx.ModelProto, level: ort.GraphOptimizationLevel) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def unary_model(
    op: str, fmt: FloatFmt, attrs: dict[str, Any], exponent: float | None
) -> onnx.ModelProto:
    inputs = ["x"]
    inits = []
    if exponent is not None:
        inits.append(numpy_helper.from_array(np.array(exponent, dtype=fmt.dtype), "e"))
        inputs.append("e")
    node = helper.make_node(op, inputs, ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", fmt.tensor_type, None)],
        [helper.make_tensor_value_info("y", fmt.tensor_type, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    return model


def executed_nodes(model: onnx.ModelProto) -> str:
    """Op types of the graph as ORT runs it (shows InsertCastTransformer / inlining)."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "opt.onnx")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        so.optimized_model_filepath = path
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        opt = onnx.load(path)
    return ",".join(n.op_type for n in opt.graph.node)


# --------------------------------------------------------------------------------------
# float64 references (limits at +-inf handled explicitly)
# --------------------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)


def _fix_inf(x: F64, y: F64, at_neg: float | None, at_pos: float | None) -> F64:
    if at_neg is not None:
        y = np.where(x == -np.inf, at_neg, y)
    if at_pos is not None:
        y = np.where(x == np.inf, at_pos, y)
    return y


def ref_sigmoid(x: F64) -> F64:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def ref_erf(x: F64) -> F64:
    return np.asarray(_erf(x), dtype=np.float64)


def ref_gelu(x: F64) -> F64:
    y = 0.5 * x * np.asarray(_erfc(-x / math.sqrt(2.0)), dtype=np.float64)
    return _fix_inf(x, y, -0.0, None)


def ref_gelu_tanh(x: F64) -> F64:
    # 0.5 x (1 + tanh(u)) == x * sigmoid(2u); no cancellation for x < 0
    u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
    return _fix_inf(x, x * ref_sigmoid(2.0 * u), -0.0, None)


def ref_softplus(x: F64) -> F64:
    return np.logaddexp(0.0, x)


def ref_softsign(x: F64) -> F64:
    return _fix_inf(x, x / (1.0 + np.abs(x)), -1.0, 1.0)


def ref_elu(x: F64) -> F64:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def ref_selu(x: F64) -> F64:
    return SELU_GAMMA * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))


def ref_mish(x: F64) -> F64:
    return _fix_inf(x, x * np.tanh(np.logaddexp(0.0, x)), -0.0, None)


def ref_hardsigmoid(x: F64) -> F64:
    return np.clip(HSIG_ALPHA * x + HSIG_BETA, 0.0, 1.0)


def ref_hardswish(x: F64) -> F64:
    # x * clip(x/6 + 1/2, 0, 1) == x * clip(x + 3, 0, 6) / 6 (x + 3 is exact in float64)
    return _fix_inf(x, x * np.clip(x + 3.0, 0.0, 6.0) / 6.0, -0.0, None)


def ref_pow(e: float) -> RefFn:
    def f(x: F64) -> F64:
        return np.power(x, e)

    return f


# --------------------------------------------------------------------------------------
# unary op specifications
# --------------------------------------------------------------------------------------


@dataclass
class Unary:
    """One unary op to sweep.

    mono: (lo, hi, +1|-1) intervals on which the real function is non-decreasing (+1) or
    non-increasing (-1).  sat: (side, far_x) pairs; the limit value is the output at far_x
    and thresholds are searched on that side of 0.
    """

    name: str
    op: str
    ref: RefFn
    lin: tuple[float, float]
    attrs: dict[str, Any] = field(default_factory=dict)
    exponent: float | None = None
    fp16: bool = True
    mono: list[tuple[float, float, int]] = field(default_factory=list)
    sat: list[tuple[int, float]] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)


INC = [(-math.inf, math.inf, 1)]
BIG = 1e30  # "far" input; |x| >= 1e30 is +-inf only in fp16, see far_input()

UNARY: list[Unary] = [
    Unary(
        "Exp",
        "Exp",
        np.exp,
        (-110, 90),
        mono=INC,
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(1, 2), (-1e-6, 1e-6), (-104, -87), (88, 89)],
    ),
    Unary("Log", "Log", np.log, (0, 10), mono=[(0, math.inf, 1)], windows=[(0.5, 2)]),
    Unary("Sqrt", "Sqrt", np.sqrt, (0, 100), mono=[(0, math.inf, 1)], windows=[(1, 4)]),
    Unary(
        "Sigmoid",
        "Sigmoid",
        ref_sigmoid,
        (-110, 30),
        mono=INC,
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(-18.5, -15.5), (15.5, 18.5), (-2, 2)],
    ),
    Unary(
        "Tanh",
        "Tanh",
        np.tanh,
        (-12, 12),
        mono=INC,
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(0.5, 2), (1e-38, 1e-37), (-9.2, -7.9), (7.9, 9.2)],
    ),
    Unary(
        "Erf",
        "Erf",
        ref_erf,
        (-6, 6),
        mono=INC,
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(0.5, 2), (3.5, 4.2), (-4.2, -3.5)],
    ),
    Unary(
        "Gelu",
        "Gelu",
        ref_gelu,
        (-30, 10),
        attrs={"approximate": "none"},
        mono=[(-math.inf, -0.7518, -1), (-0.7517, math.inf, 1)],
        sat=[(-1, -BIG)],
        windows=[(-6, -0.5), (0.5, 2)],
    ),
    Unary(
        "Gelu(tanh)",
        "Gelu",
        ref_gelu_tanh,
        (-30, 10),
        attrs={"approximate": "tanh"},
        mono=[(-math.inf, -0.7518, -1), (-0.7517, math.inf, 1)],
        sat=[(-1, -BIG)],
        windows=[(-6, -0.5), (-5.2, -4.8), (0.5, 2)],
    ),
    Unary(
        "Softplus",
        "Softplus",
        ref_softplus,
        (-110, 30),
        mono=INC,
        sat=[(-1, -BIG)],
        windows=[(-4, 4), (-104, -87), (14, 18)],
    ),
    Unary(
        "Softsign",
        "Softsign",
        ref_softsign,
        (-100, 100),
        mono=INC,
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(1, 2), (1.3e7, 1.32e7), (-1.32e7, -1.3e7), (1e37, F32_MAX)],
    ),
    Unary("Sin", "Sin", np.sin, (-100, 100), windows=[(1, 2), (64, 128)]),
    Unary("Cos", "Cos", np.cos, (-100, 100), windows=[(1, 2), (64, 128)]),
    Unary("Tan", "Tan", np.tan, (-100, 100), windows=[(1, 2)]),
    Unary("Asin", "Asin", np.arcsin, (-1, 1), mono=[(-1, 1, 1)], windows=[(0.5, 1)]),
    Unary("Acos", "Acos", np.arccos, (-1, 1), mono=[(-1, 1, -1)], windows=[(-1, -0.5), (0.5, 1)]),
    Unary(
        "Atan",
        "Atan",
        np.arctan,
        (-100, 100),
        mono=INC,
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(1, 2), (1e6, 1e9)],
    ),
    Unary(
        "Sinh",
        "Sinh",
        np.sinh,
        (-100, 100),
        mono=INC,
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(0.5, 2), (88, 90)],
    ),
    Unary(
        "Cosh",
        "Cosh",
        np.cosh,
        (-100, 100),
        mono=[(-math.inf, 0, -1), (0, math.inf, 1)],
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(0.5, 2), (88, 90)],
    ),
    Unary("Asinh", "Asinh", np.arcsinh, (-100, 100), mono=INC, windows=[(0.5, 2)]),
    Unary("Acosh", "Acosh", np.arccosh, (1, 100), mono=[(1, math.inf, 1)], windows=[(1, 2)]),
    Unary("Atanh", "Atanh", np.arctanh, (-1, 1), mono=[(-1, 1, 1)], windows=[(0.5, 1)]),
    Unary(
        "Elu",
        "Elu",
        ref_elu,
        (-110, 20),
        mono=INC,
        sat=[(-1, -BIG)],
        windows=[(-2, -0.5), (-20, -15), (-1e-6, 0)],
    ),
    Unary(
        "Selu",
        "Selu",
        ref_selu,
        (-110, 20),
        mono=INC,
        sat=[(-1, -BIG)],
        windows=[(-2, -0.5), (-20, -15), (-1e-6, 0)],
    ),
    Unary(
        "Celu",
        "Celu",
        ref_elu,
        (-110, 20),
        fp16=False,
        mono=INC,
        sat=[(-1, -BIG)],
        windows=[(-2, -0.5), (-20, -15), (-1e-6, 0)],
    ),
    Unary(
        "Mish",
        "Mish",
        ref_mish,
        (-110, 20),
        mono=[(-math.inf, -1.193, -1), (-1.192, math.inf, 1)],
        sat=[(-1, -BIG)],
        windows=[(-4, -1), (0.5, 2), (-104, -85)],
    ),
    Unary(
        "HardSigmoid",
        "HardSigmoid",
        ref_hardsigmoid,
        (-4, 4),
        mono=INC,
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(-3, -2), (2, 3)],
    ),
    Unary(
        "HardSwish",
        "HardSwish",
        ref_hardswish,
        (-5, 5),
        mono=[(-math.inf, -3, -1), (-3, -1.5, -1), (-1.5, math.inf, 1)],
        sat=[(-1, -BIG)],
        windows=[(-3.5, -2.5), (2.5, 3.5)],
    ),
    Unary(
        "Reciprocal",
        "Reciprocal",
        lambda x: 1.0 / x,
        (-10, 10),
        mono=[(-math.inf, -1e-300, -1), (1e-300, math.inf, -1)],
        windows=[(1, 2), (1e38, F32_MAX)],
    ),
    Unary(
        "Pow(x,0.5)",
        "Pow",
        ref_pow(0.5),
        (0, 100),
        exponent=0.5,
        mono=[(0, math.inf, 1)],
        windows=[(1, 4)],
    ),
    Unary(
        "Pow(x,2)",
        "Pow",
        ref_pow(2.0),
        (-100, 100),
        exponent=2.0,
        mono=[(-math.inf, 0, -1), (0, math.inf, 1)],
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(1, 2)],
    ),
    Unary(
        "Pow(x,3)",
        "Pow",
        ref_pow(3.0),
        (-100, 100),
        exponent=3.0,
        mono=INC,
        sat=[(-1, -BIG), (1, BIG)],
        windows=[(1, 2)],
    ),
]


# --------------------------------------------------------------------------------------
# unary measurement
# --------------------------------------------------------------------------------------


def far_input(v: float, fmt: FloatFmt) -> float:
    return math.copysign(fmt.maxval, v) if abs(v) > fmt.maxval else v


def fp32_samples(spec: Unary) -> Arr:
    # every 2^11-th float over the whole range (~2^21 points, log-spaced, both signs)
    whole = floats_between(-F32_MAX, F32_MAX, FP32, cap=1 << 21)
    lin = np.linspace(spec.lin[0], spec.lin[1], 1 << 20).astype(np.float32)
    wins = [floats_between(a, b, FP32) for a, b in spec.windows]
    x = np.concatenate([whole, lin, *wins, np.array([0.0], np.float32)])
    return np.unique(x[np.isfinite(x)])


def fp16_samples() -> Arr:
    x = np.arange(1 << 16, dtype=np.int64).astype(np.uint16).view(np.float16)
    return np.unique(x[np.isfinite(x)])


def reference(spec: Unary, x: Arr) -> F64:
    with np.errstate(all="ignore"):
        return np.asarray(spec.ref(x.astype(np.float64)), dtype=np.float64)


@dataclass
class SatResult:
    side: int
    value_ort: float
    value_rn: float
    first_ort: float | None  # input closest to 0 whose output equals the limit
    stable_ort: float | None  # beyond this input, every output equals the limit
    first_rn: float | None  # same for the correctly rounded function
    stable_rn: float | None


def _sat_thresholds(
    x: Arr, hit: NDArray[np.bool_], side: int
) -> tuple[float | None, float | None, tuple[int, int] | None]:
    """x sorted ascending restricted to one side; returns first, stable, bracket indices."""
    if side < 0:
        x, hit = x[::-1], hit[::-1]  # walk from 0 towards -inf
    idx = np.flatnonzero(hit)
    if idx.size == 0:
        return None, None, None
    first = float(x[idx[0]])
    miss = np.flatnonzero(~hit)
    if miss.size == 0:
        return first, float(x[0]), None
    last_miss = int(miss[-1])
    if last_miss == x.size - 1:
        return first, None, None
    return first, float(x[last_miss + 1]), (last_miss, last_miss + 1)


def _side_mask(x: Arr, side: int) -> NDArray[np.bool_]:
    return np.asarray(x < 0 if side < 0 else x > 0)


def saturation(
    x: Arr, y: Arr, rn: Arr, spec: Unary, fmt: FloatFmt, y_far: dict[int, float]
) -> tuple[list[SatResult], list[tuple[float, float]]]:
    out: list[SatResult] = []
    brackets: list[tuple[float, float]] = []
    for side, far in spec.sat:
        xf = far_input(far, fmt)
        v_ort = y_far[side]
        with np.errstate(all="ignore"):
            v_rn = float(np.asarray(spec.ref(np.array([xf])), np.float64).astype(fmt.dtype)[0])
        m = _side_mask(x, side)
        xs = x[m]
        res: list[float | None] = []
        for vals, v in ((y[m], v_ort), (rn[m], v_rn)):
            first, stable, br = _sat_thresholds(xs, vals == v, side)
            res += [first, stable]
            # bracket both the first hit and the last miss for exhaustive refinement
            xs_o = xs[::-1] if side < 0 else xs
            if br is not None:
                brackets.append((float(xs_o[br[0]]), float(xs_o[br[1]])))
            if first is not None:
                i = int(np.searchsorted(xs, first))
                lo, hi = max(i - 1, 0), min(i + 1, xs.size - 1)
                brackets.append((float(xs[lo]), float(xs[hi])))
        out.append(SatResult(side, v_ort, v_rn, *res))
    return out, brackets


@dataclass
class MonoResult:
    lo: float
    hi: float
    direction: int
    violations: int
    x_from: float | None
    x_to: float | None
    max_drop_ulp: int
    max_drop_abs: float


def monotonicity(x: Arr, y: Arr, spec: Unary) -> list[MonoResult]:
    out: list[MonoResult] = []
    k = ordkey(y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)  # no rounding of the bounds
    for lo, hi, d in spec.mono:
        m = (x64 >= lo) & (x64 <= hi) & ~np.isnan(y)
        xs, ks, ys = x[m], k[m], y64[m]
        diff = (ks[1:] - ks[:-1]) * d
        bad = np.flatnonzero(diff < 0)
        if bad.size:
            with np.errstate(invalid="ignore"):
                drop = np.abs(ys[bad + 1] - ys[bad])
            out.append(
                MonoResult(
                    lo,
                    hi,
                    d,
                    int(bad.size),
                    float(xs[bad[0]]),
                    float(xs[bad[-1] + 1]),
                    int(-diff[bad].min()),
                    float(np.nanmax(drop)),
                )
            )
        else:
            out.append(MonoResult(lo, hi, d, 0, None, None, 0, 0.0))
    return out


def ladder(fmt: FloatFmt, softmax: bool = False) -> list[int]:
    """Exponents k of the absolute slacks A = 2^k tried in the (N, A) error model."""
    if fmt is FP32:
        if softmax:
            return [-149, -126, -30, -24, -22, -20, -18, -16]
        return [-149, -126, -60, -30, -26, -24, -22, -20]
    return [-24, -22, -20, -18, -16, -14, -12, -10]


@dataclass
class ErrResult:
    """Error of one kernel over the sweep.

    n_at[k] is the smallest integer N such that every sampled output satisfies
    |ort - f| <= 2^k  or  |ord(ort) - ord(RN(f))| <= N, i.e. the widening
    [RN(f) - N ulp, RN(f) + N ulp] united with [f - 2^k, f + 2^k] is sound on the sweep.
    """

    n: int
    max_ulp: int  # N with no absolute slack (k = -inf)
    at_x: float
    at_y: float
    at_ref: float
    n_at: dict[int, int]
    n_at_x: dict[int, float]
    max_abs: float  # max |ort - f| over finite outputs with |f| <= 1
    abs_at_x: float
    max_frac: float  # max |ort - f| / ulp(f), finite outputs with |f| >= tiny
    frac_at_x: float
    y_min: float  # range of outputs over the sweep (finite inputs)
    y_max: float
    n_premature_sat: int  # outputs equal to a limit value (or 0) while RN(f) is not
    premature_range: tuple[float, float] | None
    frac_not_cr: float  # fraction of points not correctly rounded
    nan_mismatch: int
    nan_examples: list[float]


def errors(
    x: Arr, y: Arr, r: F64, fmt: FloatFmt, sat_values: Sequence[float], softmax: bool = False
) -> ErrResult:
    with np.errstate(all="ignore"):
        rn = r.astype(fmt.dtype)
    nan_y, nan_r = np.isnan(y), np.isnan(r)
    mism = nan_y != nan_r
    ok = ~nan_y & ~nan_r
    d = np.where(ok, np.abs(ordkey(y) - ordkey(rn)), 0)
    y64 = y.astype(np.float64)
    fin = ok & np.isfinite(y) & np.isfinite(rn)
    with np.errstate(all="ignore"):
        absd = np.where(fin, np.abs(y64 - r), 0.0)
        frac = np.where(fin & (np.abs(r) >= fmt.tiny), absd / ulp_of(r, fmt), 0.0)
    # points with a non-finite output or reference: only the ulp distance is meaningful
    absd_l = np.where(fin, absd, np.where(d > 0, np.inf, 0.0))
    n_at: dict[int, int] = {}
    n_at_x: dict[int, float] = {}
    nz = np.flatnonzero(d > 0)
    dnz, anz = d[nz], absd_l[nz]
    for k in ladder(fmt, softmax):
        dk = np.where(anz > 2.0**k, dnz, 0)
        i = int(np.argmax(dk)) if dk.size else -1
        n_at[k] = int(dk[i]) if i >= 0 else 0
        n_at_x[k] = float(x[nz[i]]) if i >= 0 else math.nan
    prem = np.zeros_like(ok)
    for v in sat_values:
        prem |= ok & (y == v) & (rn != v)
    absd1 = np.where(np.abs(r) <= 1.0, absd, 0.0)
    i, j, a = int(np.argmax(d)), int(np.argmax(frac)), int(np.argmax(absd1))
    px = x[prem]
    yf = y64[np.isfinite(y64)]
    return ErrResult(
        n=int(x.size),
        max_ulp=int(d[i]),
        at_x=float(x[i]),
        at_y=float(y[i]),
        at_ref=float(r[i]),
        n_at=n_at,
        n_at_x=n_at_x,
        max_abs=float(absd1[a]),
        abs_at_x=float(x[a]),
        max_frac=float(frac[j]),
        frac_at_x=float(x[j]),
        y_min=float(yf.min()) if yf.size else math.nan,
        y_max=float(yf.max()) if yf.size else math.nan,
        n_premature_sat=int(prem.sum()),
        premature_range=(float(px.min()), float(px.max())) if px.size else None,
        frac_not_cr=float(np.mean(d[ok] > 0)) if ok.any() else 0.0,
        nan_mismatch=int(mism.sum()),
        nan_examples=[float(v) for v in x[mism][:3]],
    )


SPECIAL_INPUTS = [-math.inf, -1.0, -0.0, 0.0, 1.0, math.inf, math.nan]


@dataclass
class UnaryResult:
    name: str
    fmt: str
    executed_as: str
    levels_identical: bool
    err: dict[str, ErrResult]
    mono: list[MonoResult]
    sat: list[SatResult]
    specials: list[tuple[float, float, float]]  # x, ort, RN(ref)
    seconds: float
    error: str | None = None


def run_unary(spec: Unary, fmt: FloatFmt) -> UnaryResult:
    t0 = time.perf_counter()
    model = unary_model(spec.op, fmt, spec.attrs, spec.exponent)
    try:
        sessions = {k: make_session(model, lv) for k, lv in LEVELS.items()}
    except Exception as exc:  # unsupported op / dtype
        return UnaryResult(
            spec.name,
            fmt.name,
            "-",
            True,
            {},
            [],
            [],
            [],
            0.0,
            error=str(exc).splitlines()[0][:160],
        )
    nodes = executed_nodes(model)

    def run(x: Arr) -> dict[str, Arr]:
        return {k: s.run(None, {"x": x})[0] for k, s in sessions.items()}

    x = fp32_samples(spec) if fmt is FP32 else fp16_samples()
    far = {side: far_input(v, fmt) for side, v in spec.sat}
    y_far = {side: float(run(np.array([v], fmt.dtype))["default"][0]) for side, v in far.items()}
    ys = run(x)
    r = reference(spec, x)
    if fmt is FP32 and spec.sat:  # refine saturation brackets exhaustively
        with np.errstate(all="ignore"):
            rn = r.astype(fmt.dtype)
        extra = []
        for key in ys:
            _, brs = saturation(x, ys[key], rn, spec, fmt, y_far)
            extra += [floats_between(a, b, fmt) for a, b in brs]
        if extra:
            x = np.unique(np.concatenate([x, *extra]))
            ys = run(x)
            r = reference(spec, x)
    with np.errstate(all="ignore"):
        rn = r.astype(fmt.dtype)
    ident = all(
        np.array_equal(ordkey(ys["default"]), ordkey(v))
        and np.array_equal(np.isnan(ys["default"]), np.isnan(v))
        for v in ys.values()
    )
    sat_vals = sorted(set(y_far.values()) | {0.0})
    err = {k: errors(x, v, r, fmt, sat_vals) for k, v in ys.items() if k == "default" or not ident}
    y = ys["default"]
    mono = monotonicity(x, y, spec)
    sat, _ = saturation(x, y, rn, spec, fmt, y_far)
    xs = np.array(SPECIAL_INPUTS, dtype=fmt.dtype)
    ysp = run(xs)["default"]
    rsp = reference(spec, xs)
    with np.errstate(all="ignore"):
        rsp_rn = rsp.astype(fmt.dtype)
    specials = [(float(a), float(b), float(c)) for a, b, c in zip(xs, ysp, rsp_rn, strict=True)]
    return UnaryResult(
        spec.name, fmt.name, nodes, ident, err, mono, sat, specials, time.perf_counter() - t0
    )


def verify_with_mpmath(spec: Unary, x: float) -> float | None:
    """Recompute f(x) with 60 digits for the worst point (optional, if mpmath present)."""
    try:
        import mpmath as mp
    except ImportError:
        return None
    mp.mp.dps = 60
    v = mp.mpf(x)
    fns: dict[str, Callable[[Any], Any]] = {
        "Exp": mp.exp,
        "Log": mp.log,
        "Sqrt": mp.sqrt,
        "Sigmoid": lambda t: 1 / (1 + mp.exp(-t)),
        "Tanh": mp.tanh,
        "Erf": mp.erf,
        "Sin": mp.sin,
        "Cos": mp.cos,
        "Tan": mp.tan,
        "Asin": mp.asin,
        "Acos": mp.acos,
        "Atan": mp.atan,
        "Sinh": mp.sinh,
        "Cosh": mp.cosh,
        "Asinh": mp.asinh,
        "Acosh": mp.acosh,
        "Atanh": mp.atanh,
        "Softplus": lambda t: mp.log1p(mp.exp(t)),
        "Softsign": lambda t: t / (1 + abs(t)),
        "Gelu": lambda t: t * mp.erfc(-t / mp.sqrt(2)) / 2,
        "Mish": lambda t: t * mp.tanh(mp.log1p(mp.exp(t))),
    }
    f = fns.get(spec.name)
    if f is None or not math.isfinite(x):
        return None
    try:
        val = f(v)
    except (ValueError, ZeroDivisionError):
        return None
    return float(val) if isinstance(val, mp.mpf) else None


def run_exhaustive(spec: Unary, lo_e: int, hi_e: int) -> ErrResult:
    """Every float32 with |x| in [2^lo_e, 2^hi_e), both signs, one binade at a time."""
    sess = make_session(unary_model(spec.op, FP32, spec.attrs, spec.exponent), LEVELS["default"])
    agg: ErrResult | None = None
    for sign in (1.0, -1.0):
        for e in range(lo_e, hi_e):
            top = float(np.nextafter(np.float32(2.0 ** (e + 1)), np.float32(0)))
            x = floats_between(2.0**e, top, FP32, cap=1 << 24) * np.float32(sign)
            er = errors(x, sess.run(None, {"x": x})[0], reference(spec, x), FP32, [])
            if agg is None:
                agg = er
                continue
            if er.max_ulp > agg.max_ulp:
                agg.max_ulp, agg.at_x, agg.at_y, agg.at_ref = (
                    er.max_ulp,
                    er.at_x,
                    er.at_y,
                    er.at_ref,
                )
            agg.n_at = {k: max(v, er.n_at[k]) for k, v in agg.n_at.items()}
            if er.max_abs > agg.max_abs:
                agg.max_abs, agg.abs_at_x = er.max_abs, er.abs_at_x
            if er.max_frac > agg.max_frac:
                agg.max_frac, agg.frac_at_x = er.max_frac, er.frac_at_x
            agg.y_min = float(np.fmin(agg.y_min, er.y_min))  # ignores NaN (empty chunks)
            agg.y_max = float(np.fmax(agg.y_max, er.y_max))
            agg.nan_mismatch += er.nan_mismatch
    assert agg is not None
    return agg


def print_exhaustive(rows: list[tuple[str, ErrResult]], lo_e: int, hi_e: int) -> None:
    lad = ladder(FP32)
    print(f"\n## Exhaustive fp32: every float with |x| in [2^{lo_e}, 2^{hi_e}) (default level)")
    print(
        f"{'op':12} {'ulp':>10} {'at x':>13} "
        + " ".join(f"{'N@' + _k(k):>9}" for k in lad)
        + f" {'abs':>8} {'frac':>7} {'range':>25} {'nan!':>4}"
    )
    for name, e in rows:
        rng = f"[{e.y_min:.8g},{e.y_max:.8g}]"
        print(
            f"{name:12} {e.max_ulp:>10} {fmt_x(e.at_x):>13} "
            + " ".join(f"{e.n_at[k]:>9}" for k in lad)
            + f" {e.max_abs:>8.2e} {e.max_frac:>7.2f} {rng:>25} {e.nan_mismatch:>4}"
        )


# --------------------------------------------------------------------------------------
# Softmax / LogSoftmax
# --------------------------------------------------------------------------------------


SOFTMAX_LENGTHS = (10, 100, 1000, 4096)


def softmax_rows(length: int, rng: np.random.Generator) -> dict[str, F64]:
    n = max(2000, 1_000_000 // length)
    rows: dict[str, F64] = {}
    for s in (0.01, 1.0, 10.0, 100.0, 1000.0, 1e4):
        rows[f"normal*{s:g}"] = rng.normal(0.0, s, (n // 8, length))
    d = np.linspace(0.0, 120.0, n // 4)
    peak = rng.normal(0.0, 1.0, (d.size, length))
    peak[:, 0] += d
    rows["one peak +d"] = peak
    # k entries at 0, rest at -d: outputs 1/k-ish and e^-d/k-ish (underflow, exact 1)
    two = np.full((d.size, length), 0.0)
    two[:, 1:] = -np.linspace(0.0, 120.0, d.size)[:, None]
    rows["0 and -d"] = two
    tiny = rng.normal(0.0, 1.0, (64, length))
    tiny[:, 0] = np.linspace(0, 200, 64)
    rows["0/-inf/huge"] = np.concatenate(
        [
            tiny,
            np.where(rng.random((8, length)) < 0.5, -np.inf, 0.0),
            np.full((2, length), 0.0),
            rng.choice([-3e38, 3e38], (8, length)),
        ]
    )
    return rows


def ref_softmax(x: F64, log: bool) -> F64:
    with np.errstate(all="ignore"):
        m = np.max(x, axis=-1, keepdims=True)
        z = x - m
        e = np.exp(z)
        s = np.sum(e, axis=-1, keepdims=True)
        return z - np.log(s) if log else e / s


@dataclass
class SoftmaxResult:
    name: str
    fmt: str
    length: int
    executed_as: str
    levels_identical: bool
    max_ulp: int
    max_ulp_where: str
    n_at: dict[int, int]  # as in ErrResult
    max_frac: float  # max |ort - f| / ulp(f) over |f| >= tiny
    max_abs: float
    y_min: float
    y_max: float
    exact0_spurious: int  # ORT gives exactly 0 while RN(f) != 0
    exact0_max_ref: float  # largest f among those
    exact1_spurious: int  # softmax: ORT exactly 1 while RN(f) != 1
    exact1_min_ref: float  # smallest f among those
    exact0_total: int
    exact1_total: int
    sum_dev_min: float  # (sum(y) - 1) / u over rows without -inf/nan
    sum_dev_max: float
    nan_mismatch: int
    seconds: float


def run_softmax(op: str, fmt: FloatFmt, length: int) -> SoftmaxResult:
    t0 = time.perf_counter()
    rng = np.random.default_rng(1234 + length)
    node = helper.make_node(op, ["x"], ["y"], axis=-1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", fmt.tensor_type, [None, length])],
        [helper.make_tensor_value_info("y", fmt.tensor_type, [None, length])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    log = op == "LogSoftmax"
    sessions = {k: make_session(model, lv) for k, lv in LEVELS.items()}
    nodes = executed_nodes(model)
    worst = (-1, "")
    n_at = dict.fromkeys(ladder(fmt, True), 0)
    acc: dict[str, float] = {
        "abs": 0.0,
        "frac": 0.0,
        "ymin": math.inf,
        "ymax": -math.inf,
        "e0": 0,
        "e0r": 0.0,
        "e1": 0,
        "e1r": 1.0,
        "e0t": 0,
        "e1t": 0,
        "smin": math.inf,
        "smax": -math.inf,
        "nan": 0,
    }
    ident = True
    for label, rows in softmax_rows(length, rng).items():
        with np.errstate(over="ignore"):
            x = rows.astype(fmt.dtype)
        ys = {k: s.run(None, {"x": x})[0] for k, s in sessions.items()}
        ident &= all(np.array_equal(ordkey(ys["default"]), ordkey(v)) for v in ys.values())
        y = ys["default"]
        r = ref_softmax(x.astype(np.float64), log)
        e = errors(x.ravel(), y.ravel(), r.ravel(), fmt, [], softmax=True)
        if e.max_ulp > worst[0]:
            worst = (e.max_ulp, f"{label}: ort={e.at_y!r} f={e.at_ref:.9g}")
        n_at = {k: max(v, e.n_at[k]) for k, v in n_at.items()}
        acc["abs"] = max(acc["abs"], e.max_abs)
        acc["frac"] = max(acc["frac"], e.max_frac)
        acc["ymin"] = min(acc["ymin"], e.y_min)
        acc["ymax"] = max(acc["ymax"], e.y_max)
        acc["nan"] += e.nan_mismatch
        with np.errstate(all="ignore"):
            rn = r.astype(fmt.dtype)
        ok = ~np.isnan(y) & ~np.isnan(r)
        z = ok & (y == 0) & (rn != 0)
        acc["e0"] += int(z.sum())
        if z.any():
            acc["e0r"] = max(acc["e0r"], float(np.max(np.abs(r[z]))))
        acc["e0t"] += int(np.sum(ok & (y == 0)))
        if not log:
            o = ok & (y == 1) & (rn != 1)
            acc["e1"] += int(o.sum())
            if o.any():
                acc["e1r"] = min(acc["e1r"], float(np.min(r[o])))
            acc["e1t"] += int(np.sum(ok & (y == 1)))
            good = np.all(ok, axis=-1)
            if good.any():
                sm = (np.sum(y[good].astype(np.float64), axis=-1) - 1.0) / fmt.u
                acc["smin"] = min(acc["smin"], float(sm.min()))
                acc["smax"] = max(acc["smax"], float(sm.max()))
    return SoftmaxResult(
        op,
        fmt.name,
        length,
        nodes,
        ident,
        worst[0],
        worst[1],
        n_at,
        acc["frac"],
        acc["abs"],
        acc["ymin"],
        acc["ymax"],
        int(acc["e0"]),
        acc["e0r"],
        int(acc["e1"]),
        acc["e1r"],
        int(acc["e0t"]),
        int(acc["e1t"]),
        acc["smin"],
        acc["smax"],
        int(acc["nan"]),
        time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------
# MatMul / Gemm accumulation
# --------------------------------------------------------------------------------------


@dataclass
class GemmResult:
    op: str
    fmt: str
    k: int
    executed_as: str
    levels_identical: bool
    ratio_u: dict[str, float]  # dist -> max |ort - exact| / sum|a b| in units of u


GEMM_VARIANTS: list[tuple[str, bool, int]] = [  # name, B is an initializer, M
    ("MatMul", False, 64),
    ("MatMul B const", True, 64),
    ("MatMul M=1", False, 1),
    ("Gemm transB", True, 64),
]
GEMM_DISTS = ("normal", "uniform+", "wide")


def gemm_data(
    dist: str, m: int, k: int, n: int, fmt: FloatFmt, rng: np.random.Generator
) -> tuple[F64, F64]:
    if dist == "normal":
        return rng.normal(size=(m, k)), rng.normal(size=(k, n))
    if dist == "uniform+":  # all products positive: worst case for accumulated rounding
        return rng.random((m, k)), rng.random((k, n))
    if dist == "wide":  # magnitudes spread over 2^-w..2^w, random signs
        w = 8 if fmt is FP32 else 3
        a = rng.normal(size=(m, k)) * 2.0 ** rng.uniform(-w, w, (m, k))
        b = rng.normal(size=(k, n)) * 2.0 ** rng.uniform(-w, w, (k, n))
        return a, b
    raise ValueError(dist)


def gemm_model(
    variant: str, fmt: FloatFmt, m: int, k: int, n: int, b: Arr | None, c: Arr | None
) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("a", fmt.tensor_type, [m, k])]
    inits = []
    if b is None:
        inputs.append(helper.make_tensor_value_info("b", fmt.tensor_type, [k, n]))
    else:
        inits.append(numpy_helper.from_array(b, "b"))
    if variant.startswith("Gemm"):
        assert c is not None
        inits.append(numpy_helper.from_array(c, "c"))
        node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1)
    else:
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        inputs,
        [helper.make_tensor_value_info("y", fmt.tensor_type, [m, n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    return model


def run_gemm(variant: str, b_const: bool, m: int, fmt: FloatFmt, k: int) -> GemmResult:
    n = 64
    ratios: dict[str, float] = {}
    ident = True
    nodes = ""
    for dist in GEMM_DISTS:
        rng = np.random.default_rng(k * 7 + len(dist) + m)
        a64, b64 = gemm_data(dist, m, k, n, fmt, rng)
        a, b = a64.astype(fmt.dtype), b64.astype(fmt.dtype)
        c = rng.normal(size=(n,)).astype(fmt.dtype)
        af, bf = a.astype(np.float64), b.astype(np.float64)
        # products are exact in float64; its summation error <= k 2^-53 sum|ab| (negligible)
        exact = af @ bf
        denom = np.abs(af) @ np.abs(bf)
        gemm = variant.startswith("Gemm")
        if gemm:
            exact = exact + c.astype(np.float64)
            denom = denom + np.abs(c.astype(np.float64))
            b = np.ascontiguousarray(b.T)  # transB=1 layout
        model = gemm_model(variant, fmt, m, k, n, b if b_const else None, c if gemm else None)
        feeds: dict[str, Arr] = {"a": a} if b_const else {"a": a, "b": b}
        nodes = executed_nodes(model)
        ys = [make_session(model, lv).run(None, feeds)[0] for lv in LEVELS.values()]
        ident &= all(np.array_equal(ys[0], v) for v in ys)
        ratios[dist] = max(
            float(np.max(np.abs(y.astype(np.float64) - exact) / denom)) / fmt.u for y in ys
        )
    return GemmResult(variant, fmt.name, k, nodes, ident, ratios)


# --------------------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------------------


def _opt(v: float | None) -> str:
    return "-" if v is None else fmt_x(v)


def _k(k: int) -> str:
    return f"2^{k}"


def print_unary(results: list[UnaryResult], specs: dict[str, Unary]) -> None:
    print("\n## Unary ops: error vs the float64 reference f, correctly rounded RN(f)")
    print("ulp  = max |ord(ort) - ord(RN(f))| (integer ulps of the output dtype, no slack)")
    print(
        "N@A  = the same max over points where |ort - f| > A, i.e. the (N ulp | A abs)"
        " widening that covers every sampled point"
    )
    print(
        "abs  = max |ort - f| where |f| <= 1; frac = max |ort - f| / ulp(f) for |f| >= tiny; range ="
        " [min, max] of outputs; !CR = % not correctly rounded; lvl= : ORT_DISABLE_ALL"
        " bit-identical to default"
    )
    for fmt in (FP32, FP16):
        rows = [r for r in results if r.fmt == fmt.name]
        if not rows:
            continue
        lad = ladder(fmt)
        print(f"\n### {fmt.name}")
        print(
            f"{'op':12} {'ulp':>10} {'at x':>13} "
            + " ".join(f"{'N@' + _k(k):>9}" for k in lad)
            + f" {'abs':>8} {'at x':>12} {'frac':>7} {'range':>25} {'!CR%':>6} "
            f"{'nan!':>4} {'lvl=':>4} executed"
        )
        for res in rows:
            if res.error:
                print(f"{res.name:12} UNSUPPORTED: {res.error}")
                continue
            for key, e in res.err.items():
                if key != "default" and res.levels_identical:
                    continue
                name = res.name if key == "default" else "  (disable)"
                rng = f"[{e.y_min:.8g},{e.y_max:.8g}]"
                print(
                    f"{name:12} {e.max_ulp:>10} {fmt_x(e.at_x):>13} "
                    + " ".join(f"{e.n_at[k]:>9}" for k in lad)
                    + f" {e.max_abs:>8.2e} {fmt_x(e.abs_at_x):>12} {e.max_frac:>7.2f} "
                    f"{rng:>25} {100 * e.frac_not_cr:>6.2f} {e.nan_mismatch:>4} "
                    f"{'yes' if res.levels_identical else 'NO':>4} {res.executed_as}"
                )

    print("\n### Worst points (default level)")
    for res in results:
        if res.error:
            continue
        e = res.err["default"]
        dt = FP32.dtype if res.fmt == "fp32" else FP16.dtype
        mp_val = verify_with_mpmath(specs[res.name], e.at_x)
        chk = ""
        if mp_val is not None:
            rn_mp = float(np.array([mp_val]).astype(dt)[0])
            rn64 = float(np.array([e.at_ref]).astype(dt)[0])
            chk = " (mpmath agrees)" if rn_mp == rn64 else f" (mpmath RN differs: {rn_mp!r})"
        line = f"{res.name:12} {res.fmt}: x={e.at_x!r} ort={e.at_y!r} f={e.at_ref!r}{chk}"
        if e.premature_range:
            line += (
                f"; {e.n_premature_sat} outputs equal a limit (or 0) while RN(f) does"
                f" not, x in [{fmt_x(e.premature_range[0])},"
                f" {fmt_x(e.premature_range[1])}]"
            )
        if e.nan_mismatch:
            line += f"; NaN mismatch e.g. x={e.nan_examples}"
        print(line)

    print(
        "\n## Monotonicity (default level; violations = adjacent sampled inputs where the"
        " kernel moves against the real function's direction)"
    )
    for res in results:
        for mo in res.mono:
            if mo.violations:
                print(
                    f"{res.name:12} {res.fmt}: on [{fmt_x(mo.lo)}, {fmt_x(mo.hi)}] dir "
                    f"{mo.direction:+d}: {mo.violations} violations, x in "
                    f"[{_opt(mo.x_from)}, {_opt(mo.x_to)}], max backwards step "
                    f"{mo.max_drop_ulp} ulp / {mo.max_drop_abs:.3g} absolute"
                )
    clean = [
        f"{r.name}/{r.fmt}" for r in results if r.mono and not any(m.violations for m in r.mono)
    ]
    print("monotone where the real function is:", ", ".join(clean) or "-")

    print("\n## Saturation thresholds (default level)")
    print(
        "first = input nearest 0 whose output is exactly the limit; stable = beyond it"
        " every output is the limit; RN = same for the correctly rounded function"
    )
    print(
        f"{'op':12} {'dt':4} {'side':>4} {'limit ORT':>14} {'limit RN':>14} "
        f"{'first ORT':>14} {'stable ORT':>14} {'first RN':>14} {'stable RN':>14}"
    )
    for res in results:
        for s in res.sat:
            print(
                f"{res.name:12} {res.fmt:4} {'-inf' if s.side < 0 else '+inf':>4} "
                f"{s.value_ort!r:>14} {s.value_rn!r:>14} {_opt(s.first_ort):>14} "
                f"{_opt(s.stable_ort):>14} {_opt(s.first_rn):>14} {_opt(s.stable_rn):>14}"
            )

    print(
        "\n## Special inputs (default level): x->ORT, with [RN(f)]* where they differ by"
        " more than 1 ulp or in NaN-ness"
    )
    for res in results:
        if res.error:
            continue
        cells = []
        for x, y, r in res.specials:
            dt = FP32.dtype if res.fmt == "fp32" else FP16.dtype
            if math.isnan(y) or math.isnan(r):
                same = math.isnan(y) and math.isnan(r)
            else:
                dd = ordkey(np.array([y, r], dtype=dt))
                same = abs(int(dd[0]) - int(dd[1])) <= 1
            cells.append(f"{x:g}->{y:g}" + ("" if same else f"[{r:g}]*"))
        print(f"{res.name:12} {res.fmt:4} " + "  ".join(cells))


def print_softmax(results: list[SoftmaxResult]) -> None:
    print("\n## Softmax / LogSoftmax (axis=-1); columns as for unary ops, plus:")
    print(
        "0! = outputs exactly 0 although RN(f) != 0 (f<=: the largest such f); 1! = outputs"
        " exactly 1 although RN(f) != 1 (f>=: the smallest such f); #0/#1 = all exact 0/1"
        " outputs; sum-1 = range of (sum of a row's outputs - 1) in units of u"
    )
    for fmt in (FP32, FP16):
        rows = [r for r in results if r.fmt == fmt.name]
        lad = ladder(fmt, True)
        print(f"\n### {fmt.name}")
        print(
            f"{'op':10} {'L':>5} {'ulp':>10} "
            + " ".join(f"{'N@' + _k(k):>9}" for k in lad)
            + f" {'frac':>7} {'abs':>8} {'range':>26} {'0!':>6} {'f<=':>8} {'1!':>4} {'f>=':>10} "
            f"{'#0':>7} {'#1':>5} {'sum-1 [u]':>14} {'nan!':>4} {'lvl=':>4} executed"
        )
        for s in rows:
            sums = f"[{s.sum_dev_min:+.1f},{s.sum_dev_max:+.1f}]" if s.name == "Softmax" else "-"
            rng = f"[{s.y_min:.8g},{s.y_max:.8g}]"
            print(
                f"{s.name:10} {s.length:>5} {s.max_ulp:>10} "
                + " ".join(f"{s.n_at[k]:>9}" for k in lad)
                + f" {s.max_frac:>7.2f} {s.max_abs:>8.2e} {rng:>26} {s.exact0_spurious:>6} "
                f"{s.exact0_max_ref:>8.2e} {s.exact1_spurious:>4} {s.exact1_min_ref:>10.8f} "
                f"{s.exact0_total:>7} {s.exact1_total:>5} {sums:>14} {s.nan_mismatch:>4} "
                f"{'yes' if s.levels_identical else 'NO':>4} {s.executed_as}"
            )
            print(f"{'':10} worst ulp: {s.max_ulp_where}")


def print_gemm(results: list[GemmResult]) -> None:
    print(
        "\n## MatMul/Gemm accumulation: max over outputs of |ort - exact| / (sum_k |a_k b_k|"
        " [+ |c|]) in units of u (2^-24 fp32, 2^-11 fp16), max over both levels; N = 64;"
        " the bound to confirm is K"
    )
    print(
        f"{'op':16} {'dt':4} {'K':>5} "
        + " ".join(f"{d:>9}" for d in GEMM_DISTS)
        + f" {'max/K':>7} {'lvl=':>4} executed"
    )
    for g in results:
        worst = max(g.ratio_u.values())
        print(
            f"{g.op:16} {g.fmt:4} {g.k:>5} "
            + " ".join(f"{g.ratio_u[d]:>9.3f}" for d in GEMM_DISTS)
            + f" {worst / g.k:>7.4f} {'yes' if g.levels_identical else 'NO':>4} "
            f"{g.executed_as}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--only", default="", help="comma-separated unary op names")
    ap.add_argument("--skip-unary", action="store_true")
    ap.add_argument("--skip-softmax", action="store_true")
    ap.add_argument("--skip-gemm", action="store_true")
    ap.add_argument("--json", default="", help="write raw results to this file")
    ap.add_argument(
        "--exhaustive",
        default="",
        metavar="LO:HI",
        help="also scan every fp32 input with |x| in [2^LO, 2^HI) for the --only ops (slow:"
        " about 3 s per binade and op)",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(
        f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}, {platform.machine()}, opset {OPSET}"
    )
    out: dict[str, Any] = {}
    if not args.skip_unary:
        only = {s for s in args.only.split(",") if s}
        specs = [s for s in UNARY if not only or s.name in only]
        results = []
        for fmt in (FP32, FP16):
            for spec in specs:
                if fmt is FP16 and not spec.fp16:
                    results.append(
                        UnaryResult(
                            spec.name,
                            fmt.name,
                            "-",
                            True,
                            {},
                            [],
                            [],
                            [],
                            0.0,
                            error="not in the ONNX type constraints",
                        )
                    )
                    continue
                results.append(run_unary(spec, fmt))
                print(f"  .. {spec.name} {fmt.name} {results[-1].seconds:.1f}s", file=sys.stderr)
        print_unary(results, {s.name: s for s in UNARY})
        out["unary"] = [r.__dict__ for r in results]
        if args.exhaustive:
            lo_e, hi_e = (int(v) for v in args.exhaustive.split(":"))
            ex = [(sp.name, run_exhaustive(sp, lo_e, hi_e)) for sp in specs]
            print_exhaustive(ex, lo_e, hi_e)
            out["exhaustive"] = {name: e.__dict__ for name, e in ex}
    if not args.skip_softmax:
        sm = [
            run_softmax(op, fmt, n)
            for fmt in (FP32, FP16)
            for op in ("Softmax", "LogSoftmax")
            for n in SOFTMAX_LENGTHS
        ]
        print_softmax(sm)
        out["softmax"] = [r.__dict__ for r in sm]
    if not args.skip_gemm:
        gm = [
            run_gemm(name, bc, m, fmt, k)
            for fmt in (FP32, FP16)
            for name, bc, m in GEMM_VARIANTS
            for k in (16, 256, 4096)
        ]
        print_gemm(gm)
        out["gemm"] = [r.__dict__ for r in gm]
    print(f"\ntotal {time.perf_counter() - t0:.1f}s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, default=lambda o: o.__dict__, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Targeted tests of the trig, activation and logic op families (ops/trig.py, activations.py,
logic.py): tightness at critical points, hazards, runtime quirks of onnxruntime that the rules
must cover, coarse boxes staying coarse, and the torch backend agreeing with NumPy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from numsentry.analyses.check import CheckOptions, run_check
from numsentry.domains.box import Box
from numsentry.ir import load_model
from numsentry.ops import REGISTRY
from numsentry.ops.apply import apply_interval
from numsentry.ops.registry import Ctx

F32 = np.dtype(np.float32)
F16 = np.dtype(np.float16)


def _op(name: str, opset: int = 24) -> Any:
    op = REGISTRY.lookup("", name, opset)
    assert op is not None, name
    return op


def iv(name: str, *boxes: Box | None, opset: int = 24, **attrs: Any) -> Box:
    """The op's interval result as a check computes it (framework rounding included)."""
    return apply_interval(_op(name, opset), Ctx(opset=opset), list(boxes), attrs)[0]


def rng_box(lo: float, hi: float, shape: tuple[int, ...] = (), dtype: np.dtype = F32) -> Box:
    return Box.range(lo, hi, shape, dtype)


def hazard(name: str, box: Box, **attrs: Any) -> str | None:
    msgs = [h.check(Ctx(), [box], attrs) for h in _op(name).hazards]
    return next((m for m in msgs if m), None)


def ort(op: str, x: np.ndarray, opset: int, *extra: np.ndarray, **attrs: Any) -> np.ndarray:
    """onnxruntime's output for a single-node model (float32)."""
    ort_mod = pytest.importorskip("onnxruntime")
    names = [f"i{j}" for j in range(1 + len(extra))]
    node = helper.make_node(op, names, ["y"], **attrs)
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names]
    g = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    so = ort_mod.SessionOptions()
    so.log_severity_level = 3
    s = ort_mod.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {n: np.asarray(v, np.float32) for n, v in zip(names, (x, *extra), strict=True)}
    return s.run(None, feeds)[0]


def per_element(x: np.ndarray) -> Box:
    """One degenerate (non-point) interval per element: runs the interval rule, not folding."""
    x64 = np.asarray(x, dtype=np.float64)
    return Box.range(x64, x64.copy(), x64.shape, F32)


def assert_contains(box: Box, y: np.ndarray) -> None:
    inside = box.contains(y)
    assert inside.all(), f"{np.asarray(y)[~inside][:4]} outside {box!r}"


# ---- trig ------------------------------------------------------------------------------


def test_sin_cos_pick_up_interior_extremes() -> None:
    b = iv("Sin", rng_box(0.1, 1.0))
    assert b.min() == pytest.approx(math.sin(0.1), rel=1e-6)
    assert b.max() == pytest.approx(math.sin(1.0), rel=1e-6)
    assert iv("Sin", rng_box(1.0, 2.0)).max() == 1.0  # pi/2 inside
    assert iv("Sin", rng_box(1.0, 2.0)).min() == pytest.approx(math.sin(1.0), rel=1e-6)
    assert iv("Cos", rng_box(3.0, 3.5)).min() == -1.0  # pi inside
    assert iv("Cos", rng_box(-0.5, 0.25)).max() == 1.0  # 0 inside
    assert iv("Cos", rng_box(-0.5, 0.25)).min() == pytest.approx(math.cos(-0.5), rel=1e-6)
    # far from 0: the extreme at 2*pi*k + pi/2 is found by its phase
    k = 1000
    c = 2 * math.pi * k + math.pi / 2
    assert iv("Sin", rng_box(c - 0.1, c + 0.1)).max() == 1.0
    assert iv("Sin", rng_box(c + 0.1, c + 0.3)).max() < 1.0


def test_float64_sin_allows_absolute_kernel_error() -> None:
    # onnxruntime's float64 Sin is 6 eps off in absolute terms next to its zeros
    x = np.float64(2 * math.pi)
    b = iv("Sin", Box.range(x, x, (), np.dtype(np.float64)))
    assert b.min() <= math.sin(x) - 6 * 2.0**-53 and b.max() >= math.sin(x) + 6 * 2.0**-53
    assert b.max() - b.min() < 1e-14


def test_sin_wide_or_infinite_gives_unit_range() -> None:
    b = iv("Sin", rng_box(0.0, 2 * math.pi + 0.01))
    assert (b.min(), b.max(), b.nan) == (-1.0, 1.0, False)
    b = iv("Cos", rng_box(-np.inf, 0.0))
    assert (b.min(), b.max(), b.nan) == (-1.0, 1.0, True)  # cos(-inf) is NaN


def test_trig_keeps_coarse_boxes_coarse() -> None:
    for name in ("Sin", "Cos", "Tan", "Atan", "Cosh", "Acos"):
        assert iv(name, rng_box(-0.5, 0.5, (2, 64, 7, 7))).blocks() == (1, 1, 1, 1), name
    refined = Box.range(np.linspace(-1, 0, 4).reshape(1, 4, 1), np.linspace(0, 1, 4).reshape(1, 4, 1),
                        (2, 4, 5), F32)
    assert iv("Sin", refined).blocks() == (1, 4, 1)


def test_tan_poles() -> None:
    b = iv("Tan", rng_box(-1.0, 1.0))
    assert b.max() == pytest.approx(math.tan(1.0), rel=1e-6)
    # a pole inside: unbounded in real arithmetic, but no float32 gets within 1e-30 of tan's range
    b = iv("Tan", rng_box(1.0, 2.0))
    assert np.isfinite(b.max()) and b.max() >= 1e30 and b.min() <= -1e30
    # float16 can overflow (tan(177.5) = 66347 > 65504): infinite bounds there
    b = iv("Tan", rng_box(177.0, 178.0, dtype=F16))
    assert b.max() == np.inf and b.min() == -np.inf
    # the float32 value nearest pi/2 is inside the rule's bound
    x = np.float32(math.pi / 2)
    assert_contains(iv("Tan", rng_box(1.5, 1.6)), np.array(np.tan(np.float64(x))))


def test_inverse_trig_hazards_and_nan() -> None:
    assert hazard("Acos", rng_box(-1.0, 1.0)) is None
    assert "outside" in (hazard("Acos", rng_box(-1.5, 0.5)) or "")
    assert hazard("Asin", rng_box(0.0, 1.0000001)) is not None
    assert hazard("Acosh", rng_box(1.0, 5.0)) is None
    assert hazard("Acosh", rng_box(0.5, 5.0)) is not None
    assert hazard("Atanh", rng_box(-0.5, 0.5)) is None
    assert hazard("Atanh", rng_box(0.0, 1.0)) is not None  # atanh(1) = inf
    b = iv("Acos", rng_box(-1.5, 0.5))
    assert b.nan and b.max() >= math.pi and b.min() == pytest.approx(math.acos(0.5), rel=1e-6)
    assert not iv("Acos", rng_box(-1.0, 1.0)).nan
    b = iv("Atanh", rng_box(0.0, 1.0))
    assert b.max() == np.inf and not b.nan
    assert all(h.rule == "NUM006" for n in ("Acos", "Asin", "Acosh", "Atanh") for h in _op(n).hazards)


def test_cosh_is_even_and_sinh_overflows() -> None:
    b = iv("Cosh", rng_box(-2.0, 3.0))
    assert b.min() == 1.0 and b.max() == pytest.approx(math.cosh(3.0), rel=1e-6)
    b = iv("Sinh", rng_box(0.0, 100.0))
    assert b.max() == np.inf and b.min() == pytest.approx(0.0, abs=1e-38)  # subnormal slack of approximate kernels
    b = iv("Sinh", rng_box(np.inf, np.inf))  # a lower bound of +inf must not turn into NaN
    assert not np.isnan(b.lo).any() and b.max() == np.inf
    assert _op("Sinh").overflow_rule == _op("Cosh").overflow_rule == "NUM003"


# ---- non-monotone activations: the true critical point --------------------------------


@pytest.mark.parametrize(("name", "attrs", "true_min", "at"), [
    ("Gelu", {"approximate": "none"}, -0.16997120747, -0.7518),
    ("Gelu", {"approximate": "tanh"}, -0.17004, -0.7525),
    ("Mish", {}, -0.30883850, -1.1924),
    ("Swish", {"alpha": 1.0}, -0.27846454, -1.2785),
    ("Swish", {"alpha": 2.0}, -0.13923227, -0.6392),
    ("HardSwish", {}, -0.375, -1.5),
])
def test_minimum_at_negative_critical_point(name: str, attrs: dict[str, Any], true_min: float, at: float) -> None:
    b = iv(name, rng_box(-4.0, 4.0), **attrs)
    assert b.min() <= true_min
    assert b.min() == pytest.approx(true_min, abs=2e-5)  # not the endpoint value
    # an interval beside the critical point does not reach the minimum
    b = iv(name, rng_box(at + 0.2, at + 0.5), **attrs)
    assert b.min() > true_min + 1e-3


def test_swish_negative_alpha_has_a_maximum() -> None:
    b = iv("Swish", rng_box(0.0, 5.0), alpha=-1.0)
    assert b.max() == pytest.approx(0.27846454, abs=2e-5)
    assert b.min() <= 5.0 / (1.0 + math.exp(5.0))


def test_gelu_tanh_may_turn_positive_for_negative_inputs() -> None:
    # onnxruntime's tanh overshoots -1, so Gelu(approximate=tanh) of about -5.15 is +3e-7
    x = np.linspace(-5.2, -5.1, 2001, dtype=np.float32)
    y = ort("Gelu", x, 20, approximate="tanh")
    assert_contains(iv("Gelu", per_element(x), approximate="tanh"), y)
    assert_contains(iv("Gelu", rng_box(-5.2, -5.1), approximate="tanh"), y)


@pytest.mark.parametrize(("name", "opset", "lo", "hi", "attrs"), [
    ("Gelu", 20, -8.0, -3.0, {}),
    ("Gelu", 20, -8.0, -3.0, {"approximate": "tanh"}),
    ("Swish", 24, -20.0, -10.0, {}),  # onnxruntime's sigmoid: Swish(-17) = -1.5e-6, true -7.0e-7
    ("Mish", 22, -20.0, -2.0, {}),
    ("Elu", 22, -1e-6, 0.0, {}),  # exp(x) - 1 without expm1
    ("Selu", 22, -1e-6, 0.0, {}),
    ("Celu", 12, -1e-6, 0.0, {"alpha": 0.5}),
    ("HardSigmoid", 22, -2.6, -2.4, {}),
    ("HardSwish", 22, -3.1, -2.9, {}),
    ("Softsign", 22, 8.6e37, 3.4e38, {}),  # onnxruntime returns up to 1.0000002
    ("Softplus", 22, -100.0, 100.0, {}),
    ("Erf", 13, -4.0, 4.0, {}),
])
def test_runtime_error_is_covered(name: str, opset: int, lo: float, hi: float, attrs: dict[str, Any]) -> None:
    """Per-element and whole-range boxes hold onnxruntime's outputs where its kernels are least
    accurate (relative error far above a few ULPs)."""
    x = np.linspace(lo, hi, 4001, dtype=np.float32)
    y = ort(name, x, opset, **attrs)
    assert_contains(iv(name, per_element(x), opset=opset, **attrs), y)
    assert_contains(iv(name, rng_box(lo, hi), opset=opset, **attrs), y)


def test_softplus_never_overflows_on_finite_inputs() -> None:
    assert ort("Softplus", np.array([100.0, 1000.0], np.float32), 22).tolist() == [100.0, 1000.0]
    b = iv("Softplus", rng_box(0.0, 3.0e38))
    assert np.isfinite(b.max())
    assert _op("Softplus").overflow_rule == "NUM003"
    # the concrete rule is the stable form as well
    from numsentry.ops.kernels import NUMPY

    assert float(_op("Softplus").concrete(NUMPY, np.float32(100.0))) == 100.0


def test_nan_at_infinite_inputs() -> None:
    for name in ("Gelu", "Mish", "Swish", "HardSwish"):
        assert iv(name, rng_box(-np.inf, 0.0)).nan, name  # -inf * 0
        assert not iv(name, rng_box(-10.0, np.inf)).nan, name
    assert iv("Softsign", rng_box(0.0, np.inf)).nan  # inf / inf
    assert not iv("Softsign", rng_box(0.0, 3e38)).nan
    assert iv("Swish", rng_box(0.0, np.inf), alpha=-1.0).nan
    b = iv("Elu", rng_box(-np.inf, 0.0))
    assert not b.nan and b.min() >= -1.0 - 1e-6


# ---- Elu family ------------------------------------------------------------------------


def test_elu_family_exact_at_zero_and_bounded() -> None:
    for name in ("Elu", "Celu", "Selu"):
        b = iv(name, per_element(np.zeros(3)))
        assert b.min() == pytest.approx(0.0, abs=1e-38) and b.max() == pytest.approx(0.0, abs=1e-38), name
    b = iv("Elu", rng_box(-100.0, 2.0), alpha=0.5)
    assert b.min() >= -0.5 - 1e-6 and b.max() == pytest.approx(2.0)
    b = iv("Elu", rng_box(-3.0, -1.0), alpha=-2.0)  # negative alpha: decreasing branch
    assert b.min() == pytest.approx(-2.0 * math.expm1(-1.0), rel=1e-5)
    assert b.max() == pytest.approx(-2.0 * math.expm1(-3.0), rel=1e-5)


def test_celu_alpha_zero_declines() -> None:
    with pytest.raises(ValueError):
        iv("Celu", rng_box(-1.0, 1.0), opset=13, alpha=0.0)


def test_selu_overflows_near_max() -> None:
    b = iv("Selu", rng_box(0.0, 3.4e38))
    assert b.max() == np.inf  # gamma > 1


# ---- piecewise linear ------------------------------------------------------------------


def test_prelu_bilinear_with_slope_box() -> None:
    b = iv("PRelu", rng_box(-3.0, 2.0), rng_box(-1.0, 2.0))
    assert (b.min(), b.max()) == (-6.0, 3.0)
    b = iv("PRelu", rng_box(1.0, 2.0), rng_box(-1.0, 2.0))
    assert (b.min(), b.max()) == (1.0, 2.0)


def test_prelu_per_channel_slope_refines_only_channels() -> None:
    slope = Box.point(np.array([0.1, 0.2, 0.3], dtype=np.float32).reshape(3, 1, 1))
    b = iv("PRelu", rng_box(-1.0, 1.0, (2, 3, 8, 8)), slope)
    assert b.blocks() == (1, 3, 1, 1)
    np.testing.assert_allclose(b.lo.reshape(-1), [-0.1, -0.2, -0.3], rtol=1e-6)


def test_leaky_thresholded_shrink() -> None:
    b = iv("LeakyRelu", rng_box(-10.0, 5.0), alpha=0.1)
    assert b.min() == pytest.approx(-1.0) and b.max() == pytest.approx(5.0)
    b = iv("LeakyRelu", Box.point(np.array([-30.0, 2.0], np.float32)), alpha=0.01)
    assert b.is_point and b.value.dtype == np.float32  # exact: folded in float32
    assert b.value[0] == np.float32(-30.0) * np.float32(0.01)
    b = iv("ThresholdedRelu", rng_box(-5.0, 5.0), alpha=-1.0)
    assert (b.min(), b.max()) == (-1.0, 5.0)
    assert (iv("ThresholdedRelu", rng_box(-5.0, 1.0)).min(), iv("ThresholdedRelu", rng_box(-5.0, 1.0)).max()) == (0, 0)
    b = iv("Shrink", rng_box(-3.0, 3.0), bias=0.5, lambd=1.0)  # x + bias below -lambd
    assert (b.min(), b.max()) == (-2.5, 2.5)
    b = iv("Shrink", rng_box(-0.5, 0.5), bias=0.5, lambd=1.0)
    assert (b.min(), b.max()) == (0.0, 0.0)


def test_hardsigmoid_clamped_and_monotone_either_way() -> None:
    b = iv("HardSigmoid", rng_box(-10.0, 10.0))
    assert (b.min(), b.max()) == (0.0, 1.0)
    b = iv("HardSigmoid", rng_box(0.0, 1.0), alpha=-0.25, beta=0.5)
    assert b.min() == pytest.approx(0.25, rel=1e-6) and b.max() == pytest.approx(0.5, rel=1e-6)


def test_clip_with_box_bounds() -> None:
    b = iv("Clip", rng_box(-10.0, 10.0), rng_box(-2.0, -1.0), rng_box(1.0, 3.0))
    assert (b.min(), b.max()) == (-2.0, 3.0)
    b = iv("Clip", rng_box(-10.0, 10.0), None, Box.point(np.float32(4.0)))
    assert (b.min(), b.max()) == (-10.0, 4.0)
    b = iv("Clip", rng_box(-1.0, 1.0), Box.point(np.float32(5.0)), Box.point(np.float32(2.0)))
    assert (b.min(), b.max()) == (2.0, 2.0)  # min > max: everything becomes max
    assert iv("Clip", rng_box(-1.0, 1.0, (4, 16, 16)), rng_box(0.0, 0.5)).blocks() == (1, 1, 1)


# ---- logic and comparisons -------------------------------------------------------------


def _bools(b: Box) -> tuple[float, float]:
    assert b.dtype == np.bool_
    return b.min(), b.max()


def test_comparisons_definite_only_when_decided() -> None:
    a, b = rng_box(2.0, 3.0), rng_box(0.0, 1.0)
    assert _bools(iv("Greater", a, b)) == (1.0, 1.0)
    assert _bools(iv("Less", a, b)) == (0.0, 0.0)
    assert _bools(iv("GreaterOrEqual", rng_box(1.0, 3.0), b)) == (1.0, 1.0)  # 1 >= 1
    assert _bools(iv("Greater", rng_box(1.0, 3.0), b)) == (0.0, 1.0)  # 1 > 1 is false
    assert _bools(iv("LessOrEqual", rng_box(1.0, 3.0), b)) == (0.0, 1.0)
    assert _bools(iv("Equal", a, b)) == (0.0, 0.0)
    assert _bools(iv("Equal", rng_box(0.5, 2.0), b)) == (0.0, 1.0)
    assert _bools(iv("Equal", rng_box(1.0, 1.0), rng_box(1.0, 1.0))) == (1.0, 1.0)
    nan_a = Box.range(2.0, 3.0, (), F32, nan=True)
    assert _bools(iv("Greater", nan_a, b)) == (0.0, 1.0)  # NaN > b is false
    assert _bools(iv("Less", nan_a, b)) == (0.0, 0.0)


def test_comparison_broadcasts_per_element() -> None:
    a = Box.range(np.array([0.0, 5.0, 2.0]), np.array([1.0, 6.0, 4.0]), (3,), F32)
    out = iv("Greater", a, rng_box(1.5, 3.0, (2, 1)))
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out.lo.reshape(-1), [0, 1, 0])
    np.testing.assert_array_equal(out.hi.reshape(-1), [0, 1, 1])


def test_huge_int64_points_compare_soundly() -> None:
    big = np.int64(2**60 + 1)
    a = Box.range(float(2**60), float(2**60), (), np.dtype(np.int64))  # a box holding 2^60
    out = iv("GreaterOrEqual", a, Box.point(np.array(big)))
    assert _bools(out)[0] == 0.0  # 2^60 >= 2^60 + 1 must not be "surely true"


def test_logic_ops() -> None:
    t, f, u = (Box.range(v, w, (), np.dtype(np.bool_)) for v, w in ((1, 1), (0, 0), (0, 1)))
    assert _bools(iv("And", t, u)) == (0.0, 1.0)
    assert _bools(iv("And", f, u)) == (0.0, 0.0)
    assert _bools(iv("Or", t, u)) == (1.0, 1.0)
    assert _bools(iv("Xor", t, f)) == (1.0, 1.0)
    assert _bools(iv("Xor", t, u)) == (0.0, 1.0)
    assert _bools(iv("Not", u)) == (0.0, 1.0)
    assert _bools(iv("Not", t)) == (0.0, 0.0)


def test_isnan_isinf() -> None:
    assert _bools(iv("IsNaN", rng_box(-1.0, 1.0))) == (0.0, 0.0)
    assert _bools(iv("IsNaN", Box.range(-1.0, 1.0, (), F32, nan=True))) == (0.0, 1.0)
    assert _bools(iv("IsInf", rng_box(-1.0, np.inf))) == (0.0, 1.0)
    assert _bools(iv("IsInf", rng_box(-1.0, np.inf), detect_positive=0)) == (0.0, 0.0)
    assert _bools(iv("IsInf", rng_box(np.inf, np.inf))) == (1.0, 1.0)
    assert _bools(iv("IsInf", rng_box(-np.inf, 1.0), detect_negative=1)) == (0.0, 1.0)


def test_where_joins_only_where_unknown() -> None:
    cond = Box.range(np.array([1.0, 0.0, 0.0]), np.array([1.0, 0.0, 1.0]), (3,), np.dtype(np.bool_))
    out = iv("Where", cond, rng_box(10.0, 11.0), rng_box(-1.0, 0.0))
    np.testing.assert_array_equal(out.lo, [10.0, -1.0, -1.0])
    np.testing.assert_array_equal(out.hi, [11.0, 0.0, 11.0])
    # the rule itself only takes NaN from a branch that can be chosen
    sure = Box.range(1.0, 1.0, (3,), np.dtype(np.bool_))
    y_nan = Box.range(0.0, 1.0, (3,), F32, nan=True)
    assert not _op("Where").interval(Ctx(), sure, rng_box(0.0, 1.0, (3,)), y_nan).nan


def test_steps_are_exact_and_monotone() -> None:
    assert (iv("Floor", rng_box(-1.5, 2.5)).min(), iv("Floor", rng_box(-1.5, 2.5)).max()) == (-2.0, 2.0)
    assert (iv("Ceil", rng_box(-1.5, 2.5)).min(), iv("Ceil", rng_box(-1.5, 2.5)).max()) == (-1.0, 3.0)
    b = iv("Round", Box.point(np.array([0.5, 1.5, 2.5, -0.5], np.float32)))
    np.testing.assert_array_equal(b.value, [0.0, 2.0, 2.0, -0.0])  # ties to even
    assert (iv("Sign", rng_box(-3.0, 0.0)).min(), iv("Sign", rng_box(-3.0, 0.0)).max()) == (-1.0, 0.0)


def test_declarations() -> None:
    logic = ["IsInf", "IsNaN", "Not", "And", "Or", "Xor", "Equal", "Greater", "GreaterOrEqual",
             "Less", "LessOrEqual", "Ceil", "Floor", "Round", "Sign"]
    for name in logic:
        op = _op(name)
        assert op.exact and not op.differentiable and op.overflow_rule is None, name
    # opset-13 models (the loader's minimum) resolve every op of these families that existed then
    for name in ["Acos", "Tan", "Cosh", "Erf", "Elu", "Celu", "Selu", "LeakyRelu", "PRelu", "Softplus",
                 "Softsign", "HardSigmoid", "ThresholdedRelu", "Shrink", "Clip", *logic, "Where"]:
        assert REGISTRY.lookup("", name, 13) is not None, name
    assert REGISTRY.lookup("", "Gelu", 19) is None and REGISTRY.lookup("", "Gelu", 20) is not None


# ---- whole check: hazards and overflow findings ----------------------------------------


def _check(op: str, lo: float, hi: float, opset: int = 13, **attrs: Any) -> list[str]:
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    res = run_check(load_model(m), CheckOptions(ranges={"x": (lo, hi)}))
    return [f.rule for f in res.findings]


def test_check_findings() -> None:
    assert _check("Acos", -1.0, 1.0) == []
    assert _check("Acos", -2.0, 1.0) == ["NUM006"]
    assert _check("Atanh", -1.0, 0.5) == ["NUM006"]  # not also an overflow finding
    assert _check("Cosh", -10.0, 10.0) == []
    assert _check("Cosh", -100.0, 10.0) == ["NUM003"]
    assert _check("Softplus", -1e30, 1e30) == []
    assert _check("Tan", 0.0, 3.0) == []  # a pole, but float32 tan stays finite
    assert _check("Gelu", -1e30, 1e30, opset=20) == []


# ---- torch backend agrees with numpy ---------------------------------------------------


@pytest.mark.parametrize(("name", "attrs"), [
    ("Gelu", {"approximate": "none"}), ("Gelu", {"approximate": "tanh"}), ("Mish", {}), ("Swish", {"alpha": 1.5}),
    ("Elu", {"alpha": 0.5}), ("Celu", {"alpha": 2.0}), ("Selu", {}), ("Softplus", {}), ("HardSwish", {}),
    ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}), ("Erf", {}), ("Sin", {}), ("Acos", {}),
])
def test_torch_backend_matches_numpy(name: str, attrs: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    from numsentry.ops.kernels import NUMPY, torch_kernels

    op = _op(name)
    x = np.linspace(-0.99, 0.99, 41) * (1 if name == "Acos" else 30)
    full = {"alpha": 1.0} if name in ("Elu", "Celu", "Swish") else {}
    full.update(attrs)
    a = np.asarray(op.concrete(NUMPY, x, **full))
    t = op.concrete(torch_kernels(), torch.from_numpy(x), **full).numpy()
    np.testing.assert_allclose(t, a, rtol=1e-12, atol=1e-300)

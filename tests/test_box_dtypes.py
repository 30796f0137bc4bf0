"""Float formats, rounding of bounds, and the interval facts every analysis leans on.

Covers `numsentry.dtypes` (round_bounds: underflow to 0, overflow to inf per format; shift_ulps:
monotone, saturating) and end-to-end traps through `apply_interval` and `check_model`: even
powers over an interval holding 0, softmax underflowing to exactly 0, onnxruntime's saturated
Sigmoid, and ``1 + 1e-10 == 1`` in float32 feeding a log.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from numsentry.domains.box import Box
from numsentry.dtypes import FLOAT_FORMATS, round_bounds, shift_ulps
from numsentry.ops import REGISTRY
from numsentry.ops.apply import apply_interval
from numsentry.ops.registry import Ctx

F16, BF16, F32, F64 = (FLOAT_FORMATS[n] for n in ("float16", "bfloat16", "float32", "float64"))
PROPS = settings(max_examples=200, deadline=None, derandomize=True, database=None)


def _op(name: str, opset: int = 21) -> object:
    op = REGISTRY.lookup("", name, opset)
    assert op is not None, f"{name} is not registered"
    return op


def _iv(name: str, *boxes: Box | None, **attrs: object) -> tuple[Box, ...]:
    return apply_interval(_op(name), Ctx(op_type=name, opset=21), list(boxes), dict(attrs))  # type: ignore[arg-type]


def _rb(v: float, fmt: object) -> tuple[float, float]:
    lo, hi = round_bounds(np.array(v), np.array(v), fmt)  # type: ignore[arg-type]
    return float(lo), float(hi)


# ---- formats ----------------------------------------------------------------------------


def test_format_constants() -> None:
    assert F32.max == float(np.finfo(np.float32).max)
    assert F16.max == 65504.0
    assert BF16.max == float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    assert F32.tiny == 2.0**-149 and F16.tiny == 2.0**-24
    assert F32.eps == 2.0**-24 and BF16.eps == 2.0**-8 and F16.eps == 2.0**-11
    assert F32.log_tiny == pytest.approx(-103.972, abs=1e-3)
    assert F32.log_max == pytest.approx(88.7228, abs=1e-4)


# ---- round_bounds -----------------------------------------------------------------------


def test_exp_underflows_to_zero_below_log_tiny() -> None:
    # float32 exp is 0 below log(tiny / 2) ~ -103.972: the rounded bounds say so
    assert _rb(np.exp(-104.0), F32) == (0.0, 0.0)
    assert _rb(np.exp(-103.9), F32) == (F32.tiny, F32.tiny)
    assert np.exp(np.float32(-104.0)) == 0.0  # what the runtime computes
    (out,) = _iv("Exp", Box.range(-200.0, -104.0, (3,), np.float32))
    assert out.min() == 0.0
    assert out.max() < 2.0**-126  # the kernel's slack on top of 0 stays subnormal


def test_exp_overflows_to_inf_above_log_max() -> None:
    (out,) = _iv("Exp", Box.range(80.0, 89.0, (2,), np.float32))
    assert out.max() == np.inf
    (out,) = _iv("Exp", Box.range(80.0, 88.0, (2,), np.float32))
    assert np.isfinite(out.max())


@pytest.mark.parametrize("fmt", [F16, BF16, F32], ids=lambda f: f.name)
def test_overflow_to_inf_at_half_an_ulp_above_max(fmt: object) -> None:
    mx = fmt.max  # type: ignore[attr-defined]
    half_ulp = (mx - float(np.nextafter(np.array(mx, fmt.np_dtype), np.array(0, fmt.np_dtype)))) / 2  # type: ignore[attr-defined]
    below, above = mx + half_ulp * 0.9, mx + half_ulp * 1.1
    assert _rb(mx, fmt) == (mx, mx)
    assert _rb(below, fmt) == (mx, mx)
    assert _rb(above, fmt) == (np.inf, np.inf)
    assert _rb(-above, fmt) == (-np.inf, -np.inf)
    # and what the format itself does
    with np.errstate(over="ignore"):
        assert float(np.array(above).astype(fmt.np_dtype)) == np.inf  # type: ignore[attr-defined]


def test_float16_65504() -> None:
    assert _rb(65504.0, F16) == (65504.0, 65504.0)
    assert _rb(65519.0, F16) == (65504.0, 65504.0)
    assert _rb(65520.0, F16)[1] == np.inf  # the tie rounds to even: inf (lo may keep 65504)
    assert _rb(65536.0, F16) == (np.inf, np.inf)
    (out,) = _iv("Mul", Box.range(200.0, 300.0, (2,), np.float16), Box.range(200.0, 300.0, (2,), np.float16))
    assert out.max() == np.inf and out.min() == 40000.0


def test_bfloat16_rounding() -> None:
    assert _rb(1.0 + 2.0**-9, BF16) == (1.0, 1.0)
    assert _rb(1.0 + 2.0**-8, BF16)[0] == 1.0  # a tie rounds to even
    assert _rb(1.0 + 2.0**-8, BF16)[1] in (1.0, 1.0 + 2.0**-7)
    # just above the tie, correct rounding goes up: the bound must too (ml_dtypes converts
    # float64 through float32, which must not swallow the outward nudge)
    assert _rb(1.0 + 2.0**-8 + 2.0**-30, BF16)[1] == 1.0 + 2.0**-7
    assert _rb(1.0 + 3 * 2.0**-9, BF16) == (1.0 + 2.0**-7, 1.0 + 2.0**-7)
    assert float(shift_ulps(np.array(1.0), BF16, 1)) == 1.0 + 2.0**-7


@PROPS
@given(st.floats(-1e39, 1e39, allow_nan=False), st.sampled_from(["float16", "bfloat16", "float32"]))
def test_round_bounds_contains_the_rounded_value(v: float, name: str) -> None:
    fmt = FLOAT_FORMATS[name]
    lo, hi = _rb(v, fmt)
    with np.errstate(over="ignore"):
        fl = float(np.array(v).astype(fmt.np_dtype))
    assert lo <= fl <= hi
    # both ends are values of the format
    for e in (lo, hi):
        with np.errstate(over="ignore"):
            assert float(np.array(e).astype(fmt.np_dtype)) == e


@PROPS
@given(st.floats(-1e30, 1e30, allow_nan=False), st.floats(-1e30, 1e30, allow_nan=False))
def test_round_bounds_is_monotone(a: float, b: float) -> None:
    a, b = min(a, b), max(a, b)
    lo, hi = round_bounds(np.array([a, b]), np.array([a, b]), F32)
    assert lo[0] <= lo[1] and hi[0] <= hi[1]


def test_round_bounds_with_ulps_widens() -> None:
    lo, hi = round_bounds(np.array(1.0), np.array(1.0), F32, ulps=4)
    assert float(lo) == 1.0 - 4 * 2.0**-24 and float(hi) == 1.0 + 4 * 2.0**-23


# ---- shift_ulps -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [F16, BF16, F32, F64], ids=lambda f: f.name)
def test_shift_ulps_saturates_and_crosses_zero(fmt: object) -> None:
    mx, tiny = fmt.max, fmt.tiny  # type: ignore[attr-defined]
    up = shift_ulps(np.array([mx, np.inf, -np.inf, 0.0, -0.0, np.nan]), fmt, 1)  # type: ignore[arg-type]
    assert up[0] == np.inf and up[1] == np.inf and up[2] == -mx
    assert up[3] == tiny and up[4] == tiny and np.isnan(up[5])
    down = shift_ulps(np.array([-mx, -np.inf, tiny, 0.0]), fmt, -2)  # type: ignore[arg-type]
    assert down[0] == -np.inf and down[1] == -np.inf and down[2] == -tiny and down[3] == -2 * tiny
    near_max = shift_ulps(np.array(mx), fmt, -10)  # type: ignore[arg-type]
    assert shift_ulps(near_max, fmt, 10**6).item() == np.inf  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(), (1,), (2, 3)])
def test_shift_ulps_keeps_shape(shape: tuple[int, ...]) -> None:
    x = np.full(shape, 1.0)
    assert np.shape(shift_ulps(x, F32, 1)) == shape
    lo, hi = round_bounds(x, x, F32, ulps=2)
    assert np.shape(lo) == shape and np.shape(hi) == shape


_BIG = float(np.float32(3e38))


@PROPS
@given(st.lists(st.floats(-_BIG, _BIG, allow_nan=False, width=32), min_size=2, max_size=20),
       st.integers(-5, 5))
def test_shift_ulps_is_monotone(xs: list[float], n: int) -> None:
    x = np.sort(np.array(xs, dtype=np.float64))
    y = shift_ulps(x, F32, n)
    assert np.all(np.diff(y) >= 0)
    if n > 0:
        assert np.all(y > x)
    elif n < 0:
        assert np.all(y < x)
    assert np.array_equal(shift_ulps(y, F32, -n), x)  # finite, away from ±max: invertible
    assert np.all(y.astype(np.float32).astype(np.float64) == y)


# ---- interval traps ---------------------------------------------------------------------


def test_square_over_an_interval_holding_zero_is_tight() -> None:
    x = Box.range(-50.0, 50.0, (3,), np.float32)
    (sq,) = _iv("Mul", x, x)  # the same tensor twice: a square
    assert (sq.min(), sq.max()) == (0.0, 2500.0)
    two = Box.point(np.array(2.0, dtype=np.float32))
    (pw,) = _iv("Pow", x, two)
    assert (pw.min(), pw.max()) == (0.0, 2500.0)
    # two different tensors with the same range are not a square
    (prod,) = _iv("Mul", x, Box.range(-50.0, 50.0, (3,), np.float32))
    assert (prod.min(), prod.max()) == (-2500.0, 2500.0)


def test_softmax_over_a_wide_spread_reaches_exactly_zero() -> None:
    x = Box.range(-200.0, 200.0, (4,), np.float32)
    (p,) = _iv("Softmax", x, axis=-1)
    assert p.min() == 0.0 and p.max() == 1.0
    corner = np.array([200.0, -200.0, -200.0, -200.0], dtype=np.float32)
    e = np.exp(corner - corner.max())
    concrete = e / e.sum()
    assert concrete[1] == 0.0
    assert p.contains(concrete).all()


def test_onnxruntime_sigmoid_lies_in_our_interval() -> None:
    ort = pytest.importorskip("onnxruntime")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
    m = helper.make_model(helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    pts = np.concatenate([np.array([-20.0, -17.0, -16.0], np.float32),
                          np.linspace(-20, -16, 4001, dtype=np.float32)])
    (got,) = sess.run(None, {"x": pts})
    (box,) = _iv("Sigmoid", Box.range(-20.0, -16.0, (1,), np.float32))
    assert box.contains(got).all(), f"{got[~box.contains(got)][:5]} outside {box.describe()}"


def test_one_plus_tiny_is_one_in_float32_and_the_log_guard_fires() -> None:
    from numsentry.api import check_model

    p = helper.make_tensor_value_info("p", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    inits = [numpy_helper.from_array(np.array([1e-10], np.float32), "tiny"),
             numpy_helper.from_array(np.array([1.0], np.float32), "one")]
    nodes = [helper.make_node("Add", ["tiny", "one"], ["s"]),
             helper.make_node("Sub", ["s", "p"], ["d"]),
             helper.make_node("Log", ["d"], ["y"], name="the_log")]
    m = helper.make_model(helper.make_graph(nodes, "g", [p], [y], initializer=inits),
                          opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    assert np.float32(1e-10) + np.float32(1.0) == np.float32(1.0)
    res = check_model(m, ranges={"p": (0.0, 1.0)})
    hits = [(f.rule, f.node) for f in res.findings]
    assert ("NUM001", "the_log") in hits
    # with p kept below 1 the guard is not needed
    res = check_model(m, ranges={"p": (0.0, 0.5)})
    assert not [f for f in res.findings if f.rule == "NUM001"]

"""Analysis tests on small models built here: what `check` must and must not report."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from numsentry.analyses.check import CheckOptions, run_check
from numsentry.errors import RangeError, UnsupportedOpError
from numsentry.ir.load import load_model
from tests.conftest import make_model

F = TensorProto.FLOAT
N = helper.make_node


def check(model, ranges=None, **kw):
    return run_check(load_model(model), CheckOptions(ranges=dict(ranges or {}), **kw))


def rules_at(res):
    return {(f.rule, f.node): f.after_earlier_finding for f in res.findings}


def test_log_of_softmax_underflow_is_found_and_guarded_log_is_not():
    w = np.array([[50.0, -50.0, 0.0]], np.float32)
    m = make_model(
        [N("MatMul", ["x", "w"], ["z"], name="fc"), N("Softmax", ["z"], ["p"], name="sm"),
         N("Log", ["p"], ["lp"], name="log_p"), N("Exp", ["x"], ["ex"], name="exp_x"),
         N("Log", ["ex"], ["lex"], name="log_exp")],
        [("x", F, [1, 1])], [("lp", F, [1, 3]), ("lex", F, [1, 1])], {"w": w})
    found = rules_at(check(m, {"x": (0.0, 2.0)}))
    assert ("NUM001", "log_p") in found  # logits 200 apart: p underflows to exactly 0
    assert ("NUM001", "log_exp") not in found  # exp(x) >= 1 for x >= 0
    assert ("NUM003", "exp_x") not in found
    narrow = rules_at(check(m, {"x": (0.0, 0.5)}))
    assert ("NUM001", "log_p") not in narrow  # logits at most 50 apart: p >= e^-50


def test_exp_overflow_threshold_follows_dtype():
    m = make_model([N("Exp", ["x"], ["y"], name="e")], [("x", F, [4])], [("y", F, [4])])
    assert rules_at(check(m, {"x": (0.0, 88.0)})) == {}
    assert ("NUM003", "e") in rules_at(check(m, {"x": (0.0, 89.0)}))
    assert ("NUM003", "e") in rules_at(check(m, {"x": (0.0, 12.0)}, as_dtype="float16"))
    assert rules_at(check(m, {"x": (0.0, 11.0)}, as_dtype="float16")) == {}


def test_finding_that_only_follows_an_earlier_one_is_marked():
    # exp can overflow to inf, 1/inf = 0, log(0): only because of the overflow
    m = make_model(
        [N("Exp", ["x"], ["e"], name="exp"), N("Reciprocal", ["e"], ["r"], name="recip"),
         N("Log", ["r"], ["l"], name="log")],
        [("x", F, [2])], [("l", F, [2])])
    found = rules_at(check(m, {"x": (0.0, 100.0)}))
    assert found[("NUM003", "exp")] is False
    assert found[("NUM001", "log")] is True


def test_hazard_in_discarded_where_branch_is_reported():
    zero = np.zeros((), np.float32)
    m = make_model(
        [N("Greater", ["x", "zero"], ["pos"], name="gt"), N("Log", ["x"], ["lx"], name="log_x"),
         N("Where", ["pos", "lx", "zero"], ["y"], name="where")],
        [("x", F, [3])], [("y", F, [3])], {"zero": zero})
    assert ("NUM001", "log_x") in rules_at(check(m, {"x": (-1.0, 1.0)}))


def test_square_of_interval_holding_zero_is_tight():
    m = make_model([N("Mul", ["x", "x"], ["sq"], name="sq"), N("Sqrt", ["sq"], ["s"], name="sqrt"),
                    N("Neg", ["sq"], ["n"], name="neg"), N("Sqrt", ["n"], ["t"], name="sqrt_neg")],
                   [("x", F, [2])], [("s", F, [2]), ("t", F, [2])])
    res = check(m, {"x": (-50.0, 50.0)})
    found = rules_at(res)
    assert ("NUM004", "sqrt") not in found
    assert ("NUM004", "sqrt_neg") in found
    f = next(f for f in res.findings if f.node == "sqrt_neg")
    assert f.input_intervals[0]["lo"] == -2500.0 and f.input_intervals[0]["hi"] == 0.0


def test_float16_deployment_overflow_of_matmul_and_cast():
    w = np.full((64, 4), 1100.0, np.float32)
    m = make_model([N("MatMul", ["x", "w"], ["y"], name="mm")], [("x", F, [1, 64])], [("y", F, [1, 4])], {"w": w})
    assert rules_at(check(m, {"x": (0.0, 1.0)})) == {}
    assert ("NUM007", "mm") in rules_at(check(m, {"x": (0.0, 1.0)}, as_dtype="float16"))
    c = make_model([N("Cast", ["x"], ["h"], name="to_half", to=TensorProto.FLOAT16)], [("x", F, [2])],
                   [("h", TensorProto.FLOAT16, [2])])
    assert ("NUM008", "to_half") in rules_at(check(c, {"x": (0.0, 1e5)}))
    assert rules_at(check(c, {"x": (0.0, 6e4)})) == {}


def test_trainable_weights_widen_and_zero_tensors_get_ten():
    w = np.zeros((2, 2), np.float32)
    b = np.array([1.0, 2.0], np.float32)
    m = make_model([N("MatMul", ["x", "w"], ["y"], name="mm"), N("Add", ["y", "b"], ["z"], name="add")],
                   [("x", F, [1, 2])], [("z", F, [1, 2])], {"w": w, "b": b})
    res = check(m, {"x": (0.0, 1.0)}, weights="trainable")
    r = {i.name: (i.lo, i.hi, i.origin) for i in res.ranges}
    assert r["w"] == (-10.0, 10.0, "trainable")
    assert r["b"] == (0.0, 3.0, "trainable")
    out = res.outputs["z"]
    assert out.min() <= -20.0 and out.max() >= 23.0


def test_unknown_range_name_suggests_close_match():
    m = make_model([N("Relu", ["input_x"], ["y"])], [("input_x", F, [2])], [("y", F, [2])])
    with pytest.raises(RangeError, match="input_x"):
        check(m, {"input_y": (0.0, 1.0)})


def test_unsupported_op_is_listed_and_analysis_goes_on():
    node = helper.make_node("Foo", ["x"], ["y"], name="custom", domain="my.domain")
    m = make_model([node, N("Log", ["y"], ["z"], name="log")], [("x", F, [2])], [("z", F, [2])],
                   extra_opsets={"my.domain": 1})
    res = check(m)
    assert "my.domain.Foo" in res.unsupported
    assert ("NUM001", "log") in rules_at(res)
    with pytest.raises(UnsupportedOpError):
        check(m, unsupported="error")


def test_division_hazards_float_and_int():
    m = make_model([N("Div", ["a", "b"], ["c"], name="div")], [("a", F, [2]), ("b", F, [2])], [("c", F, [2])])
    assert ("NUM002", "div") in rules_at(check(m, {"a": (1, 2), "b": (-1, 1)}))
    assert rules_at(check(m, {"a": (1, 2), "b": (0.5, 1)})) == {}
    i = make_model([N("Div", ["a", "b"], ["c"], name="idiv")], [("a", TensorProto.INT64, [2]),
                   ("b", TensorProto.INT64, [2])], [("c", TensorProto.INT64, [2])])
    assert ("NUM010", "idiv") in rules_at(check(i, {"a": (1, 5), "b": (0, 3)}))


def test_overflow_downstream_of_a_finding_from_finite_values_is_independent():
    # ten exps of 88 are finite (1.65e38 each) but their sum overflows: a finding of its own,
    # even though exp itself can overflow for larger inputs
    m = make_model(
        [N("Exp", ["x"], ["e"], name="exp"), N("ReduceSum", ["e"], ["s"], name="sum", keepdims=1)],
        [("x", F, [1, 10])], [("s", F, [1, 1])], opset=13)
    found = rules_at(check(m, {"x": (0.0, 100.0)}))
    assert found[("NUM003", "exp")] is False
    assert found[("NUM007", "sum")] is False


def test_hand_written_softmax_is_known_to_stay_within_one():
    big = np.array(1.0001, np.float32)
    m = make_model(
        [N("Exp", ["x"], ["e"], name="exp"),
         N("ReduceSum", ["e", "axes"], ["s"], name="sum", keepdims=1),
         N("Div", ["e", "s"], ["p"], name="div"),
         N("Sub", ["big", "p"], ["q"], name="one_minus_p"),
         N("Log", ["q"], ["l"], name="log_q")],
        [("x", F, [2, 5])], [("l", F, [2, 5])], {"axes": np.array([1], np.int64), "big": big}, opset=13)
    res = check(m, {"x": (-5.0, 5.0)})
    found = rules_at(res)
    assert ("NUM001", "log_q") not in found  # p <= 1, so 1.0001 - p > 0
    assert ("NUM002", "div") not in found  # a sum of exps of [-5, 5] is never 0
    # dividing by a different tensor's sum gets no such guarantee
    m2 = make_model(
        [N("Exp", ["x"], ["e"], name="exp"), N("Exp", ["y"], ["f"], name="exp_y"),
         N("ReduceSum", ["f", "axes"], ["s"], name="sum", keepdims=1),
         N("Div", ["e", "s"], ["p"], name="div"),
         N("Sub", ["big", "p"], ["q"], name="one_minus_p"),
         N("Log", ["q"], ["l"], name="log_q")],
        [("x", F, [2, 5]), ("y", F, [2, 5])], [("l", F, [2, 5])],
        {"axes": np.array([1], np.int64), "big": big}, opset=13)
    assert ("NUM001", "log_q") in rules_at(check(m2, {"x": (-5.0, 5.0), "y": (-5.0, 5.0)}))

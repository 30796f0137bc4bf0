"""The unit-test search confirms known defects on onnxruntime, and never claims a safe one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from numsentry.analyses.check import CheckOptions, run_check
from numsentry.ir.load import load_model
from numsentry.search.baseline import random_unit
from numsentry.search.confirm import OrtRunner
from numsentry.search.objectives import goals_for
from numsentry.search.trigger import TriggerOptions, search_space, targets_for, trigger
from tests.search import _models as M

FAST = TriggerOptions(budget_s=3.0, restarts=6, steps=40)


def checked(proto: Any, ranges: dict[str, tuple[float, float]], weights: str = "stored") -> tuple[Any, Any]:
    m = load_model(proto)
    return m, run_check(m, CheckOptions(ranges=ranges, weights=weights))


def by_node(outs: list[Any]) -> dict[tuple[str, str], Any]:
    return {(o.node, o.rule): o for o in outs}


def assert_in_box(m: Any, res: Any, w: Any) -> None:
    space = search_space(m, res)
    for name, v in {**w.inputs, **w.weights}.items():
        var = space[name]
        assert var.lo <= float(np.min(v)) and float(np.max(v)) <= var.hi, name


def test_log_of_underflowing_softmax_is_confirmed_with_weights_in_range() -> None:
    m, res = checked(M.softmax_ce(), {"x": (0, 1), "y": (0, 1)}, weights="trainable")
    assert [f.node for f in res.findings] == ["log"]
    (o,) = trigger(m, res, options=FAST)
    assert o.confirmed and o.witness is not None
    assert "-inf" in o.witness.observed and "finite inputs" in o.witness.observed
    assert "W" in o.witness.weights  # the stored zero weights cannot spread the logits
    assert_in_box(m, res, o.witness)
    # the witness really fires on onnxruntime at that node
    t = targets_for(m, res)[0]
    assert OrtRunner(m, ["W"], [t]).check(o.witness.inputs, o.witness.weights)


def test_softmax_goal_looks_through_to_the_logits() -> None:
    m, res = checked(M.softmax_ce(), {"x": (0, 1), "y": (0, 1)}, weights="trainable")
    goals = goals_for(m.graph, targets_for(m, res)[0].node, "NUM001")
    assert goals[0].values == ("z",) and "spread the logits" in goals[0].name
    assert goals[-1].name.startswith("maximise |output")


def test_exp_overflow_division_and_sqrt_are_confirmed() -> None:
    for proto, ranges, want in [
        (M.exp_model(), {"x": (0.0, 50.0)}, {("exp", "NUM003")}),
        (M.div_model(), {"x": (0.5, 1.0), "a": (0.0, 1.0), "b": (0.0, 1.0)}, {("div", "NUM002")}),
        (M.sqrt_models(), {"x": (-1.0, 1.0)}, {("sqrt_neg", "NUM004"), ("sqrt_zero", "NUM011")}),
    ]:
        m, res = checked(proto, ranges)
        outs = by_node(trigger(m, res, options=FAST))
        assert want <= set(outs), outs
        for key in want:
            assert outs[key].confirmed, (key, outs[key].tried())
            assert_in_box(m, res, outs[key].witness)


def test_stored_weights_stay_fixed_unless_trainable() -> None:
    # exp(x * a) with a = [1, 2] stored: x in [0, 50] overflows only through a = 2
    m, res = checked(M.exp_model(), {"x": (0.0, 50.0)})
    (o,) = trigger(m, res, options=FAST)
    assert o.confirmed and o.witness.weights == {}
    assert float(o.witness.inputs["x"][1]) > 44.3
    # with x in [0, 20] no stored weight can overflow it: the finding is gone, --node finds nothing
    m, res = checked(M.exp_model(), {"x": (0.0, 20.0)})
    assert res.findings == []
    (o,) = trigger(m, res, targets_for(m, res, ["exp"]), FAST)
    assert not o.confirmed and o.witness is None and "restart" in o.tried()


def test_false_alarm_is_never_claimed() -> None:
    m, res = checked(M.false_alarm(), {"x": (0.0, 1.0)})
    assert [f.rule for f in res.findings] == ["NUM001"]  # the interval dependency problem
    (o,) = trigger(m, res, options=TriggerOptions(budget_s=1.5, restarts=4, steps=40))
    assert not o.confirmed and o.witness is None
    (r,) = random_unit(m, res, options=TriggerOptions(budget_s=0.5))
    assert not r.confirmed


def test_propagated_nan_is_not_a_witness_of_the_later_node() -> None:
    m, res = checked(M.propagation(), {"x": (0.0, 100.0)})
    # exp overflows (NUM003); the log then only sees +inf: log(inf) = inf is propagation
    outs = by_node(trigger(m, res, options=FAST))
    assert outs[("exp", "NUM003")].confirmed
    for (node, _), o in outs.items():
        if node == "log" and o.confirmed:
            assert "already non-finite" in o.witness.observed


def test_random_baseline_confirms_an_easy_overflow() -> None:
    m, res = checked(M.exp_model(), {"x": (80.0, 100.0)})
    (o,) = random_unit(m, res, options=TriggerOptions(budget_s=2.0))
    assert o.confirmed and o.witness is not None and o.witness.method == "random"


def test_seeds_are_deterministic_in_what_they_find() -> None:
    m, res = checked(M.div_model(), {"x": (0.5, 1.0), "a": (0.0, 1.0), "b": (0.0, 1.0)})
    a = trigger(m, res, options=FAST)[0]
    b = trigger(m, res, options=FAST)[0]
    assert a.confirmed and b.confirmed
    for k in a.witness.inputs:
        np.testing.assert_array_equal(a.witness.inputs[k], b.witness.inputs[k])


def test_unknown_node_is_a_user_error() -> None:
    from numsentry.errors import UserError

    m, res = checked(M.exp_model(), {"x": (0.0, 50.0)})
    with pytest.raises(UserError, match="did you mean"):
        targets_for(m, res, ["expp"])
    with pytest.raises(UserError, match="no hazard"):
        targets_for(m, res, ["scale"])


def test_float16_product_past_65504_is_confirmed() -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 2])],
                          [numpy_helper.from_array(np.ones((4, 2), np.float16), "W")])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(proto)
    m, res = checked(proto, {"x": (0.0, 300.0), "W": (-100.0, 100.0)})
    assert [(f.node, f.rule) for f in res.findings] == [("mm", "NUM007")]
    (o,) = trigger(m, res, options=FAST)
    assert o.confirmed and "inf" in o.witness.observed
    assert o.witness.inputs["x"].dtype == np.float16 and "W" in o.witness.weights

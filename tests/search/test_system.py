"""System-test search: training data that drives SGD into the failure, confirmed by training."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from numsentry.analyses.check import CheckOptions, run_check
from numsentry.ir.load import load_model
from numsentry.search.system import SystemOptions, system_trigger, train
from numsentry.search.trigger import targets_for
from tests.search import _models as M


def _setup(proto, ranges, weights="stored"):
    m = load_model(proto)
    return m, run_check(m, CheckOptions(ranges=ranges, weights=weights))


def test_training_that_blows_up_is_confirmed_at_the_failing_step() -> None:
    """Three SGD steps with a huge rate: the weights go non-finite in the unrolled search, and the
    batch is still the witness, because training it fails at the Log on onnxruntime."""
    m, res = _setup(M.softmax_ce(), {"x": (0.0, 1.0), "y": (0.0, 1.0)}, weights="trainable")
    (t,) = targets_for(m, res)
    (o,) = system_trigger(m, res, [t], SystemOptions(loss="loss", lr=1e4, steps=3, budget_s=10.0, seed=1, unit_first=False))
    assert o.confirmed, o.tried()
    extra = o.witness.extra
    assert 0 <= extra["failure_step"] <= 3 and extra["steps"] == 3
    # the recorded batch really trains into the failure
    tr = train(m, "loss", extra["batch"], 1e4, 3, extra["trainable"])
    assert tr.failed_at is not None or extra["failure_step"] == 3


def test_system_search_never_claims_a_false_alarm() -> None:
    m, res = _setup(M.false_alarm(), {"x": (0.0, 1.0)})
    assert [f.rule for f in res.findings] == ["NUM001"]
    (o,) = system_trigger(m, res, options=SystemOptions(loss="y", lr=1.0, steps=2, budget_s=1.5))
    assert not o.confirmed and o.witness is None
    assert "restart" in o.tried() or "unit test" in o.tried()


def test_batch_with_non_finite_node_inputs_is_not_a_witness_of_the_later_node() -> None:
    """log(exp(x * w)): training can only make exp overflow; the Log then sees inf arrive, which
    the system search must not count for the Log (only for the Exp)."""
    from onnx import helper

    proto = M.model([helper.make_node("Mul", ["x", "w"], ["u"], name="scale"),
                     helper.make_node("Exp", ["u"], ["e"], name="exp"),
                     helper.make_node("Log", ["e"], ["y"], name="log"),
                     helper.make_node("ReduceSum", ["y"], ["loss"], name="loss", keepdims=0)],
                    [("x", [2])], [("loss", [])], {"w": np.array([1.0, 1.0], np.float32)})
    m, res = _setup(proto, {"x": (0.0, 100.0)})
    outs = {(o.node, o.rule): o for o in system_trigger(
        m, res, targets_for(m, res), SystemOptions(loss="loss", lr=1.0, steps=1, budget_s=3.0))}
    assert outs[("exp", "NUM003")].confirmed
    assert not any(o.confirmed for (node, _), o in outs.items() if node == "log")

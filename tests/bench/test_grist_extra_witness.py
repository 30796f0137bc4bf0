"""Regression tests for the extra alarms of the GRIST benchmark (``bench/grist``).

``truth.json`` explains every numsentry finding on a non-defect node ("extra alarm") as
``real`` or ``imprecision``. Every ``real`` one has a witness in
``bench.grist.witness.alarm_witnesses``: inputs and weights inside the case's ranges that make
onnxruntime produce inf/NaN at that node from finite operands (NUM002: an exact zero divisor).
These tests run each witness and check the verdict data itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

pytest.importorskip("onnxruntime")

from bench.grist.witness import alarm_fired, alarm_witnesses, run_alarm_witness

ROOT = Path(__file__).resolve().parents[2]
TRUTH = ROOT / "bench" / "grist" / "truth.json"
ENTRIES: dict[str, dict] = {e["case"]: e for e in json.loads(TRUTH.read_text())}
WITNESSES = [(cid, i) for cid in ENTRIES for i in range(len(alarm_witnesses(cid)))]
KEY = re.compile(r"(?P<node>\S+) (?P<rule>NUM\d{3})")


def test_verdicts_are_well_formed() -> None:
    """Every explanation names an existing non-defect node and a rule, a verdict and a reason."""
    explained = {cid: e["extra_alarms"] for cid, e in ENTRIES.items() if e["extra_alarms"]}
    assert explained, "no extra alarm explained"
    for cid, alarms in explained.items():
        model = onnx.load(str(ROOT / ENTRIES[cid]["model"]), load_external_data=False)
        nodes = {n.name for n in model.graph.node}
        for key, v in alarms.items():
            m = KEY.fullmatch(key)
            assert m, (cid, key)
            assert m["node"] in nodes and m["node"] not in ENTRIES[cid]["defects"], (cid, key)
            assert set(v) == {"verdict", "why"} and v["verdict"] in ("real", "imprecision")
            assert isinstance(v["why"], str) and len(v["why"]) > 20, (cid, key)
        assert "EXTRA ALARMS" in ENTRIES[cid]["notes"], cid


def test_real_verdicts_match_the_witnesses() -> None:
    """The ``real`` alarms of each case are exactly the alarms its witnesses cover."""
    for cid, entry in ENTRIES.items():
        real = {k for k, v in entry["extra_alarms"].items() if v["verdict"] == "real"}
        covered = [k for w in alarm_witnesses(cid) for k in w.alarms]
        assert len(covered) == len(set(covered)), cid
        assert set(covered) == real, cid


@pytest.mark.parametrize(("cid", "index"), WITNESSES, ids=[f"{c}-{i}" for c, i in WITNESSES])
def test_alarm_witness_fires(cid: str, index: int) -> None:
    """Inside the case's ranges, the witness makes every alarm it covers fire on onnxruntime."""
    entry = ENTRIES[cid]
    wit = alarm_witnesses(cid)[index]
    run = run_alarm_witness(ROOT / entry["model"], ROOT / entry["ranges"], wit)
    assert run.violations == [], (cid, run.violations)
    assert all(run.fired.values()), (cid, run.detail)


def _node(op: str, n_in: int, **attrs: int) -> onnx.NodeProto:
    node = helper.make_node(op, [f"i{k}" for k in range(n_in)], ["o"], name="n")
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    return node


def test_alarm_fired_needs_a_fresh_non_finite_value() -> None:
    """Propagated inf/NaN does not count; an exact zero divisor does (NUM002)."""
    inf = np.inf

    def f32(values: list[float]) -> np.ndarray:
        return np.array(values, np.float32)

    div = _node("Div", 2)
    assert alarm_fired("NUM002", div, [f32([1, 0]), f32([1, 0])], f32([1, np.nan]))[0]
    assert not alarm_fired("NUM002", div, [f32([1]), f32([1e-45])], f32([inf]))[0]
    exp = _node("Exp", 1)
    assert alarm_fired("NUM003", exp, [f32([100.0])], f32([inf]))[0]
    assert not alarm_fired("NUM003", exp, [f32([inf])], f32([inf]))[0]
    # a reduction: an overflowing row counts only when all of its own operands are finite
    red = _node("ReduceSum", 2, keepdims=1)
    x = np.array([[3e38, 3e38], [inf, 1.0]], np.float32)
    out = np.array([[inf], [inf]], np.float32)
    assert alarm_fired("NUM007", red, [x, np.array([1], np.int64)], out)[0]
    assert not alarm_fired("NUM007", red, [x[1:], np.array([1], np.int64)], out[1:])[0]
    mm = _node("MatMul", 2)
    a = np.array([[3e38, 3e38], [inf, 0.0]], np.float32)
    b = np.ones((2, 1), np.float32)
    assert alarm_fired("NUM007", mm, [a, b], np.array([[inf], [inf]], np.float32))[0]
    assert not alarm_fired("NUM007", mm, [a[1:], b], np.array([[inf]], np.float32))[0]

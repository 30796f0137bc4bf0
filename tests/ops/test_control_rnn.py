"""Targeted tests of If/Loop/Scan (bodies analysed in place) and RNN/GRU/LSTM (unrolled bounds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from numsentry.analyses.check import CheckOptions, run_check
from numsentry.domains.box import Box
from numsentry.ir import load_model
from numsentry.ops import REGISTRY
from numsentry.ops.apply import apply_concrete, apply_interval
from numsentry.ops.control import concrete_scope
from numsentry.ops.kernels import NUMPY
from numsentry.ops.registry import Ctx

F32 = TensorProto.FLOAT


def _vi(name: str, shape: list[int | str], et: int = F32) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, et, shape)


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: dict[str, np.ndarray] | None = None, opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs,
                          initializer=[numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _check(m: onnx.ModelProto, **ranges: tuple[float, float]) -> Any:
    return run_check(load_model(m), CheckOptions(ranges=dict(ranges)))


def _found(res: Any) -> set[tuple[str, str]]:
    return {(f.rule, f.node) for f in res.findings}


# ---- If ---------------------------------------------------------------------------------


def _if_model(cond: np.ndarray | None) -> onnx.ModelProto:
    then = helper.make_graph([helper.make_node("Log", ["x"], ["a"], name="log")], "then", [], [_vi("a", [3])])
    other = helper.make_graph([helper.make_node("Exp", ["x"], ["b"], name="exp")], "else", [], [_vi("b", [3])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="if0")
    ins = [_vi("x", [3])] + ([_vi("c", [], TensorProto.BOOL)] if cond is None else [])
    return _model([node], ins, [_vi("y", [3])], None if cond is None else {"c": cond})


def test_if_unknown_condition_checks_both_branches_and_joins() -> None:
    res = _check(_if_model(None), x=(-1.0, 1.0))
    assert ("NUM001", "if0/then_branch/log") in _found(res)
    y = res.outputs["y"]
    assert y.min() == -np.inf and y.max() >= np.exp(1.0)  # join of log's [-inf, 0] and exp's [e^-1, e]


def test_if_constant_condition_analyses_only_the_taken_branch() -> None:
    res = _check(_if_model(np.array(False)), x=(-1.0, 1.0))
    assert not res.findings  # the Log in the other branch cannot run
    y = res.outputs["y"]
    assert y.min() == pytest.approx(np.exp(-1.0), rel=1e-6) and y.max() == pytest.approx(np.e, rel=1e-6)
    res = _check(_if_model(np.array(True)), x=(-1.0, 1.0))
    assert _found(res) == {("NUM001", "if0/then_branch/log")}


def test_concrete_if_reads_outer_scope_only_inside_concrete_scope() -> None:
    g = load_model(_if_model(None)).graph
    op, node = REGISTRY.lookup("", "If", 17), g.nodes[0]
    with pytest.raises(NotImplementedError, match="concrete_scope"):
        apply_concrete(op, NUMPY, [np.array(False)], node.attrs)
    x = np.array([0.5, 1.0, 2.0], np.float32)
    with concrete_scope({"x": x}):
        (y,) = apply_concrete(op, NUMPY, [np.array(False)], node.attrs)
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-6)


# ---- Loop -------------------------------------------------------------------------------


def _loop_model(trip: int | None, with_log: bool = False, scan: bool = False, shift: float = 1.5) -> onnx.ModelProto:
    """x <- 0.5 x + 1 (and log(x - shift) when asked); the trip count is an input unless given."""
    nodes = [helper.make_node("Mul", ["xi", "half"], ["h"]), helper.make_node("Add", ["h", "one"], ["xo"]),
             helper.make_node("Identity", ["ci"], ["co"])]
    outs = [_vi("co", [], TensorProto.BOOL), _vi("xo", [2])]
    if with_log:
        nodes += [helper.make_node("Sub", ["xi", "shift"], ["s"]), helper.make_node("Log", ["s"], ["l"], name="log")]
    if scan:
        outs.append(_vi("h", [2]))
    body = helper.make_graph(
        nodes, "body", [_vi("i", [], TensorProto.INT64), _vi("ci", [], TensorProto.BOOL), _vi("xi", [2])], outs,
        initializer=[numpy_helper.from_array(np.array(v, np.float32), n)
                     for n, v in (("half", 0.5), ("one", 1.0), ("shift", shift))])
    node = helper.make_node("Loop", ["M", "c0", "x"], ["y"] + (["hs"] if scan else []), body=body, name="loop0")
    inputs = [_vi("x", [2])] + ([_vi("M", [], TensorProto.INT64)] if trip is None else [])
    inits = {"c0": np.array(True)} | ({"M": np.array(trip, np.int64)} if trip is not None else {})
    outputs = [_vi("y", [2])] + ([_vi("hs", ["n", 2])] if scan else [])
    return _model([node], inputs, outputs, inits)


def test_loop_constant_trip_count_unrolls_exactly() -> None:
    res = _check(_loop_model(5, scan=True), x=(0.0, 1.0))
    f = lambda v: 0.5 * v + 1  # noqa: E731
    lo, hi = 0.0, 1.0
    steps = []
    for _ in range(5):
        steps.append((0.5 * lo, 0.5 * hi))
        lo, hi = f(lo), f(hi)
    y, hs = res.outputs["y"], res.outputs["hs"]
    assert y.min() == pytest.approx(lo, abs=1e-6) and y.max() == pytest.approx(hi, abs=1e-6)
    assert hs.shape == (5, 2) and hs.blocks()[0] == 5  # one block per iteration
    hl, hh = hs.full()
    np.testing.assert_allclose(hl[:, 0], [s[0] for s in steps], atol=1e-6)
    np.testing.assert_allclose(hh[:, 0], [s[1] for s in steps], atol=1e-6)


def test_loop_unknown_trip_count_terminates_and_reports_body_hazard() -> None:
    # x tends to 2 from above, so log(x - 2.5) fails after a few iterations: a real hazard
    res = _check(_loop_model(None, with_log=True, shift=2.5), x=(3.0, 4.0), M=(0.0, 1e6))
    assert ("NUM001", "loop0/body/log") in _found(res)
    y = res.outputs["y"]
    assert y.min() <= 2.0 and y.max() >= 4.0  # sound (the widened fixpoint is coarser than (2, 4])
    assert not res.unsupported


def test_loop_small_trip_range_joins_exits_without_hazard() -> None:
    # M in [0, 6]: unrolled with joined exits; x stays in [2, 4] so log(x - 1.5) is safe
    res = _check(_loop_model(None, with_log=True), x=(3.0, 4.0), M=(0.0, 6.0))
    assert not res.findings
    y = res.outputs["y"]
    assert y.min() == pytest.approx(2.0 + 2.0**-6, abs=1e-5) and y.max() == pytest.approx(4.0, abs=1e-5)


def test_loop_scan_outputs_of_unknown_count_are_unsupported_not_wrong() -> None:
    res = _check(_loop_model(None, scan=True), x=(0.0, 1.0), M=(0.0, 3.0))
    assert any(k.startswith("Loop") for k in res.unsupported)
    assert res.outputs["hs"].min() == -np.inf


# ---- Scan -------------------------------------------------------------------------------


def _scan_model(length: int, hazard: bool = False) -> onnx.ModelProto:
    """Running sum over the rows of x; the scan output is the running sum (sqrt(s - 1) if asked)."""
    nodes = [helper.make_node("Add", ["s", "xt"], ["s2"])]
    out = "s2"
    if hazard:
        nodes += [helper.make_node("Sub", ["s2", "one"], ["d"]), helper.make_node("Sqrt", ["d"], ["r"], name="sqrt")]
        out = "r"
    body = helper.make_graph(nodes, "body", [_vi("s", [2]), _vi("xt", [2])], [_vi("s2", [2]), _vi(out, [2])],
                             initializer=[numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    node = helper.make_node("Scan", ["s0", "x"], ["sf", "ys"], body=body, num_scan_inputs=1, name="scan0")
    return _model([node], [_vi("x", [length, 2])], [_vi("sf", [2]), _vi("ys", [length, 2])],
                  {"s0": np.zeros(2, np.float32)})


def test_scan_unrolled_keeps_per_step_precision_and_finds_body_hazard() -> None:
    res = _check(_scan_model(4, hazard=True), x=(0.0, 1.0))
    assert _found(res) == {("NUM004", "scan0/body/sqrt")}
    res = _check(_scan_model(4), x=(0.0, 1.0))
    ys = res.outputs["ys"]
    lo, hi = ys.full()
    np.testing.assert_allclose(hi[:, 0], [1, 2, 3, 4], rtol=1e-6)
    assert (lo == 0).all()
    assert res.outputs["sf"].max() == pytest.approx(4.0, rel=1e-6)


def test_scan_long_sequence_reaches_a_fixpoint() -> None:
    res = _check(_scan_model(200), x=(0.0, 1.0))
    assert res.outputs["sf"].max() == np.inf and res.outputs["sf"].min() == 0.0
    assert res.outputs["ys"].shape == (200, 2)
    res = _check(_scan_model(200), x=(0.0, 0.0))  # a zero input: the state is a fixpoint at once
    assert res.outputs["sf"].max() == 0.0


# ---- RNN / GRU / LSTM -------------------------------------------------------------------

_G = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _rnn_inputs(kind: str, rng: np.random.Generator, t: int, b: int, i: int, h: int, d: int,
                lens: np.ndarray | None = None) -> list[Any]:
    g = _G[kind]

    def w(*s: int, sc: float = 1.0) -> np.ndarray:
        return rng.uniform(-sc, sc, s).astype(np.float32)

    ins: list[Any] = [(-2.0, 2.0, (t, b, i)), w(d, g * h, i, sc=2), w(d, g * h, h, sc=2), w(d, 2 * g * h), lens,
                      (-1.0, 1.0, (d, b, h))]
    if kind == "LSTM":
        ins += [(-1.0, 1.0, (d, b, h)), w(d, 3 * h)]
    return ins


def _single(kind: str, specs: list[Any], attrs: dict[str, Any], n_out: int, opset: int = 22) -> onnx.ModelProto:
    names = ["" if s is None else f"x{j}" for j, s in enumerate(specs)]
    node = helper.make_node(kind, names, [f"y{j}" for j in range(n_out)], **attrs)
    ins = [_vi(n, list(s[2])) for n, s in zip(names, specs, strict=True) if isinstance(s, tuple)]
    inits = {n: s for n, s in zip(names, specs, strict=True) if isinstance(s, np.ndarray)}
    outs = [_vi(f"y{j}", [f"y{j}_{k}" for k in range(4 if j == 0 else 3)]) for j in range(n_out)]
    return _model([node], ins, outs, inits, opset)


def _boxes(specs: list[Any]) -> list[Box | None]:
    return [None if s is None else Box.range(s[0], s[1], s[2], np.dtype(np.float32)) if isinstance(s, tuple)
            else Box.point(s) for s in specs]


def _points(specs: list[Any], rng: np.random.Generator, n: int) -> list[list[Any]]:
    pts = []
    for p in range(n):
        vals = []
        for s in specs:
            if isinstance(s, tuple):
                lo, hi, shape = s
                v = rng.uniform(lo, hi, shape) if p % 2 else np.where(rng.integers(0, 2, shape) == 1, hi, lo)
                vals.append(v.astype(np.float32))
            else:
                vals.append(s)
        pts.append(vals)
    return pts


def _bound(kind: str, specs: list[Any], attrs: dict[str, Any]) -> tuple[Any, tuple[Box, ...], dict[str, Any]]:
    node_attrs = load_model(_single(kind, specs, attrs, 3 if kind == "LSTM" else 2)).graph.nodes[0].attrs
    op = REGISTRY.lookup("", kind, 22)
    return op, apply_interval(op, Ctx(), _boxes(specs), node_attrs), node_attrs


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_rnn_concrete_matches_reference_and_ort_lies_inside(kind: str) -> None:
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(7)
    n_out = 3 if kind == "LSTM" else 2
    for attrs in ({"direction": "bidirectional"}, {"direction": "reverse", "clip": 0.7},
                  {"direction": "forward", "activations": {"RNN": ["Relu"], "GRU": ["HardSigmoid", "Softsign"],
                                                           "LSTM": ["Sigmoid", "Elu", "Softsign"]}[kind]}):
        d = 2 if attrs["direction"] == "bidirectional" else 1
        # onnx.reference ignores sequence_lens; onnxruntime zeroes the states of empty sequences
        lens = {"forward": np.array([1, 3], np.int32), "reverse": np.array([3, 0], np.int32)}.get(attrs["direction"])
        specs = _rnn_inputs(kind, rng, 3, 2, 3, 2, d, lens)
        attrs = {"hidden_size": 2, **attrs}
        model = _single(kind, specs, attrs, n_out)
        op, outs, node_attrs = _bound(kind, specs, attrs)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        plain = "clip" not in attrs and "activations" not in attrs  # what onnx.reference implements
        for vals in _points(specs, rng, 6):
            feeds = {f"x{j}": v for j, (v, s) in enumerate(zip(vals, specs, strict=True)) if isinstance(s, tuple)}
            mine = apply_concrete(op, NUMPY, vals, node_attrs)
            theirs = sess.run(None, feeds)
            ref = ReferenceEvaluator(model).run(None, feeds) if plain else theirs
            for j in range(n_out):
                np.testing.assert_allclose(mine[j], theirs[j], atol=2e-6)
                np.testing.assert_allclose(mine[j], ref[j], atol=2e-6)
                assert outs[j].contains(theirs[j]).all(), (attrs, j, outs[j])


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_rnn_layout1_and_torch_backend_agree_with_numpy(kind: str) -> None:
    import torch

    from numsentry.ops.kernels import torch_kernels

    rng = np.random.default_rng(3)
    specs = _rnn_inputs(kind, rng, 3, 2, 3, 2, 2)
    vals = _points(specs, rng, 1)[0]
    op, _, node_attrs = _bound(kind, specs, {"hidden_size": 2, "direction": "bidirectional"})
    base = apply_concrete(op, NUMPY, vals, node_attrs)
    tk = torch_kernels()
    via_torch = apply_concrete(op, tk, [None if v is None else torch.from_numpy(v) for v in vals], node_attrs)
    for a, b in zip(base, via_torch, strict=True):
        np.testing.assert_allclose(tk.to_numpy(b), a, atol=1e-6)
    swapped = [np.swapaxes(v, 0, 1) if j in (0, 5, 6) else v for j, v in enumerate(vals)]
    lay = apply_concrete(op, NUMPY, swapped, {**node_attrs, "layout": 1})
    np.testing.assert_allclose(lay[0], np.transpose(base[0], (2, 0, 1, 3)), atol=1e-6)
    np.testing.assert_allclose(lay[1], np.swapaxes(base[1], 0, 1), atol=1e-6)


def test_rnn_hidden_state_stays_bounded_over_long_sequences() -> None:
    rng = np.random.default_rng(0)
    t, h = 60, 4
    big = [(-1e6, 1e6, (t, 3, 5)), rng.normal(0, 5, (1, h, 5)).astype(np.float32),
           rng.normal(0, 5, (1, h, h)).astype(np.float32)]
    _, (y, _), _ = _bound("RNN", big, {"hidden_size": h})
    assert y.finite and y.min() >= -1.001 and y.max() <= 1.001
    assert y.blocks()[2] == 1  # batch coarse
    lstm = [(-1e6, 1e6, (t, 3, 5)), rng.normal(0, 5, (1, 4 * h, 5)).astype(np.float32),
            rng.normal(0, 5, (1, 4 * h, h)).astype(np.float32)]
    _, (y, _, yc), _ = _bound("LSTM", lstm, {"hidden_size": h})
    assert y.max() <= 1.001 and yc.max() <= t + 0.01  # the cell grows by at most 1 per step
    gru = [(-1e6, 1e6, (t, 3, 5)), rng.normal(0, 5, (1, 3 * h, 5)).astype(np.float32),
           rng.normal(0, 5, (1, 3 * h, h)).astype(np.float32)]
    _, (y, _), _ = _bound("GRU", gru, {"hidden_size": h})
    assert y.min() >= -1.001 and y.max() <= 1.001  # convex combinations: no doubling per step


def test_rnn_point_inputs_give_tight_boxes() -> None:
    rng = np.random.default_rng(5)
    specs = _rnn_inputs("GRU", rng, 4, 2, 3, 3, 1)
    vals = _points(specs, rng, 1)[0]
    op, _, node_attrs = _bound("GRU", specs, {"hidden_size": 3})
    outs = apply_interval(op, Ctx(), [None if v is None else Box.point(v) for v in vals], node_attrs)
    conc = apply_concrete(op, NUMPY, vals, node_attrs)
    for b, v in zip(outs, conc, strict=True):
        lo, hi = b.full()
        # worst-case float error of 9-term sums (gamma_9 |terms|) amplified through R over 4 steps
        assert b.contains(v).all() and (hi - lo).max() < 1e-4


def test_rnn_nonconstant_sequence_lens_are_unsupported() -> None:
    rng = np.random.default_rng(1)
    specs = _rnn_inputs("RNN", rng, 2, 2, 2, 2, 1)
    boxes = _boxes(specs)
    boxes[4] = Box.range(1, 2, (2,), np.dtype(np.int32))
    op = REGISTRY.lookup("", "RNN", 22)
    with pytest.raises(NotImplementedError):
        apply_interval(op, Ctx(), boxes, {"hidden_size": 2, "direction": "forward"})

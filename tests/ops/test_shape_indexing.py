"""Targeted tests of the shape, indexing and generator ops (src/numsentry/ops/shape.py,
indexing.py, generate.py): coarse boxes stay coarse, refined bounds move with the data,
tightness facts, hazards, training-mode Dropout, quantisation and accumulation error against
onnxruntime, and the torch backend against numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests.conftest import make_model

from numsentry.analyses.check import CheckOptions, run_check
from numsentry.domains.box import Box
from numsentry.ir.load import load_model
from numsentry.ops import REGISTRY
from numsentry.ops.apply import apply_concrete, apply_interval
from numsentry.ops.kernels import NUMPY, torch_kernels
from numsentry.ops.registry import Ctx

F = TensorProto.FLOAT
N = helper.make_node


def iv(op: str, *inputs: Box | None, opset: int = 21, ctx: Ctx | None = None, **attrs: Any) -> tuple[Box, ...]:
    o = REGISTRY.lookup("", op, opset)
    assert o is not None
    return apply_interval(o, ctx or Ctx(op_type=op, opset=opset), list(inputs), attrs)


def conc(op: str, *inputs: Any, opset: int = 21, k: Any = NUMPY, **attrs: Any) -> tuple[Any, ...]:
    o = REGISTRY.lookup("", op, opset)
    assert o is not None
    return apply_concrete(o, k, list(inputs), attrs)


def P(v: Any, dt: Any = np.int64) -> Box:
    return Box.point(np.asarray(v, dtype=dt))


def R(lo: Any, hi: Any, shape: tuple[int, ...], dt: Any = np.float32) -> Box:
    return Box.range(lo, hi, shape, np.dtype(dt))


def ort_run(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    model.ir_version = min(model.ir_version, 10)  # onnxruntime 1.31 reads IR <= 13 (onnx writes 14)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


# ---- data movement keeps partitions ------------------------------------------------------


def test_transpose_permutes_refined_bounds_and_keeps_coarse_dims():
    lo = np.arange(3.0).reshape(1, 3, 1)
    x = Box(lo, lo + 1, (2, 3, 4), np.dtype(np.float32))
    (y,) = iv("Transpose", x, perm=[2, 0, 1])
    assert y.shape == (4, 2, 3) and y.blocks() == (1, 1, 3)
    np.testing.assert_array_equal(y.full()[0][0, 0], [0, 1, 2])


def test_concat_of_equal_coarse_parts_stays_coarse_and_different_parts_refine_one_axis():
    a, b = R(-1, 1, (2, 3, 5)), R(-1, 1, (2, 4, 5))
    (y,) = iv("Concat", a, b, axis=1)
    assert y.shape == (2, 7, 5) and y.blocks() == (1, 1, 1)
    (z,) = iv("Concat", a, R(0, 2, (2, 4, 5)), axis=1)
    assert z.blocks() == (1, 7, 1)
    assert z.full()[0][0, 2, 0] == -1 and z.full()[0][0, 3, 0] == 0


def test_shape_computation_stays_exact_through_a_check():
    m = make_model(
        [N("Shape", ["x"], ["s"]), N("Gather", ["s", "i0"], ["d0"], axis=0),
         N("Unsqueeze", ["d0", "ax"], ["d0u"]), N("Concat", ["d0u", "m1"], ["shp"], axis=0),
         N("Reshape", ["x", "shp"], ["y"]), N("Slice", ["y", "st", "en", "ax1"], ["z"]),
         N("CumSum", ["s", "ax"], ["cs"])],
        [("x", F, [2, 3, 4])], [("z", F, [2, 10]), ("cs", TensorProto.INT64, [3])],
        {"i0": np.array(0, np.int64), "ax": np.array([0], np.int64), "m1": np.array([-1], np.int64),
         "st": np.array([1], np.int64), "en": np.array([-1], np.int64), "ax1": np.array([1], np.int64)},
        opset=18)
    res = run_check(load_model(m), CheckOptions(ranges={"x": (-1.0, 1.0)}))
    assert not res.unsupported
    assert res.outputs["z"].shape == (2, 10) and res.outputs["z"].blocks() == (1, 1)
    cs = res.outputs["cs"]
    assert cs.is_point and cs.value.tolist() == [2, 5, 9]


def test_gather_point_indices_coarse_axis_stays_coarse_refined_axis_moves_bounds():
    x = R(-2, 3, (4, 5))
    (y,) = iv("Gather", x, P([[0, 3], [1, -1]]), axis=1)
    assert y.shape == (4, 2, 2) and y.blocks() == (1, 1, 1)
    lo = np.arange(5.0).reshape(1, 5)
    xr = Box(lo, lo + 0.5, (4, 5), np.dtype(np.float32))
    (z,) = iv("Gather", xr, P([4, 0, -2]), axis=1)
    np.testing.assert_array_equal(z.full()[0][0], [4, 0, 3])


def test_gather_with_box_indices_is_the_hull_of_the_reachable_elements():
    lo = np.arange(6.0)
    x = Box(lo, lo + 0.5, (6,), np.dtype(np.float32))
    (y,) = iv("Gather", x, R(1, 3, (2,), np.int64), axis=0)
    assert y.min() == 1 and y.max() == 3.5
    (w,) = iv("Gather", x, R(-2, -1, (1,), np.int64), axis=0)  # wraps to 4..5
    assert w.min() == 4 and w.max() == 5.5


def test_slice_of_a_coarse_dim_stays_coarse_and_negative_steps_reverse_bounds():
    x = R(0, 1, (6, 8))
    (y,) = iv("Slice", x, P([5, 1]), P([0, 7]), P([0, 1]), P([-2, 3]))
    assert y.shape == (3, 2) and y.blocks() == (1, 1)
    lo = np.arange(6.0).reshape(6, 1)
    (z,) = iv("Slice", Box(lo, lo.copy(), (6, 8), np.dtype(np.float32)), P([5]), P([-100]), P([0]), P([-2]))
    np.testing.assert_array_equal(z.full()[0][:, 0], [5, 3, 1])


def test_pad_constant_joins_a_coarse_dim_and_is_exact_on_a_refined_one():
    x = R(1, 2, (2, 3))
    (y,) = iv("Pad", x, P([0, 1, 0, 1]), P(0.0, np.float32), mode="constant")
    assert y.shape == (2, 5) and y.min() == 0 and y.max() == 2 and y.blocks() == (1, 1)
    (e,) = iv("Pad", x, P([1, 1, 1, 1]), mode="edge")
    assert e.min() == 1 and e.blocks() == (1, 1)
    lo = np.array([[1.0, 2.0, 3.0]])
    xr = Box(lo, lo.copy(), (2, 3), np.dtype(np.float32))
    (r,) = iv("Pad", xr, P([0, 2, 0, 1]), mode="reflect")
    np.testing.assert_array_equal(r.full()[0][0], [3, 2, 1, 2, 3, 2])
    (w,) = iv("Pad", xr, P([2, 2]), None, P([1]), mode="wrap")
    np.testing.assert_array_equal(w.full()[0][0], [2, 3, 1, 2, 3, 1, 2])


def test_expand_tile_unsqueeze_squeeze_keep_coarse_boxes_coarse():
    x = R(-1, 1, (3, 1))
    (e,) = iv("Expand", x, P([2, 3, 5]))
    (t,) = iv("Tile", x, P([4, 2]))
    (u,) = iv("Unsqueeze", x, P([0, -1]))
    (s,) = iv("Squeeze", x, P([1]))
    assert (e.shape, e.blocks()) == ((2, 3, 5), (1, 1, 1))
    assert (t.shape, t.blocks()) == ((12, 2), (1, 1))
    assert (u.shape, s.shape) == ((1, 3, 1, 1), (3,))


def test_depth_to_space_moves_refined_channel_bounds():
    lo = np.arange(4.0).reshape(1, 4, 1, 1)
    x = Box(lo, lo.copy(), (1, 4, 2, 2), np.dtype(np.float32))
    (y,) = iv("DepthToSpace", x, blocksize=2, mode="DCR")
    ref = np.asarray(conc("DepthToSpace", np.broadcast_to(lo, (1, 4, 2, 2)).astype(np.float32), blocksize=2,
                          mode="DCR")[0])
    np.testing.assert_array_equal(y.full()[0], ref)
    (c,) = iv("SpaceToDepth", R(0, 1, (1, 2, 4, 4)), blocksize=2)
    assert c.shape == (1, 8, 2, 2) and c.blocks() == (1, 1, 1, 1)


def test_split_13_without_sizes_uses_the_node_output_count():
    ctx = Ctx(op_type="Split", opset=13, output_shapes=[None, None, None])
    outs = iv("Split", R(0, 1, (2, 7)), None, opset=13, ctx=ctx, axis=1)
    assert [o.shape for o in outs] == [(2, 3), (2, 3), (2, 1)]


# ---- selections ---------------------------------------------------------------------------


def test_topk_values_are_order_statistics_of_the_bounds():
    lo, hi = np.array([0.0, 5.0, 1.0, 2.0]), np.array([1.0, 6.0, 4.0, 2.5])
    x = Box(lo, hi, (4,), np.dtype(np.float32))
    v, i = iv("TopK", x, P([2]), axis=0, largest=1, sorted=1)
    np.testing.assert_array_equal(v.full()[0], [5, 2])  # 2nd largest >= 2nd largest lo = 2
    np.testing.assert_array_equal(v.full()[1], [6, 4])
    assert i.dtype == np.int64 and i.min() == 0 and i.max() == 3
    vs, _ = iv("TopK", x, P([2]), axis=0, largest=0, sorted=1)
    np.testing.assert_array_equal(vs.full()[0], [0, 1])
    np.testing.assert_array_equal(vs.full()[1], [1, 2.5])


def test_argmax_and_hardmax_use_candidates_that_can_reach_the_max():
    lo, hi = np.array([[0.0, 5.0, 1.0, 4.0]]), np.array([[1.0, 6.0, 4.0, 5.5]])
    x = Box(lo, hi, (1, 4), np.dtype(np.float32))
    (a,) = iv("ArgMax", x, axis=1, keepdims=0)
    assert (a.min(), a.max()) == (1, 3)  # element 2 (<= 4) can never beat element 1 (>= 5)
    (h,) = iv("Hardmax", x, axis=1)
    np.testing.assert_array_equal(h.full()[0][0], [0, 0, 0, 0])
    np.testing.assert_array_equal(h.full()[1][0], [0, 1, 0, 1])
    (sure,) = iv("Hardmax", Box(np.array([[0.0, 7.0]]), np.array([[1.0, 8.0]]), (1, 2), np.dtype(np.float32)))
    np.testing.assert_array_equal(sure.full()[0][0], [0, 1])


def test_nonzero_is_exact_when_no_element_can_be_zero_and_declines_otherwise():
    (y,) = iv("NonZero", R(0.5, 2, (2, 2)))
    assert y.is_point and y.value.tolist() == [[0, 0, 1, 1], [0, 1, 0, 1]]
    with pytest.raises(NotImplementedError):
        iv("NonZero", R(-1, 1, (2, 2)))


def test_onehot_with_box_indices_is_on_only_where_reachable():
    (y,) = iv("OneHot", R(1, 2, (3,), np.int64), P(5), P([0.0, 1.0], np.float32), axis=-1)
    np.testing.assert_array_equal(y.full()[1][0], [0, 1, 1, 0, 0])
    assert y.min() == 0 and y.blocks() == (1, 5)


# ---- scatter -------------------------------------------------------------------------------


def test_scatternd_add_with_repeated_indices_is_sound_against_onnxruntime():
    idx = np.array([[1], [1], [1], [3]], np.int64)
    m = make_model([N("ScatterND", ["d", "i", "u"], ["y"], reduction="add")],
                   [("d", F, [4, 3]), ("u", F, [4, 3])], [("y", F, [4, 3])], {"i": idx}, opset=18)
    d, u = R(-1, 1, (4, 3)), R(1e6, 1e6 + 1, (4, 3))
    (y,) = iv("ScatterND", d, P(idx), u, reduction="add")
    assert y.full()[0][1, 0] < 3e6 - 1 and y.full()[1][1, 0] > 3e6 + 4  # sums of 3 updates + data
    assert y.full()[0][0, 0] == -1 and y.full()[1][0, 0] == 1  # untouched rows keep data's bounds
    rng = np.random.default_rng(0)
    for _ in range(20):
        dv = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
        uv = rng.uniform(1e6, 1e6 + 1, (4, 3)).astype(np.float32)
        (out,) = ort_run(m, {"d": dv, "u": uv})
        assert y.contains(out).all()


def test_scatter_elements_none_puts_update_bounds_in_place():
    d = R(0, 1, (2, 3))
    (y,) = iv("ScatterElements", d, P([[2], [0]]), R(5, 6, (2, 1)), axis=1)
    lo, hi = y.full()
    np.testing.assert_array_equal(lo, [[0, 0, 5], [5, 0, 0]])
    np.testing.assert_array_equal(hi, [[1, 1, 6], [6, 1, 1]])


# ---- accumulations -----------------------------------------------------------------------


def test_cumsum_of_a_coarse_axis_is_k_times_the_interval_plus_accumulation_error():
    (y,) = iv("CumSum", R(0.1, 0.3, (1, 3000)), P(1))
    lo, hi = y.full()
    k = np.arange(1, 3001)
    assert y.blocks() == (1, 3000)
    assert np.all(lo <= k * np.float64(np.float32(0.1))) and np.all(hi >= k * np.float64(np.float32(0.3)))
    assert hi[0, -1] - lo[0, -1] < 600.0 + 1.0  # only a little wider than the exact [300, 900]
    m = make_model([N("CumSum", ["x", "a"], ["y"])], [("x", F, [1, 3000])], [("y", F, [1, 3000])],
                   {"a": np.array(1, np.int64)}, opset=14)
    rng = np.random.default_rng(1)
    for v in (np.full((1, 3000), 0.1, np.float32), np.full((1, 3000), 0.3, np.float32),
              rng.uniform(0.1, 0.3, (1, 3000)).astype(np.float32)):
        (out,) = ort_run(m, {"x": v})
        assert y.contains(out).all()


def test_einsum_matches_matmul_tightness_and_is_sound():
    a, w = R(-1, 2, (3, 4)), P(np.linspace(-1, 1, 20).reshape(4, 5), np.float32)
    (e,) = iv("Einsum", a, w, equation="ij,jk->ik")
    (mm,) = iv("MatMul", a, w, opset=13)
    assert np.allclose(e.full()[0], mm.full()[0], rtol=1e-5) and np.allclose(e.full()[1], mm.full()[1], rtol=1e-5)
    (t,) = iv("Einsum", R(-1, 1, (3, 3)), equation="ii->")
    assert -3.01 < t.min() <= -3 and 3 <= t.max() < 3.01
    (p,) = iv("Einsum", R(-1, 2, (2,)), R(-1, 2, (2,)), R(-1, 2, (2,)), equation="i,i,i->")
    assert p.min() <= -8 and p.max() >= 16  # corners (-1*2*2) * 2 and 2^3 * 2


# ---- generators, random, dropout ------------------------------------------------------------


def test_range_hazard_fires_for_a_step_that_can_be_zero():
    m = make_model([N("Range", ["s", "l", "d"], ["y"], name="rng")],
                   [("d", F, [])], [("y", F, ["n"])],
                   {"s": np.array(0, np.float32), "l": np.array(5, np.float32)}, opset=13)
    res = run_check(load_model(m), CheckOptions(ranges={"d": (-1.0, 1.0)}))
    # the rule declines (unknown length) but the hazard is still checked on the inputs
    assert [f.rule for f in res.findings if f.node == "rng"] == ["NUM009"]
    r = REGISTRY.lookup("", "Range", 13)
    assert r is not None and r.hazards[0].check(Ctx(), [P(0.0), P(5.0), R(-1, 1, ())], {}) is not None
    assert r.hazards[0].check(Ctx(), [P(0.0), P(5.0), P(0.5, np.float32)], {}) is None
    (y,) = iv("Range", P(2), P(9), P(3))
    assert y.is_point and y.value.tolist() == [2, 5, 8]
    (z,) = iv("Range", P(0.0, np.float32), P(5.0, np.float32), P(0.0, np.float32))
    assert z.shape == (0,)  # the runtime fails; the hazard reports it


def test_random_normal_is_unbounded_but_never_nan_and_not_an_overflow_finding():
    m = make_model([N("RandomNormal", [], ["r"], shape=[2, 3], seed=1.0, name="rn"),
                    N("Add", ["r", "x"], ["y"], name="add")],
                   [("x", F, [2, 3])], [("y", F, [2, 3])], opset=13)
    res = run_check(load_model(m), CheckOptions(ranges={"x": (0.0, 1.0)}))
    assert "rn" not in {f.node for f in res.findings}
    (r,) = iv("RandomNormal", shape=[2], dtype=1, mean=0.0, scale=1.0, seed=3.0)
    assert r.min() == -np.inf and r.max() == np.inf and not r.nan
    (u,) = iv("RandomUniform", shape=[2], dtype=1, low=-2.0, high=3.0, seed=3.0)
    a = np.asarray(conc("RandomUniform", shape=[100], dtype=1, low=-2.0, high=3.0, seed=3.0)[0])
    b = np.asarray(conc("RandomUniform", shape=[100], dtype=1, low=-2.0, high=3.0, seed=3.0)[0])
    assert np.array_equal(a, b) and u.min() <= a.min() and a.max() <= u.max() <= 3.0 + 1e-6


def test_dropout_training_mode_is_zero_or_scaled_and_sound_against_onnxruntime():
    x = R(1, 2, (4, 8))
    y, mask = iv("Dropout", x, P(0.25, np.float32), P(True, bool))
    assert y.min() == 0 and abs(y.max() - 2 / 0.75) < 1e-5
    assert mask.dtype == np.bool_ and (mask.min(), mask.max()) == (0, 1)
    same, ones = iv("Dropout", x, P(0.25, np.float32), P(False, bool))
    assert same.blocks() == (1, 1) and (same.min(), same.max()) == (1, 2) and ones.is_point and ones.value.all()
    m = make_model([N("Dropout", ["x", "r", "t"], ["y", "m"])], [("x", F, [4, 8])],
                   [("y", F, [4, 8]), ("m", TensorProto.BOOL, [4, 8])],
                   {"r": np.array(0.25, np.float32), "t": np.array(True)}, opset=13)
    out, msk = ort_run(m, {"x": np.full((4, 8), 2.0, np.float32)})
    assert y.contains(out).all() and mask.contains(msk.astype(np.float64)).all()


# ---- quantisation ---------------------------------------------------------------------------


def test_quantize_rounds_half_to_even_saturates_and_refines_only_the_axis():
    (q,) = iv("QuantizeLinear", P([0.5, 1.5, 2.5, -0.5, 1000.0], np.float32), P(1.0, np.float32),
              P(0, np.int8), opset=13)
    assert q.value.tolist() == [0, 2, 2, 0, 127]
    scale = P([0.1, 0.2], np.float32)
    (y,) = iv("QuantizeLinear", R(-1, 1, (3, 2, 5)), scale, P([0, 10], np.uint8), opset=13, axis=1)
    assert y.dtype == np.uint8 and y.blocks() == (1, 2, 1)
    np.testing.assert_array_equal(y.full()[0][0, :, 0], [0, 5])
    np.testing.assert_array_equal(y.full()[1][0, :, 0], [10, 15])
    (d,) = iv("DequantizeLinear", R(0, 20, (3, 2), np.uint8), scale, P([0, 10], np.uint8), opset=13, axis=1)
    np.testing.assert_allclose(d.full()[0][0], [0, -2], rtol=1e-6)
    np.testing.assert_allclose(d.full()[1][0], [2, 2], rtol=1e-6)


def test_quantize_box_is_sound_against_onnxruntime_near_rounding_ties():
    s = np.float32(0.0137)
    m = make_model([N("QuantizeLinear", ["x", "s", "z"], ["y"])], [("x", F, [64])],
                   [("y", TensorProto.INT8, [64])], {"s": np.array(s), "z": np.array(3, np.int8)}, opset=13)
    lo, hi = np.float32(2.5) * s, np.float32(7.5) * s
    (y,) = iv("QuantizeLinear", R(float(lo), float(hi), (64,)), P(s, np.float32), P(3, np.int8), opset=13)
    grid = np.linspace(lo, hi, 64).astype(np.float32)
    for v in (grid, np.full(64, lo, np.float32), np.full(64, hi, np.float32)):
        (out,) = ort_run(m, {"x": v})
        assert y.contains(out).all()


# ---- torch backend == numpy backend --------------------------------------------------------


@pytest.mark.parametrize(("op", "inputs", "attrs"), [
    ("Pad", [np.arange(12.0).reshape(3, 4), np.array([1, 2, 1, 3], np.int64)], {"mode": "reflect"}),
    ("Pad", [np.arange(12.0).reshape(3, 4), np.array([2, 1], np.int64), np.array(1.5), np.array([1])],
     {"mode": "constant"}),
    ("Slice", [np.arange(24.0).reshape(4, 6), np.array([3, -1]), np.array([-10, 0]), np.array([0, 1]),
               np.array([-2, -2])], {}),
    ("GatherND", [np.arange(24.0).reshape(2, 3, 4), np.array([[1, -1], [0, 2]])], {"batch_dims": 0}),
    ("ScatterElements", [np.zeros((3, 3)), np.array([[0, 0, 2]]), np.ones((1, 3))], {"axis": 0, "reduction": "add"}),
    ("TopK", [np.array([[3.0, 1.0, 3.0, 2.0]]), np.array([3])], {"axis": -1, "largest": 1, "sorted": 1}),
    ("CumSum", [np.arange(6.0).reshape(2, 3), np.array(1)], {"exclusive": 1, "reverse": 1}),
    ("Einsum", [np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)], {"equation": "ij,jk->ik"}),
    ("Trilu", [np.arange(16.0).reshape(4, 4), np.array(1)], {"upper": 0}),
    ("DepthToSpace", [np.arange(16.0).reshape(1, 4, 2, 2)], {"blocksize": 2, "mode": "CRD"}),
])
def test_torch_backend_equals_numpy(op: str, inputs: list[Any], attrs: dict[str, Any]):
    import torch

    tk = torch_kernels()
    a = conc(op, *inputs, opset=18, **attrs)
    b = conc(op, *[torch.as_tensor(np.asarray(v)) for v in inputs], opset=18, k=tk, **attrs)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), tk.to_numpy(y))


def test_onnxruntime_agrees_with_gather_elements_smaller_index_dims():
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[2, 0], [1, 1]], np.int64)
    m = make_model([N("GatherElements", ["x", "i"], ["y"], axis=0)], [("x", F, [3, 4])], [("y", F, [2, 2])],
                   {"i": idx}, opset=13)
    (out,) = ort_run(m, {"x": data})
    np.testing.assert_array_equal(np.asarray(conc("GatherElements", data, idx, axis=0)[0]), out)
    _ = numpy_helper

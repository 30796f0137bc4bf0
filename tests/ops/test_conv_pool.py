"""Targeted tests of Conv, ConvTranspose, the pools and Resize (tricky parts and speed).

The registry-driven property tests (test_op_properties.py) check soundness, exactness and
conformance on random samples; these tests pin down what those do not: coarse boxes stay
coarse and are exactly as tight as the full-resolution computation, padding effects on
coarse boxes, weight boxes, infinities, torch == numpy, and that checks never import torch.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

from numsentry.domains.box import Box
from numsentry.ops import REGISTRY
from numsentry.ops.apply import apply_interval
from numsentry.ops.kernels import NUMPY
from numsentry.ops.registry import Ctx

RNG = np.random.default_rng(7)


def _iv(op: str, *inputs: Box | None, **attrs: Any) -> tuple[Box, ...]:
    d = REGISTRY.lookup("", op, 19)
    assert d is not None
    return apply_interval(d, Ctx(op_type=op), list(inputs), attrs)


def _c(op: str, k: Any, *inputs: Any, **attrs: Any) -> Any:
    d = REGISTRY.lookup("", op, 19)
    assert d is not None and d.concrete is not None
    return d.concrete(k, *inputs, **attrs)


def _refined(box: Box) -> Box:
    """The same box with bounds materialised at full resolution (forces the full path)."""
    lo, hi = box.full()
    return Box(np.array(lo), np.array(hi), box.shape, box.dtype, box.nan)


def _close_hull(coarse: Box, full: Box, rel: float = 1e-5) -> None:
    """The coarse result is the hull of the full-resolution result (up to rounding slack)."""
    c_lo, c_hi = coarse.bounds64()
    f_lo, f_hi = full.full()
    axes = tuple(range(2, full.rank))
    h_lo = f_lo.min(axis=axes, keepdims=True)
    h_hi = f_hi.max(axis=axes, keepdims=True)
    scale = 1.0 + np.maximum(np.abs(h_lo), np.abs(h_hi))
    assert np.all(np.abs(np.broadcast_to(c_lo, h_lo.shape) - h_lo) <= rel * scale)
    assert np.all(np.abs(np.broadcast_to(c_hi, h_hi.shape) - h_hi) <= rel * scale)


# ---- Conv ------------------------------------------------------------------------------


CONV_CASES = [
    dict(pads=[1, 1, 1, 1]),
    dict(pads=[0, 2, 1, 0], strides=[2, 1]),
    dict(pads=[2, 2, 2, 2], dilations=[2, 2]),
    dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(auto_pad="SAME_LOWER"),
    dict(auto_pad="VALID", group=2),
    dict(pads=[3, 3, 3, 3]),  # windows entirely in the padding: bias only
]


@pytest.mark.parametrize("attrs", CONV_CASES)
def test_conv_coarse_is_the_hull_of_the_full_computation(attrs: dict[str, Any]) -> None:
    group = attrs.get("group", 1)
    x = Box.range(np.array([-1.0, 0.0, 0.5, 2.0])[None, :, None, None],
                  np.array([1.0, 3.0, 0.5, 2.5])[None, :, None, None], (1, 4, 5, 6), np.dtype(np.float32))
    w = Box.point(RNG.standard_normal((6, 4 // group, 3, 3)).astype(np.float32))
    b = Box.point(RNG.standard_normal(6).astype(np.float32))
    (coarse,) = _iv("Conv", x, w, b, kernel_shape=[3, 3], **attrs)
    (full,) = _iv("Conv", _refined(x), w, b, kernel_shape=[3, 3], **attrs)
    assert coarse.blocks()[2:] == (1, 1)
    assert coarse.shape == full.shape
    _close_hull(coarse, full)


def test_conv_coarse_path_is_fast_and_stays_coarse() -> None:
    x = Box.range(0.0, 1.0, (1, 256, 56, 56), np.dtype(np.float32))
    w = Box.point((RNG.standard_normal((256, 256, 3, 3)) * 0.03).astype(np.float32))
    t0 = time.perf_counter()
    (y,) = _iv("Conv", x, w, None, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    assert time.perf_counter() - t0 < 2.0
    assert y.blocks() == (1, 256, 1, 1)
    assert np.all(y.lo <= y.hi)


def test_conv_coarse_bounds_contain_runtime_values() -> None:
    x = Box.range(-2.0, 3.0, (2, 3, 6, 7), np.dtype(np.float32))
    w = RNG.standard_normal((4, 3, 3, 2)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    attrs = dict(kernel_shape=[3, 2], pads=[1, 0, 2, 1], strides=[2, 1])
    (y,) = _iv("Conv", x, Box.point(w), Box.point(b), **attrs)
    for pick in range(6):
        xs = RNG.uniform(-2, 3, x.shape).astype(np.float32)
        if pick < 2:
            xs = np.where(RNG.random(x.shape) < 0.5, -2.0, 3.0).astype(np.float32)
        out = _c("Conv", NUMPY, xs, w, b, **attrs)
        assert y.contains(out).all()


def test_conv_point_input_is_tight() -> None:
    xs = RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((2, 3, 3, 3)).astype(np.float32)
    (y,) = _iv("Conv", Box.point(xs), Box.point(w), None, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    ref = _c("Conv", NUMPY, xs.astype(np.float64), w.astype(np.float64), None, kernel_shape=[3, 3],
             pads=[1, 1, 1, 1])
    lo, hi = y.full()
    assert np.all(lo <= ref) and np.all(ref <= hi)
    assert np.max(hi - lo) < 1e-4


def test_conv_weight_box_scalar_range() -> None:
    """--weights trainable: one range for the whole weight tensor."""
    x = Box.range(0.0, 1.0, (1, 3, 5, 5), np.dtype(np.float32))
    w = Box.range(-0.5, 0.25, (4, 3, 3, 3), np.dtype(np.float32))
    (coarse,) = _iv("Conv", x, w, None, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    # worst case: 27 taps of x in [0, 1] times w in [-0.5, 0.25] (interior positions)
    assert coarse.min() == pytest.approx(-13.5, rel=1e-5)
    assert coarse.max() == pytest.approx(6.75, rel=1e-5)
    (full,) = _iv("Conv", _refined(x), w, None, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    _close_hull(coarse, full)
    for _ in range(4):
        out = _c("Conv", NUMPY, RNG.uniform(0, 1, x.shape).astype(np.float32),
                 RNG.uniform(-0.5, 0.25, w.shape).astype(np.float32), None, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        assert coarse.contains(out).all()


def test_conv_infinite_input_makes_its_group_unbounded() -> None:
    lo = np.array([0.0, 0.0, -np.inf, 0.0])[None, :, None, None]
    hi = np.array([1.0, 1.0, 1.0, 1.0])[None, :, None, None]
    x = Box.range(lo, hi, (1, 4, 4, 4), np.dtype(np.float32))
    w = Box.point(np.ones((4, 2, 1, 1), np.float32))
    (y,) = _iv("Conv", x, w, None, kernel_shape=[1, 1], group=2)
    ylo, yhi = y.full()
    assert y.nan
    assert np.all(np.isfinite(ylo[:, :2])) and np.all(ylo[:, 2:] == -np.inf) and np.all(yhi[:, 2:] == np.inf)


def test_conv_transpose_coarse_is_the_hull_of_the_full_computation() -> None:
    x = Box.range(-1.0, 2.0, (1, 2, 3, 4), np.dtype(np.float32))
    w = Box.point(RNG.standard_normal((2, 3, 3, 2)).astype(np.float32))
    attrs = dict(kernel_shape=[3, 2], strides=[2, 3], pads=[1, 0, 0, 1], output_padding=[1, 2])
    (coarse,) = _iv("ConvTranspose", x, w, None, **attrs)
    (full,) = _iv("ConvTranspose", _refined(x), w, None, **attrs)
    assert coarse.shape == full.shape == (1, 3, 7, 12)
    _close_hull(coarse, full)


def test_conv_transpose_same_pads_cover_both_runtime_conventions() -> None:
    """onnxruntime splits an odd SAME padding the other way round from the spec."""
    xs = RNG.standard_normal((1, 1, 3)).astype(np.float32)
    w = RNG.standard_normal((1, 1, 2)).astype(np.float32)
    attrs = dict(kernel_shape=[2], strides=[2], auto_pad="SAME_UPPER", output_shape=[5])
    (y,) = _iv("ConvTranspose", Box.point(xs), Box.point(w), None, **attrs)
    full = np.zeros(6)
    for i in range(3):
        full[2 * i:2 * i + 2] += xs[0, 0, i] * w[0, 0]
    for pb in (0, 1):  # total padding 1: begin 0 (spec) or 1 (onnxruntime)
        assert y.contains(full[pb:pb + 5].reshape(1, 1, 5), atol=1e-5).all()


# ---- pools -----------------------------------------------------------------------------


def test_maxpool_coarse_stays_coarse_and_indices_bounded() -> None:
    x = Box.range(np.array([-1.0, 2.0])[None, :, None, None], np.array([1.0, 3.0])[None, :, None, None],
                  (2, 2, 7, 7), np.dtype(np.float32))
    y, idx = _iv("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    assert y.blocks() == (1, 2, 1, 1)
    assert (y.min(), y.max()) == (-1.0, 3.0)
    assert idx.dtype == np.int64 and idx.min() == 0 and idx.max() == 2 * 2 * 49 - 1
    xs = RNG.uniform(-1, 3, x.shape).astype(np.float32)
    _, ind = _c("MaxPool", NUMPY, xs, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    assert idx.contains(ind).all()


def test_maxpool_window_inside_padding_gives_lowest_value() -> None:
    x = Box.range(1.0, 2.0, (1, 1, 1, 1), np.dtype(np.float32))
    y, _ = _iv("MaxPool", x, kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1])
    lowest = -float(np.finfo(np.float32).max)
    assert y.min() == lowest and y.max() == 2.0
    out, _ = _c("MaxPool", NUMPY, np.full((1, 1, 1, 1), 1.5, np.float32), kernel_shape=[2, 2],
                dilations=[2, 2], pads=[1, 1, 1, 1])
    assert out.min() == lowest


@pytest.mark.parametrize("cip", [0, 1])
def test_avgpool_coarse_padding(cip: int) -> None:
    x = Box.range(1.0, 2.0, (1, 1, 5, 5), np.dtype(np.float32))
    (y,) = _iv("AveragePool", x, kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=cip)
    assert y.blocks() == (1, 1, 1, 1)
    # corner windows see 4 of 9 elements: with the pad counted the mean can drop to 4/9
    assert y.min() == pytest.approx(4 / 9 if cip else 1.0, rel=1e-5)
    assert y.max() == pytest.approx(2.0, rel=1e-5)
    (full,) = _iv("AveragePool", _refined(x), kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=cip)
    _close_hull(y, full)


def test_global_pools() -> None:
    x = Box.range(-2.0, 5.0, (2, 3, 4, 4), np.dtype(np.float32))
    (a,) = _iv("GlobalAveragePool", x)
    (m,) = _iv("GlobalMaxPool", x)
    assert a.shape == m.shape == (2, 3, 1, 1)
    assert a.min() == pytest.approx(-2.0, rel=1e-5) and a.max() == pytest.approx(5.0, rel=1e-5)
    assert (m.min(), m.max()) == (-2.0, 5.0)


# ---- Resize ----------------------------------------------------------------------------


def test_resize_coarse_linear_stays_in_range_and_cubic_overshoots() -> None:
    x = Box.range(0.0, 1.0, (1, 2, 8, 8), np.dtype(np.float32))
    scales = Box.point(np.array([1, 1, 2, 2], np.float32))
    (lin,) = _iv("Resize", x, None, scales, None, mode="linear")
    (cub,) = _iv("Resize", x, None, scales, None, mode="cubic")
    (near,) = _iv("Resize", x, None, scales, None, mode="nearest")
    for b in (lin, cub, near):
        assert b.shape == (1, 2, 16, 16) and b.blocks() == (1, 1, 1, 1)
    assert near.min() == 0.0 and near.max() == 1.0
    assert lin.min() >= -1e-5 and lin.max() <= 1 + 1e-5
    # negative cubic lobes: sum |w| per axis > 1, the interval must leave [0, 1]
    assert cub.min() < -0.05 and cub.max() > 1.05
    xs = np.where(RNG.random(x.shape) < 0.5, 0.0, 1.0).astype(np.float32)
    out = _c("Resize", NUMPY, xs, None, np.array([1, 1, 2, 2], np.float32), None, mode="cubic")
    assert cub.contains(out).all()


def test_resize_extrapolation_value_joins_the_hull() -> None:
    x = Box.range(0.0, 1.0, (1, 1, 4, 4), np.dtype(np.float32))
    roi = Box.point(np.array([0, 0, -0.5, -0.5, 1, 1, 1.5, 1.5], np.float32))
    sizes = Box.point(np.array([1, 1, 6, 6], np.int64))
    (y,) = _iv("Resize", x, roi, None, sizes, mode="linear", coordinate_transformation_mode="tf_crop_and_resize",
               extrapolation_value=-9.0)
    assert y.min() == pytest.approx(-9.0, rel=1e-5) and y.max() == pytest.approx(1.0, rel=1e-4)


# ---- backends ----------------------------------------------------------------------------


TORCH_CASES: list[tuple[str, list[Any], dict[str, Any]]] = [
    ("Conv", [(1, 4, 6, 5), (6, 2, 3, 2), (6,)], dict(kernel_shape=[3, 2], group=2, pads=[1, 0, 2, 1], strides=[2, 1])),
    ("Conv", [(2, 2, 7), (3, 2, 3)], dict(kernel_shape=[3], dilations=[2], auto_pad="SAME_LOWER")),
    ("ConvTranspose", [(1, 2, 3, 3), (2, 3, 2, 3), (3,)], dict(kernel_shape=[2, 3], strides=[2, 2],
                                                                output_padding=[1, 0], pads=[0, 1, 1, 0])),
    ("MaxPool", [(1, 2, 5, 6)], dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 1, 1, 0], ceil_mode=1)),
    ("AveragePool", [(1, 2, 5, 6)], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("GlobalAveragePool", [(2, 3, 4, 5)], {}),
    ("Resize", [(1, 2, 3, 4), None, np.array([1, 1, 2, 1.5], np.float32)], dict(mode="cubic")),
    ("Resize", [(1, 2, 3, 4), None, np.array([1, 1, 0.5, 2], np.float32)],
     dict(mode="linear", coordinate_transformation_mode="align_corners")),
]


@pytest.mark.parametrize(("op", "shapes", "attrs"), TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_torch_backend_equals_numpy(op: str, shapes: list[Any], attrs: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    from numsentry.ops.kernels import torch_kernels

    vals = [RNG.standard_normal(s) if isinstance(s, tuple) else s for s in shapes]
    outs_np = _c(op, NUMPY, *vals, **attrs)
    t_in = [torch.from_numpy(np.asarray(v)) if v is not None else None for v in vals]
    outs_t = _c(op, torch_kernels(), *t_in, **attrs)
    outs_np = outs_np if isinstance(outs_np, tuple) else (outs_np,)
    outs_t = outs_t if isinstance(outs_t, tuple) else (outs_t,)
    for a, b in zip(outs_np, outs_t, strict=True):
        np.testing.assert_allclose(np.asarray(a), b.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_check_does_not_import_torch(tmp_path: Any) -> None:
    """The interval rules and numpy kernels of these ops never import torch."""
    code = """
import sys
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper
w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2]),
         helper.make_node("Resize", ["p", "", "s"], ["y"], mode="linear")]
s = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])], initializer=[w, s])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
from numsentry.api import check_model
r = check_model(m, {"x": (0.0, 1.0)})
assert not r.unsupported, r.unsupported
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-2000:]


def test_point_weight_blocks_match_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights converted a block of output channels at a time give the same tap intervals."""
    from numsentry.ops import conv as conv_mod

    x = Box.range(RNG.uniform(-1, 0, (1, 6, 1, 1)), RNG.uniform(0, 2, (1, 6, 1, 1)), (1, 6, 5, 5),
                  np.dtype(np.float32))
    w = Box.point(RNG.standard_normal((10, 3, 3, 3)).astype(np.float32))
    (one,) = _iv("Conv", x, w, None, kernel_shape=[3, 3], group=2, pads=[1, 1, 1, 1])
    monkeypatch.setattr(conv_mod, "_BLOCK_BYTES", 8 * 2 * 3 * 9 * 2)  # two output channels a block
    (blocks,) = _iv("Conv", x, w, None, kernel_shape=[3, 3], group=2, pads=[1, 1, 1, 1])
    np.testing.assert_array_equal(one.lo, blocks.lo)
    np.testing.assert_array_equal(one.hi, blocks.hi)

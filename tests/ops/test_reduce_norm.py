"""Targeted tests of the reduction, normalisation, loss and attention rules.

Tightness facts, hazards that must and must not fire, coarse boxes staying coarse, and the
runtime behaviour the rules model (onnxruntime witnesses where a claim depends on it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from numsentry.domains.box import Box
from numsentry.ops import REGISTRY
from numsentry.ops.apply import apply_concrete, apply_interval
from numsentry.ops.kernels import NUMPY
from numsentry.ops.registry import Ctx, OpDef

F32 = np.dtype(np.float32)


def _op(name: str, opset: int) -> OpDef:
    op = REGISTRY.lookup("", name, opset)
    assert op is not None, name
    return op


def _iv(name: str, opset: int, inputs: list[Box | None], **attrs: Any) -> tuple[Box, ...]:
    return apply_interval(_op(name, opset), Ctx(opset=opset), inputs, attrs)


def _fired(name: str, opset: int, inputs: list[Box | None], **attrs: Any) -> set[str]:
    op = _op(name, opset)
    ctx = Ctx(opset=opset)
    return {hz.rule for hz in op.hazards if hz.check(ctx, inputs, attrs) is not None}


def _rng(lo: float, hi: float, shape: tuple[int, ...], dtype: Any = F32) -> Box:
    return Box.range(lo, hi, shape, np.dtype(dtype))


def _pt(v: Any, dtype: Any = np.float32) -> Box:
    return Box.point(np.asarray(v, dtype=dtype))


def _ort(op: str, opset: int, inputs: list[np.ndarray | None], attrs: dict[str, Any], n_out: int = 1) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    from onnx import TypeProto, helper

    names, vis, feeds = [], [], {}
    for i, x in enumerate(inputs):
        if x is None:
            names.append("")
            continue
        names.append(f"i{i}")
        vis.append(helper.make_tensor_value_info(f"i{i}", helper.np_dtype_to_tensor_dtype(x.dtype), x.shape))
        feeds[f"i{i}"] = x
    outs = [f"o{j}" for j in range(n_out)]
    g = helper.make_graph([helper.make_node(op, names, outs, **attrs)], "g", vis,
                          [helper.make_value_info(o, TypeProto()) for o in outs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


# ---- reductions ---------------------------------------------------------------------------


def test_sum_of_coarse_block_scales_by_count_and_stays_coarse() -> None:
    (y,) = _iv("ReduceSum", 13, [_rng(0.0, 1.0, (3, 4)), _pt([1], np.int64)], keepdims=1)
    assert y.shape == (3, 1) and y.blocks() == (1, 1)
    assert y.min() <= 0.0 and 0.0 - y.min() < 1e-6
    assert 4.0 <= y.max() < 4.0 + 1e-5


def test_sum_of_refined_dimension_adds_the_bounds() -> None:
    x = Box(np.array([[0.0, 1.0, 2.0]]), np.array([[1.0, 2.0, 3.0]]), (2, 3), F32)
    (y,) = _iv("ReduceSum", 13, [x, _pt([-1], np.int64)], keepdims=0)
    assert y.shape == (2,)
    assert 3.0 - 1e-5 < y.min() <= 3.0 and 6.0 <= y.max() < 6.0 + 1e-5


def test_sum_partial_overflow_in_float16_can_be_inf() -> None:
    x = Box.point(np.array([6e4, 6e4, -6e4], dtype=np.float16))
    (y,) = _iv("ReduceSum", 13, [x], keepdims=0)
    with np.errstate(over="ignore"):
        seq = np.float16(np.float16(6e4) + np.float16(6e4)) + np.float16(-6e4)  # left to right
    assert np.isinf(seq) and bool(y.contains(seq).all())
    assert bool(y.contains(np.sum(x.value)).all())  # numpy accumulates float16 in float32


def test_prod_of_independent_factors_is_not_a_cube() -> None:
    (y,) = _iv("ReduceProd", 18, [_rng(-2.0, 3.0, (3,))], keepdims=0)
    assert -18.0 - 1e-4 < y.min() <= -18.0  # (-2) * 3 * 3, not (-2)^3
    assert 27.0 <= y.max() < 27.0 + 1e-4


def test_prod_overflow_then_zero_may_be_nan() -> None:
    x = Box.point(np.array([1e30, 1e30, 1e-30, 0.0], dtype=np.float32))
    (y,) = _iv("ReduceProd", 18, [x], keepdims=0)
    assert y.nan and np.isinf(y.max())
    with np.errstate(all="ignore"):
        assert bool(y.contains(np.prod(x.value)).all())


def test_logsum_hazard() -> None:
    assert _fired("ReduceLogSum", 18, [_rng(-1.0, 2.0, (4,))]) == {"NUM001"}
    assert _fired("ReduceLogSum", 18, [_rng(0.0, 2.0, (4,))]) == {"NUM001"}
    assert _fired("ReduceLogSum", 18, [_rng(0.5, 2.0, (4,))]) == set()


def test_logsumexp_is_stable_like_onnxruntime() -> None:
    x = np.array([[100.0, 100.0]], np.float32)
    (y,) = _iv("ReduceLogSumExp", 18, [Box.point(x), _pt([1], np.int64)])
    (o,) = _ort("ReduceLogSumExp", 18, [x, np.array([1], np.int64)], {})
    assert np.isfinite(o).all() and bool(y.contains(o).all()) and y.max() < 101
    # a wide box stays finite too: no NUM003 unless the result itself exceeds the format
    (yb,) = _iv("ReduceLogSumExp", 18, [_rng(-1e3, 1e3, (2, 8)), _pt([1], np.int64)])
    assert yb.finite and yb.max() < 1e3 + 3


def test_l2_overflows_with_its_squares() -> None:
    x = np.array([[1e20, 1e20]], np.float32)
    (y,) = _iv("ReduceL2", 13, [Box.point(x)], axes=[1])
    (o,) = _ort("ReduceL2", 13, [x], {"axes": [1]})
    assert np.isinf(o).all() and bool(y.contains(o).all())


def test_noop_with_empty_axes_keeps_the_elementwise_part() -> None:
    x = _rng(-2.0, 3.0, (2, 3))
    (y,) = _iv("ReduceSumSquare", 18, [x, _pt(np.zeros(0), np.int64)], noop_with_empty_axes=1)
    assert y.shape == (2, 3) and y.min() == 0.0 and 9.0 <= y.max() < 9.001
    (m,) = _iv("ReduceMax", 18, [x, _pt(np.zeros(0), np.int64)], noop_with_empty_axes=1)
    assert m.shape == (2, 3)


def test_reduce_max_is_exact_and_coarse() -> None:
    (y,) = _iv("ReduceMax", 18, [_rng(-1.0, 5.0, (2, 3, 4)), _pt([0, 2], np.int64)], keepdims=0)
    assert y.shape == (3,) and y.blocks() == (1,) and (y.min(), y.max()) == (-1.0, 5.0)


def test_reduce_axes_must_be_constant() -> None:
    with pytest.raises(NotImplementedError):
        _iv("ReduceSum", 13, [_rng(0, 1, (2, 2)), _rng(0, 1, (1,), np.int64)])


# ---- normalisations -----------------------------------------------------------------------


def _ln(x: Box, n: int, eps: float = 1e-5) -> tuple[Box, ...]:
    return _iv("LayerNormalization", 17, [x, _pt(np.ones(n)), _pt(np.zeros(n))], axis=-1, epsilon=eps)


def test_layernorm_is_bounded_by_sqrt_n_whatever_the_input_range() -> None:
    y, mean, inv = _ln(_rng(-1e3, 1e3, (2, 4)), 4)
    # sqrt(n) = 2, plus onnxruntime's variance error on short rows
    assert y.max() <= 2.0 * (1 + 1e-2) and y.min() >= -2.0 * (1 + 1e-2)
    y16, _, _ = _ln(_rng(-1e3, 1e3, (2, 16)), 16)
    assert y16.max() <= 4.0 * (1 + 1e-4)
    one, zero = _rng(1.0, 1.0, (4,)), _rng(0.0, 0.0, (4,))
    (yc, _, _) = _iv("LayerNormalization", 17, [_rng(-1e3, 1e3, (2, 4)), one, zero], axis=-1)
    assert yc.blocks() == (1, 1)  # coarse input and parameters stay coarse
    assert mean.shape == (2, 1) and mean.min() > -1e3 - 1 and mean.max() < 1e3 + 1
    assert inv.max() <= 1 / np.sqrt(1e-5) * (1 + 1e-4)


def test_layernorm_small_range_is_tighter_than_sqrt_n() -> None:
    y, _, _ = _ln(_rng(-1e-4, 1e-4, (1, 768)), 768)
    # |x - mean| <= 2e-4 so |y| <= 2e-4 / sqrt(1e-5) ~ 0.063, far below sqrt(768)
    assert y.max() < 0.07


def test_layernorm_hazard_only_without_epsilon() -> None:
    x = _rng(-1.0, 1.0, (2, 8))
    assert _fired("LayerNormalization", 17, [x, _pt(np.ones(8)), None], epsilon=1e-5) == set()
    assert _fired("LayerNormalization", 17, [x, _pt(np.ones(8)), None], epsilon=0.0) == {"NUM002"}
    # disjoint element ranges cannot all be equal: the variance is bounded away from 0
    sep = Box(np.array([[0.0, 5.0]]), np.array([[1.0, 6.0]]), (1, 2), F32)
    assert _fired("LayerNormalization", 17, [sep, _pt(np.ones(2)), None], epsilon=0.0) == set()


def test_layernorm_contains_onnxruntime_beyond_sqrt_n_minus_1() -> None:
    # onnxruntime centres at the float32-rounded mean: |y| reaches sqrt(n) > sqrt(n - 1)
    x = np.array([[1e10, 1e10, np.float32(1e10) * np.float32(1 + 2**-23)]], np.float32)
    sc, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    outs = _ort("LayerNormalization", 17, [x, sc, b], {"axis": -1}, n_out=3)
    boxes = _ln(Box.point(x), 3)
    for o, bx in zip(outs, boxes, strict=True):
        assert bool(bx.contains(o).all()), (o, bx)


def test_layernorm_short_rows_contain_onnxruntime_variance_error() -> None:
    # rows of < 8 elements: onnxruntime's variance errs by ~u max|x| max|x - c| (measured)
    rng = np.random.default_rng(0)
    lo, hi = np.float32(4.185113), np.float32(4.1934915)
    x = rng.uniform(lo, hi, (200, 2)).astype(np.float32)
    sc, b = np.ones(2, np.float32), np.zeros(2, np.float32)
    outs = _ort("LayerNormalization", 17, [x, sc, b], {"axis": -1}, n_out=3)
    boxes = _iv("LayerNormalization", 17, [Box.range(lo, hi, (200, 2), F32), _pt(sc), _pt(b)], axis=-1)
    for o, bx in zip(outs, boxes, strict=True):
        assert bool(bx.contains(o).all())


def test_layernorm_tiny_epsilon_stays_bounded() -> None:
    # BERT-style epsilon 1e-12 over 768 features: no hazard, |y| <= sqrt(768) up to the variance error
    x = _rng(-10.0, 10.0, (1, 768))
    assert _fired("LayerNormalization", 17, [x, _pt(np.ones(768)), None], epsilon=1e-12) == set()
    y, _, _ = _ln(x, 768, eps=1e-12)
    assert y.finite and y.max() <= np.sqrt(768) * 1.02


def test_groupnorm_cancellation_hazard_is_real_on_onnxruntime() -> None:
    # the function body computes mean(x^2) - mean(x)^2 in float32: constant groups give NaN
    x = np.full((1, 2, 512), 0.7, np.float32)
    sc, b = np.ones(2, np.float32), np.zeros(2, np.float32)
    (o,) = _ort("GroupNormalization", 21, [x, sc, b], {"num_groups": 1})
    box = _rng(0.5, 1.0, (1, 2, 512))
    assert {"NUM004", "NUM002"} <= _fired("GroupNormalization", 21, [box, _pt(sc), _pt(b)], num_groups=1)
    (y,) = _iv("GroupNormalization", 21, [box, _pt(sc), _pt(b)], num_groups=1)
    assert y.nan and bool(y.contains(o).all())


def test_groupnorm_small_groups_do_not_cancel() -> None:
    box = _rng(-1.0, 1.0, (1, 4, 2))
    sc, b = _pt(np.ones(2)), _pt(np.zeros(2))
    assert _fired("GroupNormalization", 21 - 3, [box, sc, b], num_groups=2) == set()
    (y,) = _iv("GroupNormalization", 18, [box, sc, b], num_groups=2)
    assert y.finite and y.max() <= np.sqrt(3) + 0.1  # n = 4: |y| <= sqrt(n - 1) + error


def test_batchnorm_hazards_follow_the_variance() -> None:
    x = _rng(-1.0, 1.0, (1, 2, 3, 3))
    ones, zeros = _pt(np.ones(2)), _pt(np.zeros(2))
    assert _fired("BatchNormalization", 15, [x, ones, zeros, zeros, ones]) == set()
    bad = _rng(-1.0, 1.0, (2,))
    assert _fired("BatchNormalization", 15, [x, ones, zeros, zeros, bad]) == {"NUM004", "NUM002"}
    (y,) = _iv("BatchNormalization", 15, [x, ones, zeros, zeros, bad])
    assert y.nan and not y.finite
    (y2,) = _iv("BatchNormalization", 15, [x, ones, zeros, zeros, ones])
    assert y2.finite and y2.max() < 1.001


def test_batchnorm_training_mode_matches_reference() -> None:
    from onnx import TypeProto, helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 2)).astype(np.float32)
    p = [np.array([1.0, 2.0], np.float32), np.array([0.5, -0.5], np.float32),
         np.array([0.1, 0.2], np.float32), np.array([1.0, 2.0], np.float32)]
    vis = [helper.make_tensor_value_info(n, 1, a.shape) for n, a in zip("xsbmv", [x, *p], strict=True)]
    node = helper.make_node("BatchNormalization", list("xsbmv"), ["y", "rm", "rv"], training_mode=1)
    g = helper.make_graph([node], "g", vis, [helper.make_value_info(o, TypeProto()) for o in ("y", "rm", "rv")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    ref = ReferenceEvaluator(m).run(None, dict(zip("xsbmv", [x, *p], strict=True)))
    outs = apply_concrete(_op("BatchNormalization", 15), NUMPY, [x, *p], {"training_mode": 1})
    boxes = _iv("BatchNormalization", 15, [_rng(-3, 3, x.shape), *(Box.point(a) for a in p)], training_mode=1)
    for r, o, bx in zip(ref, outs, boxes, strict=True):
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-6)
        assert bool(bx.contains(r).all())


def test_lpnorm_has_no_zero_hazard_and_is_tight() -> None:
    x = _rng(0.0, 1.0, (2, 3))
    assert not _op("LpNormalization", 22).hazards
    (y,) = _iv("LpNormalization", 22, [x], axis=-1, p=2)
    assert y.min() == 0.0 and y.max() >= 1.0
    (yp,) = _iv("LpNormalization", 22, [_rng(0.5, 1.0, (2, 3))], axis=-1, p=2)
    # no underflow: exact extremes 1 / sqrt(1 + 2 * 0.25) and 0.5 / sqrt(0.25 + 2), up to rounding
    assert abs(yp.max() - 1 / np.sqrt(1.5)) < 1e-5 and abs(yp.min() - 0.5 / np.sqrt(2.25)) < 1e-5
    (o,) = _ort("LpNormalization", 22, [np.zeros((1, 3), np.float32)], {"axis": -1, "p": 2})
    assert np.all(o == 0)  # onnxruntime guards the zero norm
    (y2,) = _iv("LpNormalization", 22, [_rng(1.0, 2.0, (1, 4))], axis=-1, p=2)
    assert abs(y2.max() - 2 / np.sqrt(7)) < 1e-5 and abs(y2.min() - 1 / np.sqrt(13)) < 1e-5


def test_lpnorm_underflow_above_one_is_contained() -> None:
    # a square in the subnormal range rounds down: x / ||x|| exceeds 1 on onnxruntime
    for x in (np.array([[1e-20, 1e-30, 0.0]], np.float32), np.array([[4.5693925e-23, 0.0, 0.0]], np.float32)):
        (o,) = _ort("LpNormalization", 22, [x], {"axis": -1, "p": 2})
        (y,) = _iv("LpNormalization", 22, [Box.point(x)], axis=-1, p=2)
        assert o.max() > 1.0 and bool(y.contains(o).all())
    (o,) = _ort("LpNormalization", 22, [np.array([[4.5693925e-23, 0.0, 0.0]], np.float32)], {"axis": -1, "p": 2})
    (yb,) = _iv("LpNormalization", 22, [_rng(0.0, 1.0, (1, 3))], axis=-1, p=2)
    assert o.max() > 1.2 and bool(yb.contains(o).all())


def test_rms_and_instance_norm_bounds() -> None:
    (y,) = _iv("RMSNormalization", 23, [_rng(-5.0, 5.0, (2, 9)), _pt(np.ones(9))], epsilon=1e-5)
    assert y.max() <= 3.0 * (1 + 1e-4)  # |x_i| <= sqrt(n * mean(x^2)), sqrt(9) = 3
    assert _fired("RMSNormalization", 23, [_rng(-5.0, 5.0, (2, 9)), _pt(np.ones(9))], epsilon=0.0) == {"NUM002"}
    (z,) = _iv("InstanceNormalization", 22, [_rng(-5.0, 5.0, (1, 2, 16)), _pt(np.ones(2)), _pt(np.zeros(2))])
    assert z.finite and z.max() <= 4.0 * 1.01  # sqrt(16) plus the fused-form error


# ---- losses -------------------------------------------------------------------------------


def test_nll_mean_division_hazard() -> None:
    x = _rng(-5.0, 0.0, (3, 4))
    t = _pt([0, 1, 2], np.int64)
    assert _fired("NegativeLogLikelihoodLoss", 22, [x, t, None]) == set()
    assert _fired("NegativeLogLikelihoodLoss", 22, [x, t, _rng(0.5, 1.0, (4,))]) == set()
    assert _fired("NegativeLogLikelihoodLoss", 22, [x, t, _rng(-1.0, 1.0, (4,))]) == {"NUM002"}
    assert _fired("NegativeLogLikelihoodLoss", 22, [x, _pt([1, 1, 1], np.int64), None], ignore_index=1) == {"NUM002"}
    assert _fired("NegativeLogLikelihoodLoss", 22, [x, t, None], ignore_index=1) == set()
    assert _fired("NegativeLogLikelihoodLoss", 22, [x, _pt([1, 1, 1], np.int64), None], ignore_index=1,
                  reduction="sum") == set()


def test_nll_weighted_mean_stays_in_the_hull() -> None:
    (y,) = _iv("NegativeLogLikelihoodLoss", 22, [_rng(-5.0, -1.0, (3, 4)), _pt([0, 1, 2], np.int64),
                                                 _rng(0.1, 10.0, (4,))])
    assert y.min() > 1.0 - 1e-4 and y.max() < 5.0 + 1e-4  # a weighted average of -x


def test_softmax_cross_entropy_is_finite_for_huge_logits() -> None:
    loss, logp = _iv("SoftmaxCrossEntropyLoss", 13, [_rng(-1e3, 1e3, (2, 5)), _pt([0, 4], np.int64)],
                     reduction="none")
    assert loss.finite and logp.finite and loss.max() < 2e3 + np.log(5) + 1
    o = _ort("SoftmaxCrossEntropyLoss", 13, [np.array([[0.0, 1000.0]], np.float32), np.array([0], np.int64)],
             {"reduction": "none"}, n_out=2)
    assert np.isfinite(o[0]).all() and np.isfinite(o[1]).all()


# ---- attention ----------------------------------------------------------------------------


def test_attention_output_stays_in_the_hull_of_v() -> None:
    q = _rng(-100.0, 100.0, (1, 2, 3, 4))
    (y, pk, _pv, qk) = _iv("Attention", 23, [q, q, _rng(-1.0, 1.0, (1, 2, 3, 4))])
    assert y.min() > -1.001 and y.max() < 1.001 and y.finite
    assert pk.shape == (1, 2, 3, 4) and qk.shape == (1, 2, 3, 3)


def test_attention_score_overflow_is_unbounded() -> None:
    q = _rng(-1e20, 1e20, (1, 1, 2, 4))
    (y, *_) = _iv("Attention", 23, [q, q, _rng(-1.0, 1.0, (1, 1, 2, 4))])
    assert y.nan and not y.finite


def test_attention_causal_first_row_sees_only_the_first_key() -> None:
    v = Box(np.array([[[[0.0], [10.0]]]]), np.array([[[[1.0], [11.0]]]]), (1, 1, 2, 1), F32)
    q = _rng(-1.0, 1.0, (1, 1, 2, 1))
    (y, *_) = _iv("Attention", 23, [q, q, v], is_causal=1)
    lo, hi = y.full()
    assert hi[0, 0, 0, 0] < 1.01 and lo[0, 0, 1, 0] > -0.01


# ---- backends -----------------------------------------------------------------------------


@pytest.mark.parametrize("name,opset,inputs,attrs", [
    ("LayerNormalization", 17, [np.linspace(-1, 2, 12).reshape(3, 4), np.ones(4), np.zeros(4)], {"axis": -1}),
    ("GroupNormalization", 18, [np.linspace(-1, 2, 16).reshape(1, 4, 4), np.ones(2), np.zeros(2)], {"num_groups": 2}),
    ("ReduceLogSumExp", 18, [np.linspace(-1, 2, 12).reshape(3, 4), np.array([1])], {}),
    ("NegativeLogLikelihoodLoss", 22, [np.linspace(-3, 0, 12).reshape(3, 4), np.array([0, 3, 1])],
     {"ignore_index": 3}),
    ("Attention", 23, [np.linspace(-1, 1, 24).reshape(1, 2, 3, 4)] * 3, {"is_causal": 1}),
    ("LRN", 13, [np.linspace(-1, 1, 16).reshape(1, 4, 2, 2)], {"size": 3}),
])
def test_torch_backend_equals_numpy(name: str, opset: int, inputs: list[np.ndarray], attrs: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    from numsentry.ops.kernels import torch_kernels

    op = _op(name, opset)
    ins = [np.asarray(a) for a in inputs]
    ref = apply_concrete(op, NUMPY, ins, attrs)
    tk = torch_kernels()
    got = apply_concrete(op, tk, [torch.from_numpy(a) for a in ins], attrs)
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(tk.to_numpy(g), r, rtol=1e-10, atol=1e-12)

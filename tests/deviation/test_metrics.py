"""Deviation metrics on crafted bit patterns (no runtime involved)."""

from __future__ import annotations

import numpy as np
import pytest

from numsentry.deviation.metrics import (
    class_letters,
    compare_outputs,
    d_mad,
    label_output,
    margins,
    output_hash,
    remaining_bits,
    to_format,
    top1_flips,
    topk_changes,
    ulp_distance,
)


def f32(*bits: int) -> np.ndarray:
    return np.array(bits, dtype=np.uint32).view(np.float32)


def test_ulp_distance_float32_patterns() -> None:
    one = f32(0x3F800000)
    assert ulp_distance(one, f32(0x3F800001))[0] == 1
    assert ulp_distance(one, f32(0x3F7FFFFF))[0] == 1  # across the exponent boundary: still 1 ULP
    assert ulp_distance(one, one)[0] == 0
    assert ulp_distance(f32(0x00000000), f32(0x80000000))[0] == 0  # +0 and -0
    assert ulp_distance(f32(0x00000001), f32(0x80000001))[0] == 2  # +-smallest subnormal straddle 0
    assert ulp_distance(f32(0x7F7FFFFF), f32(0x7F800000))[0] == 1  # max finite to inf
    nan = np.array([np.nan], np.float32)
    assert ulp_distance(nan, nan)[0] == 0
    assert np.isinf(ulp_distance(nan, one)[0])
    # symmetric, vectorised
    a, b = f32(0x3F800000, 0xBF800000), f32(0x3F800010, 0xBF800003)
    assert list(ulp_distance(a, b)) == [16, 3] == list(ulp_distance(b, a))


def test_ulp_distance_float64_and_float16_extremes() -> None:
    x = np.array([0.0, 1.0], np.float64)
    y = np.array([np.finfo(np.float64).max, np.nextafter(1.0, 2.0)])
    d = ulp_distance(x, y)
    assert d[0] == float(0x7FEFFFFFFFFFFFFF)
    assert d[1] == 1
    h = np.array([1.0], np.float16)
    assert ulp_distance(h, np.nextafter(h, np.float16(2)))[0] == 1
    assert ulp_distance(np.array([-np.finfo(np.float64).max]), np.array([np.finfo(np.float64).max]))[0] > 1e19


def test_remaining_bits_bit_prefixes() -> None:
    one = f32(0x3F800000)
    assert remaining_bits(one, one)[0] == 23
    assert remaining_bits(one, f32(0x3F800001))[0] == 22  # last significand bit differs
    assert remaining_bits(one, f32(0x3F800100))[0] == 14  # bit 8 differs: 23 - 9
    assert remaining_bits(one, f32(0x3FC00000))[0] == 0  # top significand bit differs
    assert remaining_bits(one, f32(0xBF800000))[0] == 0  # sign differs
    assert remaining_bits(one, f32(0x40000000))[0] == 0  # exponent differs
    assert remaining_bits(one, f32(0x3F7FFFFF))[0] == 0  # 1 ULP apart, but no shared prefix (documented)
    assert remaining_bits(f32(0x00000000), f32(0x80000000))[0] == 23  # +0 == -0
    nan = np.array([np.nan], np.float32)
    assert remaining_bits(nan, nan)[0] == 23
    assert remaining_bits(nan, one)[0] == 0
    d = np.array([1.0], np.float64)
    assert remaining_bits(d, np.nextafter(d, 2.0))[0] == 51
    h = np.array([1.0], np.float16)
    assert remaining_bits(h, np.nextafter(h, np.float16(2)))[0] == 9


def test_format_and_shape_checks() -> None:
    with pytest.raises(ValueError, match="one format"):
        ulp_distance(np.ones(2, np.float32), np.ones(2, np.float64))
    with pytest.raises(ValueError, match="shapes"):
        remaining_bits(np.ones(2, np.float32), np.ones(3, np.float32))
    r = to_format(np.array([1.0 + 2.0**-30]), np.float32)
    assert r.dtype == np.float32 and r[0] == 1.0


def test_class_letters_first_appearance() -> None:
    assert class_letters(["x", "y", "x", None, "z"]) == ["A", "B", "A", None, "C"]
    many = class_letters([str(i) for i in range(30)])
    assert many[25] == "Z" and many[26] == "AA" and many[27] == "AB"


def test_output_hash_sees_bits_and_dtype() -> None:
    a = {"y": np.array([0.0], np.float32)}
    assert output_hash(a) == output_hash({"y": np.array([0.0], np.float32)})
    assert output_hash(a) != output_hash({"y": np.array([-0.0], np.float32)})
    assert output_hash(a) != output_hash({"y": np.array([0.0], np.float64)})
    assert output_hash(a) != output_hash({"z": np.array([0.0], np.float32)})


def test_label_metrics() -> None:
    a = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3], [0.3, 0.2, 0.1]], np.float32)
    b = np.array([[0.9, 0.1, 0.0], [0.5, 0.2, 0.3], [0.3, 0.1, 0.2]], np.float32)
    assert top1_flips(a, b) == 1
    assert topk_changes(a, b, k=2) == 2  # row 0 (top-1) and row 2 (second place)
    assert topk_changes(a, b, k=1) == 1
    m, mu = margins(np.array([[1.0, 3.0, 2.0]], np.float32))
    assert m[0] == 1.0 and mu[0] == 2**22  # 3 - 2: 2^22 float32 ULPs apart (at exponent 1)
    assert d_mad([1.0, 2.0], [2.0, 4.0]) == 1.5
    assert label_output({"loss": np.zeros(()), "probs": np.zeros((2, 3), np.float32)}) == "probs"
    assert label_output({"loss": np.zeros(())}) is None


def test_compare_outputs_crafted() -> None:
    ref = {"logits": f32(0x3F800000, 0x40000000, 0x3F000000, 0x3F800000).reshape(2, 2),
           "idx": np.array([1, 2])}
    same = compare_outputs(ref, {k: v.copy() for k, v in ref.items()})
    assert same.identical and same.remaining_precision_min == 23 and same.max_ulp == 0
    assert same.frac_differing == 0 and same.d_mad == 0 and same.top1_flips == 0 and same.rows == 2
    other = {"logits": f32(0x3F800001, 0x40000000, 0x3F800001, 0x3F800000).reshape(2, 2), "idx": np.array([1, 2])}
    c = compare_outputs(ref, other)
    assert not c.identical
    assert c.remaining_precision_min == 0  # 0.5 vs 1.0000001: exponents differ
    assert c.frac_differing == 0.5
    assert c.top1_flips == 1  # row 1: 0.5 < 1.0 became 1.0000001 > 1.0
    assert c.max_ulp == float(0x3F800001 - 0x3F000000)
    # compared in float32 even when the other side is float64 (a reference)
    ref64 = {"logits": ref["logits"].astype(np.float64) + 1e-12, "idx": ref["idx"]}
    c64 = compare_outputs(ref, ref64, formats={"logits": "float32"})
    assert c64.identical
    # non-float outputs count for identity only
    c_idx = compare_outputs(ref, {"logits": ref["logits"], "idx": np.array([1, 3])})
    assert not c_idx.identical and c_idx.frac_differing == 0
    with pytest.raises(ValueError):
        compare_outputs(ref, {"logits": ref["logits"]})

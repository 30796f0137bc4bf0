"""The onnxruntime confirmation predicate: created at the node, propagated, exact zeros."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from numsentry.ir.graph import Node
from numsentry.search.confirm import Target, fired


def target(op: str, rule: str, after: bool = False) -> Target:
    return Target(Node("n", op, "", ["a", "b"], ["y"], {}, 17, 0), rule, after)


def test_non_finite_output_from_finite_inputs_is_created_here() -> None:
    t = target("Div", "NUM002")
    a, b = np.array([1.0, 2.0], np.float32), np.array([0.0, 1.0], np.float32)
    with np.errstate(divide="ignore"):
        y = a / b
    msg = fired(t, [a, b], [y])
    assert msg is not None and "index (0,)" in msg and "finite inputs" in msg


def test_finite_output_does_not_fire() -> None:
    t = target("Log", "NUM001")
    assert fired(t, [np.array([1e-30], np.float32)], [np.log(np.array([1e-30], np.float32))]) is None


def test_propagated_nan_counts_only_for_after_earlier_findings() -> None:
    ins = [np.array([np.inf], np.float32), np.array([1.0], np.float32)]
    outs = [np.array([np.inf], np.float32)]
    assert fired(target("Div", "NUM002"), ins, outs) is None
    msg = fired(target("Div", "NUM002", after=True), ins, outs)
    assert msg is not None and "already non-finite" in msg


def test_sqrt_zero_gradient_needs_an_exact_zero() -> None:
    t = target("Sqrt", "NUM011")
    sub = np.array([1e-44, 1.0], np.float32)  # subnormal: the derivative is large but finite
    assert fired(t, [sub], [np.sqrt(sub)]) is None
    zero = np.array([0.0, 1.0], np.float32)
    msg = fired(t, [zero], [np.sqrt(zero)])
    assert msg is not None and "exactly 0" in msg
    assert fired(t, [np.array([np.nan], np.float32)], [np.array([np.nan], np.float32)]) is None

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


def test_flush_to_zero_does_not_leak_into_the_calling_thread() -> None:
    """onnxruntime sets FTZ/DAZ on the thread that runs a one-thread session; numsentry restores
    the thread's floating-point environment, so NumPy and torch keep their subnormals."""
    from numsentry.ir.load import load_model
    from numsentry.search.confirm import OrtRunner
    from tests.search import _models as M

    m = load_model(M.exp_model())
    t = Target(next(n for n in m.graph.nodes if n.name == "exp"), "NUM003", False)
    x = {"x": np.array([-100.0, -50.0], np.float32)}
    keep = OrtRunner(m, [], [t], denormal_as_zero=False, threads=1)
    assert keep.run(x, {})["y"][0] > 0  # exp(-100) = 3.8e-44, a subnormal
    flush = OrtRunner(m, [], [t], denormal_as_zero=True, threads=1)  # built after a keeping one
    assert flush.run(x, {})["y"][0] == 0.0  # flushed by onnxruntime ...
    tiny = np.float32(1e-45)
    assert tiny * np.float32(1.0) > 0 and np.isfinite(np.log10(tiny))  # ... but not here
    assert keep.run(x, {})["y"][0] > 0  # nor in the other session

"""Relational refinements the box domain cannot see on its own.

Intervals forget that two operands come from the same tensor. A few ubiquitous patterns are
recognised on the graph and their known bounds intersected into the box result (which keeps
it sound: both the box and the pattern's bound contain every runtime value):

* ``x / ReduceSum(x)`` (a hand-written softmax or normalisation) with ``x >= 0``: in [0, 1],
  and at least ``min x / max sum`` when ``x > 0`` (the sum holds x, so it is never 0).
  Round-to-nearest never makes a sum of non-negative floats smaller than its largest term, so
  the runtime's quotient is at most 1 too (or NaN for 0/0 and inf/inf: the NaN flag stays).
* ``x / ReduceMax(x)`` with ``x >= 0``: in [0, 1] for the same reason.

The divisor may reach the division through ops that only replicate it along its reduced
(size-1) axes: Identity, Expand, Tile, and direct broadcasting. Reshape is not followed: it
could misalign positions.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from numsentry.domains.box import Box
from numsentry.ir.graph import Node

__all__ = ["refine"]

_PASS_THROUGH = {"Identity", "Expand", "Tile"}
_REDUCERS = {"ReduceSum", "ReduceMax"}


def _source_reduction(name: str, producers: Mapping[str, Node], shapes: Mapping[str, tuple[int, ...]],
                      numerator: str) -> Node | None:
    """The ReduceSum/ReduceMax over ``numerator`` that ``name`` replicates, if any."""
    node = producers.get(name)
    target = shapes.get(numerator)
    for _ in range(8):
        if node is None:
            return None
        if node.op_type in _REDUCERS:
            if node.inputs[0] != numerator or not node.attrs.get("keepdims", 1):
                return None
            out = shapes.get(node.outputs[0])
            if out is None or target is None or len(out) != len(target):
                return None
            # every axis is either reduced (size 1, replicated back) or kept whole
            if all(o == t or o == 1 for o, t in zip(out, target, strict=True)):
                return node
            return None
        if node.op_type not in _PASS_THROUGH:
            return None
        node = producers.get(node.inputs[0])
    return None


def refine(node: Node, ins: list[Box | None], outs: list[Box], producers: Mapping[str, Node],
           shapes: Mapping[str, tuple[int, ...]]) -> list[Box]:
    """Intersect ``outs`` of ``node`` with what a recognised pattern guarantees."""
    if node.op_type != "Div" or len(ins) != 2 or ins[0] is None or outs[0].is_point:
        return outs
    num = ins[0]
    # NaN breaks the argument (onnxruntime's ReduceMax skips NaN, and can return less than the
    # largest element)
    if num.dtype.kind != "f" or num.min() < 0 or num.nan or (ins[1] is not None and ins[1].nan):
        return outs
    if _source_reduction(node.inputs[1], producers, shapes, node.inputs[0]) is None:
        return outs
    out = outs[0]
    lo, hi = out.bounds64()
    lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
    den = ins[1]
    if num.min() > 0 and den is not None and np.isfinite(den.max()) and den.max() > 0:
        # the divisor holds the numerator itself, so it is never 0: x / s >= min x / max s
        # (rounded down a little for the runtime's division)
        lo = np.maximum(lo, num.min() / den.max() * (1 - 2.0**-20))
    return [out.with_bounds(lo, hi), *outs[1:]]

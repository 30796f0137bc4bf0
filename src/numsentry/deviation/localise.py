"""Localisation: compare every intermediate tensor of two configurations, name where they part.

Intermediate tensors come from the workers (``--layers``): the registry runtimes record every
node output through the interpreter's ``observe`` hook; onnxruntime runs a copy of the model
in which every intermediate value is a graph output (which blocks fusions across those values,
so its layer run can differ from its normal run; `worker` reports both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from numsentry.deviation.metrics import remaining_bits, to_format, ulp_distance

__all__ = ["LayerRow", "NodeInfo", "first_divergence", "propagation"]


@dataclass(frozen=True)
class NodeInfo:
    """A node of the main graph in topological order.

    Attributes:
        name: Stable node name.
        op_type: ONNX op type.
        outputs: Output value names.
        formats: Comparison dtype of each output (the model's declared element type).
    """

    name: str
    op_type: str
    outputs: tuple[str, ...]
    formats: tuple[str, ...]


@dataclass
class LayerRow:
    """How two configurations compare at one node's outputs.

    Attributes:
        index: Position in the topological order.
        node: Node name.
        op_type: ONNX op type.
        compared: Whether both configurations recorded its float outputs with equal shapes.
        frac_differing: Fraction of elements that are not bit-identical.
        remaining_precision_min: Fewest shared leading significand bits.
        remaining_precision_median: Median shared bits.
        max_ulp: Largest ULP distance.
    """

    index: int
    node: str
    op_type: str
    compared: bool
    frac_differing: float = 0.0
    remaining_precision_min: int | None = None
    remaining_precision_median: float | None = None
    max_ulp: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def propagation(nodes: Sequence[NodeInfo], a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> list[LayerRow]:
    """One row per node: how far configuration ``b``'s outputs are from ``a``'s.

    Args:
        nodes: The main graph's nodes in topological order.
        a: Intermediate tensors of the first configuration, by value name.
        b: Those of the second.
    """
    rows: list[LayerRow] = []
    for i, n in enumerate(nodes):
        bits: list[np.ndarray] = []
        ulps: list[float] = []
        n_diff = n_all = 0
        for v, fmt in zip(n.outputs, n.formats, strict=True):
            if v not in a or v not in b or fmt == "":
                continue
            x, y = np.asarray(a[v]), np.asarray(b[v])
            if x.shape != y.shape or x.size == 0:
                continue
            x, y = to_format(x, fmt), to_format(y, fmt)
            bt = remaining_bits(x, y)
            bits.append(bt.ravel())
            ulps.append(float(ulp_distance(x, y).max()))
            n_diff += int((x.view(np.uint8).reshape(x.size, -1) != y.view(np.uint8).reshape(y.size, -1)).any(axis=1).sum())
            n_all += x.size
        if not bits:
            rows.append(LayerRow(i, n.name, n.op_type, False))
            continue
        cat = np.concatenate(bits)
        rows.append(LayerRow(i, n.name, n.op_type, True, n_diff / n_all, int(cat.min()), float(np.median(cat)),
                             max(ulps)))
    return rows


def first_divergence(rows: Sequence[LayerRow]) -> LayerRow | None:
    """The first compared node (in topological order) whose outputs are not bit-identical."""
    for r in rows:
        if r.compared and r.frac_differing > 0:
            return r
    return None


def float_format(elem_type: int) -> str:
    """The comparison dtype name of an ONNX element type ('' for non-float types)."""
    from onnx import TensorProto

    names = {int(TensorProto.FLOAT): "float32", int(TensorProto.DOUBLE): "float64", int(TensorProto.FLOAT16): "float16"}
    return names.get(int(elem_type), "")


def graph_nodes(model_path: str) -> list[NodeInfo]:
    """The main graph's nodes (stable names, topological order) with their output formats."""
    from numsentry.ir.load import load_model

    m = load_model(model_path)
    types = m.graph.value_types
    out: list[NodeInfo] = []
    for n in m.graph.nodes:
        fmts = tuple(float_format(types[v].elem_type) if v in types else "" for v in n.outputs)
        out.append(NodeInfo(n.name, n.op_type, tuple(n.outputs), fmts))
    return out

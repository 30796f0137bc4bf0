"""numsentry's view of an ONNX graph: nodes in topological order with bound attributes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

__all__ = ["Graph", "Node", "SourceLoc", "ValueInfo"]


@dataclass(frozen=True)
class SourceLoc:
    """Where a node came from in the user's Python source (PyTorch exports)."""

    file: str
    line: int
    function: str | None = None
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "function": self.function, "code": self.code}


@dataclass
class ValueInfo:
    """A graph input/output: name, element type and shape (ints, dim names or ``None``)."""

    name: str
    elem_type: int
    shape: list[int | str | None] | None

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(self.elem_type))


@dataclass
class Node:
    """One operator application.

    Attributes:
        name: Stable name: the model's node name if it has one, else ``<OpType>_<index>``
            (subgraph nodes are prefixed with their parent's name and attribute).
        op_type: ONNX op type.
        domain: ONNX domain (``""`` for ai.onnx).
        inputs: Input value names (``""`` marks an omitted optional input).
        outputs: Output value names.
        attrs: Attributes bound to Python values, schema defaults filled in; graph attributes
            are `Graph` objects.
        opset: The model's opset version for ``domain``.
        index: Position in the topological order.
        source: Python source location, for PyTorch exports that recorded it.
    """

    name: str
    op_type: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    opset: int
    index: int
    source: SourceLoc | None = None

    @property
    def label(self) -> str:
        """``name (OpType)`` for messages."""
        return f"{self.name} ({self.op_type})"


@dataclass
class Graph:
    """A (sub)graph.

    Attributes:
        name: Graph name.
        nodes: Nodes in topological order.
        inputs: Graph inputs (initializers excluded).
        outputs: Graph outputs.
        initializers: Constant tensors by name.
        value_types: Element type and shape from shape inference, by value name.
        outer_refs: Names a subgraph reads from enclosing scopes.
        opsets: Opset version by domain.
    """

    name: str
    nodes: list[Node]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    initializers: dict[str, np.ndarray]
    value_types: dict[str, ValueInfo] = field(default_factory=dict)
    outer_refs: set[str] = field(default_factory=set)
    opsets: dict[str, int] = field(default_factory=dict)

    def all_nodes(self) -> list[Node]:
        """Nodes of this graph and, recursively, of its subgraphs."""
        out: list[Node] = []
        for n in self.nodes:
            out.append(n)
            for v in n.attrs.values():
                if isinstance(v, Graph):
                    out.extend(v.all_nodes())
                elif isinstance(v, list) and v and isinstance(v[0], Graph):
                    for g in v:
                        out.extend(g.all_nodes())
        return out

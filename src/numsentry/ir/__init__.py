"""Loading and validating ONNX models into numsentry's graph form."""

from __future__ import annotations

from numsentry.ir.graph import Graph, Node, SourceLoc, ValueInfo
from numsentry.ir.load import Model, load_model

__all__ = ["Graph", "Model", "Node", "SourceLoc", "ValueInfo", "load_model"]

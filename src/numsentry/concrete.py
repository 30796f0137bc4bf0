"""Concrete execution of a model through the op registry (NumPy or PyTorch backend).

This is the same interpreter as the analysis, with the concrete rules as the domain. With the
torch backend the whole graph is differentiable, which the gradient-based searches (trigger,
fix) and the deviation runner (PyTorch kernels for an ONNX graph) build on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from numsentry.errors import UnsupportedOpError
from numsentry.interp import run_graph
from numsentry.ir.graph import Graph, Node
from numsentry.ir.load import Model
from numsentry.ops import REGISTRY
from numsentry.ops.apply import apply_concrete
from numsentry.ops.kernels import NUMPY, Kernels

__all__ = ["run_concrete"]


def run_concrete(
    model: Model,
    feeds: Mapping[str, Any],
    k: Kernels = NUMPY,
    weights: Mapping[str, Any] | None = None,
    observe: Callable[[Node, list[Any], list[Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``model`` on concrete inputs.

    Args:
        model: A loaded model.
        feeds: Graph input values by name (arrays of backend ``k``, or NumPy arrays).
        k: Backend (`NUMPY` or `numsentry.ops.kernels.torch_kernels()`).
        weights: Replacement values for initializers by name (e.g. trainable torch tensors).
        observe: Called as ``observe(node, inputs, outputs)`` after each node (all scopes), e.g.
            to record intermediate tensors or check where the first NaN appears.

    Returns:
        Graph outputs by name.

    Raises:
        UnsupportedOpError: A node's op has no concrete rule.
    """
    g = model.graph
    env: dict[str, Any] = {}
    for name, arr in g.initializers.items():
        v = weights[name] if weights is not None and name in weights else arr
        if isinstance(v, np.ndarray):
            # torch refuses to share read-only NumPy memory (the loader's weights are read-only)
            v = np.array(v) if k.name == "torch" and not v.flags.writeable else v
            env[name] = k.asarray(v)
        else:
            env[name] = v
    for v in g.inputs:
        if v.name not in feeds:
            raise UnsupportedOpError(f"missing value for graph input {v.name!r}")
        x = feeds[v.name]
        env[v.name] = k.asarray(x) if isinstance(x, np.ndarray) else x

    def step(node: Node, ins: list[Any], scope: Mapping[str, Any]) -> list[Any]:
        op = REGISTRY.lookup(node.domain, node.op_type, node.opset)
        if op is None or op.concrete is None:
            raise UnsupportedOpError(f"node {node.label}: no concrete rule for {node.op_type} (opset {node.opset})")
        with np.errstate(all="ignore"):
            if any(isinstance(v, Graph) for v in node.attrs.values()):
                from numsentry.ops.control import concrete_scope

                with concrete_scope(scope):  # bodies read outer-scope names through it
                    outs = list(apply_concrete(op, k, ins, node.attrs))
            else:
                outs = list(apply_concrete(op, k, ins, node.attrs))
        if observe is not None:
            observe(node, ins, outs)
        return outs

    outs = run_graph(g, env, step)
    return {o.name: v for o, v in zip(g.outputs, outs, strict=False)}

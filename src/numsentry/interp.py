"""The interpreter: walk a graph in topological order with an environment.

It knows nothing of domains: a *step* function applies the rule of the chosen domain (concrete
arrays or interval boxes) to one node. Values are dropped from the environment after their last
use, so peak memory follows the live set, not the whole graph.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from numsentry.errors import ModelError
from numsentry.ir.graph import Graph, Node

__all__ = ["Step", "run_graph"]

Step = Callable[[Node, list[Any], Mapping[str, Any]], list[Any]]


def _last_uses(graph: Graph) -> dict[int, list[str]]:
    last: dict[str, int] = {}
    for n in graph.nodes:
        for name in n.inputs:
            if name:
                last[name] = n.index
        for v in n.attrs.values():
            for sg in (v if isinstance(v, list) else [v]):
                if isinstance(sg, Graph):
                    for name in sg.outer_refs:
                        last[name] = n.index
    keep = {o.name for o in graph.outputs}
    by_node: dict[int, list[str]] = {}
    for name, i in last.items():
        if name not in keep:
            by_node.setdefault(i, []).append(name)
    return by_node


def run_graph(
    graph: Graph,
    env: Mapping[str, Any],
    step: Step,
    outer: Mapping[str, Any] | None = None,
    on_free: Callable[[str], None] | None = None,
    progress: Callable[[Node], None] | None = None,
) -> list[Any]:
    """Run ``graph`` and return its outputs in order.

    Args:
        graph: The graph (nodes already in topological order).
        env: Values of the graph's inputs and initializers.
        step: ``step(node, inputs, scope)`` returns the node's outputs (``None`` for omitted
            optional inputs); ``scope`` is what the node's subgraphs can see.
        outer: Values visible from enclosing scopes (subgraphs).
        on_free: Called with each value name when it is dropped.
        progress: Called after each node.

    Raises:
        ModelError: If a node reads a value nobody produced.
    """
    local: MutableMapping[str, Any] = dict(env)
    scope: MutableMapping[str, Any] = ChainMap(local, dict(outer)) if outer else local
    frees = _last_uses(graph)
    for node in graph.nodes:
        try:
            ins = [scope[name] if name else None for name in node.inputs]
        except KeyError as e:
            raise ModelError(f"node {node.label}: input {e.args[0]!r} is never produced") from None
        outs = step(node, ins, scope)
        for name, v in zip(node.outputs, outs, strict=False):
            if name:
                local[name] = v
        for name in frees.get(node.index, ()):
            if name in local:
                del local[name]
                if on_free is not None:
                    on_free(name)
        if progress is not None:
            progress(node)
    try:
        return [scope[o.name] for o in graph.outputs]
    except KeyError as e:
        raise ModelError(f"graph output {e.args[0]!r} is never produced") from None

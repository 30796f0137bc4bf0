"""Load, validate and normalise ONNX models (files are untrusted input).

Everything that can go wrong with a user's file becomes a `ModelError` naming the file and,
where it applies, the node, op and opset: missing or unreadable files, bytes that are not an
ONNX protobuf, truncated files, checker failures, inconsistent shapes, cycles, opsets outside
the supported span.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from numsentry.errors import ModelError
from numsentry.ir.graph import Graph, Node, SourceLoc, ValueInfo

__all__ = ["MIN_OPSET", "Model", "load_model", "max_opset"]

MIN_OPSET = 13
_MAX_BYTES = 2 * 1024**3  # protobuf's own limit


def max_opset() -> int:
    """The newest default-domain opset the installed onnx knows."""
    return int(onnx.defs.onnx_opset_version())


@dataclass
class Model:
    """A loaded, validated model.

    Attributes:
        graph: The main graph (nodes topologically ordered, names stable).
        proto: The validated ModelProto (after symbolic dims were fixed).
        path: Where it was loaded from (``<memory>`` for protos).
        opset: Default-domain opset version.
        dims: Values given to symbolic dimensions (name -> value), incl. defaults used.
        default_dims: Symbolic dimension names that took the default value 1.
    """

    graph: Graph
    proto: onnx.ModelProto
    path: str
    opset: int
    dims: dict[str, int] = field(default_factory=dict)
    default_dims: list[str] = field(default_factory=list)


def _read(path: str) -> onnx.ModelProto:
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{path}: no such file", hint="check the path")
    if p.is_dir():
        raise ModelError(f"{path}: is a directory, not an .onnx file")
    try:
        size = p.stat().st_size
        if size == 0:
            raise ModelError(f"{path}: empty file, not an ONNX model")
        if size >= _MAX_BYTES:
            raise ModelError(f"{path}: {size} bytes is over protobuf's 2 GB limit",
                             hint="save the weights as external data")
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror or e})") from e
    model = _parse(data, path)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _all_initializers(model.graph)):
        try:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(model, str(p.parent))
        except Exception as e:  # onnx raises ValidationError, OSError, ... for bad locations
            raise ModelError(f"{path}: cannot load external weights: {_first_line(e)}",
                             hint="external data files must sit beside the model") from e
    return model


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # google.protobuf.message.DecodeError and friends
        raise ModelError(f"{where}: not a valid ONNX protobuf (truncated or not ONNX): {_first_line(e)}",
                         hint="re-export the model; check that the file was copied whole") from e
    if not model.HasField("graph"):
        raise ModelError(f"{where}: parses, but holds no graph: not an ONNX model")
    return model


def _all_initializers(g: onnx.GraphProto) -> list[onnx.TensorProto]:
    out = list(g.initializer)
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out += _all_initializers(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sg in a.graphs:
                    out += _all_initializers(sg)
    return out


def _first_line(e: BaseException) -> str:
    s = str(e).strip() or type(e).__name__
    return s.splitlines()[0][:300]


def load_model(
    model: str | os.PathLike[str] | onnx.ModelProto | bytes,
    dims: Mapping[str, int] | None = None,
) -> Model:
    """Load and validate a model; fix symbolic dims; infer shapes; order nodes.

    Args:
        model: A path, serialized bytes or a ModelProto.
        dims: Values for symbolic dimensions (``--dim NAME=N``); others default to 1.

    Returns:
        The validated `Model`.

    Raises:
        ModelError: For anything wrong with the model.
    """
    if isinstance(model, onnx.ModelProto):
        proto, where = onnx.ModelProto(), "<memory>"
        proto.CopyFrom(model)
    elif isinstance(model, bytes):
        proto, where = _parse(model, "<bytes>"), "<bytes>"
    else:
        where = os.fspath(model)
        proto = _read(where)
    opset = _default_opset(proto, where)
    if opset < MIN_OPSET:
        proto = _upgrade(proto, where, opset)
        opset = MIN_OPSET
    _sort_proto(proto.graph, where)  # the checker insists on topological order; we accept any
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        raise ModelError(f"{where}: invalid model: {_first_line(e)}") from e
    used, defaulted = _fix_dims(proto, dict(dims or {}), where)
    try:
        try:
            inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
        except Exception:
            # onnx's data propagation rejects some valid models (Split then broadcasting): retry
            # without it; our own interpreter computes shapes exactly anyway
            inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=False)
    except Exception as e:
        raise ModelError(f"{where}: inconsistent shapes or types: {_first_line(e)}",
                         hint="run onnx.shape_inference.infer_shapes(model, strict_mode=True) to see the node") from e
    opsets = {("" if o.domain == "ai.onnx" else o.domain): int(o.version) for o in inferred.opset_import}
    graph = _convert_graph(inferred.graph, opsets, where, prefix="")
    return Model(graph=graph, proto=inferred, path=where, opset=opset, dims=used, default_dims=defaulted)


def _default_opset(proto: onnx.ModelProto, where: str) -> int:
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            v = int(o.version)
            if v > max_opset():
                raise ModelError(f"{where}: opset {v} is newer than the installed onnx knows ({max_opset()})",
                                 hint="upgrade onnx")
            return v
    raise ModelError(f"{where}: no default-domain opset import")


def _upgrade(proto: onnx.ModelProto, where: str, opset: int) -> onnx.ModelProto:
    try:
        from onnx import version_converter

        return version_converter.convert_version(proto, MIN_OPSET)
    except Exception as e:
        raise ModelError(f"{where}: opset {opset} is below {MIN_OPSET} and could not be converted: {_first_line(e)}",
                         hint=f"re-export with opset >= {MIN_OPSET}") from e


def _fix_dims(proto: onnx.ModelProto, dims: dict[str, int], where: str) -> tuple[dict[str, int], list[str]]:
    used: dict[str, int] = {}
    defaulted: list[str] = []
    init_names = {t.name for t in proto.graph.initializer}
    for inp in proto.graph.input:
        if inp.name in init_names or not inp.type.HasField("tensor_type"):
            continue
        tt = inp.type.tensor_type
        if not tt.HasField("shape"):
            continue
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                continue
            name = d.dim_param or f"{inp.name}_dim"
            if name not in dims:
                dims[name] = 1
                defaulted.append(name)
            d.ClearField("dim_param")
            d.dim_value = int(dims[name])
            used[name] = int(dims[name])
    return used, defaulted


_TRACE = re.compile(r'File "([^"]+)", line (\d+)(?:, in (\S+))?(?:\n\s*(.+))?')


def _source(node: onnx.NodeProto) -> SourceLoc | None:
    """Last user frame of a PyTorch exporter's stack trace in node metadata, if recorded."""
    for p in node.metadata_props:
        if "stack_trace" not in p.key:
            continue
        frames = [m for m in _TRACE.finditer(p.value) if "/torch/" not in m.group(1)]
        if frames:
            m = frames[-1]
            code = m.group(4).strip() if m.group(4) else None
            return SourceLoc(m.group(1), int(m.group(2)), m.group(3), code)
    return None


def _attr_value(a: onnx.AttributeProto, opsets: dict[str, int], where: str, prefix: str) -> Any:
    if a.type == onnx.AttributeProto.GRAPH:
        return _convert_graph(a.g, opsets, where, prefix=f"{prefix}{a.name}/")
    if a.type == onnx.AttributeProto.GRAPHS:
        return [_convert_graph(g, opsets, where, prefix=f"{prefix}{a.name}[{i}]/") for i, g in enumerate(a.graphs)]
    if a.type == onnx.AttributeProto.TENSOR:
        return numpy_helper.to_array(a.t)
    if a.type == onnx.AttributeProto.TENSORS:
        return [numpy_helper.to_array(t) for t in a.tensors]
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, list):
        return [x.decode("utf-8", errors="replace") if isinstance(x, bytes) else x for x in v]
    return v


def _bind_attrs(node: onnx.NodeProto, opset: int, opsets: dict[str, int], where: str, prefix: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except Exception:
        schema = None
    if schema is not None:
        for name, spec in schema.attributes.items():
            dv = spec.default_value
            if dv is not None and dv.type != onnx.AttributeProto.UNDEFINED:
                attrs[name] = _attr_value(dv, opsets, where, prefix)
    for a in node.attribute:
        if a.ref_attr_name:
            raise ModelError(f"{where}: node {node.name or node.op_type} uses a function attribute reference")
        attrs[a.name] = _attr_value(a, opsets, where, f"{prefix}{node.name or node.op_type}/")
    return attrs


def _value_info(v: onnx.ValueInfoProto) -> ValueInfo:
    tt = v.type.tensor_type if v.type.HasField("tensor_type") else None
    if tt is None:
        return ValueInfo(v.name, onnx.TensorProto.UNDEFINED, None)
    shape: list[int | str | None] | None = None
    if tt.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
    return ValueInfo(v.name, tt.elem_type, shape)


def _convert_graph(g: onnx.GraphProto, opsets: dict[str, int], where: str, prefix: str) -> Graph:
    inits: dict[str, np.ndarray] = {}
    for t in g.initializer:
        try:
            inits[t.name] = numpy_helper.to_array(t)
        except Exception as e:
            raise ModelError(f"{where}: initializer {t.name!r} is corrupt: {_first_line(e)}") from e
    for st in g.sparse_initializer:
        try:
            inits[st.values.name] = numpy_helper.to_array(onnx.helper.make_tensor(
                st.values.name, st.values.data_type, list(st.dims), []) if False else st.values)
        except Exception as e:
            raise ModelError(f"{where}: sparse initializer is corrupt: {_first_line(e)}") from e
    inputs = [_value_info(v) for v in g.input if v.name not in inits]
    outputs = [_value_info(v) for v in g.output]
    types = {v.name: _value_info(v) for v in list(g.value_info) + list(g.input) + list(g.output)}

    order = _toposort(g, set(inits) | {v.name for v in g.input}, where)
    nodes: list[Node] = []
    seen: set[str] = set()
    for idx, i in enumerate(order):
        n = g.node[i]
        base = n.name or f"{n.op_type}_{idx}"
        name = base
        k = 1
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        domain = "" if n.domain == "ai.onnx" else n.domain
        opset = opsets.get(domain, 1)
        attrs = _bind_attrs(n, opset, opsets, where, prefix)
        nodes.append(Node(
            name=prefix + name, op_type=n.op_type, domain=domain, inputs=list(n.input),
            outputs=list(n.output), attrs=attrs, opset=opset, index=idx, source=_source(n),
        ))
    produced = {o for n in nodes for o in n.outputs} | set(inits) | {v.name for v in g.input}
    used = {i for n in nodes for i in n.inputs if i} | {v.name for v in g.output}
    for n in nodes:
        for v in n.attrs.values():
            for sg in (v if isinstance(v, list) else [v]):
                if isinstance(sg, Graph):
                    used |= sg.outer_refs
    outer = used - produced
    return Graph(name=g.name, nodes=nodes, inputs=inputs, outputs=outputs, initializers=inits,
                 value_types=types, outer_refs=outer, opsets=dict(opsets))


def _toposort(g: onnx.GraphProto, available: set[str], where: str) -> list[int]:
    """Kahn's algorithm, stable w.r.t. the file's order; names from outer scopes count as given."""
    producers: dict[str, int] = {}
    for i, n in enumerate(g.node):
        for o in n.output:
            if o:
                producers[o] = i
    deps: list[set[int]] = []
    users: dict[int, list[int]] = {i: [] for i in range(len(g.node))}
    for i, n in enumerate(g.node):
        d = {producers[x] for x in _node_reads(n) if x and x in producers and x not in available}
        d.discard(i)
        deps.append(d)
        for j in d:
            users[j].append(i)
    ready = [i for i in range(len(g.node)) if not deps[i]]
    order: list[int] = []
    import heapq

    heapq.heapify(ready)
    remaining = [len(d) for d in deps]
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            remaining[u] -= 1
            if remaining[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(g.node):
        stuck = next(i for i in range(len(g.node)) if i not in set(order))
        n = g.node[stuck]
        raise ModelError(f"{where}: the graph has a cycle through node {n.name or n.op_type} ({n.op_type})")
    return order


def _sort_proto(g: onnx.GraphProto, where: str) -> None:
    """Reorder ``g``'s nodes (and its subgraphs') topologically, in place."""
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _sort_proto(a.g, where)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sg in a.graphs:
                    _sort_proto(sg, where)
    order = _toposort(g, {t.name for t in g.initializer} | {v.name for v in g.input}, where)
    if order != list(range(len(g.node))):
        nodes = [onnx.NodeProto() for _ in order]
        for dst, i in zip(nodes, order, strict=True):
            dst.CopyFrom(g.node[i])
        del g.node[:]
        g.node.extend(nodes)


def _node_reads(n: onnx.NodeProto) -> list[str]:
    """Inputs plus names a node's subgraphs read from the enclosing scope."""
    reads = list(n.input)
    for a in n.attribute:
        gs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for sg in gs:
            local = {t.name for t in sg.initializer} | {v.name for v in sg.input}
            local |= {o for m in sg.node for o in m.output}
            for m in sg.node:
                reads += [x for x in _node_reads(m) if x and x not in local]
    return reads

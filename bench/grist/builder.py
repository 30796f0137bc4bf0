"""A small ONNX graph builder used to write the GRIST benchmark models by hand.

The builder keeps TensorFlow-style node names (``scope/Op``, ``scope/Op_1``, ...), stores only
trainable weights as initializers and every other constant as a ``Constant`` node (so that the
``trainable`` weights rule of numsentry widens weights and nothing else), and emits opset-13
models that pass ``onnx.checker.check_model(full_check=True)``.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 7
FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
INT32 = TensorProto.INT32

_NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.bool_): TensorProto.BOOL,
}


# ----------------------------------------------------------------------------------------------
# Seeded initialisers
# ----------------------------------------------------------------------------------------------


def rng_for(key: str) -> np.random.Generator:
    """Return a numpy generator seeded deterministically from a string key.

    Args:
        key: Seed key, e.g. ``"deep_mnist/W_fc1"``.

    Returns:
        A ``numpy.random.Generator`` whose stream depends only on ``key``.
    """
    return np.random.default_rng(zlib.crc32(key.encode("utf-8")))


def init_array(spec: str | float | Sequence[float], shape: Sequence[int], key: str) -> np.ndarray:
    """Draw a float32 weight tensor from an initialisation spec.

    Args:
        spec: One of ``"zeros"``, a float (constant fill), a list of values (reshaped),
            ``"normal:STD"`` (normal(0, STD)), ``"trunc:STD"`` (TensorFlow truncated normal:
            normal(0, STD) redrawn outside two standard deviations), ``"uniform:LO:HI"``,
            ``"xavier"`` (uniform +-sqrt(6/(fan_in+fan_out)) over the first two dims) or
            ``"torch_linear:FAN_IN"`` (PyTorch default Linear init, uniform +-1/sqrt(FAN_IN)).
        shape: Tensor shape.
        key: Seed key for the random specs.

    Returns:
        The float32 array.
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(spec, (int, float)):
        return np.full(shape, spec, dtype=np.float32)
    if not isinstance(spec, str):
        return np.asarray(spec, dtype=np.float32).reshape(shape)
    rng = rng_for(key)
    kind, _, arg = spec.partition(":")
    if kind == "zeros":
        return np.zeros(shape, dtype=np.float32)
    if kind == "normal":
        return (rng.standard_normal(shape) * float(arg)).astype(np.float32)
    if kind == "trunc":
        values = rng.standard_normal(shape)
        bad = np.abs(values) > 2.0
        while bad.any():
            values[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(values) > 2.0
        return (values * float(arg)).astype(np.float32)
    if kind == "uniform":
        lo, hi = (float(v) for v in arg.split(":"))
        return rng.uniform(lo, hi, shape).astype(np.float32)
    if kind == "xavier":
        fan_in, fan_out = shape[0], shape[1]
        limit = float(np.sqrt(6.0 / (fan_in + fan_out)))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    if kind == "torch_linear":
        limit = 1.0 / float(np.sqrt(float(arg)))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    raise ValueError(f"unknown init spec {spec!r}")


def hwio_to_oihw(array: np.ndarray) -> np.ndarray:
    """Reorder a TensorFlow conv kernel [H, W, I, O] to ONNX [O, I, H, W]."""
    return np.ascontiguousarray(np.transpose(array, (3, 2, 0, 1)))


# ----------------------------------------------------------------------------------------------
# Graph builder
# ----------------------------------------------------------------------------------------------


class Graph:
    """Accumulates nodes, inputs, initializers and outputs of one ONNX graph.

    Node names follow TensorFlow conventions: ``op`` called inside ``scope("loss")`` with op type
    ``Log`` gets the name ``loss/Log``; a second one gets ``loss/Log_1``. The output tensor of a
    single-output node carries the node's name.
    """

    def __init__(self, name: str, doc: str = "") -> None:
        """Create an empty graph.

        Args:
            name: Graph name.
            doc: Graph doc string.
        """
        self.name = name
        self.doc = doc
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._used: dict[str, int] = {}
        self._scope_used: dict[str, int] = {}
        self._scopes: list[str] = []
        self._names: set[str] = set()

    # -- naming ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[str]:
        """Open a TensorFlow-style name scope (nested scopes join with ``/``).

        Opening a scope name a second time at the same level gives ``name_1``, as in TF.

        Args:
            name: Scope name.

        Yields:
            The full scope prefix.
        """
        full = "/".join([*self._scopes, name])
        count = self._scope_used.get(full, 0)
        self._scope_used[full] = count + 1
        unique = full if count == 0 else f"{full}_{count}"
        saved = self._scopes
        self._scopes = unique.split("/")
        try:
            yield unique
        finally:
            self._scopes = saved

    def _unique(self, full: str) -> str:
        """Return ``full`` or ``full_N`` so that the name has not been used yet."""
        count = self._used.get(full, 0)
        name = full if count == 0 else f"{full}_{count}"
        while name in self._names:
            count += 1
            name = f"{full}_{count}"
        self._used[full] = count + 1
        self._names.add(name)
        return name

    def _node_name(self, base: str) -> str:
        return self._unique("/".join([*self._scopes, base]))

    # -- graph inputs, weights, constants --------------------------------------------------------

    def input(self, name: str, shape: Sequence[int | str], dtype: int = FLOAT) -> str:
        """Declare a graph input.

        Args:
            name: Input name.
            shape: Dimensions; strings are symbolic (use ``"batch"``).
            dtype: ONNX element type.

        Returns:
            The input name.
        """
        self._claim(name)
        self.inputs.append(helper.make_tensor_value_info(name, dtype, list(shape)))
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        """Add a trainable weight as an initializer.

        Args:
            name: Initializer name (the program's variable name).
            array: Stored value.

        Returns:
            The initializer name.
        """
        self._claim(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def const(self, value: Any, name: str = "Const", dtype: Any = np.float32) -> str:
        """Add a constant as a ``Constant`` node (never an initializer).

        Args:
            value: Scalar or array value.
            name: Base node name inside the current scope.
            dtype: numpy dtype of the constant.

        Returns:
            The constant's output tensor name.
        """
        array = np.asarray(value, dtype=dtype)
        node_name = self._node_name(name)
        tensor = numpy_helper.from_array(array, node_name)
        self.nodes.append(helper.make_node("Constant", [], [node_name], name=node_name, value=tensor))
        return node_name

    def ints(self, values: Sequence[int] | int, name: str = "Const") -> str:
        """Add an int64 constant (shapes, axes, indices)."""
        return self.const(values, name, np.int64)

    def _claim(self, name: str) -> None:
        if name in self._names:
            raise ValueError(f"duplicate tensor name {name!r}")
        self._names.add(name)

    # -- nodes ------------------------------------------------------------------------------------

    def op(self, op_type: str, *inputs: str, name: str | None = None, n_out: int = 1,
           **attrs: Any) -> str:
        """Append a node and return its (first) output tensor name.

        Args:
            op_type: ONNX operator type.
            *inputs: Input tensor names (``""`` for an omitted optional input).
            name: Base node name inside the current scope (default: the op type).
            n_out: Number of outputs.
            **attrs: Node attributes.

        Returns:
            The name of the node's first output (equal to the node name).
        """
        node_name = self._node_name(name or op_type)
        outputs = [node_name] + [f"{node_name}:{i}" for i in range(1, n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=node_name, **attrs))
        return node_name

    def output(self, tensor: str, name: str) -> str:
        """Expose ``tensor`` as a graph output called ``name`` (through an Identity node).

        Args:
            tensor: Tensor to expose.
            name: Graph output name.

        Returns:
            The graph output name.
        """
        self._claim(name)
        self.nodes.append(helper.make_node("Identity", [tensor], [name], name=name))
        self.outputs.append(helper.make_empty_tensor_value_info(name))
        return name

    # -- finishing --------------------------------------------------------------------------------

    def model(self) -> onnx.ModelProto:
        """Build, shape-infer and check the model.

        Returns:
            The checked model (opset 13, IR version 7), with inferred output types.
        """
        graph = helper.make_graph(self.nodes, self.name, self.inputs, [],
                                  initializer=self.initializers, doc_string=self.doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="numsentry-bench-grist", producer_version="1")
        model.ir_version = IR_VERSION
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        known = {vi.name: vi for vi in inferred.graph.value_info}
        outs = []
        for vi in self.outputs:
            src = known.get(vi.name)
            if src is None:
                raise ValueError(f"no inferred type for output {vi.name!r}")
            outs.append(src)
        del model.graph.output[:]
        model.graph.output.extend(outs)
        onnx.checker.check_model(model, full_check=True)
        return model


# ----------------------------------------------------------------------------------------------
# Layer helpers shared by many cases
# ----------------------------------------------------------------------------------------------


def dense(g: Graph, x: str, w: str, b: str | None, scope: str | None = None) -> str:
    """TensorFlow ``x @ W (+ b)`` as MatMul (+ Add)."""
    ctx = g.scope(scope) if scope else contextlib.nullcontext()
    with ctx:
        y = g.op("MatMul", x, w)
        if b is not None:
            y = g.op("Add", y, b)
    return y


def tf_dropout(g: Graph, x: str, keep_prob: str, scope: str = "dropout") -> str:
    """TensorFlow 1 ``tf.nn.dropout``: ``x / keep_prob * floor(keep_prob + U[0,1))``."""
    with g.scope(scope):
        uniform = g.op("RandomUniformLike", x, name="random_uniform", low=0.0, high=1.0)
        noisy = g.op("Add", keep_prob, uniform, name="add")
        mask = g.op("Floor", noisy)
        scaled = g.op("Div", x, keep_prob, name="truediv")
        return g.op("Mul", scaled, mask, name="mul")


def nhwc_to_nchw(g: Graph, x: str) -> str:
    """Transpose a TF NHWC activation to ONNX NCHW."""
    return g.op("Transpose", x, perm=[0, 3, 1, 2])


def nchw_to_nhwc(g: Graph, x: str) -> str:
    """Transpose an ONNX NCHW activation back to TF NHWC."""
    return g.op("Transpose", x, perm=[0, 2, 3, 1])


def reshape(g: Graph, x: str, shape: Sequence[int], name: str = "Reshape") -> str:
    """Reshape to a constant target shape."""
    return g.op("Reshape", x, g.ints(list(shape), name=f"{name}/shape"), name=name)


def reduce_sum(g: Graph, x: str, axes: Sequence[int] | None = None, keepdims: int = 0,
               name: str = "Sum") -> str:
    """Opset-13 ReduceSum (axes as an input; ``None`` reduces over every axis)."""
    if axes is None:
        return g.op("ReduceSum", x, name=name, keepdims=keepdims)
    return g.op("ReduceSum", x, g.ints(list(axes), name=f"{name}/axes"), name=name,
                keepdims=keepdims)


def reduce_mean(g: Graph, x: str, axes: Sequence[int] | None = None, keepdims: int = 0,
                name: str = "Mean") -> str:
    """Opset-13 ReduceMean (axes as an attribute; ``None`` reduces over every axis)."""
    if axes is None:
        return g.op("ReduceMean", x, name=name, keepdims=keepdims)
    return g.op("ReduceMean", x, name=name, axes=list(axes), keepdims=keepdims)


def clip(g: Graph, x: str, lo: float | str | None, hi: float | str | None,
         name: str = "clip_by_value") -> str:
    """Opset-13 Clip with constant (or tensor) bounds."""
    lo_t = "" if lo is None else (lo if isinstance(lo, str) else g.const(lo, f"{name}/min"))
    hi_t = "" if hi is None else (hi if isinstance(hi, str) else g.const(hi, f"{name}/max"))
    return g.op("Clip", x, lo_t, hi_t, name=name)

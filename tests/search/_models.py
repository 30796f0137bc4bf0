"""Tiny ONNX models with known numerical defects (and safe ones) for the search tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def model(nodes: list[onnx.NodeProto], inputs: list[tuple[str, list[int]]], outputs: list[tuple[str, list[int]]],
          inits: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """A checked opset-17 model with float inputs and outputs."""
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, F, s) for n, s in outputs],
                          [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    return m


def const(name: str, value: float) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(np.array(value, np.float32)))


def softmax_ce(stored: float = 0.0) -> onnx.ModelProto:
    """loss = -sum(y * log(softmax(x @ W))): log of an underflowing softmax (NUM001)."""
    return model([
        helper.make_node("MatMul", ["x", "W"], ["z"], name="logits"),
        helper.make_node("Softmax", ["z"], ["p"], name="softmax", axis=-1),
        helper.make_node("Log", ["p"], ["logp"], name="log"),
        helper.make_node("Mul", ["y", "logp"], ["t"], name="mul"),
        helper.make_node("ReduceSum", ["t"], ["s"], name="sum", keepdims=0),
        helper.make_node("Neg", ["s"], ["loss"], name="loss"),
    ], [("x", [1, 16]), ("y", [1, 3])], [("loss", []), ("p", [1, 3])], {"W": np.full((16, 3), stored, np.float32)})


def exp_model() -> onnx.ModelProto:
    """y = exp(x * a): overflows for x * a > 88.7 (NUM003)."""
    return model([helper.make_node("Mul", ["x", "a"], ["u"], name="scale"),
                  helper.make_node("Exp", ["u"], ["y"], name="exp")],
                 [("x", [2])], [("y", [2])], {"a": np.array([1.0, 2.0], np.float32)})


def div_model() -> onnx.ModelProto:
    """y = x / (a - b): 0 when a == b (NUM002)."""
    return model([helper.make_node("Sub", ["a", "b"], ["d"], name="diff"),
                  helper.make_node("Div", ["x", "d"], ["y"], name="div")],
                 [("x", [3]), ("a", [3]), ("b", [3])], [("y", [3])])


def sqrt_models() -> onnx.ModelProto:
    """sqrt(x - 0.5) (NUM004) and sqrt(relu(x)) (NUM011 at exactly 0)."""
    return model([const("half", 0.5),
                  helper.make_node("Sub", ["x", "half"], ["u"], name="shift"),
                  helper.make_node("Sqrt", ["u"], ["y"], name="sqrt_neg"),
                  helper.make_node("Relu", ["x"], ["r"], name="relu"),
                  helper.make_node("Sqrt", ["r"], ["s"], name="sqrt_zero")],
                 [("x", [4])], [("y", [4]), ("s", [4])])


def false_alarm() -> onnx.ModelProto:
    """log(x*x - x + 1): >= 0.75 for every x, but interval arithmetic gives [0, 2] on [0, 1]."""
    return model([helper.make_node("Mul", ["x", "x"], ["xx"], name="square"),
                  helper.make_node("Sub", ["xx", "x"], ["d"], name="sub"),
                  const("one", 1.0),
                  helper.make_node("Add", ["d", "one"], ["q"], name="add"),
                  helper.make_node("Log", ["q"], ["y"], name="log")],
                 [("x", [3])], [("y", [3])])


def propagation() -> onnx.ModelProto:
    """y = log(exp(x)): exp overflows first; the Log only sees the inf."""
    return model([helper.make_node("Exp", ["x"], ["e"], name="exp"),
                  helper.make_node("Log", ["e"], ["y"], name="log")],
                 [("x", [2])], [("y", [2])])


def save(m: onnx.ModelProto, path: str) -> str:
    onnx.save(m, path)
    return path

"""Build the example models shipped with numsentry (``python -m numsentry.examples.make``).

``softmax_ce.onnx``: a small MNIST-style classifier whose hand-written cross-entropy takes
``log(softmax(z))`` -- the most common real defect of the GRIST benchmark: a softmax
probability underflows to exactly 0 once the logits are about 104 apart (float32), and
``log(0) = -inf`` turns the loss into inf/NaN. ``softmax_ce_fixed.onnx`` clips the probability
before the log, which numsentry certifies as clean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["build_softmax_ce"]

HERE = Path(__file__).parent


def build_softmax_ce(fixed: bool = False, seed: int = 0) -> onnx.ModelProto:
    """The example classifier with a hand-written cross-entropy (optionally clipped)."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((16, 32)) * np.sqrt(2 / 16)).astype(np.float32)
    b1 = np.zeros(32, np.float32)
    w2 = (rng.standard_normal((32, 10)) * np.sqrt(1 / 32)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=-1),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    p = "prob"
    if fixed:
        inits += [numpy_helper.from_array(np.array(1e-7, np.float32), "eps"),
                  numpy_helper.from_array(np.array(1.0, np.float32), "one")]
        nodes.append(helper.make_node("Clip", ["prob", "eps", "one"], ["prob_c"], name="clip_prob"))
        p = "prob_c"
    nodes += [
        helper.make_node("Log", [p], ["logp"], name="log_prob"),
        helper.make_node("Mul", ["y", "logp"], ["ylogp"], name="y_times_logp"),
        helper.make_node("ReduceSum", ["ylogp"], ["s"], name="sum", keepdims=0),
        helper.make_node("Neg", ["s"], ["loss"], name="loss"),
    ]
    graph = helper.make_graph(
        nodes, "softmax_ce" + ("_fixed" if fixed else ""),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [helper.make_tensor_value_info("loss", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="numsentry-examples",
                              ir_version=8)  # onnxruntime 1.31 reads IR <= 13
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    """Write the example models next to this file."""
    onnx.save(build_softmax_ce(), HERE / "softmax_ce.onnx")
    onnx.save(build_softmax_ce(fixed=True), HERE / "softmax_ce_fixed.onnx")


if __name__ == "__main__":
    main()

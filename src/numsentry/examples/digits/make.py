"""Train and write the digits example of ``numsentry deviate`` (``python -m numsentry.examples.digits.make``).

A small CNN (two 3x3 convolutions, max pooling, a dense layer; logits and softmax
probabilities as outputs) trained with PyTorch on scikit-learn's bundled 8x8 digits data (no
download). The graph is written by hand with ``onnx.helper`` from the trained weights, so the
file is small, its batch dimension is symbolic (``N``) and its node names are readable.
``inputs.npy`` holds the first 64 test images, scaled to [0, 1], shape ``[64, 1, 8, 8]``.

Training is seeded and takes a few seconds on a CPU (needs torch and scikit-learn; the
committed files are what the tests and the README use, so nobody has to retrain).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["build_onnx", "load_digits_split", "train"]

HERE = Path(__file__).parent
N_INPUTS = 64


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits, scaled to [0, 1], as ``[n, 1, 8, 8]`` float32; a seeded 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    tr, te = perm[:cut], perm[cut:]
    return x[tr], y[tr], x[te], y[te]


def train(seed: int = 0, epochs: int = 30) -> tuple[dict[str, np.ndarray], float, np.ndarray]:
    """Train the CNN; returns its weights (float32, by ONNX initializer name), test accuracy and test images."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    xtr, ytr, xte, yte = load_digits_split(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    weights = {"conv1.w": sd["0.weight"], "conv1.b": sd["0.bias"], "conv2.w": sd["2.weight"],
               "conv2.b": sd["2.bias"], "fc.w": sd["6.weight"], "fc.b": sd["6.bias"]}
    return weights, acc, xte


def build_onnx(weights: dict[str, Any]) -> onnx.ModelProto:
    """The CNN as an ONNX graph (opset 17, batch dimension ``N``) with the given weights."""
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.w", "conv2.b"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in weights.items()]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10]),
         helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="numsentry-examples", ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str] | None = None) -> None:
    """Train and write ``model.onnx`` and ``inputs.npy`` (next to this file unless ``--out``)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    weights, acc, xte = train(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx.save(build_onnx(weights), args.out / "model.onnx")
    np.save(args.out / "inputs.npy", np.ascontiguousarray(xte[:N_INPUTS]))
    print(f"test accuracy {acc:.3f}; wrote {args.out / 'model.onnx'} and {args.out / 'inputs.npy'}")


if __name__ == "__main__":
    main()

"""The 79 GRIST cases, each written as an ONNX graph from its fact sheet.

Every ``case_*`` function builds one model and returns a :class:`Case` with the model, the real
input ranges, any recorded weight ranges, the ground-truth defect node names, how the defect is
witnessed and the notes that go into ``truth.json``. The fact sheets live in
``../shared/bench/grist_cases.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from bench.grist.builder import (
    FLOAT,
    INT32,
    INT64,
    Graph,
    clip,
    dense,
    hwio_to_oihw,
    init_array,
    nchw_to_nhwc,
    nhwc_to_nchw,
    reduce_mean,
    reduce_sum,
    reshape,
    tf_dropout,
)

# How the defect of a case is witnessed (see bench/grist/README.md): (range, effect) where range
# says whether the witness stays inside the case's ranges and effect is one of
#   nan_inf:       NaN/Inf at the defect node's output;
#   downstream:    the defect op's own output stays finite, NaN/Inf appears in the next op;
#   gradient_only: forward value finite; the Sqrt argument is 0 (or subnormal, 0 under
#                  flush-to-zero), where sqrt's derivative is infinite.
Witnessing = tuple[str, str]
Verdicts = dict[str, tuple[str, str]]  # extra alarm "<node> <rule>" -> (verdict, reason)
IN_RANGE: Witnessing = ("in_range", "nan_inf")
OUT_OF_RANGE: Witnessing = ("out_of_range", "nan_inf")
GRADIENT: Witnessing = ("in_range", "gradient_only")
GRADIENT_OUT: Witnessing = ("out_of_range", "gradient_only")
DOWNSTREAM: Witnessing = ("in_range", "downstream")

TRAINABLE = ["--weights", "trainable"]

#: Cases whose program is PyTorch (fact sheets' ``framework``); every other case is TensorFlow 1.x.
#: The framework decides the runtime semantics a witness should be confirmed under: TensorFlow's
#: CPU runtime flushes denormals to zero on its threads, PyTorch does not by default.
PYTORCH_CASES = frozenset({"4", "5", "12", "13", "22", "23", "26", "27", "32", "33", "34", "37", "38",
                           "46", "47", "51", "53", "54", "56", "57", "62", "63"})


#: The training batch size of each case's program (fact sheets' ``training.batch_size``; absent
#: where the program does not train). System tests train on a batch of this size.
TRAIN_BATCH: dict[str, int] = {
    "1": 101, "2a": 10, "2b": 10, "3": 100, "6": 50, "7": 50, "8": 50, "9a": 100, "9b": 100, "10": 205,
    "11a": 100, "11b": 100, "11c": 100, "12": 128, "14": 64, "15": 12, "16a": 100, "16b": 100, "16c": 100,
    "17": 1, "18": 50, "19": 50, "20": 100, "21": 100, "22": 64, "23": 3, "24": 100, "25": 100, "26": 6,
    "27": 3, "28a": 500, "28b": 500, "28c": 500, "28d": 500, "29": 100, "30": 100, "31": 100, "32": 8,
    "33": 6, "34": 8, "35a": 100, "35b": 100, "36a": 100, "36b": 100, "37": 6, "38": 4, "39a": 100,
    "39b": 100, "40": 100, "41": 100, "42": 100, "43a": 100, "43b": 100, "44": 50, "45a": 50, "45b": 50,
    "46": 3, "47": 8, "48a": 100, "48b": 100, "49a": 100, "49b": 100, "50": 100, "51": 64, "52": 100,
    "53": 12, "54": 8, "55": 50, "56": 6, "57": 3, "58": 50, "59": 100, "60": 100, "61": 128, "62": 64,
    "63": 64,
}


def framework(cid: str) -> str:
    """The framework of case ``cid``'s program: ``"pytorch"`` or ``"tensorflow"``."""
    return "pytorch" if cid in PYTORCH_CASES else "tensorflow"
N01 = [-6.0, 6.0]  # range chosen for standard-normal noise inputs (fact sheets: "unbounded")
N01_NOTE = ("The noise input is N(0,1) with no recorded bound (fact sheet: unknown/unbounded); "
            "we use [-6, 6], i.e. six standard deviations, which covers every draw of a "
            "realistic training run.")


@dataclass
class Case:
    """One built benchmark case."""

    id: str
    model: onnx.ModelProto
    inputs: dict[str, list[float]]
    defects: list[str]
    witness: dict[str, Witnessing]
    notes: str
    weights: dict[str, list[float]] = field(default_factory=dict)
    check_args: list[str] = field(default_factory=lambda: list(TRAINABLE))
    extra_alarms: Verdicts = field(default_factory=dict)


# Extra alarms: numsentry findings (not after an earlier finding) on nodes that are not
# ground-truth defects, keyed "<node> <rule>", each with a verdict and a one-line reason:
#   real:        inputs and weights inside the case's ranges make onnxruntime produce inf/NaN at
#                that node from finite operands (NUM002: a divisor that is exactly 0); the
#                witness is in bench/grist/witness.py (alarm_witnesses) and is tested;
#   imprecision: no such values exist (the reason says why) and the reason names the
#                interval-analysis imprecision that raises the alarm.
# Propagation does not make an alarm real: a node that only turns an upstream inf/NaN into
# inf/NaN is what numsentry marks after_earlier_finding.
REAL, IMPRECISION = "real", "imprecision"


def extra_note(verdicts: Verdicts, summary: str) -> str:
    """The sentence appended to a case's notes about its extra alarms."""
    n_real = sum(v == REAL for v, _ in verdicts.values())
    n = len(verdicts)
    return (f" EXTRA ALARMS ({n} numsentry finding{'s' if n > 1 else ''} on non-defect nodes, "
            f"one by one in extra_alarms): {n_real} real, {n - n_real} imprecision. {summary}")


CASES: dict[str, Callable[[], Case]] = {}


def register(*ids: str) -> Callable[[Callable[..., Case]], Callable[..., Case]]:
    """Register a case builder under one or more case ids (called with the id)."""

    def wrap(fn: Callable[..., Case]) -> Callable[..., Case]:
        def bind(cid: str) -> Callable[[], Case]:
            def build() -> Case:
                return fn(cid)

            return build

        for cid in ids:
            CASES[cid] = bind(cid)
        return fn

    return wrap


def w(g: Graph, name: str, spec: Any, shape: list[int], key: str) -> str:
    """Add a seeded weight ``name`` drawn from ``spec`` (see ``init_array``)."""
    return g.weight(name, init_array(spec, shape, f"{key}/{name}"))


def conv_w(g: Graph, name: str, spec: str, hwio: list[int], key: str) -> str:
    """Add a TF conv kernel drawn in [H,W,I,O] and stored as ONNX [O,I,H,W]."""
    return g.weight(name, hwio_to_oihw(init_array(spec, hwio, f"{key}/{name}")))


def ce_loss(g: Graph, labels: str, p: str, form: str, scope: str) -> tuple[str, str]:
    """Hand-written cross-entropy on probabilities ``p``; returns (loss, Log node).

    Forms: ``sum`` = -sum_all(y*log p); ``mean_rows`` = mean_b(-sum_c(y*log p));
    ``mean_of_sum`` = mean(-sum_all(y*log p)).
    """
    with g.scope(scope):
        log_p = g.op("Log", p)
        prod = g.op("Mul", labels, log_p, name="mul")
        if form == "sum":
            loss = g.op("Neg", reduce_sum(g, prod))
        elif form == "mean_rows":
            loss = reduce_mean(g, g.op("Neg", reduce_sum(g, prod, [1])))
        elif form == "mean_of_sum":
            loss = reduce_mean(g, g.op("Neg", reduce_sum(g, prod)))
        else:
            raise ValueError(form)
    return loss, log_p


# ----------------------------------------------------------------------------------------------
# Softmax regression (TensorFlow MNIST tutorials and friends)
# ----------------------------------------------------------------------------------------------

_SOFTREG: dict[str, dict[str, Any]] = {
    "3": dict(loss="sum", weights=("W", "b"),
              rec={"W": [-1.00, 2.00], "b": [-0.83, 1.90]},
              note="Stored W and b are the zero init; the ranges file gives the weight ranges "
                   "RANUM recorded for its exported (already trained) weights: W [-1.00, 2.00], "
                   "b [-0.83, 1.90]."),
    "10": dict(loss="sum", names=("cross_entropy", "p"),
               note="Both W and b are kept (RANUM's file apparently folded the zero bias away)."),
    "18": dict(loss="mean_rows", labels="labels", W_init="trunc:0.1", b_init=0.1,
               weights=("weight", "bias"), model_scope="softmax", loss_scope="loss",
               names=("cross_entropy", "y")),
    "19": dict(loss="mean_rows", x="x_input", weights=("layer_weights", "biases"), relu=True,
               names=("cross_entropy", "prediction")),
    "20": dict(loss="mean_rows", names=("cost", "pred")),
    "21": dict(loss="sum", names=("cross_entropy", "p")),
    "25": dict(loss="mean_rows", labels="y_", names=("cross_entropy", "y")),
    "30": dict(loss="sum", labels="y_", names=("cross_entropy", "y")),
    "40": dict(loss="sum", labels="y_", n_in=2, n_cls=3, x_range=[0.35, 1.0],
               names=("cross_entropy", "y")),
    "41": dict(loss="sum", labels="y_", n_in=2, n_cls=3, x_range=[0.35, 1.0],
               names=("cross_entropy", "y")),
    "42": dict(loss="sum", labels="y_", n_in=2, n_cls=3, x_range=[0.35, 1.0],
               weights=("interface/W", "interface/b"), model_scope="interface/softmax",
               loss_scope="loss", names=("cross_entropy", "y")),
    "45a": dict(loss="mean_rows", labels="y_", names=("cross_entropy", "y")),
    "48b": dict(loss="mean_rows", labels="y_true", weights=("w", "b"),
                names=("cross_entropy", "y")),
    "50": dict(loss="mean_rows", labels="y_", names=("cross_entropy", "y")),
    "52": dict(loss="mean_of_sum", labels="y_", names=("cross_entropy", "y")),
    "59": dict(loss="mean_rows", W_init="uniform:-1:1", weights=("weights", "bias"),
               names=("cross_entropy", "pred"),
               note="The unused clip_by_value(pred, 1e-15, 1) of the program is not in the graph "
                    "(its result is discarded); the hand-coded gradient update is not part of "
                    "the forward graph."),
    "60": dict(loss="sum", labels="y_", names=("cross_entropy", "y")),
}

_BMI_NOTE = ("No witness inside the ranges: x is in [0.35, 1] with 2 features and the zero-initialised "
             "W and b get [-10, 10] from the trainable rule, so the largest logit gap is "
             "(1+1)*20 + 20 = 60 and the smallest softmax probability is about exp(-60) = 8.7e-27, "
             "not 0 (float32 needs a gap above ~103.97). Kept: the program's weights are not "
             "bounded by 10 (summed cross-entropy, endless GD training; GRIST reached the NaN); "
             "the witness uses W entries of +-40.")


@register(*_SOFTREG)
def case_softmax_regression(cid: str) -> Case:
    """Softmax regression on MNIST / BMI with a hand-written cross-entropy."""
    cfg = _SOFTREG[cid]
    n_in = int(cfg.get("n_in", 784))
    n_cls = int(cfg.get("n_cls", 10))
    x_name = str(cfg.get("x", "x"))
    y_name = str(cfg.get("labels", "y"))
    w_name, b_name = cfg.get("weights", ("W", "b"))
    loss_name, pred_name = cfg.get("names", ("cost", "activation"))
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: softmax regression, hand-written cross-entropy")
    x = g.input(x_name, ["batch", n_in])
    y = g.input(y_name, ["batch", n_cls])
    wt = w(g, w_name, cfg.get("W_init", "zeros"), [n_in, n_cls], f"softreg{n_in}")
    bt = w(g, b_name, cfg.get("b_init", "zeros"), [n_cls], f"softreg{n_in}")
    with g.scope(str(cfg.get("model_scope", "softmax"))):
        p = g.op("Softmax", dense(g, x, wt, bt), axis=-1)
        if cfg.get("relu"):
            p = g.op("Relu", p)
    loss, log = ce_loss(g, y, p, str(cfg["loss"]), str(cfg.get("loss_scope", loss_name)))
    g.output(loss, loss_name)
    g.output(p, pred_name)
    notes = str(cfg.get("note", ""))
    kind = IN_RANGE
    if n_in == 2:
        notes = (notes + " " + _BMI_NOTE).strip()
        kind = OUT_OF_RANGE
    return Case(cid, g.model(), {x: list(cfg.get("x_range", [0.0, 1.0])), y: [0.0, 1.0]},
                [log], {log: kind}, notes, weights=dict(cfg.get("rec", {})))


@register("2a", "2b")
def case_2(cid: str) -> Case:
    """yadlt LogisticRegression: softmax output trained with an element-wise binary CE."""
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: softmax + element-wise binary cross-entropy")
    x = g.input("x-input", ["batch", 784])
    y = g.input("y-input", ["batch", 10])
    wt = w(g, "weights", "zeros", [784, 10], "softreg784")
    bt = w(g, "biases", "zeros", [10], "softreg784")
    with g.scope("softmax"):
        p = g.op("Softmax", dense(g, x, wt, bt), axis=-1)
    with g.scope("cost"):
        one = g.const(1.0, "one")
        log_p = g.op("Log", p)
        t1 = g.op("Mul", y, log_p, name="mul")
        log_q = g.op("Log", g.op("Sub", one, p, name="sub_1"))
        t2 = g.op("Mul", g.op("Sub", one, y, name="sub"), log_q, name="mul_1")
        cost = g.op("Neg", reduce_mean(g, g.op("Add", t1, t2, name="add")))
    g.output(cost, "cost")
    g.output(p, "prediction")
    rec = ({"weights": [-12.37, 12.69], "biases": [-4.13, 4.99]} if cid == "2a"
           else {"weights": [-12.01, 11.91], "biases": [-3.60, 3.20]})
    notes = (f"2a and 2b share the graph (only GRIST's search objective differs; objectives are not "
             f"modelled). Stored weights are the zero init; the ranges file gives the weight ranges "
             f"RANUM recorded for its exported weights (weights {rec['weights']}, biases "
             f"{rec['biases']}). Both logs are ground truth, as in RANUM.")
    return Case(cid, g.model(), {x: [0.0, 1.0], y: [0.0, 1.0]}, [log_p, log_q],
                {log_p: IN_RANGE, log_q: IN_RANGE}, notes, weights=rec)


# ----------------------------------------------------------------------------------------------
# TF "Deep MNIST" CNNs
# ----------------------------------------------------------------------------------------------

_DEEP: dict[str, dict[str, Any]] = {
    "6": dict(y="y", loss="sum", pred="y_conv"),
    "7": dict(y="y", loss="sum", pred="y_conv"),
    "8": dict(y="y", loss="sum", pred="y_conv"),
    "24": dict(y="y_label", loss="sum", pred="y", dropout=False, lower=True),
    "29": dict(y="y_", loss="sum", pred="y", image_input=True),
    "45b": dict(y="y_", loss="mean_rows", pred="y_CNN"),
    "55": dict(y="y", loss="mean_rows", pred="prediction"),
    "58": dict(y="y_", loss="sum", pred="y_conv"),
}
_KEEP_NOTE = ("keep_prob: the program feeds {fed} for training; we assume 1.0 is fed when the "
              "model is evaluated (the usual practice; the fact sheet gives only the training "
              "value), so its range is [{lo}, 1.0].")


@register(*_DEEP)
def case_deep_mnist(cid: str) -> Case:
    """Two conv layers + two FC layers (TensorFlow 'Deep MNIST for experts')."""
    cfg = _DEEP[cid]
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: TF deep-MNIST CNN, hand-written cross-entropy")
    if cfg.get("image_input"):
        x = g.input("x", ["batch", 28, 28, 1])
        img = x
    else:
        x = g.input("x", ["batch", 784])
        img = reshape(g, x, [-1, 28, 28, 1], "x_image")
    y = g.input(str(cfg["y"]), ["batch", 10])
    kp = g.input("keep_prob", []) if cfg.get("dropout", True) else None
    n = (lambda s: s.lower()) if cfg.get("lower") else (lambda s: s)
    key = "deep_mnist"
    h = nhwc_to_nchw(g, img)
    for i, (cin, cout) in enumerate([(1, 32), (32, 64)], start=1):
        with g.scope(f"conv{i}"):
            wc = conv_w(g, n(f"W_conv{i}"), "trunc:0.1", [5, 5, cin, cout], key)
            bc = w(g, f"b_conv{i}", 0.1, [cout], key)
            h = g.op("Relu", g.op("Conv", h, wc, bc, name="Conv2D", kernel_shape=[5, 5],
                                  pads=[2, 2, 2, 2], strides=[1, 1]))
            h = g.op("MaxPool", h, kernel_shape=[2, 2], strides=[2, 2])
    with g.scope("fc1"):
        flat = reshape(g, nchw_to_nhwc(g, h), [-1, 3136])
        h = g.op("Relu", dense(g, flat, w(g, n("W_fc1"), "trunc:0.1", [3136, 1024], key),
                               w(g, "b_fc1", 0.1, [1024], key)))
    if kp is not None:
        h = tf_dropout(g, h, kp)
    with g.scope("fc2"):
        logits = dense(g, h, w(g, n("W_fc2"), "trunc:0.1", [1024, 10], key),
                       w(g, "b_fc2", 0.1, [10], key))
        p = g.op("Softmax", logits, axis=-1)
    loss, log = ce_loss(g, y, p, str(cfg["loss"]), "cross_entropy")
    g.output(loss, "cross_entropy")
    g.output(p, str(cfg["pred"]))
    inputs = {x: [0.0, 1.0], y: [0.0, 1.0]}
    notes = ""
    if kp is not None:
        inputs[kp] = [0.5, 1.0]
        if cid in ("45b", "55", "58"):
            notes = _KEEP_NOTE.format(fed=0.5, lo=0.5)
    if cid == "24":
        notes = ("No dropout (declared, never applied). The program's 10-unit output bias reuses "
                 "the Python name b_fc1; here it is b_fc2 (initializer names must be unique).")
    if cid in ("6", "7", "8"):
        notes = "Cases 6, 7 and 8 are the same script; their models are identical."
    notes += (" Weights are drawn with the same seeds for every case of this architecture "
              "(6, 7, 8, 24, 29, 45b, 55, 58).")
    return Case(cid, g.model(), inputs, [log], {log: IN_RANGE}, notes.strip())


@register("44")
def case_44(cid: str) -> Case:
    """One conv layer + two FC layers CNN (CNNRelationExtraction example)."""
    g = Graph("grist_44", "GRIST case 44: one-conv CNN on MNIST, hand-written cross-entropy")
    x = g.input("x", ["batch", 28, 28, 1])
    y = g.input("y_", ["batch", 10])
    kp = g.input("keep_prob", [])
    with g.scope("conv1"):
        h = nhwc_to_nchw(g, x)
        wc = conv_w(g, "W_conv1", "trunc:0.1", [5, 5, 1, 16], "cnn44")
        h = g.op("Relu", g.op("Conv", h, wc, w(g, "b_conv1", 0.1, [16], "cnn44"), name="Conv2D",
                              kernel_shape=[5, 5], pads=[2, 2, 2, 2], strides=[1, 1]))
        h = g.op("MaxPool", h, kernel_shape=[2, 2], strides=[2, 2])
    with g.scope("fc1"):
        flat = reshape(g, nchw_to_nhwc(g, h), [-1, 3136])
        h = g.op("Relu", dense(g, flat, w(g, "W_fc1", "trunc:0.1", [3136, 128], "cnn44"),
                               w(g, "b_fc1", 0.1, [128], "cnn44")))
    h = tf_dropout(g, h, kp)
    with g.scope("fc2"):
        p = g.op("Softmax", dense(g, h, w(g, "W_fc2", "trunc:0.1", [128, 10], "cnn44"),
                                  w(g, "b_fc2", 0.1, [10], "cnn44")), axis=-1)
    loss, log = ce_loss(g, y, p, "sum", "cross_entropy")
    g.output(loss, "cross_entropy")
    g.output(p, "y_conv")
    return Case(cid, g.model(), {x: [0.0, 1.0], y: [0.0, 1.0], kp: [0.5, 1.0]}, [log],
                {log: IN_RANGE}, _KEEP_NOTE.format(fed=0.5, lo=0.5))


@register("14")
def case_14(cid: str) -> Case:
    """LeNet-5 on zero-padded MNIST."""
    g = Graph("grist_14", "GRIST case 14: LeNet-5, hand-written summed cross-entropy")
    x = g.input("input_x", ["batch", 32, 32, 1])
    y = g.input("label", ["batch", 10])
    key = "lenet5"
    h = nhwc_to_nchw(g, x)
    for name, cin, cout, pool in [("conv1", 1, 6, True), ("conv3", 6, 16, True),
                                  ("conv5", 16, 120, False)]:
        with g.scope(name):
            wc = conv_w(g, f"{name}_f", "trunc:0.1", [5, 5, cin, cout], key)
            bc = w(g, f"{name}_b", "zeros", [cout], key)
            h = g.op("Relu", g.op("Conv", h, wc, bc, name="Conv2D", kernel_shape=[5, 5]))
            if pool:
                h = g.op("MaxPool", h, kernel_shape=[2, 2], strides=[2, 2])
    with g.scope("fc6"):
        flat = reshape(g, nchw_to_nhwc(g, h), [-1, 120])
        h = g.op("Relu", dense(g, flat, w(g, "w6", "trunc:0.1", [120, 84], key),
                               w(g, "b6", "zeros", [84], key)))
    with g.scope("fc7"):
        p = g.op("Softmax", dense(g, h, w(g, "w7", "trunc:0.1", [84, 10], key),
                                  w(g, "b7", "zeros", [10], key)), axis=-1)
    loss, log = ce_loss(g, y, p, "sum", "loss")
    g.output(loss, "loss")
    g.output(p, "y")
    return Case(cid, g.model(), {x: [0.0, 1.0], y: [0.0, 1.0]}, [log], {log: IN_RANGE}, "")


# ----------------------------------------------------------------------------------------------
# MLPs
# ----------------------------------------------------------------------------------------------


@register("9a", "9b")
def case_9(cid: str) -> Case:
    """One-hidden-layer sigmoid MLP with a hand-written sigmoid cross-entropy."""
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: sigmoid MLP, hand-written binary CE")
    x = g.input("x", ["batch", 784])
    y = g.input("y", ["batch", 10])
    w1 = w(g, "W_h1", "zeros", [784, 512], "mlp9")
    w2 = w(g, "W_out", "zeros", [512, 10], "mlp9")
    with g.scope("hidden"):
        h1 = g.op("Sigmoid", g.op("MatMul", x, w1))
    with g.scope("output"):
        p = g.op("Sigmoid", g.op("MatMul", h1, w2))
    with g.scope("cross_entropy"):
        one = g.const(1.0, "one")
        log_p = g.op("Log", p)
        t1 = g.op("Mul", g.op("Neg", y), log_p, name="mul")
        log_q = g.op("Log", g.op("Sub", one, p, name="sub_1"))
        t2 = g.op("Mul", g.op("Sub", one, y, name="sub"), log_q, name="mul_1")
        ce = reduce_sum(g, g.op("Sub", t1, t2, name="sub_2"), [1])
    with g.scope("loss"):
        loss = reduce_mean(g, ce)
    g.output(loss, "loss")
    g.output(p, "y_")
    rec = ({"W_h1": [-13.66, 13.76], "W_out": [-10.49, 10.16]} if cid == "9a"
           else {"W_h1": [-13.16, 13.40], "W_out": [-9.92, 10.15]})
    notes = (f"9a and 9b share the graph (only GRIST's objective differs). Stored weights are the "
             f"zero init; the ranges file gives RANUM's recorded ranges of the exported weights "
             f"(W_h1 {rec['W_h1']}, W_out {rec['W_out']}). Both logs are ground truth.")
    return Case(cid, g.model(), {x: [0.0, 1.0], y: [0.0, 1.0]}, [log_p, log_q],
                {log_p: IN_RANGE, log_q: IN_RANGE}, notes, weights=rec)


@register("48a")
def case_48a(cid: str) -> Case:
    """MLP 784-300-10 with Gaussian input noise and dropout."""
    g = Graph("grist_48a", "GRIST case 48a: MLP with input noise and dropout")
    x = g.input("x", ["batch", 784])
    y = g.input("y_true", ["batch", 10])
    kp = g.input("keep_prob", [])
    with g.scope("noise"):
        noise = g.op("Mul", g.const(0.01, "mul/x"),
                     g.op("RandomNormal", name="random_normal", shape=[784], mean=0.0, scale=1.0),
                     name="mul")
    with g.scope("hidden"):
        h = g.op("Add", x, noise, name="add_noise")
        h = g.op("Relu", dense(g, h, w(g, "w1", "trunc:0.1", [784, 300], "mlp48"),
                               w(g, "b1", "zeros", [300], "mlp48")))
    h = tf_dropout(g, h, kp)
    with g.scope("output"):
        p = g.op("Softmax", dense(g, h, w(g, "w2", "zeros", [300, 10], "mlp48"),
                                  w(g, "b2", "zeros", [10], "mlp48")), axis=-1)
    loss, log = ce_loss(g, y, p, "mean_rows", "cross_entropy")
    g.output(loss, "cross_entropy")
    g.output(p, "y")
    return Case(cid, g.model(), {x: [0.0, 1.0], y: [0.0, 1.0], kp: [0.75, 1.0]}, [log],
                {log: IN_RANGE}, _KEEP_NOTE.format(fed=0.75, lo=0.75))


@register("61")
def case_61(cid: str) -> Case:
    """MLP 784-300-10 with dropout (keep_prob fed 1.0)."""
    g = Graph("grist_61", "GRIST case 61: MLP 784-300-10 with dropout")
    x = g.input("x", ["batch", 784])
    y = g.input("y_", ["batch", 10])
    kp = g.input("keep_prob", [])
    with g.scope("hidden"):
        h = g.op("Relu", dense(g, x, w(g, "W1", "trunc:0.1", [784, 300], "mlp61"),
                               w(g, "b1", "zeros", [300], "mlp61")))
    h = tf_dropout(g, h, kp)
    with g.scope("output"):
        p = g.op("Softmax", dense(g, h, w(g, "W2", "zeros", [300, 10], "mlp61"),
                                  w(g, "b2", "zeros", [10], "mlp61")), axis=-1)
    loss, log = ce_loss(g, y, p, "sum", "cross_entropy")
    g.output(loss, "cross_entropy")
    g.output(p, "y")
    return Case(cid, g.model(), {x: [0.0, 1.0], y: [0.0, 1.0], kp: [1.0, 1.0]}, [log],
                {log: IN_RANGE}, "keep_prob is fed 1.0 in both training and evaluation.")


# ----------------------------------------------------------------------------------------------
# TensorFuzz NaN demo and its fork
# ----------------------------------------------------------------------------------------------

_TFUZZ = {"11a": "truediv", "11b": "exp", "11c": "log", "16a": "base", "16b": "log16",
          "16c": "truediv16"}

_TF_WITNESS = ("(Witnesses: dense_1/kernel = 0 and dense_1/bias = 10 make the 100 hidden units 10, "
               "so dense_2/kernel = c gives logits 1000 * c.)")
_TF_SUM = (REAL, "All ten logits 88: each exp(88) = 1.65e38 is finite, their class sum 1.65e39 "
                 "overflows to inf.")
_TF_SUM16 = (REAL, "Logits [0, 100, ..., 100]: l = clip(logits, 0, 87) = [0, 87, ...], nine "
                   "finite exp(87) = 6.1e37 sum to 5.5e38 = inf (the defect's downstream effect, "
                   "on a node the truth does not name).")
_TF_DIV = (REAL, "All logits -110: every exp underflows to 0, so the class sum (the divisor) is "
                 "exactly 0.")
_TF_LOG = (REAL, "Logits [0, -110, ..., -110]: p_k = exp(-110) / 1 underflows to 0 and log|p| = "
                 "-inf; nothing guards this log.")
_TFUZZ_EXTRA: dict[str, Verdicts] = {
    "11a": {"unsafe_softmax/Sum NUM007": _TF_SUM, "unsafe_softmax/truediv NUM002": _TF_DIV,
            "cross_entropy/Log NUM001": (
                IMPRECISION, "log(p + eps) with p = exp(clip(l)) / sum(exp(l)) >= 0: the divisor is "
                             "a sum of exps, never -0, so p is never negative (0/+0 is NaN, x/+0 is "
                             "+inf). numsentry's boxes do not track the sign of zero, so a divisor "
                             "range [0, b] also allows 1/-0 = -inf and p + eps <= 0.")},
    "11b": {"unsafe_softmax/Sum NUM007": _TF_SUM, "unsafe_softmax/truediv NUM002": _TF_DIV},
    "11c": {"unsafe_softmax/Exp_1 NUM003": (
                REAL, "The denominator's Exp of the same unclipped logits overflows exactly like "
                      "the defect (numerator) Exp: a logit of 100 gives inf."),
            "unsafe_softmax/Sum NUM007": _TF_SUM, "unsafe_softmax/truediv NUM002": _TF_DIV,
            "cross_entropy/Log NUM001": _TF_LOG},
    "16a": {"unsafe_softmax/Sum NUM007": _TF_SUM, "unsafe_softmax/truediv NUM002": _TF_DIV},
    "16b": {"unsafe_softmax/Sum NUM007": _TF_SUM16, "unsafe_softmax/truediv NUM002": _TF_DIV,
            "cross_entropy/Log NUM001": _TF_LOG},
    "16c": {"unsafe_softmax/Sum NUM007": _TF_SUM16, "unsafe_softmax/truediv NUM002": _TF_DIV},
}
_TFUZZ_EXTRA_NOTE = {
    "11a": "The class sum of the unclipped exps overflows even when each exp is finite (ten "
           "logits of 88), and underflows to a zero divisor (all logits below -104).",
    "11c": "The class sum overflows (ten logits of 88) or is a zero divisor (all logits below "
           "-104), the denominator Exp overflows like the defect, and log(p) gets p = 0 when "
           "one logit dominates by more than ~104.",
    "16b": "Nine clipped exp(87) already overflow the class sum; all logits below -104 make it a "
           "zero divisor; |p| = 0 reaches the unguarded log.",
    "16c": "Nine clipped exp(87) already overflow the class sum; all logits below -104 make it a "
           "zero divisor.",
}
_TFUZZ_EXTRA_NOTE["11b"] = _TFUZZ_EXTRA_NOTE["16a"] = _TFUZZ_EXTRA_NOTE["11a"]


@register(*_TFUZZ)
def case_tensorfuzz(cid: str) -> Case:
    """3-layer MLP with a hand-written unstable softmax (TensorFuzz nan_model variants)."""
    variant = _TFUZZ[cid]
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: TensorFuzz NaN model ({variant})")
    x = g.input("x", ["batch", 28, 28, 1])
    y = g.input("y", ["batch", 10])
    key = "tensorfuzz"
    h = reshape(g, x, [-1, 784], "flatten/Reshape")
    for i, (name, nin, nout) in enumerate([("dense", 784, 200), ("dense_1", 200, 100),
                                           ("dense_2", 100, 10)]):
        with g.scope(name):
            h = dense(g, h, w(g, f"{name}/kernel", "uniform:-0.25:0.25", [nin, nout], key),
                      w(g, f"{name}/bias", "zeros", [nout], key))
            if i < 2:
                h = g.op("Relu", h)
    logits = h
    witness = IN_RANGE
    with g.scope("unsafe_softmax"):
        if variant in ("truediv", "exp", "base"):
            num = g.op("Exp", clip(g, logits, -87.0, 87.0))
            den_exp = g.op("Exp", logits)
            den = reduce_sum(g, den_exp, [1], keepdims=1)
            p = g.op("Div", num, den, name="truediv")
            defect = den_exp
        elif variant == "log":
            num = g.op("Exp", logits)
            den = reduce_sum(g, g.op("Exp", logits), [1], keepdims=1)
            p = g.op("Div", num, den, name="truediv")
            defect = num
        elif variant == "log16":
            low = g.op("ReduceMin", logits, name="Min", keepdims=0)
            lc = clip(g, logits, low, 87.0)
            num = g.op("Exp", lc)
            den = reduce_sum(g, g.op("Exp", lc), [1], keepdims=1)
            p = g.op("Div", num, den, name="truediv")
            defect, witness = num, DOWNSTREAM
        else:  # truediv16: s first, then the numerator
            low = g.op("ReduceMin", logits, name="Min", keepdims=0)
            lc = clip(g, logits, low, 87.0)
            den_exp = g.op("Exp", lc)
            den = reduce_sum(g, den_exp, [1], keepdims=1)
            p = g.op("Div", g.op("Exp", lc), den, name="truediv")
            defect, witness = den_exp, DOWNSTREAM
    with g.scope("cross_entropy"):
        if variant == "truediv":
            q = g.op("Add", p, g.const(1e-7, "eps"), name="add")
        elif variant in ("exp", "base"):
            src = g.op("Abs", p) if variant == "base" else p
            q = clip(g, src, 1e-6, 1.0)
        elif variant == "log":
            q = p
        elif variant == "log16":
            q = g.op("Abs", p)
        else:
            q = g.op("Add", g.op("Abs", p), g.const(1e-6, "eps"), name="add")
        prod = g.op("Mul", y, g.op("Log", q), name="mul")
        ce = g.op("Neg", reduce_sum(g, prod, [1]))
    with g.scope("loss"):
        loss = reduce_mean(g, ce)
    g.output(loss, "loss")
    g.output(p, "probabilities")
    notes = {
        "11a": "11a = nan_model_truediv.py as in RANUM's mapping: numerator exp(clip(logits, -87, "
               "87)), denominator exp(logits) unclipped (the defect, TF name Exp_1), log(p + 1e-7).",
        "11b": "11b = nan_model_exp.py: as 11a but log(clip(p, 1e-6, 1)). Defect = the unclipped "
               "denominator exp (TF name Exp_1).",
        "11c": "11c = nan_model_log.py: exp(logits) / sum(exp(logits)) with two separate Exp ops "
               "as written in the script; the defect is the numerator Exp (TF name Exp:0; the "
               "denominator Exp_1 overflows in the same way).",
        "16a": "16a = nan_model.py: numerator exp(clip(logits, -87, 87)), denominator exp(logits) "
               "unclipped (defect, TF name Exp_1); log(clip(|p|, 1e-6, 1)). The GRIST "
               "objective (exact form unknown; the original defines none) is not modelled.",
        "16b": "16b = nan_model_log.py: l = clip(logits, min(logits), 87); p = exp(l) / "
               "sum(exp(l)) with two Exp ops as written; the defect is the numerator Exp (TF "
               "Exp:0). Witness is downstream: exp(l) itself cannot overflow (l <= 87, exp(87) = "
               "6.1e37), but ten such terms overflow the class sum to inf (and p = 0 -> log|p| = "
               "-inf), or all terms underflow to 0 -> 0/0. The program really reaches this NaN, "
               "so the Exp stays the ground truth; the witness test checks the ReduceSum.",
        "16c": "16c = nan_model_truediv.py: s = sum(exp(l)) is built first (this Exp is the "
               "defect, TF Exp:0), then p = exp(l) / s and log(|p| + 1e-6). Witness is "
               "downstream: exp(l) itself stays finite (l <= 87) but with every logit below "
               "about -104 all terms underflow to 0 and the division gives 0/0 = NaN; the "
               "witness test checks the division.",
    }[cid]
    notes += " Weights share seeds across 11a-c and 16a-c."
    extra = _TFUZZ_EXTRA[cid]
    notes += extra_note(extra, f"{_TFUZZ_EXTRA_NOTE[cid]} {_TF_WITNESS}")
    return Case(cid, g.model(), {x: [-1.0, 1.0], y: [0.0, 1.0]}, [defect], {defect: witness},
                notes, extra_alarms=extra)


# ----------------------------------------------------------------------------------------------
# Variational auto-encoders (Nikolenko et al., chapter 10)
# ----------------------------------------------------------------------------------------------

_VAE = {
    "35a": (20, False, "a"), "35b": (20, False, "b"),
    "36a": (2, False, "a"), "36b": (2, False, "b"),
    "39a": (2, False, "a"), "39b": (2, False, "b"),
    "43a": (2, True, "a"), "43b": (2, True, "b"),
    "49a": (2, True, "a"), "49b": (2, True, "b"),
}


@register(*_VAE)
def case_vae(cid: str) -> Case:
    """Softplus VAE (784-500-500-z); variant a clips the log-variance at -87, b at -100."""
    n_z, conditional, variant = _VAE[cid]
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: {'conditional ' if conditional else ''}VAE")
    x = g.input("x", ["batch", 784])
    y = g.input("y", ["batch", 10]) if conditional else None
    eps = g.input("eps", ["batch", n_z])
    key = f"{'cvae' if conditional else 'vae'}_z{n_z}"
    if conditional:
        names = dict(h1="W_e1", h2="W_e2", mu="W_mu", ls="W_ls", b1="b_e1", b2="b_e2", bmu="b_mu",
                     bls="b_ls", g1="W_d1", g2="W_d2", go="W_out", gb1="b_d1", gb2="b_d2",
                     gbo="b_out")
    else:
        names = dict(h1="recog/h1", h2="recog/h2", mu="recog/out_mean", ls="recog/out_log_sigma",
                     b1="recog/b1", b2="recog/b2", bmu="recog/b_out_mean",
                     bls="recog/b_out_log_sigma", g1="gener/h1", g2="gener/h2",
                     go="gener/out_mean", gb1="gener/b1", gb2="gener/b2", gbo="gener/b_out_mean")
    n_x = 794 if conditional else 784
    n_d = n_z + 10 if conditional else n_z
    with g.scope("recognition"):
        h = g.op("Concat", x, y, axis=1, name="concat") if y else x
        h = g.op("Softplus", dense(g, h, w(g, names["h1"], "xavier", [n_x, 500], key),
                                   w(g, names["b1"], "zeros", [500], key), "layer_1"))
        h = g.op("Softplus", dense(g, h, w(g, names["h2"], "xavier", [500, 500], key),
                                   w(g, names["b2"], "zeros", [500], key), "layer_2"))
        z_mean = dense(g, h, w(g, names["mu"], "xavier", [500, n_z], key),
                       w(g, names["bmu"], "zeros", [n_z], key), "z_mean")
        z_ls = dense(g, h, w(g, names["ls"], "xavier", [500, n_z], key),
                     w(g, names["bls"], "zeros", [n_z], key), "z_log_sigma_sq")
    with g.scope("z"):
        if variant == "a":
            z_ls = clip(g, z_ls, -87.0, 87.0)
            var = g.op("Exp", z_ls)
        else:
            var = g.op("Exp", clip(g, z_ls, -100.0, 87.0))
        sqrt = g.op("Sqrt", var)
        z = g.op("Add", z_mean, g.op("Mul", sqrt, eps), name="add")
    with g.scope("generator"):
        h = g.op("Concat", z, y, axis=1, name="concat") if y else z
        h = g.op("Softplus", dense(g, h, w(g, names["g1"], "xavier", [n_d, 500], key),
                                   w(g, names["gb1"], "zeros", [500], key), "layer_1"))
        h = g.op("Softplus", dense(g, h, w(g, names["g2"], "xavier", [500, 500], key),
                                   w(g, names["gb2"], "zeros", [500], key), "layer_2"))
        x_rm = g.op("Sigmoid", dense(g, h, w(g, names["go"], "xavier", [500, 784], key),
                                     w(g, names["gbo"], "zeros", [784], key), "x_reconstr_mean"))
    with g.scope("reconstr_loss"):
        one = g.const(1.0, "one")
        if variant == "a":
            e10 = g.const(1e-10, "eps")
            log_p = g.op("Log", g.op("Add", e10, x_rm, name="add"))
            guard = g.op("Add", e10, one, name="add_1")  # 1e-10 + 1 == 1 in float32
            log_q = g.op("Log", g.op("Sub", guard, x_rm, name="sub_1"))
        else:
            log_p = g.op("Log", clip(g, x_rm, 1e-6, 1.0))
            log_q = g.op("Log", clip(g, g.op("Sub", one, x_rm, name="sub_1"), 1e-6, 1.0,
                                     "clip_by_value_1"))
        t1 = g.op("Mul", x, log_p, name="mul")
        t2 = g.op("Mul", g.op("Sub", one, x, name="sub"), log_q, name="mul_1")
        rec = g.op("Neg", reduce_sum(g, g.op("Add", t1, t2, name="add_2"), [1]))
    with g.scope("latent_loss"):
        var2 = g.op("Exp", z_ls if variant == "a" else clip(g, z_ls, -100.0, 87.0))
        s = g.op("Add", g.const(1.0, "one"), z_ls, name="add")
        s = g.op("Sub", s, g.op("Mul", z_mean, z_mean, name="Square"), name="sub")
        s = g.op("Sub", s, var2, name="sub_1")
        lat = g.op("Mul", g.const(-0.5, "factor"), reduce_sum(g, s, [1]), name="mul")
    with g.scope("cost"):
        cost = reduce_mean(g, g.op("Add", rec, lat, name="add"))
    g.output(cost, "cost")
    g.output(x_rm, "x_reconstr_mean")
    inputs = {x: [0.0, 1.0], eps: N01}
    if y:
        inputs[y] = [0.0, 1.0]
    same = {"36a": "39a", "39a": "36a", "36b": "39b", "39b": "36b", "43a": "49a", "49a": "43a",
            "43b": "49b", "49b": "43b"}.get(cid)
    notes = f"Same model as case {same} (seeds shared). " if same else ""
    kl_extra: Verdicts = {}
    kl_note = ""
    if n_z * 6.07e37 > 3.4028e38:  # more than 5 latent units: the KL sum can overflow
        kl_extra = {"latent_loss/Sum NUM007": (
            REAL, f"recog/h2 = 0, recog/b2 = 10, recog/out_log_sigma = 0.32: z_log_sigma_sq = "
                  f"1611, clipped to 87, so each of the {n_z} KL terms 1 + 87 - mu^2 - exp(87) "
                  f"is about -6.1e37 (finite) and their sum, -1.2e39, is -inf.")}
        kl_note = extra_note(kl_extra, (
            f"The KL sum over {n_z} latent units overflows once six or more log-variances reach "
            "the clip at 87 (exp(87) = 6.1e37); the 2-unit VAEs cannot overflow it."))
    if variant == "a":
        notes += (
            "The log-variance is clipped once to [-87, 87] and the clipped value is reused in z "
            "and in the KL term (original script). FACT-SHEET DEFECT REPLACED: the sheet's "
            "defect, sqrt(exp(clip(z_ls, -87, 87))), is never reached: exp(-87) = 1.6e-38 is a "
            "normal float32, so the Sqrt's value (>= 1.3e-19) and its gradient stay finite "
            "(only RANUM's 1e-37 threshold makes it an alarm); it is dropped. The real defect "
            "of this program is the GRIST #MUTATION# site, log(1e-10 + 1 - x_reconstr_mean): "
            "1e-10 + 1 == 1 in float32, so the guard vanishes and a saturated sigmoid gives "
            "log(0) = -inf (RANUM's ground-truth list for this model has it as Log_1). It is "
            "written as Add(1e-10, 1) then Sub so that a detector must reason in float32.")
        return Case(cid, g.model(), inputs, [log_q], {log_q: IN_RANGE},
                    notes + " " + N01_NOTE + kl_note, extra_alarms=kl_extra)
    notes += (
        "Variant with exp(clip(z_ls, -100, 87)) clipped inline twice (z and KL) and the KL "
        "linear term unclipped. Witness is gradient-only: exp(-100) = 3.8e-44 is a float32 "
        "subnormal, which TensorFlow's flush-to-zero CPU/GPU kernels turn into 0, so sqrt gets "
        "exactly 0 and its derivative 0.5/sqrt is inf (inf * 0 = NaN in the chain rule through "
        "exp). The forward value of the Sqrt stays finite, so no forward NaN/Inf exists; the "
        "witness test checks that the Sqrt argument reaches the subnormal range. The program "
        "(GRIST objective min(z_ls), Adam training) really reaches it, so the Sqrt stays.")
    return Case(cid, g.model(), inputs, [sqrt], {sqrt: GRADIENT}, notes + " " + N01_NOTE + kl_note,
                extra_alarms=kl_extra)


# ----------------------------------------------------------------------------------------------
# RBMs (free-energy loss written by hand)
# ----------------------------------------------------------------------------------------------


def _free_energy(g: Graph, v: str, wt: str, vb: str, hb: str) -> tuple[str, str]:
    """FE(v) = mean_b(-sum_j log(exp(v W^T + h_bias) + 1) - v @ v_bias); returns (FE, Exp)."""
    with g.scope("free_energy"):
        vbias_term = g.op("MatMul", v, vb, name="mv")
        wx_b = g.op("Gemm", v, wt, hb, name="linear", transB=1)
        e = g.op("Exp", wx_b)
        hidden = reduce_sum(g, g.op("Log", g.op("Add", e, g.const(1.0, "one"), name="add")), [1])
        fe = reduce_mean(g, g.op("Sub", g.op("Neg", hidden), vbias_term, name="sub"))
    return fe, e


def _sample(g: Graph, p: str) -> str:
    """relu(sign(p - U[0,1)))."""
    with g.scope("sample_from_p"):
        u = g.op("RandomUniformLike", p, name="rand", low=0.0, high=1.0)
        return g.op("Relu", g.op("Sign", g.op("Sub", p, u, name="sub")))


@register("22", "51", "62", "63")
def case_rbm(cid: str) -> Case:
    """Bernoulli RBM 784-500 with CD-1; loss = FE(v) - FE(v1)."""
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: RBM free-energy loss")
    key = "rbm"
    notes = ""
    if cid == "51":
        raw = g.input("v", ["batch", 1, 28, 28])
        v = reshape(g, raw, [-1, 784], "view")
        inputs = {raw: [0.0, 1.0]}
        notes = ("The raw input shape is unknown in the fact sheet; we take the usual MNIST loader "
                 "shape [batch,1,28,28] followed by view(-1, 784) (RANUM's file has that Reshape). ")
    else:
        v = g.input("v", ["batch", 784])
        inputs = {v: [0.0, 1.0]}
    wt = w(g, "W", "normal:0.01", [500, 784], key)
    vb = w(g, "v_bias", "zeros", [784], key)
    hb = w(g, "h_bias", "zeros", [500], key)
    if cid == "22":
        v1 = g.input("v1", ["batch", 784])
        inputs[v1] = [0.0, 1.0]
        notes = ("As in RANUM's file, the negative-phase sample v1 is a second graph input (the "
                 "Gibbs sampling is not in the graph); v1 is binary in the program, range [0, 1]. ")
    else:
        with g.scope("v_to_h"):
            p_h = g.op("Sigmoid", g.op("Gemm", v, wt, hb, name="linear", transB=1))
            h1 = _sample(g, p_h)
        with g.scope("h_to_v"):
            p_v = g.op("Sigmoid", g.op("Gemm", h1, wt, vb, name="linear"))
            v1 = _sample(g, p_v)
        notes += ("CD-1 sampling is in the graph: relu(sign(p - U)) with RandomUniformLike for "
                  "torch.rand; the unused final v->h step is left out. ")
    fe0, e0 = _free_energy(g, v, wt, vb, hb)
    fe1, e1 = _free_energy(g, v1, wt, vb, hb)
    loss = g.op("Sub", fe0, fe1, name="free_energy_diff")
    g.output(loss, "loss")
    if cid != "22":
        g.output(v1, "v1_sample")
    notes += "Weights share seeds across 22, 51, 62, 63."
    return Case(cid, g.model(), inputs, [e0, e1], {e0: IN_RANGE, e1: IN_RANGE}, notes.strip())


# ----------------------------------------------------------------------------------------------
# PyTorch toy programs
# ----------------------------------------------------------------------------------------------

_LOGI: dict[str, dict[str, Any]] = {
    "26": dict(x=[[1, 2], [2, 3], [3, 1], [4, 3], [5, 3], [6, 2]], rng=[1.0, 6.0]),
    "33": dict(x=[[1, 2], [2, 3], [3, 1], [4, 3], [5, 3], [6, 2]], rng=[1.0, 6.0]),
    "56": dict(x=[[1, 2], [2, 3], [3, 1], [4, 3], [5, 3], [6, 2]], rng=[1.0, 6.0]),
    "53": dict(x=[[v] for v in (1, 2, 3, 4, 5, 2.5, 3.5, 0, 3.1, 2.7, 2.8, 2.9)], rng=[0.0, 5.0],
               b_shape=[1, 1], form="sub"),
    "37": dict(x=[[1, 2], [2, 3], [3, 1], [4, 3], [5, 3], [6, 2]], rng=[1.0, 6.0], linear=True),
    "38": dict(x=[[0, 0], [0, 1], [1, 0], [1, 1]], rng=[0.0, 1.0], linear=True),
}
# torch.manual_seed(777); nn.Linear(2, 1): exact float32 values (bias -0.1368 as in RANUM's file)
_SEED777_W = np.array([[-0.5912610292434692, -0.01253354549407959]], dtype=np.float32)
_SEED777_B = np.array([-0.13676391541957855], dtype=np.float32)


@register(*_LOGI)
def case_logistic(cid: str) -> Case:
    """Logistic regression on a hard-coded toy set with a hand-written binary cross-entropy."""
    cfg = _LOGI[cid]
    data = np.asarray(cfg["x"], dtype=np.float32)
    n, f = data.shape
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: logistic regression, hand-written BCE")
    x = g.input("X" if cfg.get("linear") else "x_train", [n, f])
    y = g.input("Y" if cfg.get("linear") else "y_train", [n, 1])
    with g.scope("hypothesis"):
        if cfg.get("linear"):
            wt = g.weight("linear.weight", _SEED777_W)
            bt = g.weight("linear.bias", _SEED777_B)
            logit = g.op("Gemm", x, wt, bt, name="linear", transB=1)
        else:
            wt = w(g, "W", "zeros", [f, 1], f"logi{cid}")
            bt = w(g, "b", "zeros", list(cfg.get("b_shape", [1])), f"logi{cid}")
            logit = g.op("Add", g.op("MatMul", x, wt), bt)
        h = g.op("Sigmoid", logit)
    with g.scope("cost"):
        one = g.const(1.0, "one")
        log_p = g.op("Log", h)
        log_q = g.op("Log", g.op("Sub", one, h, name="sub_1"))
        if cfg.get("form") == "sub":  # mean(-y*log(h) - (1-y)*log(1-h))
            t1 = g.op("Mul", g.op("Neg", y), log_p, name="mul")
            t2 = g.op("Mul", g.op("Sub", one, y, name="sub"), log_q, name="mul_1")
            cost = reduce_mean(g, g.op("Sub", t1, t2, name="sub_2"))
        else:  # -mean(y*log(h) + (1-y)*log(1-h))
            t1 = g.op("Mul", y, log_p, name="mul")
            t2 = g.op("Mul", g.op("Sub", one, y, name="sub"), log_q, name="mul_1")
            cost = g.op("Neg", reduce_mean(g, g.op("Add", t1, t2, name="add")))
    g.output(cost, "cost")
    g.output(h, "hypothesis")
    lo, hi = cfg["rng"]
    notes = ("The fixed training data is the graph input (GRIST perturbs it without clipping); "
             f"its range is that of the data, [{lo}, {hi}].")
    kinds = {log_p: IN_RANGE, log_q: IN_RANGE}
    if cid == "53":
        kinds[log_p] = OUT_OF_RANGE
        notes += (" log(h) has no witness inside the ranges: the logit is at least -(5*10+10) = "
                  "-60 and float32 sigmoid(-60) = 8.7e-27 is not 0 (it needs a logit below about "
                  "-88.7; onnxruntime's approximate Sigmoid already returns 0 below -18, which is "
                  "not what the program computes). GRIST's unclipped perturbation of x_train "
                  "reaches it, so it stays (out-of-range witness). log(1-h) is witnessed in range.")
    if cfg.get("linear"):
        kinds = {log_p: OUT_OF_RANGE, log_q: OUT_OF_RANGE}
        lo_logit, hi_logit = -(2 * hi * 1.170 + 10), 2 * hi * 0.566 + 10
        notes += (" Weights are the exact torch.manual_seed(777) nn.Linear(2,1) values (bias "
                  "-0.1368 as in RANUM's file); the trainable rule gives weight [-1.170, 0.566] "
                  f"and bias [-10, 10], so the logit stays within about [{lo_logit:.1f}, "
                  f"{hi_logit:.1f}]. log(h) has no in-range witness: float32 sigmoid is 0 only "
                  "below about -88.7 (onnxruntime's approximate Sigmoid returns 0 below -18, "
                  "which is not what the program computes).")
        if cid == "37":
            notes += (" log(1-h): onnxruntime's Sigmoid reaches exactly 1 only above about 18, "
                      "so its witness is out of range; but PyTorch computes 1/(1+exp(-x)), "
                      "which is exactly 1.0 in float32 above 16.64 (1 + 5.9e-8 rounds to 1), "
                      "so in the program's own framework the in-range maximum 16.8 already "
                      "gives log(0): a detector that flags log(1-h) within the ranges is right.")
        else:
            notes += (" log(1-h): no in-range witness either (sigmoid(11.1) < 1 in every "
                      "implementation). 37 and 38 share graph and weights (RANUM's files "
                      "were byte-identical).")
        notes += " Both logs are reached by GRIST's unclipped perturbation of X."
    return Case(cid, g.model(), {x: [lo, hi], y: [0.0, 1.0]}, [log_p, log_q], kinds, notes)


_TOYSOFT: dict[str, dict[str, Any]] = {
    "23": dict(labels="input"), "27": dict(labels="input"), "57": dict(labels="input"),
    "46": dict(labels=[[2], [1], [0]]),
}
_Z_NOTE = ("No witness inside the range: the logits z are torch.rand values in [0, 1), so every "
           "softmax probability is at least e^-1/(1 + 4) = 0.07. The log reaches -inf only after "
           "GRIST's unclipped sign-gradient steps on z push a logit gap above ~104; the defect "
           "stays (GRIST's program reaches it) with an out-of-range witness.")


@register(*_TOYSOFT)
def case_toy_softmax(cid: str) -> Case:
    """softmax + hand-written cross-entropy on a random 3x5 logit tensor (no model)."""
    cfg = _TOYSOFT[cid]
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: softmax cross-entropy on raw logits")
    z = g.input("z", [3, 5])
    inputs: dict[str, list[float]] = {z: [0.0, 1.0]}
    with g.scope("hypothesis"):
        p = g.op("Softmax", z, axis=1)
    with g.scope("one_hot"):
        if cfg["labels"] == "input":
            y = g.input("y", [3], INT64)
            inputs[y] = [0, 4]
            idx = g.op("Unsqueeze", y, g.ints([1], "axes"))
        else:
            idx = g.ints(cfg["labels"], "labels")
        zeros = g.op("ConstantOfShape", g.op("Shape", p), name="zeros_like",
                     value=onnx.numpy_helper.from_array(np.zeros(1, np.float32)))
        onehot = g.op("ScatterElements", zeros, idx, g.const(np.ones((3, 1)), "ones"),
                      name="scatter", axis=1)
    with g.scope("cost"):
        log = g.op("Log", p)
        t = g.op("Mul", onehot, g.op("Neg", log), name="mul")
        cost = reduce_mean(g, reduce_sum(g, t, [1]))
    g.output(cost, "cost")
    g.output(p, "hypothesis")
    notes = ""
    if cid == "46":
        notes = "Labels are the constant [[2],[1],[0]] baked into RANUM's file (z is the only input). "
    else:
        notes = "The random class indices are a graph input y (int64, [0, 4]). "
    return Case(cid, g.model(), inputs, [log], {log: OUT_OF_RANGE}, notes + _Z_NOTE, check_args=[])


_SOFTTOY: dict[str, dict[str, Any]] = {
    "32": dict(b=[1], cost="sum_mean", onehot="const"),
    "34": dict(b=[1], cost="mean_rows", onehot="zeros_like"),
    "47": dict(b=[3], cost="mean_rows", onehot="const"),
    "54": dict(b=[1, 3], cost="neg_mean_rows", onehot=None),
}
_X8 = [1.0, 7.0]


@register(*_SOFTTOY)
def case_softmax_toy(cid: str) -> Case:
    """Softmax regression on the 8-sample 4-feature toy set with a hand-written CE."""
    cfg = _SOFTTOY[cid]
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: toy softmax regression, hand-written CE")
    x = g.input("x_train", [8, 4])
    if cfg["onehot"] is None:
        y = g.input("y_train", [8, 3])
        inputs = {x: _X8, y: [0.0, 1.0]}
    else:
        y = g.input("y_train", [8], INT64)
        inputs = {x: _X8, y: [0, 2]}
    wt = w(g, "W", "zeros", [4, 3], f"toy{cid}")
    bt = w(g, "b", "zeros", cfg["b"], f"toy{cid}")
    with g.scope("hypothesis"):
        p = g.op("Softmax", g.op("Add", g.op("MatMul", x, wt), bt), axis=1)
    if cfg["onehot"] is not None:
        with g.scope("y_one_hot"):
            if cfg["onehot"] == "const":
                zeros = g.const(np.zeros((8, 3)), "zeros")
            else:
                zeros = g.op("ConstantOfShape", g.op("Shape", p), name="zeros_like",
                             value=onnx.numpy_helper.from_array(np.zeros(1, np.float32)))
            idx = g.op("Unsqueeze", y, g.ints([1], "axes"))
            labels = g.op("ScatterElements", zeros, idx, g.const(np.ones((8, 1)), "ones"),
                          name="scatter", axis=1)
    else:
        labels = y
    with g.scope("cost"):
        log = g.op("Log", p)
        if cfg["cost"] == "neg_mean_rows":
            cost = g.op("Neg", reduce_mean(g, reduce_sum(g, g.op("Mul", labels, log), [1])))
        else:
            t = g.op("Mul", labels, g.op("Neg", log), name="mul")
            if cfg["cost"] == "sum_mean":
                cost = reduce_mean(g, reduce_sum(g, t))
            else:
                cost = reduce_mean(g, reduce_sum(g, t, [1]))
    g.output(cost, "cost")
    g.output(p, "hypothesis")
    notes = ("The fixed training data is the graph input x_train (range of the data, [1, 7]); "
             "W and b start at zero, [-10, 10] by the trainable rule.")
    if cid == "32":
        notes += " The one-hot buffer is a zero constant scattered with the labels (.sum().mean())."
    return Case(cid, g.model(), inputs, [log], {log: IN_RANGE}, notes)


@register("4")
def case_4(cid: str) -> Case:
    """VGAE KL loss with an identity encoder; the fork uses log(logvar) instead of exp."""
    g = Graph("grist_4", "GRIST case 4: VGAE kl_loss with log(logvar)")
    x = g.input("x", [3, 2])
    with g.scope("kl_loss"):
        mu = g.op("Identity", x, name="mu")
        logvar = g.op("Identity", x, name="logvar")
        t = g.op("Add", g.const(1.0, "one"), logvar, name="add")
        t = g.op("Sub", t, g.op("Pow", mu, g.const(2.0, "exponent")), name="sub")
        log = g.op("Log", logvar)
        t = g.op("Sub", t, log, name="sub_1")
        kl = g.op("Mul", g.const(-0.5, "factor"), reduce_mean(g, reduce_sum(g, t, [1])))
    g.output(kl, "kl_loss")
    notes = ("Encoder is the identity returning (x, x); mu and logvar are Identity nodes. The "
             "range [-1, 2] covers the test data (all 2.0) and GRIST's start point; x = 0 gives "
             "log(0) = -inf in range.")
    return Case(cid, g.model(), {x: [-1.0, 2.0]}, [log], {log: IN_RANGE}, notes, check_args=[])


@register("5")
def case_5(cid: str) -> Case:
    """MatchZoo rank cross-entropy, GRIST variant with sqrt instead of log."""
    g = Graph("grist_5", "GRIST case 5: rank cross-entropy with sqrt(softmax)")
    yp = g.input("y_pred", [6, 1])
    yt = g.input("y_true", [6, 1])
    big = np.iinfo(np.int64).max

    def group(t: str, name: str) -> str:
        with g.scope(name):
            parts = [g.op("Slice", t, g.ints([s], "starts"), g.ints([big], "ends"),
                          g.ints([0], "axes"), g.ints([3], "steps")) for s in range(3)]
            return g.op("Concat", *parts, axis=-1)

    logits = group(yp, "logits")
    labels = group(yt, "labels")
    with g.scope("loss"):
        p = g.op("Softmax", logits, axis=-1)
        sq = g.op("Sqrt", p)
        loss = g.op("Neg", reduce_mean(g, reduce_sum(g, g.op("Mul", labels, sq), [-1])))
    g.output(loss, "loss")
    g.output(p, "p")
    notes = ("Upstream MatchZoo uses log(softmax + eps); GRIST's copy uses sqrt(softmax) with no "
             "eps, as the fact sheet says. No witness inside the range: y_pred is in [0, 1], so "
             "softmax entries are >= e^-1/3 > 0. Even at p = 0 the forward sqrt is 0 (finite); "
             "the defect is sqrt's infinite derivative at 0 (gradient_only). It is reached only "
             "by GRIST's unclipped perturbation of y_pred (RANUM: not triggerable in the "
             "project); kept with an out-of-range witness whose Sqrt argument is exactly 0.")
    return Case(cid, g.model(), {yp: [0.0, 1.0], yt: [0.0, 1.0]}, [sq], {sq: GRADIENT_OUT}, notes,
                check_args=[])


@register("12")
def case_12(cid: str) -> Case:
    """skorch MLP with softmax output; NLLLoss on log of the probabilities."""
    g = Graph("grist_12", "GRIST case 12: skorch classifier, NLL on log(softmax)")
    x = g.input("X", ["batch", 784])
    y = g.input("y", ["batch"], INT64)
    key = "skorch"
    with g.scope("hidden"):
        h = g.op("Relu", g.op("Gemm", x, w(g, "hidden.weight", "torch_linear:784", [98, 784], key),
                              w(g, "hidden.bias", "torch_linear:784", [98], key), transB=1))
    with g.scope("dropout"):
        h = g.op("Dropout", h, g.const(0.5, "ratio"))
    with g.scope("output"):
        p = g.op("Softmax", g.op("Gemm", h, w(g, "output.weight", "torch_linear:98", [10, 98], key),
                                 w(g, "output.bias", "torch_linear:98", [10], key), transB=1),
                 axis=-1)
    with g.scope("get_loss"):
        log = g.op("Log", p)
        loss = g.op("NegativeLogLikelihoodLoss", log, y, name="nll_loss", reduction="mean")
    g.output(loss, "loss")
    g.output(p, "y_proba")
    notes = ("Dropout(p=0.5) is kept as an ONNX Dropout in inference mode (identity), as in an "
             "eval-mode export. y holds class indices (int64, [0, 9]).")
    return Case(cid, g.model(), {x: [0.0, 1.0], y: [0, 9]}, [log], {log: IN_RANGE}, notes)


@register("13")
def case_13(cid: str) -> Case:
    """torch_geometric.utils.softmax test, GRIST copy with log instead of exp."""
    g = Graph("grist_13", "GRIST case 13: grouped 'softmax' with log(src) / group_sum(log(src))")
    src = g.input("edge_attr", [6])
    with g.scope("softmax"):
        out = g.op("Log", src)
        grouped = reshape(g, out, [2, 3], "group")
        s = reduce_sum(g, grouped, [1], name="scatter_add")
        row = g.ints([0, 0, 0, 1, 1, 1], "row")
        res = g.op("Div", out, g.op("Gather", s, row, axis=0), name="truediv")
    g.output(res, "out")
    notes = ("The index row = [0,0,0,1,1,1] is a constant; scatter_add over it is written as "
             "Reshape [2,3] + ReduceSum (exact for this contiguous constant index; opset 13 has "
             "no ScatterElements reduction). edge_attr = 0 (in the test data) gives log(0). "
             "RANUM also expects the division (a group sum of logs can be 0, e.g. all ones); it "
             "is not in the fact sheet's defect list.")
    extra: Verdicts = {"softmax/truediv NUM002": (
        REAL, "edge_attr = 1 everywhere: log(1) = 0, so both group sums of logs are 0 and the "
              "division is 0/0.")}
    notes += extra_note(extra, "The division RANUM expects is reachable: all ones give a zero "
                               "group sum.")
    return Case(cid, g.model(), {src: [0.0, 2.0]}, [out], {out: IN_RANGE}, notes, check_args=[],
                extra_alarms=extra)


# ----------------------------------------------------------------------------------------------
# Larger single programs
# ----------------------------------------------------------------------------------------------


@register("1")
def case_1(cid: str) -> Case:
    """Spatial transformer network + small CNN on cluttered MNIST (TF models/transformer)."""
    g = Graph("grist_1", "GRIST case 1: spatial transformer + CNN, summed cross-entropy")
    x = g.input("x", ["batch", 1600])
    y = g.input("y", ["batch", 10])
    kp = g.input("keep_prob", [])
    key = "stn"
    with g.scope("localisation"):
        h = g.op("Tanh", dense(g, x, w(g, "W_fc_loc1", "zeros", [1600, 20], key),
                               w(g, "b_fc_loc1", "normal:0.01", [20], key)))
        h = tf_dropout(g, h, kp)
        theta = g.op("Tanh", dense(g, h, w(g, "W_fc_loc2", "zeros", [20, 6], key),
                                   w(g, "b_fc_loc2", [1, 0, 0, 0, 1, 0], [6], key)))
    with g.scope("SpatialTransformer"):
        theta = reshape(g, theta, [-1, 2, 3], "theta")
        lin = np.linspace(-1.0, 1.0, 40, dtype=np.float32)
        x_t = np.tile(lin[None, :], (40, 1)).reshape(1, -1)
        y_t = np.tile(lin[:, None], (1, 40)).reshape(1, -1)
        grid = g.const(np.concatenate([x_t, y_t, np.ones_like(x_t)], axis=0), "grid")
        t_g = g.op("MatMul", theta, grid, name="T_g")  # [b, 2, 1600]
        xs = reshape(g, g.op("Gather", t_g, g.ints(0, "x_idx"), axis=1, name="x_s"), [-1],
                     "x_s_flat")
        ys = reshape(g, g.op("Gather", t_g, g.ints(1, "y_idx"), axis=1, name="y_s"), [-1],
                     "y_s_flat")
        with g.scope("interpolate"):
            half = g.const(40.0, "width_f")
            one = g.const(1.0, "one")
            two = g.const(2.0, "two")
            xf = g.op("Div", g.op("Mul", g.op("Add", xs, one, name="add"), half, name="mul"),
                      two, name="truediv")
            yf = g.op("Div", g.op("Mul", g.op("Add", ys, one, name="add_1"), half, name="mul_1"),
                      two, name="truediv_1")
            zero_i = g.ints(0, "zero")
            max_i = g.ints(39, "max")
            one_i = g.ints(1, "one_i")
            x0 = g.op("Cast", g.op("Floor", xf), to=INT64)
            y0 = g.op("Cast", g.op("Floor", yf), to=INT64)
            x1 = g.op("Add", x0, one_i, name="add_2")
            y1 = g.op("Add", y0, one_i, name="add_3")
            x0, x1, y0, y1 = (g.op("Clip", t, zero_i, max_i, name="clip_by_value")
                              for t in (x0, x1, y0, y1))
            batch = g.op("Gather", g.op("Shape", x), g.ints(0, "batch_idx"), axis=0)
            base = g.op("Mul", g.op("Range", g.ints(0, "start"), batch, one_i),
                        g.ints(1600, "dim1"), name="base_mul")
            base = g.op("Unsqueeze", base, g.ints([1], "axes"))
            base = reshape(g, g.op("Tile", base, g.ints([1, 1600], "reps")), [-1], "base")
            dim2 = g.ints(40, "dim2")
            base_y0 = g.op("Add", base, g.op("Mul", y0, dim2, name="mul_y0"), name="base_y0")
            base_y1 = g.op("Add", base, g.op("Mul", y1, dim2, name="mul_y1"), name="base_y1")
            im_flat = reshape(g, x, [-1, 1], "im_flat")
            pix = {}
            for tag, by, xx in (("a", base_y0, x0), ("b", base_y1, x0), ("c", base_y0, x1),
                                ("d", base_y1, x1)):
                idx = g.op("Add", by, xx, name=f"idx_{tag}")
                pix[tag] = g.op("Gather", im_flat, idx, axis=0, name=f"I{tag}")
            x0f, x1f, y0f, y1f = (g.op("Cast", t, to=FLOAT) for t in (x0, x1, y0, y1))
            dx1 = g.op("Sub", x1f, xf, name="sub_x1")
            dx0 = g.op("Sub", xf, x0f, name="sub_x0")
            dy1 = g.op("Sub", y1f, yf, name="sub_y1")
            dy0 = g.op("Sub", yf, y0f, name="sub_y0")
            terms = []
            for tag, a, b in (("a", dx1, dy1), ("b", dx1, dy0), ("c", dx0, dy1), ("d", dx0, dy0)):
                wgt = g.op("Unsqueeze", g.op("Mul", a, b, name=f"w{tag}_mul"),
                           g.ints([1], f"w{tag}_axes"), name=f"w{tag}")
                terms.append(g.op("Mul", wgt, pix[tag], name=f"mul_{tag}"))
            out = g.op("Sum", *terms, name="add_n")
        h_trans = reshape(g, out, [-1, 40, 40, 1], "h_trans")
    h = nhwc_to_nchw(g, h_trans)
    for i, (cin, cout) in enumerate([(1, 16), (16, 16)], start=1):
        with g.scope(f"conv{i}"):
            wc = conv_w(g, f"W_conv{i}", "zeros", [3, 3, cin, cout], key)
            bc = w(g, f"b_conv{i}", "normal:0.01", [cout], key)
            h = g.op("Relu", g.op("Conv", h, wc, bc, name="Conv2D", kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[0, 0, 1, 1]))
    with g.scope("fc1"):
        flat = reshape(g, nchw_to_nhwc(g, h), [-1, 1600])
        h = g.op("Relu", dense(g, flat, w(g, "W_fc1", "zeros", [1600, 1024], key),
                               w(g, "b_fc1", "normal:0.01", [1024], key)))
    h = tf_dropout(g, h, kp)
    with g.scope("fc2"):
        p = g.op("Softmax", dense(g, h, w(g, "W_fc2", "zeros", [1024, 10], key),
                                  w(g, "b_fc2", "normal:0.01", [10], key)), axis=-1)
    loss, log = ce_loss(g, y, p, "sum", "cross_entropy")
    g.output(loss, "cross_entropy")
    g.output(p, "y_pred")
    notes = ("Spatial transformer written op by op as in the TF models/transformer code: fixed "
             "40x40 meshgrid constant, T_g = theta @ grid (broadcast MatMul instead of tiling the "
             "grid), x' = (x+1)*40/2, floor/clip indices to [0,39], four Gathers from the flat "
             "image and bilinear weights from the unclipped coordinates. SAME stride-2 convs pad "
             "bottom/right by 1. All weight matrices are zero (biases random), so most weights "
             "get [-10, 10] from the trainable rule; b_fc_loc2 = identity affine gives [-1, 2]. "
             "The GRIST objective obj_function (exact form unknown) is search instrumentation, "
             "not part of the program, and is not modelled (as in every case).")
    return Case(cid, g.model(), {x: [0.0, 1.0], y: [0.0, 1.0], kp: [0.8, 1.0]}, [log],
                {log: IN_RANGE}, notes)


@register("15")
def case_15(cid: str) -> Case:
    """Value Iteration Network on 8x8 gridworlds."""
    g = Graph("grist_15", "GRIST case 15: VIN, hand-written NLL on log(softmax)")
    xin = g.input("X", ["batch", 8, 8, 2])
    s1 = g.input("S1", ["batch", 10], INT32)
    s2 = g.input("S2", ["batch", 10], INT32)
    y = g.input("y", ["batch", 10], INT32)
    key = "vin"
    big = np.iinfo(np.int64).min + 1

    def flip(t: str, name: str) -> str:
        # kern[::-1, ::-1] on the spatial axes (ONNX layout [O, I, H, W])
        return g.op("Slice", t, g.ints([-1, -1], f"{name}/starts"), g.ints([big, big],
                    f"{name}/ends"), g.ints([2, 3], f"{name}/axes"),
                    g.ints([-1, -1], f"{name}/steps"), name=name)

    def conv(t: str, k: str, pad: int) -> str:
        return g.op("Conv", t, flip(k, "flipkernel"), name="Conv2D",
                    kernel_shape=[1 + 2 * pad] * 2, pads=[pad] * 4)

    bias = w(g, "bias", "normal:0.01", [1, 1, 1, 150], key)
    w0 = conv_w(g, "w0", "normal:0.01", [3, 3, 2, 150], key)
    w1 = conv_w(g, "w1", "normal:0.01", [1, 1, 150, 1], key)
    wq = conv_w(g, "w", "normal:0.01", [3, 3, 1, 10], key)
    wfb = conv_w(g, "w_fb", "normal:0.01", [3, 3, 1, 10], key)
    wo = w(g, "w_o", "normal:0.01", [10, 8], key)
    with g.scope("VI_Block"):
        x = nhwc_to_nchw(g, xin)
        with g.scope("h0"):
            h = g.op("Add", conv(x, w0, 1), g.op("Transpose", bias, perm=[0, 3, 1, 2]))
        with g.scope("r"):
            r = conv(h, w1, 0)
        with g.scope("q"):
            q = conv(r, wq, 1)
            v = g.op("ReduceMax", q, name="v", axes=[1], keepdims=1)
        wwfb = g.op("Concat", wq, wfb, axis=1, name="wwfb")
        for _ in range(10):  # k - 1 = 9 iterations, then the last convolution
            with g.scope("q"):
                q = conv(g.op("Concat", r, v, axis=1, name="rv"), wwfb, 1)
                v = g.op("ReduceMax", q, name="v", axes=[1], keepdims=1)
        with g.scope("q_out"):
            bs = g.op("Gather", g.op("Shape", xin), g.ints(0, "zero"), axis=0, name="bs")
            rng = g.op("Range", g.ints(0, "start"), bs, g.ints(1, "delta"))
            rprn = reshape(g, g.op("Tile", reshape(g, rng, [-1, 1], "col"),
                                   g.ints([1, 10], "reps")), [-1, 1], "rprn")
            ins1 = reshape(g, g.op("Cast", s1, to=INT64), [-1, 1], "ins1")
            ins2 = reshape(g, g.op("Cast", s2, to=INT64), [-1, 1], "ins2")
            idx = g.op("Concat", ins1, ins2, rprn, axis=1, name="idx_in")
            q_out = g.op("GatherND", g.op("Transpose", q, perm=[2, 3, 0, 1]), idx, name="q_out")
        nn = g.op("Softmax", g.op("MatMul", q_out, wo, name="logits"), axis=-1, name="output")
    with g.scope("cost"):
        yl = reshape(g, g.op("Cast", y, to=INT64), [-1, 1], "y_")
        num = g.op("Gather", g.op("Shape", yl), g.ints(0, "zero"), axis=0, name="num")
        rows = reshape(g, g.op("Range", g.ints(0, "start"), num, g.ints(1, "delta")), [-1, 1],
                       "rows")
        log = g.op("Log", nn)
        picked = g.op("GatherND", log, g.op("Concat", rows, yl, axis=1, name="cost_idx"))
        cost = g.op("Neg", reduce_mean(g, picked))
    with g.scope("err"):
        pred = g.op("ArgMax", nn, axis=1, keepdims=0)
        wrong = g.op("Cast", g.op("Not", g.op("Equal", pred, reshape(g, yl, [-1], "flat"))),
                     to=FLOAT)
        err = reduce_mean(g, wrong)
    g.output(cost, "cost")
    g.output(err, "err")
    g.output(nn, "nn")
    notes = ("Kernels are stored in ONNX [O,I,H,W] order and flipped in the graph with a "
             "negative-step Slice (kern[::-1, ::-1]). k = 10: one conv + 9 value iterations + "
             "the final conv. The program's y placeholder is flat [batch*10]; here y is "
             "[batch, 10] and flattened in the graph, so that only the 'batch' dim is symbolic. "
             "S1, S2 are int32 positions in [1, 6] (interior of the 8x8 map), y int32 in [0, 7].")
    return Case(cid, g.model(), {xin: [0.0, 10.0], s1: [1, 6], s2: [1, 6], y: [0, 7]}, [log],
                {log: IN_RANGE}, notes)


@register("17")
def case_17(cid: str) -> Case:
    """tf_unet 3-level U-Net with dice loss and pixel_wise_softmax_2."""
    g = Graph("grist_17", "GRIST case 17: tf_unet U-Net, dice loss")
    x = g.input("x", ["batch", 572, 572, 1])
    y = g.input("y", ["batch", 532, 532, 2])
    kp = g.input("keep_prob", [])
    key = "unet"

    def conv_block(t: str, wk: str, b: str) -> str:
        c = g.op("Conv", t, wk, name="Conv2D", kernel_shape=[3, 3])
        c = tf_dropout(g, c, kp)
        bb = g.op("Unsqueeze", b, g.ints([1, 2], "bias_axes"), name="bias")
        return g.op("Relu", g.op("Add", c, bb, name="add"))

    h = nhwc_to_nchw(g, x)
    skips = []
    for layer in range(3):
        f = 2 ** layer * 16
        std = float(np.sqrt(2.0 / (9 * f)))
        cin = 1 if layer == 0 else f // 2
        with g.scope(f"down_conv_{layer}"):
            w1 = conv_w(g, f"down{layer}/w1", f"trunc:{std}", [3, 3, cin, f], key)
            w2 = conv_w(g, f"down{layer}/w2", f"trunc:{std}", [3, 3, f, f], key)
            b1 = w(g, f"down{layer}/b1", 0.1, [f], key)
            b2 = w(g, f"down{layer}/b2", 0.1, [f], key)
            h = conv_block(conv_block(h, w1, b1), w2, b2)
            skips.append(h)
            if layer < 2:
                h = g.op("MaxPool", h, kernel_shape=[2, 2], strides=[2, 2])
    for layer in (1, 0):
        f = 2 ** (layer + 1) * 16
        std = float(np.sqrt(2.0 / (9 * f)))
        with g.scope(f"up_conv_{layer}"):
            wd = init_array(f"trunc:{std}", [2, 2, f // 2, f], f"{key}/up{layer}/wd")
            wd_t = g.weight(f"up{layer}/wd", np.ascontiguousarray(np.transpose(wd, (3, 2, 0, 1))))
            bd = w(g, f"up{layer}/bd", 0.1, [f // 2], key)
            hd = g.op("Relu", g.op("ConvTranspose", h, wd_t, bd, name="conv2d_transpose",
                                   kernel_shape=[2, 2], strides=[2, 2]))
            size_up = {1: 272, 0: 536}[layer]
            size_skip = {1: 280, 0: 568}[layer]
            off = (size_skip - size_up) // 2
            crop = g.op("Slice", skips[layer], g.ints([off, off], "crop/starts"),
                        g.ints([off + size_up, off + size_up], "crop/ends"),
                        g.ints([2, 3], "crop/axes"), name="crop")
            h = g.op("Concat", crop, hd, axis=1, name="concat")
            w1 = conv_w(g, f"up{layer}/w1", f"trunc:{std}", [3, 3, f, f // 2], key)
            w2 = conv_w(g, f"up{layer}/w2", f"trunc:{std}", [3, 3, f // 2, f // 2], key)
            b1 = w(g, f"up{layer}/b1", 0.1, [f // 2], key)
            b2 = w(g, f"up{layer}/b2", 0.1, [f // 2], key)
            h = conv_block(conv_block(h, w1, b1), w2, b2)
    with g.scope("output_map"):
        std = float(np.sqrt(2.0 / (9 * 32)))
        wout = conv_w(g, "out/weight", f"trunc:{std}", [1, 1, 16, 2], key)
        bout = w(g, "out/bias", 0.1, [2], key)
        logits = nchw_to_nhwc(g, g.op("Relu", g.op("Conv", h, wout, bout, name="Conv2D",
                                                   kernel_shape=[1, 1])))

    def pixel_softmax() -> tuple[str, str]:
        with g.scope("pixel_wise_softmax"):
            e = g.op("Exp", logits)
            s = reduce_sum(g, e, [3], keepdims=1)
            t = g.op("Tile", s, g.ints([1, 1, 1, 2], "multiples"))
            return g.op("Div", e, t, name="div"), e

    with g.scope("cost"):
        pred, exp0 = pixel_softmax()
        inter = reduce_sum(g, g.op("Mul", pred, y), name="intersection")
        union = g.op("Add", g.op("Add", g.const(1e-5, "eps"), reduce_sum(g, pred, name="Sum_1"),
                                 name="add"), reduce_sum(g, y, name="Sum_2"), name="union")
        loss = g.op("Neg", g.op("Div", g.op("Mul", g.const(2.0, "two"), inter), union,
                                name="truediv"))
    with g.scope("cross_entropy"):
        sm, _ = pixel_softmax()
        yf = reshape(g, y, [-1, 2], "y_flat")
        pf = reshape(g, sm, [-1, 2], "p_flat")
        ce = reduce_mean(g, g.op("Neg", reduce_mean(g, g.op("Mul", yf, g.op(
            "Log", clip(g, pf, 1e-10, 1.0)))), name="cross_entropy"))
    with g.scope("predicter"):
        predicter, _ = pixel_softmax()
    with g.scope("accuracy"):
        eq = g.op("Equal", g.op("ArgMax", predicter, axis=3, keepdims=0),
                  g.op("ArgMax", y, axis=3, keepdims=0, name="ArgMax_1"))
        acc = reduce_mean(g, g.op("Cast", eq, to=FLOAT))
    g.output(loss, "loss")
    g.output(ce, "cross_entropy")
    g.output(predicter, "predicter")
    g.output(acc, "accuracy")
    notes = ("Each 3x3 VALID conv is followed by TF1 dropout(keep_prob), then + bias and relu "
             "(the old tf_unet conv2d); the final 1x1 conv uses keep_prob 1.0, which TF1's dropout "
             "short-cuts to the identity, so it has no dropout. pixel_wise_softmax_2 is built "
             "three times (dice cost, cross_entropy, predicter); the defect is the first Exp "
             "(RANUM's fix file names Exp:0). Batch is symbolic (the program uses 1).")
    sum_real = (REAL, "Both class logits 88.4 at a pixel: each exp = 2.5e38 is finite, their sum "
                      "overflows. (Witness: up0/w1 = 0, up0/b1 = 10, up0/w2 = 0.1 give 144 on all "
                      "16 channels; out/weight = 88.4 / 2304.)")
    exp_real = (REAL, "This copy of pixel_wise_softmax_2 exponentiates the same unclipped logits "
                      "as the defect Exp: a logit of 100 overflows.")
    pred = ("pred = e / tile(sum(e)) is in [0, 1] or NaN: e_k <= fl(e_0 + e_1) for e >= 0, and "
            "x / inf = 0. The analysis divides e in [1, max] by the sum in [1, max] as "
            "independent intervals (the clean view clamps both to the float32 max), so pred "
            "reaches 3.4e38: the dependency between an Exp and its own ReduceSum (through "
            "the Tile) is lost.")
    extra: Verdicts = {
        "cost/pixel_wise_softmax/Sum NUM007": sum_real,
        "cost/intersection NUM007": (IMPRECISION, f"sum(pred * y) <= 532*532*2 = 566048. {pred}"),
        "cost/Sum_1 NUM007": (IMPRECISION, f"sum(pred) <= 566048. {pred}"),
        "cost/Mul_1 NUM007": (IMPRECISION, f"2 * intersection <= 1.13e6. {pred}"),
        "cost/truediv NUM007": (
            IMPRECISION, "2 * intersection / (1e-5 + sum(pred) + sum(y)) <= 1.13e6 / 1e-5 for "
                         f"finite operands (in fact <= 2, since pred * y <= pred, y). {pred}"),
        "cross_entropy/pixel_wise_softmax/Exp NUM003": exp_real,
        "cross_entropy/pixel_wise_softmax/Sum NUM007": sum_real,
        "predicter/pixel_wise_softmax/Exp NUM003": exp_real,
        "predicter/pixel_wise_softmax/Sum NUM007": sum_real,
    }
    notes += extra_note(extra, (
        "The two later softmax copies overflow like the defect Exp, and each class sum "
        "overflows from two finite exps (logits in [88.03, 88.72]). The dice terms are bounded "
        "because the softmax output is at most 1, which interval division cannot see."))
    return Case(cid, g.model(), {x: [0.0, 1.0], y: [0.0, 1.0], kp: [0.75, 1.0]}, [exp0],
                {exp0: IN_RANGE}, notes, extra_alarms=extra)


_ZERO_COL = "a column of {w} that is all 0 (inside its range) makes colsum|{w}| = 0"
_ZDIV_BOUND = ("|X*r| <= 1, so |(X*r)@{w}| <= colsum|{w}| and |z| <= 1 (NaN for a zero column); "
               "z*g stays within |g| <= {g}. The analysis divides the MatMul by colsum|{w}| as "
               "independent intervals (divisor from 0) and gets [-inf, inf]: the relation "
               "|a@W| <= max|a| * colsum|W| between numerator and divisor (the same weight) is "
               "lost.")
_SINGLE_MEAN = ("The mean runs over batch = 1 element, and mean(x) = x is finite for finite x. "
                "numsentry's ReduceMean/ReduceSum rule adds a rounding margin even for a single "
                "element, so the input bound 3.40282e38 (the clean view's clamp after the "
                "loss/Sum finding) becomes inf (ReduceMean over [1] of [0, 3.4028235e38] alarms, "
                "of [0, 3.4028e38] not).")
_EXTRA_28A: Verdicts = {
    "L1/SCMATMUL/z_div NUM002": (
        REAL, _ZERO_COL.format(w="w1") + ": (X@w1)/0 = 0/0 (the witness of the bias_div "
                                         "defect)."),
    "L1/SCMATMUL/z_g NUM007": (IMPRECISION, "X in [0, 1] and r = 1: " + _ZDIV_BOUND.format(
        w="w1", g="16")),
    "L2/SCMATMUL/MatMul NUM007": (
        IMPRECISION, "The gains are positive (their hull), so s1a = colsum|w1|/g1 >= 0 and r = "
                     "s1a/max(s1a) is in [0, 1] (NaN when all are 0): |a1b*r| <= 1 and |MatMul| <= "
                     "128 * 11.5. The analysis divides [0, 224408] by [0, 224408] and gets "
                     "[0, inf]: the dependency between a tensor and its own ReduceMax is lost."),
    "L2/SCMATMUL/z_div NUM002": (REAL, _ZERO_COL.format(w="wout") + ": 0/0."),
    "L2/SCMATMUL/z_g NUM007": (IMPRECISION, "r in [0, 1] and |a1b| <= 1: " + _ZDIV_BOUND.format(
        w="wout", g="14.6")),
    "L2/SCADD/bias_div NUM002": (
        REAL, _ZERO_COL.format(w="wout") + ", so s2m_0 = max(s1a)*0/g2 = 0 and bout_0/0 = inf."),
}
_GAP = ("In float32, g + 1e-7 is either exactly 0 (g = -1e-7: the real scale_div alarm, which "
        "gives +inf) or at least 2^-47 = 7.1e-15 in magnitude (a small sum of two floats near "
        "1e-7 is exact and a multiple of 2^-47), and likewise max(s1a) + 1e-7. So every finite "
        "s1m = (colsum|w1| + 1e-7)/(g1 + 1e-7) has 3.1e-9 <= |s1m| <= 7841 * 2^47 = 1.1e18. The "
        "analysis divides by [-15.9, 31.9] and gets [-inf, inf], which the clean view keeps as "
        "any finite value: intervals miss the float32 gap around 0 of x + c.")
_EXTRA_28B: Verdicts = {
    "L1/SCMATMUL/scale_div NUM002": (
        REAL, "G_matmul_1[0] = -1e-7 (inside [-15.9, 31.9]): g1 + 1e-7 is exactly 0."),
    "L1/SCADD/bias_div NUM002": (
        IMPRECISION, "The divisor s1m has numerator >= 1e-7 and |g1 + 1e-7| <= 31.9, so |s1m| >= "
                     "3.1e-9 (or +inf): never 0. Its interval is [-inf, inf], the hull of two "
                     "half-lines that both exclude 0: intervals cannot keep the hole around 0."),
    "L1/SCADD/double_scale NUM007": (IMPRECISION, "Finite |s1m| <= 1.1e18, so 2*s1m <= 2.2e18. "
                                                  + _GAP),
    "L2/SCMATMUL/MatMul NUM007": (
        IMPRECISION, "r = s1a/(max(s1a) + 1e-7): if some s1a is inf, max is inf and r is 0 or "
                     "NaN; else |r| <= 1.1e18 * 2^47 = 1.6e32, |a1b*r| <= 1.6e32 and |MatMul| <= "
                     "128 * 11.5 * 1.6e32 = 2.3e35. " + _GAP),
    "L2/SCMATMUL/z_div NUM007": (
        IMPRECISION, "|MatMul_k| <= max|a1b*r| * colsum|wout_k|, so |z| <= 1.6e32 (see MatMul); "
                     "the relation between the MatMul and colsum|wout| of the same weight is "
                     "lost, and the 1.6e32 bound needs the float32 gap. " + _GAP),
    "L2/SCMATMUL/m_S NUM007": (
        IMPRECISION, "Finite |max(s1a)| <= 1.1e18 times colsum|wout| + 1e-7 <= 1467 is <= 1.6e21. "
                     + _GAP),
    "L2/SCMATMUL/scale_div NUM002": (
        REAL, "G_matmul_2[0] = -1e-7 (inside [-12.8, 28.3]): g2 + 1e-7 is exactly 0."),
    "L2/SCMATMUL/z_g NUM007": (
        IMPRECISION, "Finite |z| <= 1.6e32 (see z_div) times |g2| <= 28.3 is <= 4.4e33. " + _GAP),
    "L2/SCADD/bias_div NUM002": (
        IMPRECISION, "|max(s1a)| >= 3.1e-9, so |max(s1a) * (colsum|wout| + 1e-7)| >= 3.1e-16 and "
                     "|s2m| >= 1.1e-17 (or inf): never 0. As for L1/SCADD/bias_div, the interval "
                     "hull loses the hole around 0."),
    "L2/SCADD/double_scale NUM007": (
        IMPRECISION, "Finite |s2m| <= 1.6e21 * 2^47 = 2.3e35, so 2*s2m is finite. " + _GAP),
    "loss/LogSoftmax NUM007": (
        IMPRECISION, "logits = a2b * s2a with |a2b| <= 1 and finite |s2a| <= 2.3e35 (an infinite "
                     "s2a makes the logit inf or NaN), so finite logits differ by <= 4.6e35 and "
                     "LogSoftmax >= -4.6e35. " + _GAP),
    "loss/Sum NUM007": (
        IMPRECISION, "Finite LogSoftmax values are >= -4.6e35 (see LogSoftmax; a non-finite logit "
                     "makes some of them non-finite), so ten of them sum to >= -4.6e36. " + _GAP),
    "loss/Mean NUM007": (IMPRECISION, _SINGLE_MEAN),
}
_R_BIG = ("g1 = -1 and w1 = 1 except column 0 = [1e-35, 0, ...]: s1a = -784 and -1e-35 "
          "(column 0), max(s1a) = -1e-35, r = 7.8e37 and a1b = -1, so a1b*r = -7.8e37 (finite)")
_EXTRA_28CD: Verdicts = {
    "L1/SCMATMUL/z_div NUM002": (REAL, _ZERO_COL.format(w="w1") + ": (X@w1)/0 = 0/0."),
    "L1/SCMATMUL/scale_div NUM002": (REAL, "G_matmul_1 = 0 (inside [-10, 10]): divisor 0."),
    "L1/SCMATMUL/z_g NUM007": (IMPRECISION, "X in [0, 1] and r = 1: " + _ZDIV_BOUND.format(
        w="w1", g="10")),
    "L1/SCADD/bias_div NUM002": (
        REAL, _ZERO_COL.format(w="w1") + ", so s1m_0 = 0/g1 = 0 and b1_0/0 = inf."),
    "L1/SCADD/double_scale NUM007": (
        REAL, "w1 = 1 and G_matmul_1 = 784/2.5e38 = 3.1e-36: s1m = 2.5e38 is finite, 2*s1m "
              "overflows."),
    "L2/SCMATMUL/ratio_div NUM002": (REAL, "w1 = 0: every s1a is 0, so max(s1a) = 0."),
    "L2/SCMATMUL/MatMul NUM007": (
        REAL, _R_BIG + "; with wout = 1 the 127 such terms sum to -1e40 = -inf."),
    "L2/SCMATMUL/z_div NUM002": (REAL, _ZERO_COL.format(w="wout") + ": 0/0."),
    "L2/SCMATMUL/m_S NUM007": (
        REAL, "w1 = 1 and G_matmul_1 = 7.84e-36: max(s1a) = 1e38 (finite) times colsum|wout| = 128 "
              "(wout = 1) overflows."),
    "L2/SCMATMUL/scale_div NUM002": (REAL, "G_matmul_2 = 0: divisor 0."),
    "L2/SCMATMUL/z_g NUM007": (
        REAL, _R_BIG + "; with wout = 0 except row 1 = 1, z = -7.8e37 (finite) and z * g2 "
                       "(g2 = 10) = -inf."),
    "L2/SCADD/bias_div NUM002": (
        REAL, _ZERO_COL.format(w="wout") + ", so s2m_0 = max(s1a)*0/g2 = 0."),
    "L2/SCADD/double_scale NUM007": (
        REAL, "w1 = 1, g1 = 1, wout = 1 and g2 = 4e-34: s2m = 784 * 128 / g2 = 2.5e38 is finite, "
              "2*s2m overflows."),
    "loss/Sum NUM007": (
        REAL, "g1 = -1e-37 and w1 = 1 except column 0 = [1e-30, 0, ...]: s1m = -inf except "
              "column 0 (max(s1a) = -1e7), so a1b*r = -inf in 127 rows; wout = +1 (column 0) / "
              "-1 (others) makes the L2 MatMul -inf / +inf, which the clip of z*g2 turns into "
              "-1 / +1. With g2 = 8.5e-30, s2m = -1.5e38 and the logits are +1.5e38 / -1.5e38 "
              "(finite): LogSoftmax is -3e38 in nine classes and with Y = 1 their sum is -inf. "
              "The Sum's own inputs are finite, but it is only reachable through upstream "
              "findings' infinities, absorbed by the clips: with every upstream value finite, "
              "|logit_k| <= (colsum|w1| + |b1|)max * colsum|wout_k| + |bout_k| <= 9932 * 1467 "
              "= 1.5e7, so after_earlier_finding is the accurate label for it."),
    "loss/Mean NUM007": (IMPRECISION, _SINGLE_MEAN + " (It is real for batch >= 2.)"),
}


@register("28a", "28b", "28c", "28d")
def case_28(cid: str) -> Case:
    """SC-DNN 784-128-10 MLP with stochastic-computing scale tracking."""
    eps = 1e-7 if cid == "28b" else 0.0
    creg = cid in ("28a", "28b")
    g = Graph(f"grist_{cid}", f"GRIST case {cid}: SC-DNN MLP with scale tracking")
    xin = g.input("X", ["batch", 784])
    yin = g.input("Y", ["batch", 10])
    key = "scdnn"
    w1 = w(g, "w1", "zeros" if cid == "28b" else "normal:1", [784, 128], key)
    wout = w(g, "wout", "normal:1", [128, 10], key)
    b1 = w(g, "b1", "normal:1", [128], key)
    bout = w(g, "bout", "normal:1", [10], key)
    if creg:
        g1 = w(g, "G_matmul_1", "uniform:0:16", [128], key)
        g2 = w(g, "G_matmul_2", "uniform:0:16", [10], key)
    else:
        vals = {"28c": (5.384, 10.93), "28d": (1.642, 13.50)}[cid]
        g1 = g.weight("G_matmul_1", np.array([vals[0]], np.float32))
        g2 = g.weight("G_matmul_2", np.array([vals[1]], np.float32))
    nodes: dict[str, str] = {}

    def plus_eps(t: str, name: str) -> str:
        return g.op("Add", t, g.const(eps, f"{name}/eps"), name=name) if eps else t

    def scmatmul(x: str, wt: str, s_in: str, gain: str, tag: str) -> tuple[str, str]:
        with g.scope("SCMATMUL"):
            m = g.op("ReduceMax", s_in, name="Max", keepdims=0)
            r = g.op("Div", s_in, plus_eps(m, "max_eps"), name="ratio_div")
            s = plus_eps(reduce_sum(g, g.op("Abs", wt), [0], name="colsum"), "colsum_eps")
            bs = g.op("Gather", g.op("Shape", x), g.ints([0], "zero"), axis=0, name="batch")
            s_t = g.op("Tile", g.op("Unsqueeze", s, g.ints([0], "axes")),
                       g.op("Concat", bs, g.ints([1], "one"), axis=0, name="reps"), name="S")
            z = g.op("Div", g.op("MatMul", g.op("Mul", x, r, name="x_r"), wt), s_t, name="z_div")
            scale = g.op("Div", g.op("Mul", m, s_t, name="m_S"), plus_eps(gain, "gain_eps"),
                         name="scale_div")
            out = clip(g, g.op("Mul", z, gain, name="z_g"), -1.0, 1.0)
            out_scale = g.op("Gather", scale, g.ints(0, "row0"), axis=0, name="out_scale")
        nodes[f"{tag}/ratio"], nodes[f"{tag}/z"], nodes[f"{tag}/scale"] = r, z, scale
        return out, out_scale

    def scadd(x: str, b: str, s_in: str, tag: str) -> tuple[str, str]:
        with g.scope("SCADD"):
            two = g.const(2.0, "two")
            q = g.op("Div", b, s_in, name="bias_div")
            half = g.op("Div", g.op("Add", x, q, name="add"), two, name="half_div")
            out = clip(g, g.op("Mul", two, half, name="double"), -1.0, 1.0)
            out_scale = g.op("Div", g.op("Mul", two, s_in, name="double_scale"), two,
                             name="scale_half_div")
        nodes[f"{tag}/bias"] = q
        return out, out_scale

    with g.scope("L1"):
        ones = g.const(np.ones((1, 784)), "input_scale")
        a1, s1m = scmatmul(xin, w1, ones, g1, "L1")
        a1b, s1a = scadd(a1, b1, s1m, "L1")
    with g.scope("L2"):
        a2, s2m = scmatmul(a1b, wout, s1a, g2, "L2")
        a2b, s2a = scadd(a2, bout, s2m, "L2")
    with g.scope("logits"):
        bs = g.op("Gather", g.op("Shape", xin), g.ints([0], "zero"), axis=0, name="batch")
        tiled = g.op("Tile", g.op("Unsqueeze", s2a, g.ints([0], "axes")),
                     g.op("Concat", bs, g.ints([1], "one"), axis=0, name="reps"), name="tile")
        logits = g.op("Mul", a2b, tiled, name="logits")
    with g.scope("loss"):
        lsm = g.op("LogSoftmax", logits, axis=-1)
        xent = g.op("Neg", reduce_sum(g, g.op("Mul", yin, lsm), [1]),
                    name="softmax_cross_entropy_with_logits")
        data_loss = reduce_mean(g, xent)
        regs = []
        for p in (w1, wout, b1, bout):
            if creg:
                a = g.op("Abs", p)
                pen = g.op("Mul", g.const(2.0, "two"), g.op("Sub", a, clip(g, a, -1.0, 1.0)))
                regs.append(reduce_sum(g, pen))
            else:
                l2 = g.op("Div", reduce_sum(g, g.op("Mul", p, p, name="Square")),
                          g.const(2.0, "two"), name="l2_loss")
                regs.append(g.op("Mul", g.const(0.0012, "scale"), l2, name="l2_regularizer"))
        reg = g.op("Sum", *regs, name="reg_sum")
        if creg:
            reg = g.op("Mul", g.const(0.25, "reg_scale"), reg, name="creg")
        loss = g.op("Add", data_loss, reg, name="total")
    g.output(loss, "loss")
    g.output(logits, "logits")
    inputs = {xin: [0.0, 1.0], yin: [0.0, 1.0]}
    weights: dict[str, list[float]] = {}
    common = ("SCMATMUL/SCADD written op by op (r = s_in/max(s_in), z = ((x*r)@w)/tile(colsum|w|), "
              "scale = max(s_in)*S/g, out = clip(z*g, -1, 1), SCADD q = b/s_in, clip(2*((x+q)/2)), "
              "(2*s_in)/2); softmax_cross_entropy_with_logits as LogSoftmax, as tf2onnx exports it. "
              "Weight-only subgraphs (column sums, scales) are kept in the graph, not folded, "
              "because the weights are trainable.")
    if cid == "28a":
        d1, d2 = nodes["L1/bias"], nodes["L2/ratio"]
        g1v = init_array("uniform:0:16", [128], f"{key}/G_matmul_1")
        g2v = init_array("uniform:0:16", [10], f"{key}/G_matmul_2")
        weights = {"G_matmul_1": [float(g1v.min()), float(g1v.max())],
                   "G_matmul_2": [float(g2v.min()), float(g2v.max())]}
        notes = (f"28a = sc_train_creg_div2 (no epsilons, random-normal w1). {common} The gains "
                 "are not trainable in this copy, so the ranges file gives their stored "
                 "min/max (a hull of the fixed values) instead of the trainable rule. Defects: "
                 "div_3 = b1 / s1m (L1/SCADD/bias_div; a w1 column of zeros makes s1m 0) and "
                 "div_6 = s1a / max(s1a) (L2/SCMATMUL/ratio_div; w1 = 0 gives 0/0).")
        notes += extra_note(_EXTRA_28A, (
            "Zero columns of w1 / wout make the column-sum divisions 0/0 and the L2 bias "
            "division b/0. The rest cannot overflow: |(x*r)@W| <= max|x*r| * colsum|W| and "
            "r = s/max(s) is in [0, 1] for s >= 0, relations the interval analysis loses."))
        return Case(cid, g.model(), inputs, [d1, d2], {d1: IN_RANGE, d2: IN_RANGE}, notes,
                    weights=weights, extra_alarms=_EXTRA_28A)
    if cid == "28b":
        d = nodes["L2/ratio"]
        notes = (f"28b = sc_train_creg (1e-7 epsilons, zero w1). {common} The gains get the "
                 "trainable rule (GRIST moves them; the sheet does not say they are fixed). "
                 "FACT-SHEET DEFECTS DROPPED: div_2 = ((X*r)@w1)/(colsum|w1|+1e-7) "
                 "(L1/SCMATMUL/z_div) can never be NaN/Inf: |(X*r)@w1| <= colsum|w1| because "
                 "|X*r| <= 1, so |z| <= 1 for any weights; div_4 = b1/s1m (L1/SCADD/bias_div) "
                 "can never be NaN/Inf either: s1m = (colsum|w1|+1e-7)/(g+1e-7) is never 0 "
                 "(numerator >= 1e-7, |g| bounded) and if g = -1e-7 it is inf and b1/inf = 0. "
                 "Kept: div_7 = s1a/(max(s1a)+1e-7) (L2/SCMATMUL/ratio_div): a gain of exactly "
                 "-1e-7 makes s1a inf, max inf, inf/inf = NaN.")
        notes += extra_note(_EXTRA_28B, (
            "A gain of exactly -1e-7 zeroes either gain division. Nothing else is reachable: in "
            "float32 g + 1e-7 (and max(s1a) + 1e-7) is 0 or >= 2^-47 in magnitude, so every "
            "finite scale stays below 2.3e35 and the scales are never 0; the interval analysis "
            "sees [-inf, inf]. The single-element loss mean is exact."))
        return Case(cid, g.model(), inputs, [d], {d: IN_RANGE}, notes, extra_alarms=_EXTRA_28B)
    notes = (f"{cid} = sc_train_l2reg{'_div2' if cid == '28d' else ''} (scalar gains, no "
             f"epsilons, L2 regularisation 0.0012*sum(p^2)/2). {common} The gains hold the "
             f"values of RANUM's file ({'5.384, 10.93' if cid == '28c' else '1.642, 13.50'}); as "
             "scalars their trainable range is [-10, 10]. A gain near 0 makes the output scale "
             "inf and the logits inf/NaN, so LogSoftmax returns NaN.")
    notes += extra_note(_EXTRA_28CD, (
        "Without epsilons and with scalar gains in [-10, 10], zero columns and zero gains give "
        "zero divisors, tiny gains give finite scales near the float32 max, and a negative gain "
        "makes r = s1a/max(s1a) as large as 7.8e37, so almost every alarm is reachable. Only "
        "z*g1 (|z| <= 1) and the single-element loss mean are not."))
    return Case(cid, g.model(), inputs, [lsm], {lsm: IN_RANGE}, notes, extra_alarms=_EXTRA_28CD)


@register("31")
def case_31(cid: str) -> Case:
    """Fully-connected GAN on MNIST; defects in the discriminator loss."""
    g = Graph("grist_31", "GRIST case 31: FC GAN, discriminator loss")
    x = g.input("x", ["batch", 784])
    z = g.input("z", ["batch", 100])
    kp = g.input("keep_prob", [])
    key = "gan"
    gw = [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    dw = [(784, 1024), (1024, 512), (512, 256), (256, 1)]
    gws = [(w(g, f"G_w{i}", "trunc:0.02", [a, b], key), w(g, f"G_b{i}", "zeros", [b], key))
           for i, (a, b) in enumerate(gw)]
    dws = [(w(g, f"D_w{i}", "trunc:0.02", [a, b], key), w(g, f"D_b{i}", "zeros", [b], key))
           for i, (a, b) in enumerate(dw)]
    with g.scope("G"):
        h = z
        for i, (wt, bt) in enumerate(gws):
            h = dense(g, h, wt, bt, f"layer{i}")
            h = g.op("Tanh" if i == 3 else "Relu", h)
        fake = h

    def disc(u: str) -> str:
        with g.scope("D"):
            h = u
            for i, (wt, bt) in enumerate(dws):
                h = dense(g, h, wt, bt, f"layer{i}")
                h = g.op("Sigmoid", h) if i == 3 else tf_dropout(g, g.op("Relu", h), kp)
            return h

    d_real = disc(x)
    d_fake = disc(fake)
    with g.scope("D_loss"):
        log_r = g.op("Log", d_real)
        # (1 - D_fake) + 1e-8 after TF grappler's constant push-down: (1 + 1e-8) - D_fake
        guard = g.op("Add", g.const(1.0, "one"), g.const(1e-8, "eps"), name="add")
        log_f = g.op("Log", g.op("Sub", guard, d_fake, name="sub"))
        d_loss = g.op("Neg", reduce_mean(g, g.op("Add", log_r, log_f, name="add_1")))
    with g.scope("G_loss"):
        g_loss = g.op("Neg", reduce_mean(g, g.op("Log", g.op("Add", d_fake, g.const(
            1e-8, "eps"), name="add"))))
    g.output(d_loss, "D_loss")
    g.output(g_loss, "G_loss")
    g.output(d_real, "D_real")
    g.output(d_fake, "D_fake")
    notes = ("The discriminator is applied twice with shared weights; TF1 dropout after each "
             "hidden relu with keep_prob fed 0.3 (range [0.3, 0.3]). The program writes "
             "log(1 - D_fake + 1e-8); TF's grappler (constant push-down, run by Session and by "
             "tf2onnx's freeze) rewrites it to (1 + 1e-8) - D_fake and folds the constant, which "
             "is exactly 1.0 in float32, so the guard vanishes and log(0) is reachable (RANUM's "
             "Log_1). The model keeps that executed form as Add(1, 1e-8) then Sub, so a detector "
             "must reason in float32; in the source order, (1 - D) + 1e-8 >= 1e-8, there would "
             "be no defect. " + N01_NOTE.replace("noise input", "noise input z"))
    return Case(cid, g.model(), {x: [-1.0, 1.0], z: N01, kp: [0.3, 0.3]}, [log_r, log_f],
                {log_r: IN_RANGE, log_f: IN_RANGE}, notes)

"""Concrete witnesses: inputs and weights that make each ground-truth defect fire on onnxruntime.

A witness sets every graph input (symbolic ``batch`` = 1) and overrides some initializers, then
runs the model on onnxruntime's CPU provider and checks a tensor:

* ``nonfinite``: the defect node's output (or, for ``downstream`` cases, the named node right
  after it) holds a NaN or an Inf;
* ``sqrt_arg_tiny``: for ``gradient_only`` cases, the argument of the Sqrt is 0 or subnormal
  (0 under flush-to-zero), where sqrt's derivative is infinite.

Values are chosen with a margin so that they fire under exact float32 semantics too, not only
under onnxruntime's approximate kernels (e.g. its Sigmoid is already 0 below -18).
For ``in_range`` witnesses every value lies inside the case's ranges (inputs: the ranges file;
weights, overridden or stored: the ranges file or the ``trainable`` rule); the runners list any
value outside them as a violation.

:func:`alarm_witnesses` gives the witnesses of the *extra alarms* that ``truth.json`` marks as
``real``: numsentry findings on nodes that are not ground-truth defects, but where inputs and
weights inside the ranges really make that node produce inf/NaN from finite inputs (or, for a
NUM002 division, a divisor that is exactly 0). :func:`run_alarm_witness` checks them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

SMALLEST_NORMAL = float(np.finfo(np.float32).tiny)  # 1.1754944e-38

Fill = float | int | str | list | np.ndarray | Callable[..., np.ndarray]


@dataclass
class Witness:
    """One witness for one or more defect nodes of a case."""

    defects: list[str]
    inputs: Mapping[str, Fill]
    weights: Mapping[str, Fill] = field(default_factory=dict)
    check: str | None = None  # downstream node to check instead of the defect nodes
    condition: str = "nonfinite"  # or "sqrt_arg_tiny"


# -- fill helpers (called with lo, hi, stored array) ------------------------------------------------


def split_cols(lo_v: float | None = None, hi_v: float | None = None) -> Callable[..., np.ndarray]:
    """Last-axis index 0 gets ``hi``, the rest ``lo`` (default: the weight's range bounds)."""

    def fill(lo: float, hi: float, stored: np.ndarray) -> np.ndarray:
        arr = np.full(stored.shape, lo if lo_v is None else lo_v, np.float32)
        arr[..., 0] = hi if hi_v is None else hi_v
        return arr

    return fill


def split_rows(lo: float, hi: float, stored: np.ndarray) -> np.ndarray:
    """First-axis index 0 gets ``hi``, the rest ``lo`` (PyTorch Linear weights [out, in])."""
    arr = np.full(stored.shape, lo, np.float32)
    arr[0] = hi
    return arr


def zero_col0(lo: float, hi: float, stored: np.ndarray) -> np.ndarray:
    """The stored weights with column 0 set to zero."""
    arr = stored.copy()
    arr[:, 0] = 0.0
    return arr


def first_elem(value: float) -> Callable[..., np.ndarray]:
    """The stored weights with element 0 set to ``value``."""

    def fill(lo: float, hi: float, stored: np.ndarray) -> np.ndarray:
        arr = stored.copy()
        arr.flat[0] = np.float32(value)
        return arr

    return fill


def columns(first: float, rest: float) -> Callable[..., np.ndarray]:
    """Last-axis index 0 gets ``first``, every other index ``rest``."""

    def fill(lo: float, hi: float, stored: np.ndarray) -> np.ndarray:
        arr = np.full(stored.shape, rest, np.float32)
        arr[..., 0] = first
        return arr

    return fill


def tiny_col0(tiny: float, rest: float = 1.0) -> Callable[..., np.ndarray]:
    """All ``rest``, except column 0, which is zero but for element [0, 0] = ``tiny``."""

    def fill(lo: float, hi: float, stored: np.ndarray) -> np.ndarray:
        arr = np.full(stored.shape, rest, np.float32)
        arr[:, 0] = 0.0
        arr[0, 0] = tiny
        return arr

    return fill


def row_only(index: int, value: float) -> Callable[..., np.ndarray]:
    """All zero except first-axis row ``index``, which is ``value``."""

    def fill(lo: float, hi: float, stored: np.ndarray) -> np.ndarray:
        arr = np.zeros(stored.shape, np.float32)
        arr[index] = value
        return arr

    return fill


HI, LO = "hi", "lo"


# -- the witnesses --------------------------------------------------------------------------------

_SOFTREG_IDS = ["3", "10", "18", "19", "20", "21", "25", "30", "45a", "48b", "50", "52", "59",
                "60"]
_SOFTREG_NAMES = {"18": ("x", "labels", "weight"), "19": ("x_input", "y", "layer_weights"),
                  "48b": ("x", "y_true", "w"), "59": ("x", "y", "weights")}
_LABELS_Y_ = {"25", "30", "45a", "50", "52", "60"}


def witnesses(cid: str) -> list[Witness]:
    """Return the witnesses of case ``cid`` (defect node names as built by ``cases.py``)."""
    onehot = [1.0] + [0.0] * 9
    if cid in _SOFTREG_IDS:
        x, y, wn = _SOFTREG_NAMES.get(cid, ("x", "y_" if cid in _LABELS_Y_ else "y", "W"))
        log = "loss/Log" if cid == "18" else ("cost/Log" if cid in ("3", "20") else
                                               "cross_entropy/Log")
        return [Witness([log], {x: 1.0, y: onehot}, {wn: split_cols()})]
    if cid in ("40", "41", "42"):
        wn = "interface/W" if cid == "42" else "W"
        log = "loss/Log" if cid == "42" else "cross_entropy/Log"
        return [Witness([log], {"x": 1.0, "y_": [1.0, 0.0, 0.0]}, {wn: split_cols(-40.0, 40.0)})]
    if cid in ("2a", "2b"):
        return [Witness(["cost/Log", "cost/Log_1"], {"x-input": 1.0, "y-input": onehot},
                        {"weights": split_cols()})]
    if cid in ("9a", "9b"):
        return [Witness(["cross_entropy/Log", "cross_entropy/Log_1"], {"x": 1.0, "y": onehot},
                        {"W_h1": HI, "W_out": split_cols()})]
    if cid in ("6", "7", "8", "24", "29", "45b", "55", "58"):
        y = {"24": "y_label", "6": "y", "7": "y", "8": "y", "55": "y"}.get(cid, "y_")
        w1, w2 = ("w_fc1", "w_fc2") if cid == "24" else ("W_fc1", "W_fc2")
        inputs: dict[str, Fill] = {"x": 1.0, y: onehot}
        if cid != "24":
            inputs["keep_prob"] = 1.0
        return [Witness(["cross_entropy/Log"], inputs,
                        {w1: 0.0, "b_fc1": HI, w2: split_cols()})]
    if cid == "44":
        return [Witness(["cross_entropy/Log"], {"x": 1.0, "y_": onehot, "keep_prob": 1.0},
                        {"W_fc1": 0.0, "b_fc1": HI, "W_fc2": split_cols()})]
    if cid == "14":
        return [Witness(["loss/Log"], {"input_x": 1.0, "label": onehot},
                        {"w6": 0.0, "b6": HI, "w7": split_cols()})]
    if cid in ("48a", "61"):
        y, names = ("y_true", ("w1", "b1", "w2")) if cid == "48a" else ("y_", ("W1", "b1", "W2"))
        return [Witness(["cross_entropy/Log"], {"x": 1.0, y: onehot, "keep_prob": 1.0},
                        {names[0]: 0.0, names[1]: HI, names[2]: split_cols()})]
    if cid in ("11a", "11b", "11c", "16a", "16b", "16c"):
        defect = {"11a": "unsafe_softmax/Exp_1", "11b": "unsafe_softmax/Exp_1",
                  "16a": "unsafe_softmax/Exp_1"}.get(cid, "unsafe_softmax/Exp")
        check = {"16b": "unsafe_softmax/Sum", "16c": "unsafe_softmax/truediv"}.get(cid)
        kernel = LO if cid == "16c" else HI
        return [Witness([defect], {"x": 1.0, "y": onehot},
                        {"dense_1/kernel": 0.0, "dense_1/bias": HI, "dense_2/kernel": kernel},
                        check=check)]
    if cid in ("35a", "36a", "39a", "43a", "49a"):
        cond = cid in ("43a", "49a")
        inputs = {"x": 0.0, "eps": 0.0}
        if cond:
            inputs["y"] = onehot
        b2, h2, out = (("b_d2", "W_d2", "W_out") if cond else
                       ("gener/b2", "gener/h2", "gener/out_mean"))
        return [Witness(["reconstr_loss/Log_1"], inputs, {h2: 0.0, b2: HI, out: HI})]
    if cid in ("35b", "36b", "39b", "43b", "49b"):
        cond = cid in ("43b", "49b")
        inputs = {"x": 0.5, "eps": 0.0}
        if cond:
            inputs["y"] = onehot
        b2, h2, ls, bls = (("b_e2", "W_e2", "W_ls", "b_ls") if cond else
                           ("recog/b2", "recog/h2", "recog/out_log_sigma",
                            "recog/b_out_log_sigma"))
        return [Witness(["z/Sqrt"], inputs, {h2: 0.0, b2: HI, ls: LO, bls: LO},
                        condition="sqrt_arg_tiny")]
    if cid in ("22", "51", "62", "63"):
        inputs = {"v": 1.0}
        if cid == "22":
            inputs["v1"] = 1.0
        return [Witness(["free_energy/Exp", "free_energy_1/Exp"], inputs,
                        {"W": HI, "h_bias": HI, "v_bias": HI})]
    if cid in ("26", "33", "56"):
        return [Witness(["cost/Log"], {"x_train": 6.0, "y_train": 1.0}, {"W": LO, "b": LO}),
                Witness(["cost/Log_1"], {"x_train": 6.0, "y_train": 0.0}, {"W": HI, "b": HI})]
    if cid == "53":
        return [Witness(["cost/Log"], {"x_train": 12.0, "y_train": 1.0}, {"W": LO, "b": LO}),
                Witness(["cost/Log_1"], {"x_train": 5.0, "y_train": 0.0}, {"W": HI, "b": HI})]
    if cid in ("37", "38"):
        return [Witness(["cost/Log"], {"X": 200.0, "Y": 1.0}),
                Witness(["cost/Log_1"], {"X": -200.0, "Y": 0.0})]
    if cid in ("23", "27", "46", "57"):
        inputs = {"z": np.array([[200.0, 0, 0, 0, 0]] * 3, np.float32)}
        if cid != "46":
            inputs["y"] = np.array([1, 2, 3], np.int64)
        return [Witness(["cost/Log"], inputs)]
    if cid in ("32", "34", "47", "54"):
        labels: Fill = (np.eye(3, dtype=np.float32)[[2, 2, 2, 1, 1, 1, 0, 0]] if cid == "54"
                        else np.array([2, 2, 2, 1, 1, 1, 0, 0], np.int64))
        return [Witness(["cost/Log"], {"x_train": 7.0, "y_train": labels}, {"W": split_cols()})]
    if cid == "4":
        return [Witness(["kl_loss/Log"], {"x": 0.0})]
    if cid == "5":
        y_pred = np.array([[200.0], [0.0], [0.0], [200.0], [0.0], [0.0]], np.float32)
        return [Witness(["loss/Sqrt"], {"y_pred": y_pred, "y_true": 0.0},
                        condition="sqrt_arg_tiny")]
    if cid == "12":
        return [Witness(["get_loss/Log"], {"X": 1.0, "y": 1},
                        {"hidden.weight": HI, "output.weight": split_rows})]
    if cid == "13":
        return [Witness(["softmax/Log"], {"edge_attr": [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]})]
    if cid == "1":
        return [Witness(["cross_entropy/Log"], {"x": 1.0, "y": onehot, "keep_prob": 1.0},
                        {"W_conv1": HI, "W_conv2": HI, "W_fc1": HI, "W_fc2": split_cols()})]
    if cid == "15":
        return [Witness(["cost/Log"], {"X": 10.0, "S1": 3, "S2": 3, "y": 0},
                        {"bias": HI, "w0": HI, "w1": HI, "w": HI, "w_fb": HI,
                         "w_o": split_cols()})]
    if cid == "17":
        return [Witness(["cost/pixel_wise_softmax/Exp"], {"x": 1.0, "y": 0.0, "keep_prob": 1.0},
                        {name: HI for name in _UNET_WEIGHTS})]
    if cid == "28a":
        return [Witness(["L1/SCADD/bias_div"], {"X": 1.0, "Y": onehot}, {"w1": zero_col0}),
                Witness(["L2/SCMATMUL/ratio_div"], {"X": 1.0, "Y": onehot}, {"w1": 0.0})]
    if cid == "28b":
        return [Witness(["L2/SCMATMUL/ratio_div"], {"X": 1.0, "Y": onehot},
                        {"G_matmul_1": first_elem(-1e-7)})]
    if cid in ("28c", "28d"):
        # the stored G_matmul_2 (10.93 / 13.50) lies outside its trainable range [-10, 10]
        return [Witness(["loss/LogSoftmax"], {"X": 1.0, "Y": onehot},
                        {"G_matmul_1": 1e-35, "G_matmul_2": 10.0})]
    if cid == "31":
        base = {"x": 0.0, "z": 0.0, "keep_prob": 0.3}
        return [Witness(["D_loss/Log"], base, {"D_w2": 0.0, "D_b2": HI, "D_w3": LO, "D_b3": LO}),
                Witness(["D_loss/Log_1"], base,
                        {"D_w2": 0.0, "D_b2": HI, "D_w3": HI, "D_b3": HI})]
    raise KeyError(f"no witness for case {cid}")


_UNET_WEIGHTS = (
    [f"down{i}/{k}" for i in range(3) for k in ("w1", "w2", "b1", "b2")]
    + [f"up{i}/{k}" for i in range(2) for k in ("wd", "bd", "w1", "w2", "b1", "b2")]
    + ["out/weight", "out/bias"]
)



# -- witnesses of the extra alarms that are real ---------------------------------------------------


def _tfuzz_logits(first: float, rest: float) -> dict[str, Fill]:
    """TensorFuzz MLP weights giving logits [first, rest, ..., rest] for every input.

    dense_1/kernel = 0 and dense_1/bias = 10 make the 100 hidden units 10 each, so logit k is
    10 * 100 * dense_2/kernel[:, k] (dense_2/bias keeps its stored zeros).
    """
    return {"dense_1/kernel": 0.0, "dense_1/bias": HI,
            "dense_2/kernel": columns(first / 1000.0, rest / 1000.0)}


def _unet_logits(logit: float) -> dict[str, Fill]:
    """U-Net weights giving the same logit for both classes at every pixel.

    up0/w1 = 0 and up0/b1 = 10 make the 16 channels 10, up0/w2 = 0.1 then gives
    144 * 10 * 0.1 = 144 everywhere, and the 1x1 output conv 16 * 144 * w = ``logit``.
    """
    return {"up0/w1": 0.0, "up0/b1": HI, "up0/w2": 0.1, "up0/b2": 0.0, "out/bias": 0.0,
            "out/weight": logit / 2304.0}


def alarm_witnesses(cid: str) -> list[AlarmWitness]:
    """Witnesses of the extra alarms of case ``cid`` that ``truth.json`` marks ``real``.

    Returns an empty list for a case with no real extra alarm.
    """
    onehot: Fill = [1.0] + [0.0] * 9
    if cid in ("11a", "11b", "11c", "16a", "16b", "16c"):
        base: dict[str, Fill] = {"x": 1.0, "y": onehot}
        # 16b/16c clip the logits to [min(logits), 87]: a logit of 0 keeps the 87s clipped
        big = _tfuzz_logits(88.0, 88.0) if cid[:2] == "11" or cid == "16a" else \
            _tfuzz_logits(0.0, 100.0)
        out = [AlarmWitness(["unsafe_softmax/Sum NUM007"], base, big),
               AlarmWitness(["unsafe_softmax/truediv NUM002"], base, _tfuzz_logits(-110.0, -110.0))]
        if cid == "11c":
            out.append(AlarmWitness(["unsafe_softmax/Exp_1 NUM003"], base,
                                    _tfuzz_logits(100.0, 100.0)))
        if cid in ("11c", "16b"):
            out.append(AlarmWitness(["cross_entropy/Log NUM001"], base,
                                    _tfuzz_logits(0.0, -110.0)))
        return out
    if cid == "13":
        return [AlarmWitness(["softmax/truediv NUM002"], {"edge_attr": 1.0})]
    if cid == "17":
        base = {"x": 1.0, "y": 0.0, "keep_prob": 1.0}
        return [AlarmWitness([f"{s}/pixel_wise_softmax/Sum NUM007"
                              for s in ("cost", "cross_entropy", "predicter")],
                             base, _unet_logits(88.4)),
                AlarmWitness([f"{s}/pixel_wise_softmax/Exp NUM003"
                              for s in ("cross_entropy", "predicter")],
                             base, _unet_logits(100.0))]
    base = {"X": 1.0, "Y": onehot}
    if cid == "28a":
        return [AlarmWitness(["L1/SCMATMUL/z_div NUM002"], base, {"w1": zero_col0}),
                AlarmWitness(["L2/SCMATMUL/z_div NUM002", "L2/SCADD/bias_div NUM002"], base,
                             {"wout": zero_col0})]
    if cid == "28b":
        return [AlarmWitness(["L1/SCMATMUL/scale_div NUM002"], base,
                             {"G_matmul_1": first_elem(-1e-7)}),
                AlarmWitness(["L2/SCMATMUL/scale_div NUM002"], base,
                             {"G_matmul_2": first_elem(-1e-7)})]
    if cid in ("28c", "28d"):
        # the stored G_matmul_2 (10.93 / 13.50) lies outside its trainable range [-10, 10]
        def gains(**kw: Fill) -> dict[str, Fill]:
            return {"G_matmul_2": 1.0, **kw}

        s1 = 784.0  # colsum |w1| with w1 = 1
        s2 = 128.0  # colsum |wout| with |wout| = 1
        return [
            AlarmWitness(["L1/SCMATMUL/z_div NUM002", "L1/SCADD/bias_div NUM002"], base,
                         gains(w1=zero_col0)),
            AlarmWitness(["L1/SCMATMUL/scale_div NUM002"], base, gains(G_matmul_1=0.0)),
            # s1m = 784 / g1 = 2.5e38 is finite, 2 * s1m is not
            AlarmWitness(["L1/SCADD/double_scale NUM007"], base,
                         gains(w1=1.0, G_matmul_1=s1 / 2.5e38)),
            AlarmWitness(["L2/SCMATMUL/ratio_div NUM002"], base, gains(w1=0.0)),
            # g1 = -1: s1m = -784 and -1e-35 (column 0), max = -1e-35, r = 7.8e37, x*r = -7.8e37
            AlarmWitness(["L2/SCMATMUL/MatMul NUM007"], base,
                         gains(w1=tiny_col0(1e-35), G_matmul_1=-1.0, wout=1.0)),
            AlarmWitness(["L2/SCMATMUL/z_div NUM002", "L2/SCADD/bias_div NUM002"], base,
                         gains(wout=zero_col0)),
            # max(s1a) = 784 / g1 = 1e38, times colsum |wout| = 128
            AlarmWitness(["L2/SCMATMUL/m_S NUM007"], base,
                         gains(w1=1.0, G_matmul_1=s1 / 1e38, wout=1.0)),
            AlarmWitness(["L2/SCMATMUL/scale_div NUM002"], base, {"G_matmul_2": 0.0}),
            # as for the MatMul, but one row of wout: z = x*r = -7.8e37, times g2 = 10
            AlarmWitness(["L2/SCMATMUL/z_g NUM007"], base,
                         {"w1": tiny_col0(1e-35), "G_matmul_1": -1.0, "wout": row_only(1, 1.0),
                          "G_matmul_2": 10.0}),
            # s2m = max(s1a) * 128 / g2 = 784 * 128 / g2 = 2.5e38
            AlarmWitness(["L2/SCADD/double_scale NUM007"], base,
                         {"w1": 1.0, "G_matmul_1": 1.0, "wout": 1.0,
                          "G_matmul_2": s1 * s2 / 2.5e38}),
            # g1 = -1e-37: s1m = -inf except column 0 (-1e7 = max), so x*r = -inf in 127 rows,
            # the L2 MatMul gives -inf/+inf per column, z*g2 is clipped to -1/+1, and the
            # logits are +-1 * s2m with s2m = -1e7 * 128 / g2 = -1.5e38: finite, 3e38 apart
            AlarmWitness(["loss/Sum NUM007"], {"X": 1.0, "Y": 1.0},
                         {"w1": tiny_col0(1e-30), "G_matmul_1": -1e-37,
                          "wout": columns(1.0, -1.0), "G_matmul_2": 1e7 * s2 / 1.5e38}),
        ]
    if cid in ("35a", "35b"):
        # h2 = softplus(10) for all 500 units, z_log_sigma_sq = 500 * 10 * 0.32 -> clipped to 87
        return [AlarmWitness(["latent_loss/Sum NUM007"], {"x": 0.5, "eps": 0.0},
                             {"recog/h2": 0.0, "recog/b2": HI, "recog/out_log_sigma": HI})]
    return []

# -- running ----------------------------------------------------------------------------------------


def trainable_range(stored: np.ndarray) -> tuple[float, float]:
    """numsentry's ``trainable`` rule: [min - span, max + span]; [-10, 10] if span is 0.

    A scalar (rank-0) initializer is not widened: it keeps its stored value.
    """
    lo, hi = float(stored.min()), float(stored.max())
    if stored.ndim == 0:
        return lo, hi
    span = hi - lo
    if span == 0.0:
        return -10.0, 10.0
    return lo - span, hi + span


def weight_ranges(model: onnx.ModelProto, ranges: dict[str, list[float]]) -> dict[str, Any]:
    """Range of every initializer: from the ranges file, else by the trainable rule."""
    out: dict[str, Any] = {}
    for init in model.graph.initializer:
        if init.name in ranges:
            out[init.name] = tuple(float(v) for v in ranges[init.name])
        else:
            out[init.name] = trainable_range(numpy_helper.to_array(init))
    return out


def _materialise(fill: Fill, lo: float, hi: float, stored: np.ndarray) -> np.ndarray:
    if callable(fill):
        return np.asarray(fill(lo, hi, stored))
    if isinstance(fill, str):
        value = {"hi": hi, "lo": lo}[fill]
        return np.full(stored.shape, value, stored.dtype)
    arr = np.asarray(fill)
    return np.broadcast_to(arr, stored.shape).astype(stored.dtype)


@dataclass
class _Prepared:
    """A case model with a witness's weights written in, and its feeds."""

    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]  # every initializer's value as run (overridden or stored)
    violations: list[str]


def _prepare(model_path: str | Path, ranges_path: str | Path, inputs: Mapping[str, Fill],
             weights: Mapping[str, Fill], batch: int) -> _Prepared:
    """Load the model, write the weight overrides in and build the input feeds.

    Every value that runs (inputs, overridden weights and the stored values of the others) is
    checked against the case's ranges; values outside them are listed as violations.
    """
    model = onnx.load(str(model_path))
    ranges = json.loads(Path(ranges_path).read_text())
    wranges = weight_ranges(model, ranges)
    violations: list[str] = []
    values: dict[str, np.ndarray] = {}
    for init in model.graph.initializer:
        stored = numpy_helper.to_array(init)
        lo, hi = wranges[init.name]
        if init.name in weights:
            value = _materialise(weights[init.name], lo, hi, stored).astype(stored.dtype)
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), init.name))
            where = ""
        else:
            value, where = stored, " (stored)"
        if value.size and (value.min() < lo or value.max() > hi):
            violations.append(f"weight {init.name}{where} outside [{lo}, {hi}]")
        values[init.name] = value
    unknown = set(weights) - set(values)
    if unknown:
        raise KeyError(f"no initializer named {sorted(unknown)}")
    feeds: dict[str, np.ndarray] = {}
    for vi in model.graph.input:
        if vi.name in values:
            continue
        ttype = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in ttype.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        if vi.name not in inputs:
            raise KeyError(f"witness gives no value for input {vi.name!r}")
        arr = np.broadcast_to(np.asarray(inputs[vi.name]), shape).astype(dtype)
        lo, hi = ranges[vi.name]
        if arr.min() < lo or arr.max() > hi:
            violations.append(f"input {vi.name} outside [{lo}, {hi}]")
        feeds[vi.name] = np.ascontiguousarray(arr)
    return _Prepared(model, feeds, values, violations)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], fetch: list[str],
         types: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` on onnxruntime (CPU), adding the ``fetch`` tensors as graph outputs.

    ``types`` gives the element type of each fetched tensor (default float).
    """
    import onnxruntime as ort

    existing = {o.name for o in model.graph.output}
    for name in fetch:
        if name not in existing:
            elem = (types or {}).get(name, onnx.TensorProto.FLOAT)
            model.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    with np.errstate(all="ignore"):
        outs = sess.run(fetch, feeds)
    return dict(zip(fetch, outs, strict=True))


@dataclass
class WitnessRun:
    """Result of running one witness."""

    values: dict[str, np.ndarray]  # checked tensors and the defect nodes' outputs
    violations: list[str]  # values outside the case's ranges
    checked: list[str]  # tensors the witness condition applies to

    def fired(self, condition: str) -> bool:
        """Whether every checked tensor meets the witness condition."""
        for name in self.checked:
            arr = self.values[name]
            if condition == "nonfinite":
                ok = bool(np.any(~np.isfinite(arr)))
            else:  # sqrt_arg_tiny: argument 0 or subnormal, never negative or NaN
                ok = bool(np.any((arr >= 0) & (arr < SMALLEST_NORMAL)))
            if not ok:
                return False
        return True


def run_witness(model_path: str | Path, ranges_path: str | Path, wit: Witness,
                batch: int = 1) -> WitnessRun:
    """Run one witness on onnxruntime and return the checked tensors and range violations.

    Args:
        model_path: The case's ONNX file.
        ranges_path: The case's JSON ranges file.
        wit: The witness.
        batch: Value given to symbolic dims.

    Returns:
        The checked tensors, the list of values outside the ranges, and the checked names.
    """
    prep = _prepare(model_path, ranges_path, wit.inputs, wit.weights, batch)
    nodes = {n.name: n for n in prep.model.graph.node}
    targets = [wit.check] if wit.check else list(wit.defects)
    checked = []
    for target in targets:
        node = nodes[target]
        checked.append(node.input[0] if wit.condition == "sqrt_arg_tiny" else node.output[0])
    fetch = list(checked)
    for target in wit.defects:  # the defect outputs themselves, for downstream/gradient cases
        out = nodes[target].output[0]
        if out not in fetch:
            fetch.append(out)
    values = _run(prep.model, prep.feeds, fetch)
    return WitnessRun(values, prep.violations, checked)


# -- extra alarms ----------------------------------------------------------------------------------


@dataclass
class AlarmWitness:
    """One witness that one or more extra alarms of a case are real.

    ``alarms`` are ``"<node> <rule>"`` keys, as in the ``extra_alarms`` of ``truth.json``. The
    witness fires an alarm when, on onnxruntime, the node gets a divisor that is exactly 0 (rule
    NUM002), or (any other rule) every float input of the node is finite and its output holds
    an inf or a NaN: the node itself creates the non-finite value.
    """

    alarms: list[str]
    inputs: Mapping[str, Fill]
    weights: Mapping[str, Fill] = field(default_factory=dict)


@dataclass
class AlarmRun:
    """Result of running one alarm witness."""

    fired: dict[str, bool]  # per alarm key
    detail: dict[str, str]  # per alarm key: what was seen at the node
    violations: list[str]  # values outside the case's ranges


_REDUCTIONS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
               "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")


def _finite_operands(node: onnx.NodeProto, inputs: list[np.ndarray | None],
                     out_shape: tuple[int, ...]) -> np.ndarray:
    """Per output element: whether every float input element it is computed from is finite.

    Exact for element-wise (broadcasting) ops, reductions and 2-D MatMul; for any other op an
    output element counts as having finite operands only when every float input is finite.
    """
    floats = [a for a in inputs if a is not None and a.dtype.kind == "f"]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in _REDUCTIONS and inputs and inputs[0] is not None:
        x = inputs[0]
        axes = attrs.get("axes")
        if axes is None and len(inputs) > 1 and inputs[1] is not None:
            axes = [int(v) for v in np.asarray(inputs[1]).ravel()]
        axis = tuple(int(a) % x.ndim for a in axes) if axes else tuple(range(x.ndim))
        fin = np.all(np.isfinite(x), axis=axis, keepdims=bool(attrs.get("keepdims", 1)))
    elif node.op_type == "MatMul" and all(a is not None and a.ndim == 2 for a in inputs[:2]):
        a, b = inputs[0], inputs[1]
        assert a is not None and b is not None
        fin = np.all(np.isfinite(a), axis=1)[:, None] & np.all(np.isfinite(b), axis=0)[None, :]
    else:
        try:
            fin = np.ones(out_shape, bool)
            for a in floats:
                fin = fin & np.broadcast_to(np.isfinite(a), out_shape)
        except ValueError:  # not element-wise
            fin = np.full(out_shape, all(bool(np.all(np.isfinite(a))) for a in floats))
    return np.broadcast_to(fin, out_shape)


def alarm_fired(rule: str, node: onnx.NodeProto, inputs: list[np.ndarray | None],
                output: np.ndarray) -> tuple[bool, str]:
    """Whether one node's concrete values fire an alarm of ``rule`` (see :class:`AlarmWitness`).

    Args:
        rule: numsentry rule code. NUM002: the divisor (input 1) holds an exact 0. Any other
            rule: some output element is inf/NaN although every float input element it is
            computed from is finite (the node itself creates it).
        node: The node.
        inputs: The node's input values (None for absent inputs).
        output: The node's first output.

    Returns:
        (fired, a short description of the values).
    """
    if rule == "NUM002":
        div = inputs[1] if len(inputs) > 1 else None
        zeros = int(np.count_nonzero(div == 0)) if div is not None else 0
        return zeros > 0, f"{zeros} zero divisor element(s)"
    bad = ~np.isfinite(output)
    fresh = int(np.count_nonzero(bad & _finite_operands(node, inputs, output.shape)))
    return fresh > 0, (f"{int(np.count_nonzero(bad))} non-finite output element(s), {fresh} of "
                       "them from finite operands")


def run_alarm_witness(model_path: str | Path, ranges_path: str | Path, wit: AlarmWitness,
                      batch: int = 1) -> AlarmRun:
    """Run one alarm witness on onnxruntime and check each of its alarms.

    Args:
        model_path: The case's ONNX file.
        ranges_path: The case's JSON ranges file.
        wit: The witness.
        batch: Value given to symbolic dims (the benchmark analyses batch = 1).

    Returns:
        Per alarm whether it fired and what was seen, and the values outside the ranges.
    """
    prep = _prepare(model_path, ranges_path, wit.inputs, wit.weights, batch)
    inferred = onnx.shape_inference.infer_shapes(prep.model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in [*inferred.graph.value_info, *inferred.graph.output]}
    nodes = {n.name: n for n in prep.model.graph.node}
    known = {**prep.feeds, **prep.weights}
    plan: dict[str, tuple[str, onnx.NodeProto]] = {}
    fetch: list[str] = []
    for key in wit.alarms:
        node_name, rule = key.rsplit(" ", 1)
        node = nodes[node_name]
        plan[key] = (rule, node)
        for name in [*node.input, node.output[0]]:
            if name and name not in known and name not in fetch:
                fetch.append(name)
    values = {**known, **_run(prep.model, prep.feeds, fetch, types)}
    fired: dict[str, bool] = {}
    detail: dict[str, str] = {}
    for key, (rule, node) in plan.items():
        ins = [values[n] if n else None for n in node.input]
        fired[key], detail[key] = alarm_fired(rule, node, ins, values[node.output[0]])
    return AlarmRun(fired, detail, prep.violations)

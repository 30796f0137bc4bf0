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
weights: the ranges file or the ``trainable`` rule); :func:`range_violations` checks this.
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
        return [Witness(["loss/LogSoftmax"], {"X": 1.0, "Y": onehot}, {"G_matmul_1": 1e-35})]
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


# -- running ----------------------------------------------------------------------------------------


def trainable_range(stored: np.ndarray) -> tuple[float, float]:
    """numsentry's ``trainable`` rule: [min - span, max + span]; [-10, 10] if span is 0."""
    lo, hi = float(stored.min()), float(stored.max())
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
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    ranges = json.loads(Path(ranges_path).read_text())
    wranges = weight_ranges(model, ranges)
    violations: list[str] = []
    inits = {i.name: i for i in model.graph.initializer}
    for name, fill in wit.weights.items():
        stored = numpy_helper.to_array(inits[name])
        lo, hi = wranges[name]
        value = _materialise(fill, lo, hi, stored).astype(stored.dtype)
        if value.min() < lo or value.max() > hi:
            violations.append(f"weight {name} outside [{lo}, {hi}]")
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))
    feeds: dict[str, np.ndarray] = {}
    init_names = set(inits)
    for vi in model.graph.input:
        if vi.name in init_names:
            continue
        ttype = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in ttype.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type)
        if vi.name not in wit.inputs:
            raise KeyError(f"witness gives no value for input {vi.name!r}")
        fill = wit.inputs[vi.name]
        arr = np.broadcast_to(np.asarray(fill), shape).astype(dtype)
        lo, hi = ranges[vi.name]
        if arr.min() < lo or arr.max() > hi:
            violations.append(f"input {vi.name} outside [{lo}, {hi}]")
        feeds[vi.name] = np.ascontiguousarray(arr)
    nodes = {n.name: n for n in model.graph.node}
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
    existing = {o.name for o in model.graph.output}
    for name in fetch:
        if name not in existing:
            model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                    None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    with np.errstate(all="ignore"):
        outs = sess.run(fetch, feeds)
    return WitnessRun(dict(zip(fetch, outs, strict=True)), violations, checked)

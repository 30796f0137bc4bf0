"""Self-contained reproductions of confirmed findings: ``witness.npz`` plus a pytest file.

Per confirmed finding a directory ``<out>/<RULE>_<node>/`` gets

* ``witness.npz``: every graph input and the weights that differ from the stored ones (plain
  arrays and string arrays only, so ``np.load(..., allow_pickle=False)`` reads it); a system
  test adds the training batch;
* ``test_<model>_<RULE>_<node>.py`` (``test_<model>_system_...`` for system tests): loads the model, substitutes the weights, runs onnxruntime (CPU)
  with the node's inputs and outputs as extra graph outputs, and asserts the non-finite value at
  that node (NUM011: the exact 0 under the Sqrt). It also checks that the witness lies inside
  the ranges the check used. A unit test needs numpy, onnx and onnxruntime only; a system test
  also trains K SGD steps through the model's loss with numsentry's torch interpretation.

The model is referenced by a path relative to the test file (``NUMSENTRY_MODEL`` overrides it);
if it changed since the witness was written, the test warns.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from numsentry import __version__
from numsentry.errors import UserError
from numsentry.reports.rules import RULES
from numsentry.search.confirm import Outcome, Target, Witness

__all__ = ["load_witness", "slug", "test_name", "write_reproduction"]


def slug(name: str) -> str:
    """A file-name-safe version of a node name."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    return s[:80] or "node"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pack(prefix: str, values: Mapping[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
    names = list(values)
    out[f"{prefix}_names"] = np.array(names, dtype=np.str_) if names else np.zeros((0,), dtype="<U1")
    for i, n in enumerate(names):
        out[f"{prefix}_{i}"] = np.ascontiguousarray(np.asarray(values[n]))


def _unpack(data: Any, prefix: str) -> dict[str, np.ndarray]:
    return {str(n): data[f"{prefix}_{i}"] for i, n in enumerate(data[f"{prefix}_names"])}


def load_witness(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``witness.npz``: ``inputs``, ``weights``, ``batch`` (system tests) and ``meta``."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        return {"inputs": _unpack(data, "input"), "weights": _unpack(data, "weight"),
                "batch": _unpack(data, "batch") if "batch_names" in data else {}, "meta": meta}


def write_reproduction(outcome: Outcome, target: Target, model_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                       ranges: Mapping[str, tuple[float, float]], dims: Mapping[str, int] | None = None,
                       denormal_as_zero: bool = False, runs: int = 1) -> Path:
    """Write ``witness.npz`` and the pytest file of a confirmed outcome; sets ``outcome.path``.

    Args:
        outcome: A confirmed outcome (its witness is written).
        target: The node and rule.
        model_path: The model file the test loads.
        out_dir: Parent directory of the reproduction.
        ranges: The ranges the check used, by input/weight name (checked by the test).
        dims: Symbolic dimension values the witness was found with.
        denormal_as_zero: onnxruntime ran with denormals flushed to zero.
        runs: Runs that must all fire (models with random ops).

    Returns:
        The reproduction's directory.

    Raises:
        UserError: No witness, or the directory cannot be written.
    """
    w = outcome.witness
    if w is None:
        raise UserError(f"{outcome.node}: no witness to write")
    model = Path(model_path).resolve()
    d = Path(out_dir) / f"{w.rule}_{slug(w.node)}"
    try:
        d.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        _pack("input", w.inputs, arrays)
        _pack("weight", w.weights, arrays)
        meta = _meta(w, target, dims, denormal_as_zero, runs)
        if w.method == "system":
            _pack("batch", w.extra["batch"], arrays)
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(d / "witness.npz", **arrays)  # type: ignore[arg-type]
        try:
            rel = os.path.relpath(model, d.resolve())
        except ValueError:  # another drive (Windows)
            rel = str(model)
        test = d / test_name(w, model)
        test.write_text(_test_source(w, target, rel, _sha256(model), ranges, meta, test.name), encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the reproduction to {d}: {e.strerror or e}") from e
    outcome.path = str(d)
    return d


def _meta(w: Witness, t: Target, dims: Mapping[str, int] | None, denormal_as_zero: bool, runs: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"numsentry": __version__, "rule": w.rule, "node": w.node, "op_type": w.op_type,
                            "node_inputs": list(t.node.inputs), "node_outputs": list(t.node.outputs),
                            "after_earlier_finding": t.after_earlier, "observed": w.observed, "method": w.method,
                            "goal": w.goal, "denormal_as_zero": denormal_as_zero, "runs": runs,
                            "dims": dict(dims or {})}
    if w.method == "system":
        meta.update({k: w.extra[k] for k in ("loss", "lr", "steps", "trainable", "failure_step", "during_training")})
    return meta


_HEADER = '''"""{title}

Generated by numsentry {version} (`numsentry trigger`). {observed}

{story}
Run with: pytest {file}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

HERE = Path(__file__).resolve().parent
MODEL = Path(os.environ.get("NUMSENTRY_MODEL", {model!r}))
MODEL_SHA256 = {sha!r}
RANGES = json.loads({ranges!r})
META = json.loads(str(np.load(HERE / "witness.npz", allow_pickle=False)["meta"]))


def _load(prefix: str) -> dict[str, np.ndarray]:
    data = np.load(HERE / "witness.npz", allow_pickle=False)
    if f"{{prefix}}_names" not in data:
        return {{}}
    return {{str(n): data[f"{{prefix}}_{{i}}"] for i, n in enumerate(data[f"{{prefix}}_names"])}}


def _model_path() -> Path:
    path = MODEL if MODEL.is_absolute() else HERE / MODEL
    if hashlib.sha256(path.read_bytes()).hexdigest() != MODEL_SHA256:
        warnings.warn(f"{{path}} changed since this witness was generated", stacklevel=2)
    return path


def run_model(inputs: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the model on onnxruntime (CPU) with ``weights`` substituted; returns the node's values."""
    model = onnx.load(str(_model_path()))
    inits = {{t.name: t for t in model.graph.initializer}}
    for name, value in weights.items():
        assert name in inits, f"the model has no initializer {{name!r}}"
        old = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array(np.asarray(value).astype(old.dtype), name))
    types = {{v.name: v.type for v in onnx.shape_inference.infer_shapes(model).graph.value_info}}
    given = {{i.name for i in model.graph.input}} | set(inits)
    outputs = {{o.name for o in model.graph.output}}
    fetch = []
    for name in META["node_inputs"] + META["node_outputs"]:
        if not name or name in given or name in fetch:
            continue
        if name not in outputs:
            vi = onnx.ValueInfoProto()
            vi.name = name
            if name in types:
                vi.type.CopyFrom(types[name])
                vi.type.tensor_type.ClearField("shape")
            else:
                vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
            model.graph.output.append(vi)
        fetch.append(name)
    opts = ort.SessionOptions()
    if META["denormal_as_zero"]:
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # written by a newer onnx: the IR version is only a format stamp
        m = re.search(r"max supported IR version: (\\d+)", str(e))
        if m is None:
            raise
        model.ir_version = int(m.group(1))
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    with np.errstate(all="ignore"):
        values = dict(zip(fetch, sess.run(fetch, inputs)))
    values.update(inputs)
    for name, t in inits.items():
        if name in META["node_inputs"]:
            values[name] = numpy_helper.to_array(t)
    return values


def assert_fires(values: dict[str, np.ndarray]) -> None:
    """The node's failure: non-finite output (NUM011: an exact 0 under the Sqrt)."""
    ins = [values.get(n) if n else None for n in META["node_inputs"]]
    outs = [values.get(n) if n else None for n in META["node_outputs"]]
    finite_in = all(np.isfinite(a).all() for a in ins if a is not None and np.asarray(a).dtype.kind == "f")
    if META["rule"] == "NUM011":
        assert finite_in and np.any(np.asarray(ins[0]) == 0), "the Sqrt input has no exact 0"
        return
    bad = [o for o in outs if o is not None and np.asarray(o).dtype.kind == "f" and not np.isfinite(o).all()]
    assert bad, f"no NaN/Inf at {{META['node']}}"
    assert finite_in or META["after_earlier_finding"], "the node's inputs were already non-finite"


def test_witness_within_ranges() -> None:
    """Every input (and weight, where it had a range) lies inside the ranges of the check."""
    values = {{**_load("input"), **_load("batch")}}
    if META["method"] != "system":  # trained weights may leave the ranges: training put them there
        values.update(_load("weight"))
    for name, value in values.items():
        value = np.asarray(value)
        if name in RANGES and value.dtype.kind == "f":
            lo, hi = (value.dtype.type(b) for b in RANGES[name])  # the range as the dtype holds it
            assert lo <= np.min(value) and np.max(value) <= hi, name
'''

_UNIT = '''

def test_{fn}() -> None:
    """{rule} {name}: onnxruntime produces the failure at {node!r}."""
    inputs, weights = _load("input"), _load("weight")
    for _ in range(META["runs"]):
        assert_fires(run_model(inputs, weights))
'''

_SYSTEM = '''

def test_{fn}_after_training() -> None:
    """{rule} {name}: SGD on the batch drives the model into the failure at {node!r}."""
    pytest.importorskip("torch")
    search = pytest.importorskip("numsentry.search.system")
    from numsentry.ir.load import load_model

    model = load_model(str(_model_path()), dims=META["dims"])
    batch = _load("batch")
    steps = META["failure_step"]
    trained = search.train(model, META["loss"], batch, META["lr"], steps, META["trainable"])
    stored = {{k: v for k, v in model.graph.initializers.items()}}
    weights = {{k: v for k, v in trained.weights.items() if not np.array_equal(v, stored[k])}}
    # training reproduces the recorded weights (up to float32 rounding across machines)
    for name, value in _load("weight").items():
        np.testing.assert_allclose(weights.get(name, stored[name]), value, rtol=1e-4, atol=1e-6)
    probe = batch if META["during_training"] else _load("input")
    for _ in range(META["runs"]):
        assert_fires(run_model(probe, weights))
'''


def test_name(w: Witness, model: Path) -> str:
    """The test file's name: unique per model, method, rule and node (pytest's default import
    mode needs unique basenames across directories)."""
    kind = "system_" if w.method == "system" else ""
    return f"test_{slug(model.stem)}_{kind}{w.rule}_{slug(w.node)}.py"


def _test_source(w: Witness, t: Target, model_rel: str, sha: str, ranges: Mapping[str, tuple[float, float]],
                 meta: Mapping[str, Any], file: str) -> str:
    rule = RULES.get(w.rule)
    rname = rule.name if rule else w.rule
    fn = f"{w.rule.lower()}_{slug(w.node).lower()}"
    used = {k: (float(v[0]), float(v[1])) for k, v in ranges.items()
            if k in w.inputs or k in w.weights or (w.method == "system" and k in w.extra.get("batch", {}))}
    if w.method == "system":
        story = (f"System test: {meta['steps']} SGD step(s) (learning rate {meta['lr']:g}) through the loss "
                 f"{meta['loss']!r} on the batch in witness.npz, from the stored weights; "
                 + ("training itself fails" if meta["during_training"] else "the trained model then fails")
                 + f" (step {meta['failure_step']}).\n")
    else:
        story = "Unit test: the inputs and weights in witness.npz, inside the ranges of the check.\n"
    src = _HEADER.format(title=f"{w.rule} {rname} at {w.node!r} ({w.op_type}): failure-exhibiting "
                               + ("system test." if w.method == "system" else "unit test."),
                         version=__version__, observed=w.observed.replace('"""', "'''"), story=story,
                         file=file, model=model_rel, sha=sha,
                         ranges=json.dumps(used))
    tmpl = _SYSTEM if w.method == "system" else _UNIT
    return src + tmpl.format(fn=fn, rule=w.rule, name=rname, node=w.node)

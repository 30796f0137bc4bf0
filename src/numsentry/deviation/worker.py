"""Run one configuration in this (fresh) process: ``python -m numsentry.deviation.worker SPEC.json``.

The runner starts this module with the configuration's environment variables already in the
process environment, so oneDNN, MKL, ATen and OpenBLAS read them before their first kernel
(OpenBLAS reads ``OPENBLAS_CORETYPE`` when NumPy is imported). Settings that are not
environment variables (torch thread count, oneDNN on/off, memory format, onnxruntime
optimisation level, dtype, batch size) are applied here before the model runs. Inputs come from
an ``.npz`` file and weights from the model file: nothing depends on a framework RNG.

Writes, into the spec's ``out_dir``: ``result.json`` (status ``ok``/``skipped``/``failed``,
reason, per-repeat seconds and output hashes, what the process observed about its environment)
and ``outputs.npz`` (``out/<repeat>/<name>`` for every distinct repeat, ``layer/<value>`` for
intermediate tensors with ``layers``). bfloat16 arrays are stored as float32 (exact); their
dtype is recorded in ``result.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Skip", "convert_proto_dtype", "main", "run_spec"]

_ENV_AT_START = dict(os.environ)
_MAX_TIMED = 20  # runs at most, repeats included
_TIME_BUDGET = 0.25  # seconds of timed runs to aim for  # before any library import: what the process started with


class Skip(Exception):
    """The configuration cannot run here (a knob value or dtype the runtime does not support)."""


def _observe_env() -> dict[str, str | None]:
    from numsentry.deviation.configs import ENV_KNOBS

    return {k: _ENV_AT_START.get(k) for k in ENV_KNOBS}


def _chunks(feeds: dict[str, Any], batch: int | None) -> list[dict[str, Any]]:
    """Split inputs that share the leading dimension into batches of ``batch`` rows."""
    import numpy as np

    if not batch:
        return [feeds]
    lead = {v.shape[0] for v in feeds.values() if np.ndim(v) >= 1}
    if len(lead) != 1:
        return [feeds]
    n = lead.pop()
    out = []
    for s in range(0, n, batch):
        out.append({k: (v[s:s + batch] if np.ndim(v) >= 1 and v.shape[0] == n else v) for k, v in feeds.items()})
    return out


def _fixed_batch(proto: Any) -> int | None:
    """The fixed leading dimension of the model's inputs (None when symbolic or absent)."""
    inits = {t.name for t in proto.graph.initializer}
    fixed: set[int] = set()
    for i in proto.graph.input:
        if i.name in inits or not i.type.tensor_type.HasField("shape"):
            continue
        dims = i.type.tensor_type.shape.dim
        if not dims:
            continue
        if not dims[0].HasField("dim_value"):
            return None
        fixed.add(int(dims[0].dim_value))
    return fixed.pop() if len(fixed) == 1 else None


def _concat(parts: list[Any]) -> Any:
    import numpy as np

    if len(parts) == 1:
        return parts[0]
    if all(np.ndim(p) >= 1 for p in parts) and len({np.shape(p)[1:] for p in parts}) == 1:
        return np.concatenate(parts, axis=0)
    return None


def _to_store(a: Any) -> tuple[Any, str]:
    """A NumPy array fit for ``np.savez`` and the dtype name of the original."""
    import numpy as np

    arr = np.asarray(a)
    name = arr.dtype.name
    if name == "bfloat16":
        return arr.astype(np.float32), name
    return arr, name


# ---- dtype conversion of an ONNX model (onnxruntime) -----------------------------------------


def convert_proto_dtype(proto: Any, dtype: str) -> Any:
    """A copy of ``proto`` where every float32 tensor (initializers, inputs, outputs, value infos,
    Cast targets, Constant values) is ``dtype`` (float16, bfloat16 or float64)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper

    target = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16, "float64": TensorProto.DOUBLE}[dtype]
    m = onnx.ModelProto()
    m.CopyFrom(proto)

    def conv_tensor(t: Any) -> Any:
        if t.data_type != TensorProto.FLOAT:
            return t
        arr = numpy_helper.to_array(t)
        if dtype == "bfloat16":
            import ml_dtypes

            new = numpy_helper.from_array(arr.astype(ml_dtypes.bfloat16), t.name)
        else:
            new = numpy_helper.from_array(arr.astype(np.dtype(dtype)), t.name)
        return new

    def conv_graph(g: Any) -> None:
        for i, t in enumerate(g.initializer):
            g.initializer[i].CopyFrom(conv_tensor(t))
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = target
        for n in g.node:
            for a in n.attribute:
                if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = target
                elif a.type == onnx.AttributeProto.TENSOR:
                    a.t.CopyFrom(conv_tensor(a.t))
                elif a.type == onnx.AttributeProto.GRAPH:
                    conv_graph(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        conv_graph(sg)

    conv_graph(m.graph)
    return m


def _np_dtype(dtype: str) -> Any:
    import numpy as np

    if dtype == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(dtype)


def _cast_feeds(feeds: dict[str, Any], dtype: str | None) -> dict[str, Any]:
    import numpy as np

    if dtype in (None, "float32"):
        return feeds
    assert dtype is not None
    t = _np_dtype(dtype)
    return {k: (v.astype(t) if v.dtype == np.float32 else v) for k, v in feeds.items()}


# ---- runtimes ------------------------------------------------------------------------------


Runner = Callable[[dict[str, Any]], dict[str, Any]]


def _ort(spec: dict[str, Any], cfg: dict[str, Any], observed: dict[str, Any]) -> tuple[Runner, Runner | None]:
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise Skip("onnxruntime is not installed") from None
    import onnx

    observed["onnxruntime"] = ort.__version__
    proto = onnx.load(spec["model"])
    dtype = cfg.get("dtype")
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}

    def session(p: Any) -> Any:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if cfg.get("ort_opt"):
            so.graph_optimization_level = levels[cfg["ort_opt"]]
        if cfg.get("threads"):
            so.intra_op_num_threads = int(cfg["threads"])
            so.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(p.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            if dtype:
                raise Skip(f"onnxruntime cannot run the model in {dtype}: {str(e).splitlines()[0][:200]}") from e
            raise

    main_proto = convert_proto_dtype(proto, dtype) if dtype else proto
    sess = session(main_proto)
    out_names = [o.name for o in sess.get_outputs()]
    in_names = {i.name for i in sess.get_inputs()}

    def run(feeds: dict[str, Any]) -> dict[str, Any]:
        res = sess.run(None, {k: v for k, v in feeds.items() if k in in_names})
        return dict(zip(out_names, res, strict=True))

    layer_run: Runner | None = None
    if spec.get("layers"):
        inferred = onnx.shape_inference.infer_shapes(proto)
        have = {o.name for o in inferred.graph.output}
        vis = [vi for vi in inferred.graph.value_info if vi.name not in have]
        lp = onnx.ModelProto()
        lp.CopyFrom(inferred)
        lp.graph.output.extend(vis)
        if dtype:
            lp = convert_proto_dtype(lp, dtype)
        lsess = session(lp)
        lnames = [o.name for o in lsess.get_outputs()]

        def layer_run(feeds: dict[str, Any]) -> dict[str, Any]:
            res = lsess.run(None, {k: v for k, v in feeds.items() if k in in_names})
            return dict(zip(lnames, res, strict=True))

    return run, layer_run


def _registry(spec: dict[str, Any], cfg: dict[str, Any], observed: dict[str, Any]) -> tuple[Runner, Runner | None]:
    import numpy as np

    from numsentry.concrete import run_concrete
    from numsentry.ir.load import load_model
    from numsentry.ops.kernels import NUMPY, Kernels

    runtime = cfg["runtime"]
    dtype = "float64" if runtime == "float64" else cfg.get("dtype")
    model = load_model(spec["model"], dims=spec.get("dims") or {})
    k: Kernels = NUMPY
    to_backend: Callable[[Any], Any] = lambda a: a  # noqa: E731
    if runtime == "torch":
        try:
            import torch
        except ModuleNotFoundError:
            raise Skip("torch is not installed") from None
        from numsentry.ops.kernels import torch_kernels

        k = torch_kernels()
        if cfg.get("threads"):
            torch.set_num_threads(int(cfg["threads"]))
        if cfg.get("onednn") is not None:
            torch.backends.mkldnn.enabled = bool(cfg["onednn"])  # type: ignore[assignment]
        observed["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                             "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                             "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
                             "mkl_available": bool(torch.backends.mkl.is_available())}
        if (cfg.get("mkl_cbwr") or cfg.get("mkl_isa")) and not torch.backends.mkl.is_available():
            raise Skip("this torch build has no MKL")
        tdt = {None: None, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}[dtype]
        cl = cfg.get("memory_format") == "channels_last"

        def to_torch(a: Any) -> Any:
            t = torch.from_numpy(np.array(a, copy=True))
            if tdt is not None and t.dtype == torch.float32:
                t = t.to(tdt)
            if cl and t.ndim == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            return t

        to_backend = to_torch
        torch.set_grad_enabled(False)
    else:
        observed["blas"] = _blas_info()
        cast = _np_dtype(dtype) if dtype not in (None, "float32") else None

        def to_np(a: Any) -> Any:
            arr = np.array(a, copy=True)
            return arr.astype(cast) if cast is not None and arr.dtype == np.float32 else arr

        to_backend = to_np
    weights = {n: to_backend(a) for n, a in model.graph.initializers.items()}

    def to_numpy(v: Any) -> Any:
        if runtime == "torch" and str(v.dtype) == "torch.bfloat16":
            import ml_dtypes

            return v.detach().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return k.to_numpy(v)

    def run(f: dict[str, Any]) -> dict[str, Any]:
        fb = {n: to_backend(a) for n, a in f.items()}
        outs = run_concrete(model, fb, k=k, weights=weights)
        return {n: to_numpy(v) for n, v in outs.items()}

    layer_run: Runner | None = None
    if spec.get("layers"):
        main_values = {o for n in model.graph.nodes for o in n.outputs if o}  # not subgraph values

        def layer_run(f: dict[str, Any]) -> dict[str, Any]:
            got: dict[str, Any] = {}

            def observe(node: Any, ins: list[Any], outs: list[Any]) -> None:
                for name, v in zip(node.outputs, outs, strict=False):
                    if name in main_values and hasattr(v, "dtype"):
                        got[name] = to_numpy(v)

            fb = {n: to_backend(a) for n, a in f.items()}
            run_concrete(model, fb, k=k, weights=weights, observe=observe)
            return got

    return run, layer_run


def _blas_info() -> dict[str, Any] | None:
    """OpenBLAS core type and threads as NumPy's BLAS reports them (needs threadpoolctl)."""
    try:
        import threadpoolctl
    except ModuleNotFoundError:
        return None
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas":
            return {"library": info.get("internal_api"), "architecture": info.get("architecture"),
                    "threads": info.get("num_threads"), "version": info.get("version")}
    return None


# ---- the run -------------------------------------------------------------------------------


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the configuration described by ``spec``; write ``outputs.npz``; return the result dict."""
    import numpy as np

    from numsentry.deviation.metrics import output_hash

    cfg = spec["config"]
    out_dir = Path(spec["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    observed: dict[str, Any] = {"env": _observe_env(), "pid": os.getpid()}
    result: dict[str, Any] = {"status": "ok", "reason": None, "observed": observed, "seconds": [],
                              "repeat_hashes": [], "output_dtypes": {}, "layers": []}
    with np.load(spec["inputs"]) as z:
        feeds = {k: z[k] for k in z.files}
    import onnx

    proto = onnx.load(spec["model"], load_external_data=False)
    fixed = _fixed_batch(proto)
    n = next((v.shape[0] for v in feeds.values() if np.ndim(v) >= 1), None)
    batch = cfg.get("batch")
    if fixed is not None and n is not None and n != fixed:
        if batch is not None and batch != fixed:
            raise Skip(f"the model's batch dimension is fixed at {fixed}")
        if n % fixed:
            raise Skip(f"{n} inputs do not split into batches of the model's fixed size {fixed}")
        batch = fixed
    chunks = _chunks(feeds, batch)
    if cfg["runtime"] != "onnxruntime":
        spec = {**spec, "dims": _dims(proto, chunks[0])}
    run, layer_run = (_ort(spec, cfg, observed) if cfg["runtime"] == "onnxruntime"
                      else _registry(spec, cfg, observed))
    dtype = "float64" if cfg["runtime"] == "float64" else cfg.get("dtype")
    if cfg["runtime"] == "onnxruntime":
        chunks = [_cast_feeds(c, dtype) for c in chunks]
    arrays: dict[str, Any] = {}
    first_hash: dict[str, int] = {}
    for r in range(int(cfg.get("repeats", 1))):
        t0 = time.perf_counter()
        parts = [run(c) for c in chunks]
        result["seconds"].append(time.perf_counter() - t0)
        outs = {name: _concat([p[name] for p in parts]) for name in parts[0]}
        stored = {name: _to_store(v) for name, v in outs.items() if v is not None}
        h = output_hash({f"{name}:{dt}": a for name, (a, dt) in stored.items()})
        result["repeat_hashes"].append(h)
        if h not in first_hash:
            first_hash[h] = r
            for name, (a, dt) in stored.items():
                arrays[f"out/{r}/{name}"] = a
                result["output_dtypes"][name] = dt
    # more timing-only runs for small models: the fastest of several is what the slowdowns use
    while len(result["seconds"]) < _MAX_TIMED and sum(result["seconds"]) < _TIME_BUDGET:
        t0 = time.perf_counter()
        for c in chunks:
            run(c)
        result["seconds"].append(time.perf_counter() - t0)
    if layer_run is not None:
        lparts = [layer_run(c) for c in chunks]
        for name in lparts[0]:
            v = _concat([p[name] for p in lparts if name in p])
            if v is not None and hasattr(v, "dtype"):
                a, dt = _to_store(v)
                arrays[f"layer/{name}"] = a
                result["layers"].append([name, dt])
        # the layer run may differ from the normal run (onnxruntime cannot fuse across outputs)
        finals = [n for n in outs if f"layer/{n}" in arrays and outs[n] is not None]
        observed["layers_match_outputs"] = all(
            np.array_equal(_to_store(outs[n])[0].view(np.uint8), arrays[f"layer/{n}"].view(np.uint8)) for n in finals)
    np.savez(out_dir / "outputs.npz", **arrays)
    return result


def _dims(proto: Any, feeds: dict[str, Any]) -> dict[str, int]:
    """Values of the symbolic input dimensions for ``feeds`` (for `load_model`)."""
    import numpy as np

    dims: dict[str, int] = {}
    for i in proto.graph.input:
        if i.name not in feeds or not i.type.tensor_type.HasField("shape"):
            continue
        shape = np.shape(feeds[i.name])
        for ax, d in enumerate(i.type.tensor_type.shape.dim):
            if not d.HasField("dim_value") and ax < len(shape):
                dims[d.dim_param or f"{i.name}_dim"] = int(shape[ax])
    return dims


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the spec named on the command line; exit 0 unless the spec is unreadable."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m numsentry.deviation.worker SPEC.json", file=sys.stderr)
        return 2
    spec_path = Path(args[0])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    out_dir = Path(spec["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = run_spec(spec)
    except Skip as e:
        result = {"status": "skipped", "reason": str(e), "observed": {"env": _observe_env()}}
    except Exception as e:  # any failure of the runtime: recorded, the sweep goes on
        result = {"status": "failed", "reason": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                  "traceback": traceback.format_exc(), "observed": {"env": _observe_env()}}
    (out_dir / "result.json").write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How `numsentry check` scales to ImageNet-size CNNs (``python -m bench.scale``).

The models are onnx's "light" backend test models (AlexNet, DenseNet-121, Inception v1/v2,
ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512). Their weights are stripped: every
weight is a ``ConstantOfShape`` of 0.02 (a few small ones are stored initializers). Before the
check, every float weight becomes a seeded random tensor of realistic scale, chosen by the op
that consumes it: He-normal convolution and Gemm/MatMul weights (std = sqrt(2 / fan_in)),
small biases, BatchNormalization scale ~1, bias ~0, mean ~0, variance ~1 (positive), and the
same for Mul/Add affine parameters reached through Unsqueeze (DenseNet's batch norm). The
image input gets the range [0, 1].

Each model is checked in a fresh subprocess (peak RSS from ``resource.getrusage``), three
times; the table shows the median wall time of ``check_model`` (load (models are converted to
opset 13 once, when they are prepared),
shape inference, analysis) and of the analysis alone, the peak RSS, findings by rule and
unsupported ops. A model that fails is reported in its row.

Usage::

    python -m bench.scale                    # all models, the table
    python -m bench.scale resnet50 vgg19     # a selection (substring match)
    python -m bench.scale --profile resnet50 # cProfile of one check (top functions)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["light_models", "main", "randomize"]

RUNS = 3
SEED = 0


def light_dir() -> Path:
    """onnx's backend/test/data/light directory (ships with the onnx wheel)."""
    import onnx

    return Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light"


def light_models() -> list[Path]:
    """The light_*.onnx files, sorted."""
    d = light_dir()
    return sorted(d.glob("light_*.onnx")) if d.is_dir() else []


# ---- realistic random weights -------------------------------------------------------------


def _consumers(graph: Any) -> dict[str, list[tuple[Any, int]]]:
    out: dict[str, list[tuple[Any, int]]] = {}
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name:
                out.setdefault(name, []).append((n, i))
    return out


def _role(name: str, cons: dict[str, list[tuple[Any, int]]], depth: int = 0) -> tuple[str, Any]:
    """What a weight is, from its first consumer: (role, consumer node)."""
    for node, idx in cons.get(name, []):
        op = node.op_type
        if op in ("Unsqueeze", "Reshape", "Identity", "Cast") and idx == 0 and depth < 3:
            return _role(node.output[0], cons, depth + 1)
        if op in ("Conv", "ConvTranspose"):
            return ("conv_w" if idx == 1 else "bias"), node
        if op in ("Gemm", "MatMul"):
            return ("fc_w" if idx == 1 else "bias"), node
        if op in ("BatchNormalization", "InstanceNormalization"):
            return {1: "bn_scale", 2: "bn_bias", 3: "bn_mean", 4: "bn_var"}.get(idx, "small"), node
        if op == "Mul":
            return "bn_scale", node
        if op in ("Add", "Sum", "Sub"):
            return "bn_bias", node
        return "small", node
    return "small", None


def _values(role: str, shape: tuple[int, ...], node: Any, rng: np.random.Generator) -> np.ndarray:
    if role == "conv_w":
        if node is not None and node.op_type == "ConvTranspose":
            fan_in = shape[0] * int(np.prod(shape[2:], dtype=np.int64))
        else:
            fan_in = int(np.prod(shape[1:], dtype=np.int64))
        return rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
    if role == "fc_w":
        trans_b = any(a.name == "transB" and a.i for a in node.attribute) if node is not None else False
        fan_in = shape[-1] if trans_b else (shape[-2] if len(shape) >= 2 else shape[0])
        return rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
    if role == "bn_scale":
        return rng.uniform(0.8, 1.2, shape)
    if role == "bn_bias":
        return rng.normal(0.0, 0.05, shape)
    if role == "bn_mean":
        return rng.normal(0.0, 0.1, shape)
    if role == "bn_var":
        return rng.uniform(0.5, 1.5, shape)
    if role == "bias":
        return rng.normal(0.0, 0.01, shape)
    return rng.normal(0.0, 0.01, shape)


def randomize(model: Any, seed: int = SEED) -> Any:
    """A copy of a light model with stored, seeded random weights of realistic scale.

    ``ConstantOfShape`` nodes fed by an initializer become float initializers; every float
    initializer gets values by its role (see the module docstring).
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in g.initializer}
    cons = _consumers(g)
    new_inits: dict[str, np.ndarray] = {}
    keep_nodes = []
    for n in g.node:
        if n.op_type == "ConstantOfShape" and n.input and n.input[0] in inits:
            shape = tuple(int(v) for v in numpy_helper.to_array(inits[n.input[0]]))
            new_inits[n.output[0]] = np.zeros(shape, dtype=np.float32)
        else:
            keep_nodes.append(n)
    for t in g.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            new_inits.setdefault(t.name, numpy_helper.to_array(t))
    for name in sorted(new_inits):
        arr = new_inits[name]
        role, node = _role(name, cons)
        new_inits[name] = _values(role, arr.shape, node, rng).astype(np.float32)
    still_used = {i for n in keep_nodes for i in n.input}
    others = [t for t in g.initializer if t.name not in new_inits and t.name in still_used]
    del g.node[:]
    g.node.extend(keep_nodes)
    del g.initializer[:]
    g.initializer.extend(others)
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in new_inits.items())
    # IR version 3 (these models) wants every initializer listed as a graph input too
    listed = {v.name for v in g.input}
    for name, v in new_inits.items():
        if name not in listed:
            g.input.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(v.shape)))
    return m


def image_inputs(model: Any) -> dict[str, tuple[float, float]]:
    """Range [0, 1] for every float graph input that is not an initializer."""
    import onnx

    inits = {t.name for t in model.graph.initializer}
    return {v.name: (0.0, 1.0) for v in model.graph.input
            if v.name not in inits and v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


# ---- one model (subprocess) ---------------------------------------------------------------


def _peak_rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 1024.0**2


def run_one(path: str, runs: int = RUNS) -> dict[str, Any]:
    """Check one prepared model ``runs`` times; a JSON-able row."""
    import onnx

    from numsentry.api import check_model

    row: dict[str, Any] = {"model": Path(path).stem.replace("light_", "")}
    proto = onnx.load(path, load_external_data=False)
    ranges = image_inputs(proto)
    del proto
    walls, analyses = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        res = check_model(path, ranges)
        walls.append(time.perf_counter() - t0)
        analyses.append(res.seconds)
        row.update(nodes=res.nodes, findings=dict(sorted(Counter(f.rule for f in res.findings).items())),
                   unsupported=sorted(res.unsupported))
        del res  # a result holds the model: free it before the next run
    row.update(time_s=float(np.median(walls)), analysis_s=float(np.median(analyses)), peak_rss_mb=_peak_rss_mb())
    return row


def _prepare(src: Path, dst: Path) -> None:
    import onnx
    from onnx import version_converter

    model = randomize(onnx.load(str(src)))
    # the light models are opset 8/9; numsentry analyses opset >= 13 and would convert on every
    # load (0.8-2 s for ResNet-50). Convert once here, as a user with a current export would have.
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset < 13:
        model = version_converter.convert_version(model, 13)
    onnx.save(model, str(dst))


def _prepare_in_subprocess(src: Path, dst_dir: Path, timeout: float) -> Path:
    """Randomize in a child process: the parent stays small, and a forked child's peak RSS
    starts from its parent's (Linux keeps the high-water mark across fork and exec)."""
    dst = dst_dir / src.name
    cmd = [sys.executable, "-m", "bench.scale", "--prepare", str(src), str(dst)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parent.parent)
    if p.returncode != 0 or not dst.exists():
        raise RuntimeError((p.stderr.strip().splitlines() or ["no output"])[-1][:160])
    return dst


def _row_in_subprocess(path: Path, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.scale", "--one", str(path)]
    root = Path(__file__).resolve().parent.parent
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=root)
    except subprocess.TimeoutExpired:
        return {"model": path.stem.replace("light_", ""), "error": f"timeout after {timeout:.0f} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    err = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"model": path.stem.replace("light_", ""), "error": f"exit {p.returncode}: {err[:160]}"}


def _table(rows: list[dict[str, Any]]) -> str:
    head = ["model", "nodes", "time s", "analysis s", "peak RSS MB", "findings", "unsupported"]
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["model"], "-", "-", "-", "-", "-", "ERROR " + r["error"]])
            continue
        f = ", ".join(f"{k}:{v}" for k, v in r["findings"].items()) or "0"
        u = ", ".join(r["unsupported"]) or "-"
        lines.append([r["model"], str(r["nodes"]), f"{r['time_s']:.2f}", f"{r['analysis_s']:.2f}",
                      f"{r['peak_rss_mb']:.0f}", f, u])
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in lines]
    return "\n".join(out)


def _profile(path: Path, top: int = 25) -> None:
    import cProfile
    import io
    import pstats

    import onnx

    from numsentry.api import check_model

    ranges = image_inputs(onnx.load(str(path), load_external_data=False))
    check_model(str(path), ranges)  # warm: imports, caches
    pr = cProfile.Profile()
    pr.enable()
    check_model(str(path), ranges)
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(top)
    print(s.getvalue())
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    print(s.getvalue())


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench.scale``."""
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="substrings of model names (default: all)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--prepare", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help="cProfile one check of each selected model")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per model (default 600)")
    args = ap.parse_args(argv)
    if args.prepare:
        _prepare(Path(args.prepare[0]), Path(args.prepare[1]))
        return 0
    if args.one:
        try:
            row = run_one(args.one)
        except Exception as e:  # reported in the row, not a crash
            row = {"model": Path(args.one).stem.replace("light_", ""), "error": f"{type(e).__name__}: {str(e)[:160]}"}
        print(json.dumps(row))
        return 0
    models = [p for p in light_models() if not args.models or any(s in p.name for s in args.models)]
    if not models:
        print(f"no light models found under {light_dir()}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="numsentry-scale-") as tmp:
        rows = []
        for src in models:
            try:
                path = _prepare_in_subprocess(src, Path(tmp), args.timeout)
            except Exception as e:
                rows.append({"model": src.stem.replace("light_", ""), "error": f"prepare: {type(e).__name__}: {e}"})
                continue
            if args.profile:
                print(f"== {src.stem}")
                _profile(path)
                continue
            rows.append(_row_in_subprocess(path, args.timeout))
            print(f"  {rows[-1]['model']}: done", file=sys.stderr, flush=True)
        if rows:
            print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

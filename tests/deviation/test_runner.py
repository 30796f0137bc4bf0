"""The subprocess runner: environments reach the worker before any import; failures are recorded."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from numsentry.deviation.configs import ENV_KNOBS, make_config
from numsentry.deviation.runner import child_env, run_config, run_configs
from numsentry.deviation.worker import convert_proto_dtype

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
X86 = platform.machine().lower() in ("x86_64", "amd64")


def tiny_model(path: Path, batch: int | str = "N") -> Path:
    """x[N, 4] -> Gemm -> Relu -> Gemm -> logits[N, 3], softmax probs."""
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((4, 8)).astype(np.float32)
    w2 = rng.standard_normal((8, 3)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["hr"], name="relu"),
             helper.make_node("Gemm", ["hr", "w2"], ["logits"], name="fc2"),
             helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1)]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3]),
                           helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 3])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def feeds() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).uniform(-1, 1, (6, 4)).astype(np.float32)}


def _inputs(tmp_path: Path, feeds: dict[str, np.ndarray]) -> Path:
    p = tmp_path / "in.npz"
    np.savez(p, **feeds)
    return p


def test_child_env_drops_inherited_knobs_and_sets_its_own() -> None:
    base = {"PATH": "/bin", "OMP_NUM_THREADS": "7", "ONEDNN_MAX_CPU_ISA": "SSE41", "OPENBLAS_CORETYPE": "Prescott"}
    env = child_env(make_config("torch", {"threads": 1}), base)
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
    assert "ONEDNN_MAX_CPU_ISA" not in env and "OPENBLAS_CORETYPE" not in env
    assert env["PATH"] == "/bin"
    assert (Path(env["PYTHONPATH"].split(os.pathsep)[0]) / "numsentry" / "deviation" / "worker.py").is_file()
    assert not (set(child_env(make_config("numpy", {}), base)) & set(ENV_KNOBS))


def test_worker_sees_environment_before_imports(model: Path, feeds: dict[str, np.ndarray], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")  # must not leak into the child
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    cfg = make_config("numpy", {"threads": 1})
    r = run_config(cfg, model, _inputs(tmp_path, feeds), tmp_path)
    assert r.ok, r.reason
    env = r.observed["env"]
    assert env["OMP_NUM_THREADS"] == "1" and env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["ONEDNN_MAX_CPU_ISA"] is None
    blas = r.observed.get("blas")
    if blas is not None and blas.get("threads") is not None:  # threadpoolctl installed: OpenBLAS read it
        assert blas["threads"] == 1
    assert r.distinct_repeats == 1 and set(r.outputs) == {"logits", "probs"}
    assert r.outputs["logits"].shape == (6, 3) and r.seconds is not None and r.seconds > 0


@pytest.mark.skipif(not (HAS_TORCH and X86), reason="needs torch on x86-64")
def test_torch_settings_applied(model: Path, feeds: dict[str, np.ndarray], tmp_path: Path) -> None:
    cfg = make_config("torch", {"aten": "default", "threads": 1, "onednn": False}, repeats=2)
    r = run_config(cfg, model, _inputs(tmp_path, feeds), tmp_path)
    assert r.ok, r.reason
    t = r.observed["torch"]
    assert t["cpu_capability"] == "DEFAULT"  # ATEN_CPU_CAPABILITY was read at torch's import
    assert t["threads"] == 1 and t["mkldnn_enabled"] is False
    assert r.observed["env"]["ATEN_CPU_CAPABILITY"] == "default"
    assert r.distinct_repeats == 1 and len(r.repeat_hashes) >= 2


def test_unavailable_config_is_skipped_without_a_process(model: Path, feeds: dict[str, np.ndarray],
                                                         tmp_path: Path) -> None:
    cfg = make_config("torch", {"isa": "AVX512_CORE"})
    r = run_config(cfg, model, _inputs(tmp_path, feeds), tmp_path, flags={"sse4_1", "avx", "avx2", "fma"})
    assert r.status == "skipped" and "avx512f" in (r.reason or "") and r.wall == 0.0


def test_failures_are_recorded_and_the_sweep_goes_on(model: Path, feeds: dict[str, np.ndarray],
                                                     tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    rs = run_configs([make_config("numpy", {})], bad, feeds)
    assert rs[0].status == "failed" and rs[0].reason
    events: list[str] = []
    rs = run_configs([make_config("numpy", {}), make_config("float64", {})], model, feeds,
                     progress=lambda ev, c, r: events.append(f"{ev}:{c.name}"))
    assert [r.status for r in rs] == ["ok", "ok"]
    assert events == ["start:numpy", "done:numpy", "start:float64", "done:float64"]
    assert rs[1].outputs["logits"].dtype == np.float64


def test_batches_and_layers(model: Path, feeds: dict[str, np.ndarray], tmp_path: Path) -> None:
    whole, batched = run_configs([make_config("float64", {}), make_config("float64", {"batch": 4})], model, feeds,
                                 layers=True)
    assert whole.ok and batched.ok
    assert batched.outputs["logits"].shape == (6, 3)  # batches of 4 and 2, concatenated
    np.testing.assert_allclose(batched.outputs["logits"], whole.outputs["logits"], rtol=1e-12)
    assert {"h", "hr", "logits", "probs"} <= set(whole.layers)
    assert whole.layers["h"].shape == (6, 8)


@pytest.mark.skipif(not HAS_ORT, reason="needs onnxruntime")
def test_onnxruntime_layers_and_dtype(model: Path, feeds: dict[str, np.ndarray], tmp_path: Path) -> None:
    plain, half = run_configs([make_config("onnxruntime", {"threads": 1}),
                               make_config("onnxruntime", {"dtype": "float16"})], model, feeds, layers=True)
    assert plain.ok, plain.reason
    assert {"h", "hr", "logits"} <= set(plain.layers)
    assert plain.observed["layers_match_outputs"] in (True, False)
    # float16 either runs (outputs in float16) or is skipped with onnxruntime's reason, never failed
    assert half.status in ("ok", "skipped"), half.reason
    if half.ok:
        assert half.output_dtypes["logits"] == "float16"


def test_convert_proto_dtype(model: Path) -> None:
    m = convert_proto_dtype(onnx.load(model), "float64")
    assert all(t.data_type == TensorProto.DOUBLE for t in m.graph.initializer)
    assert m.graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE
    onnx.checker.check_model(m)


def test_worker_usage_error() -> None:
    p = subprocess.run([sys.executable, "-m", "numsentry.deviation.worker"], capture_output=True, text=True,
                       check=False)
    assert p.returncode == 2 and "usage" in p.stderr


def test_worker_result_file(model: Path, feeds: dict[str, np.ndarray], tmp_path: Path) -> None:
    r = run_config(make_config("numpy", {"dtype": "float16"}, repeats=1), model, _inputs(tmp_path, feeds), tmp_path)
    res = json.loads((tmp_path / "numpy_dtype_float16" / "result.json").read_text())
    assert res["status"] == "ok" and res["output_dtypes"]["logits"] == "float16"
    assert r.outputs["logits"].dtype == np.float16

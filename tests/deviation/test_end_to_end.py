"""End to end on the digits example with a few configurations.

Every assertion must hold on any x86-64 CPU: report structure, float64 reference consistency,
repeats identical on CPU, labels stable on natural inputs. Never a specific machine's bits.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from numsentry.deviation.configs import Matrix, make_config
from numsentry.deviation.report import to_html, to_json_dict
from numsentry.deviation.sweep import DeviationResult, load_inputs, run_deviate

EXAMPLE = Path(__file__).resolve().parents[2] / "src/numsentry/examples/digits"
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def result() -> DeviationResult:
    cfgs = []
    if HAS_ORT:
        cfgs += [make_config("onnxruntime", {}), make_config("onnxruntime", {"threads": 1})]
    if HAS_TORCH:
        cfgs += [make_config("torch", {}, repeats=3)]
    cfgs += [make_config("numpy", {}), make_config("numpy", {"batch": 16}), make_config("float64", {})]
    feeds, source = load_inputs(str(EXAMPLE / "model.onnx"), str(EXAMPLE / "inputs.npy"))
    return run_deviate(str(EXAMPLE / "model.onnx"), feeds, Matrix(cfgs, baseline=cfgs[0].name), layers=True,
                       input_source=source)


def test_example_files_are_small_and_consistent() -> None:
    x = np.load(EXAMPLE / "inputs.npy")
    assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8) and x.min() >= 0 and x.max() <= 1
    assert (EXAMPLE / "model.onnx").stat().st_size < 100_000 and (EXAMPLE / "inputs.npy").stat().st_size < 100_000


def test_every_config_ran_and_repeats_are_identical(result: DeviationResult) -> None:
    for r in result.rows:
        assert r.result.ok, f"{r.name}: {r.result.reason}"
        assert r.result.distinct_repeats == 1, f"{r.name} is not deterministic on CPU"
        assert r.cls is not None and r.result.seconds is not None
    assert result.row(result.rows[0].name).cls == "A"  # the baseline is class A
    assert result.label_output == "logits"


def test_float64_reference_is_consistent(result: DeviationResult) -> None:
    ref = result.row("float64")
    assert result.reference == "float64"
    assert ref.vs_float64 is not None and ref.vs_float64.identical and ref.vs_float64.max_ulp == 0
    # our own float64 run of the same graph agrees (to rounding: BLAS may sum in another order)
    from numsentry.concrete import run_concrete
    from numsentry.ir.load import load_model

    x = np.load(EXAMPLE / "inputs.npy").astype(np.float64)
    m = load_model(EXAMPLE / "model.onnx", dims={"N": len(x)})
    weights = {k: v.astype(np.float64) for k, v in m.graph.initializers.items()}
    mine = run_concrete(m, {"x": x}, weights=weights)
    np.testing.assert_allclose(ref.result.outputs["logits"], mine["logits"], rtol=1e-12, atol=1e-12)
    for r in result.rows:  # float32 runtimes stay close to the reference and agree on every label
        vf = r.vs_float64
        assert vf is not None and vf.top1_flips == 0 and vf.linf < 1e-3, r.name
        assert vf.mantissa_bits == 23
        np.testing.assert_array_equal(r.labels, ref.labels)


def test_classes_match_output_identity(result: DeviationResult) -> None:
    by_cls: dict[str, list[str]] = result.classes
    for members in by_cls.values():
        keys = {result.row(n).result.output_key for n in members}
        assert len(keys) == 1
    for r in result.rows:
        vb = r.vs_baseline
        assert vb is not None
        assert vb.identical == (r.cls == "A")
        if vb.identical:
            assert vb.remaining_precision_min == 23 and vb.max_ulp == 0 and vb.frac_differing == 0
        else:
            assert vb.max_ulp > 0 and vb.frac_differing > 0 and vb.remaining_precision_min < 23


def test_json_report_structure(result: DeviationResult) -> None:
    d = json.loads(json.dumps(to_json_dict(result)))
    assert d["version"] == 1
    for c in d["configs"]:
        for key in ("name", "class", "remaining_precision_min", "max_ulp", "top1_flips", "seconds", "skipped"):
            assert key in c
        assert c["skipped"] is None
    assert {k["knob"] for k in d["knobs"]} >= {"runtime", "batch"}
    for k in d["knobs"]:
        assert {"knob", "changes_output", "slowdown"} <= set(k)
        assert isinstance(k["changes_output"], bool) and k["slowdown"] > 0
    assert isinstance(d["first_divergence"], list)
    nodes = {"conv1", "relu1", "conv2", "relu2", "pool", "flatten", "fc", "softmax"}
    differing = [c["name"] for c in d["configs"] if c["class"] != "A"]
    assert len(d["first_divergence"]) >= len(differing)
    runtime = {c["name"]: c["runtime"] for c in d["configs"]}
    for fd in d["first_divergence"]:
        assert fd["node"] is None or fd["node"] in nodes
        if "onnxruntime" not in (runtime[fd["a"]], runtime[fd["b"]]):
            assert fd["node"] in nodes  # registry runtimes: the outputs differ, so some node differs first
    assert d["platform"]["fingerprint"] and d["model_hash"] and d["input_hash"]


def test_layers_localise_the_float64_difference(result: DeviationResult) -> None:
    pair = next(p for p in result.layers if p.b == "float64")
    assert len(pair.rows) == 8 and all(r.compared for r in pair.rows)
    assert pair.first is not None and pair.first.node == "conv1"  # float64 rounds differently from the first op
    for r in pair.rows:
        assert r.remaining_precision_min is not None and 0 <= r.remaining_precision_min <= 23


def test_html_report_is_self_contained(result: DeviationResult) -> None:
    page = to_html(result)
    assert page.startswith("<!doctype html>") and "</html>" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "Knob effects" in page and "Localisation" in page
    if importlib.util.find_spec("matplotlib") is not None:
        assert page.count("data:image/png;base64,") >= 2

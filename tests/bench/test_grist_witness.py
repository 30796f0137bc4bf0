"""Regression tests for the GRIST benchmark models in ``bench/grist``.

For every case a witness (inputs and weights, inside the case's ranges unless the truth says the
defect is only reached out of range) must make the ground-truth defect fire on onnxruntime. The
models must also be valid opset-13 files that the generator reproduces byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

from bench.grist.witness import run_witness, witnesses

ROOT = Path(__file__).resolve().parents[2]
TRUTH = ROOT / "bench" / "grist" / "truth.json"
ENTRIES: list[dict] = json.loads(TRUTH.read_text())
IDS = [e["case"] for e in ENTRIES]


def test_truth_covers_all_cases() -> None:
    """79 cases, each with a model file, a ranges file and at least one defect."""
    assert len(ENTRIES) == 79
    assert len(set(IDS)) == 79
    for entry in ENTRIES:
        assert set(entry) >= {"case", "model", "ranges", "check_args", "defects", "notes"}
        assert (ROOT / entry["model"]).is_file()
        assert (ROOT / entry["ranges"]).is_file()
        assert entry["defects"], entry["case"]
        assert set(entry["witness"]) == set(entry["defects"])


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_witness_fires(entry: dict) -> None:
    """A witness produces NaN/Inf at (or, per the truth, right after) every defect node."""
    covered: set[str] = set()
    for wit in witnesses(entry["case"]):
        assert set(wit.defects) <= set(entry["defects"])
        run = run_witness(ROOT / entry["model"], ROOT / entry["ranges"], wit)
        for node in wit.defects:
            kind = entry["witness"][node]
            effect = kind["effect"]
            if effect == "nan_inf":
                assert wit.check is None and wit.condition == "nonfinite"
            elif effect == "downstream":
                assert wit.check is not None and wit.condition == "nonfinite"
            else:
                assert effect == "gradient_only" and wit.condition == "sqrt_arg_tiny"
            if effect != "nan_inf":
                # the defect op's own output stays finite: that is why it is not nan_inf
                out = run.values[_output_of(entry, node)]
                assert np.all(np.isfinite(out)), (entry["case"], node)
            if kind["range"] == "in_range":
                assert run.violations == [], (entry["case"], run.violations)
            else:
                assert run.violations, f"{entry['case']}: out_of_range witness lies in range"
        assert run.fired(wit.condition), (entry["case"], wit.defects)
        covered |= set(wit.defects)
    assert covered == set(entry["defects"])


def _output_of(entry: dict, node_name: str) -> str:
    model = onnx.load(str(ROOT / entry["model"]), load_external_data=False)
    return next(n.output[0] for n in model.graph.node if n.name == node_name)


def test_models_are_standard_opset13() -> None:
    """Every model uses opset 13 and standard ONNX ops only, and names its defect nodes."""
    for entry in ENTRIES:
        model = onnx.load(str(ROOT / entry["model"]))
        assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
        names = set()
        for node in model.graph.node:
            assert node.domain == "", (entry["case"], node.op_type)
            onnx.defs.get_schema(node.op_type, 13, "")
            assert node.name, entry["case"]
            names.add(node.name)
        assert set(entry["defects"]) <= names, entry["case"]
        ranges = json.loads((ROOT / entry["ranges"]).read_text())
        inits = {i.name for i in model.graph.initializer}
        for vi in model.graph.input:
            assert vi.name in inits or vi.name in ranges, (entry["case"], vi.name)


def test_generator_reproduces_models() -> None:
    """``python -m bench.grist.generate`` rebuilds the committed files byte for byte."""
    from bench.grist.cases import CASES
    from bench.grist.generate import truth_entry

    for entry in ENTRIES:
        case = CASES[entry["case"]]()
        built = case.model.SerializeToString(deterministic=True)
        assert built == (ROOT / entry["model"]).read_bytes(), entry["case"]
        assert truth_entry(case) == entry, entry["case"]
        ranges = json.loads((ROOT / entry["ranges"]).read_text())
        assert ranges == {**case.inputs, **case.weights}, entry["case"]

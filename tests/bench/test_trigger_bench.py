"""Smoke tests of ``python -m bench.trigger`` (the full GRIST run is a benchmark, not a test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from bench.trigger import flushes_denormals, main


def test_denormal_mode_follows_the_framework() -> None:
    tf, pt = {"framework": "tensorflow"}, {"framework": "pytorch"}
    assert flushes_denormals(tf, "framework") and not flushes_denormals(pt, "framework")
    assert flushes_denormals(pt, "flushed") and not flushes_denormals(tf, "kept")


def test_truth_names_each_framework() -> None:
    truth = json.loads((Path(__file__).resolve().parents[2] / "bench" / "grist" / "truth.json").read_text())
    counts = {fw: sum(e["framework"] == fw for e in truth) for fw in ("tensorflow", "pytorch")}
    assert counts == {"tensorflow": 57, "pytorch": 22}


def test_unit_and_system_runs_on_one_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Case 4 (KL divergence, log of a zero probability): both searches confirm it on onnxruntime."""
    out = tmp_path / "runs.json"
    code = main(["--cases", "4", "--seeds", "1", "--methods", "unit,system", "--budget", "5",
                 "--system-budget", "10", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "unit" in text and "system" in text and "kept for PyTorch" in text
    data = json.loads(out.read_text())
    assert {r["method"] for r in data["runs"]} == {"unit", "system"}
    assert all(r["confirmed"] == [True] for r in data["runs"]), data["runs"]
    assert data["summary"]["unit"]["all"] == 1
    capsys.readouterr()
    assert main(["--render", str(out)]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| | runs (all defects) |")
    assert "| 4 | 1/1 (" in md and "| unit | 1/1 | 1/1 | 1/1 |" in md

"""Reproductions: witness.npz loads without pickle and the generated pytest files pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from numsentry.analyses.check import CheckOptions, run_check
from numsentry.ir.load import load_model
from numsentry.search.reproduce import load_witness, write_reproduction
from numsentry.search.system import SystemOptions, system_trigger
from numsentry.search.trigger import TriggerOptions, targets_for, trigger
from tests.search import _models as M

ROOT = Path(__file__).resolve().parents[2]


def run_pytest(d: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(d)],
                          capture_output=True, text=True, cwd=d, timeout=120)


def test_unit_reproductions_pass_and_fail_when_the_witness_is_wrong(tmp_path: Path) -> None:
    path = M.save(M.sqrt_models(), str(tmp_path / "m.onnx"))
    m = load_model(path)
    res = run_check(m, CheckOptions(ranges={"x": (-1.0, 1.0)}))
    targets = targets_for(m, res)
    outs = trigger(m, res, targets, TriggerOptions(budget_s=3.0))
    ranges = {r.name: (r.lo, r.hi) for r in res.ranges}
    dirs = [write_reproduction(o, t, path, tmp_path / "out", ranges) for o, t in zip(outs, targets, strict=True)
            if o.confirmed]
    assert len(dirs) == 2 and all(o.path for o in outs)
    w = load_witness(dirs[0] / "witness.npz")
    assert set(w["inputs"]) == {"x"} and w["meta"]["rule"] in ("NUM004", "NUM011")
    r = run_pytest(tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 passed" in r.stdout
    # the tests can fail: a harmless input makes the failure disappear
    for d in dirs:
        np.savez(d / "witness.npz", **{**dict(np.load(d / "witness.npz", allow_pickle=False)),
                                       "input_0": np.full((4,), 0.9, np.float32)})
    r = run_pytest(tmp_path / "out")
    assert r.returncode == 1 and "2 failed" in r.stdout, r.stdout


def test_weights_reproduction_substitutes_initializers(tmp_path: Path) -> None:
    path = M.save(M.softmax_ce(), str(tmp_path / "m.onnx"))
    m = load_model(path)
    res = run_check(m, CheckOptions(ranges={"x": (0, 1), "y": (0, 1)}, weights="trainable"))
    (t,) = targets_for(m, res)
    (o,) = trigger(m, res, [t], TriggerOptions(budget_s=3.0))
    assert o.confirmed
    d = write_reproduction(o, t, path, tmp_path / "w", {r.name: (r.lo, r.hi) for r in res.ranges})
    assert set(load_witness(d / "witness.npz")["weights"]) == {"W"}
    r = run_pytest(d)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr


def test_system_reproduction_trains_then_fails(tmp_path: Path) -> None:
    path = M.save(M.softmax_ce(), str(tmp_path / "m.onnx"))
    m = load_model(path)
    res = run_check(m, CheckOptions(ranges={"x": (0, 1), "y": (0, 1)}, weights="trainable"))
    (t,) = targets_for(m, res)
    (o,) = system_trigger(m, res, [t], SystemOptions(loss="loss", lr=20.0, steps=1, budget_s=10.0))
    assert o.confirmed, o.tried()
    assert o.witness.method == "system" and "W" in o.witness.weights
    d = write_reproduction(o, t, path, tmp_path / "s", {r.name: (r.lo, r.hi) for r in res.ranges})
    r = run_pytest(d)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr  # ranges + training

"""Results store (merge across platforms), localisation and boundary search, in process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from numsentry.deviation.attribution import attribute, summary_lines
from numsentry.deviation.boundary import find_boundary, save_telltale
from numsentry.deviation.configs import make_config
from numsentry.deviation.localise import NodeInfo, first_divergence, propagation
from numsentry.deviation.runner import RunResult
from numsentry.deviation.store import merge_report, platform_info, record
from numsentry.errors import UserError


def _result(runtime: str, knobs: dict[str, object], y: np.ndarray, seconds: float = 1.0) -> RunResult:
    from numsentry.deviation.metrics import output_hash

    cfg = make_config(runtime, knobs)
    outs = {"y": y}
    return RunResult(cfg, "ok", seconds=seconds, repeat_hashes=[output_hash({"y:" + y.dtype.name: y})],
                     outputs=outs, repeat_outputs={0: outs})


def _plat(name: str) -> dict[str, object]:
    p = platform_info()
    p["cpu"], p["fingerprint"] = name, name
    return p


def test_store_merges_platforms_into_classes(tmp_path: Path) -> None:
    y = np.array([[1.0, 2.0, 3.0]], np.float32)
    y2 = y.copy()
    y2[0, 0] = np.nextafter(y2[0, 0], np.float32(2))
    a_db, b_db = tmp_path / "a.db", tmp_path / "b.db"
    skipped = RunResult(make_config("torch", {"isa": "AVX2"}), "skipped", "no AVX2")
    assert record(a_db, "m.onnx", "mh", "ih", [_result("numpy", {}, y), _result("float64", {}, y), skipped],
                  _plat("host-a")) == 3
    record(b_db, "m.onnx", "mh", "ih", [_result("numpy", {}, y2), _result("float64", {}, y)], _plat("host-b"))
    record(b_db, "m.onnx", "mh", "ih", [_result("numpy", {}, y2)], _plat("host-b"))  # same key: replaced
    with sqlite3.connect(b_db) as con:
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    [cp] = merge_report([a_db, b_db])
    assert list(cp.platforms) == ["host-a", "host-b"]
    assert cp.cells[("numpy", "host-a")] == "A" and cp.cells[("float64", "host-b")] == "A"
    assert cp.cells[("numpy", "host-b")] == "B" and cp.cells[("torch/isa=AVX2", "host-a")] is None
    assert cp.vs_a["B"]["max_ulp"] == 1 and cp.vs_a["B"]["remaining_precision_min"] == 22
    assert sorted(cp.classes["A"]) == ["float64@host-a", "float64@host-b", "numpy@host-a"]


def test_store_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such"):
        merge_report([tmp_path / "missing.db"])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(UserError, match="not a numsentry results database"):
        merge_report([junk])
    with pytest.raises(UserError):
        merge_report([])


def test_localisation_names_the_first_diverging_node() -> None:
    nodes = [NodeInfo("a", "Conv", ("t1",), ("float32",)), NodeInfo("b", "Relu", ("t2",), ("float32",)),
             NodeInfo("s", "Shape", ("t3",), ("",)), NodeInfo("c", "Gemm", ("t4",), ("float32",))]
    x = {"t1": np.ones(4, np.float32), "t2": np.ones(4, np.float32), "t3": np.array([4]),
         "t4": np.ones(4, np.float32)}
    y = {k: v.copy() for k, v in x.items()}
    y["t2"][1] = np.nextafter(np.float32(1), np.float32(2))
    y["t4"][:] = 1.5
    rows = propagation(nodes, x, y)
    assert [r.compared for r in rows] == [True, True, False, True]
    fd = first_divergence(rows)
    assert fd is not None and fd.node == "b" and fd.frac_differing == 0.25
    assert fd.remaining_precision_min == 22 and fd.max_ulp == 1
    assert rows[3].frac_differing == 1.0 and rows[3].remaining_precision_min == 0
    assert first_divergence(propagation(nodes, x, x)) is None


def test_attribution_pairs_and_summary() -> None:
    y = np.array([[1.0, 2.0]], np.float32)
    flipped = np.array([[2.0, 1.0]], np.float32)
    rs = [_result("onnxruntime", {}, y, 1.0), _result("onnxruntime", {"threads": 1}, y, 2.0),
          _result("numpy", {}, flipped, 4.0), _result("numpy", {"batch": 1}, flipped, 8.0),
          RunResult(make_config("torch", {}), "skipped", "torch is not installed")]
    eff = {(e.knob, e.runtime): e for e in attribute(rs, "ort")}
    t = eff[("threads", "onnxruntime")]
    assert t.changes_output is False and t.slowdown == 2.0 and t.reference == "ort"
    rt = eff[("runtime", "numpy")]
    assert rt.changes_output is True and rt.top1_flips == 1 and rt.slowdown == 4.0
    assert eff[("batch", "numpy")].reference == "numpy" and eff[("batch", "numpy")].changes_output is False
    assert eff[("runtime", "torch")].changes_output is None
    text = "\n".join(summary_lines(list(eff.values())))
    assert "runtime=numpy" in text and "1 label flips" in text and "torch is not installed" in text


def _linear(w: np.ndarray) -> object:
    def ev(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1).astype(np.float32) @ w).astype(np.float32)

    return ev


def test_boundary_bisection_reaches_a_few_ulp(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3)).astype(np.float32)
    pool = rng.uniform(-1, 1, (20, 6)).astype(np.float32)
    ev = _linear(w)
    b = find_boundary(ev, pool, 8, searcher="test")  # type: ignore[arg-type]
    assert b.inputs.shape == (8, 6) and b.inputs.dtype == np.float32
    assert np.median(b.margin_ulp) <= 16  # on the boundary up to rounding
    assert (b.margin < 1e-4).all()
    labels = ev(pool).argmax(1)  # type: ignore[operator]
    assert all(labels[i] != labels[j] for i, j in b.pairs)
    # two "configurations" that sum in another order disagree on some boundary labels: telltales
    other = (b.inputs.astype(np.float64) @ w.astype(np.float64)).argmax(1)
    n = save_telltale(tmp_path / "t.npz", b, {"ref": b.labels, "f64": other}, "x")
    with np.load(tmp_path / "t.npz") as z:
        assert z["inputs"].shape[0] == n and list(z["configs"]) == ["ref", "f64"]
        assert z["labels"].shape == (2, n)


def test_boundary_needs_two_labels() -> None:
    ev = _linear(np.array([[1.0, 0.0]], np.float32))
    with pytest.raises(UserError, match="same label"):
        find_boundary(ev, np.ones((4, 1), np.float32), 2)  # type: ignore[arg-type]

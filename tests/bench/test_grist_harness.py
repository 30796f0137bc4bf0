"""Tests of the GRIST benchmark harness (``python -m bench.grist``) with a fake checker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench.grist import harness

TRUTH: list[dict[str, Any]] = [
    {"case": "1", "model": "m1.onnx", "ranges": "r1.json", "check_args": ["--weights", "trainable"],
     "defects": ["cost/Log", "cost/Log_1"], "notes": "",
     "extra_alarms": {"other/Div NUM002": {"verdict": "real", "why": "w"},
                      "other/Sum NUM007": {"verdict": "imprecision", "why": "i"},
                      "cost/Mean NUM007": {"verdict": "imprecision", "why": "i"}}},
    {"case": "2", "model": "m2.onnx", "ranges": "r2.json", "check_args": [],
     "defects": ["z/Sqrt"], "notes": ""},
    {"case": "3", "model": "m3.onnx", "ranges": "r3.json", "check_args": [],
     "defects": ["Exp"], "notes": ""},
]


def finding(node: str, rule: str = "NUM001", after: bool = False) -> dict[str, Any]:
    """A minimal finding of the JSON report."""
    return {"rule": rule, "name": "x", "node": node, "op_type": "Log", "outputs": [node],
            "input_intervals": [], "dtype": "float32", "message": "", "after_earlier_finding": after,
            "source": None}


REPORTS: dict[str, dict[str, Any]] = {
    "m1.onnx": {"findings": [finding("cost/Log"), finding("cost/Log_1", after=True),
                             finding("cost/Mean", "NUM007", after=True),
                             finding("other/Div", "NUM002"), finding("other/Sum", "NUM007"),
                             finding("other/Exp", "NUM003")],
                "unsupported_ops": [], "stats": {"nodes": 9, "seconds": 0.004}},
    "m2.onnx": {"findings": [], "unsupported_ops": ["Conv"], "stats": {"nodes": 3, "seconds": 0.002}},
}


def fake_checker(calls: list[tuple[str, list[str]]]) -> harness.Checker:
    """A checker that returns canned reports and raises for unknown models."""

    def check(model: str, args: list[str]) -> dict[str, Any]:
        calls.append((model, args))
        name = Path(model).name
        if name not in REPORTS:
            raise RuntimeError("boom")
        return REPORTS[name]

    return check


def test_score_and_summary(tmp_path: Path) -> None:
    """Found / after-earlier / extra alarms / errors are counted as documented."""
    calls: list[tuple[str, list[str]]] = []
    results = harness.run_cases(TRUTH, fake_checker(calls), ["--dim", "batch=2"], root=tmp_path)
    assert calls[0] == (str(tmp_path / "m1.onnx"), ["--ranges", str(tmp_path / "r1.json"),
                                                    "--weights", "trainable", "--dim", "batch=2"])
    r1, r2, r3 = results
    assert [(d.found, d.after_earlier_finding) for d in r1.defects] == [(True, False), (True, True)]
    assert [(a["node"], a["verdict"]) for a in r1.extra_alarms] == \
        [("other/Div", "real"), ("other/Sum", "imprecision"), ("other/Exp", None)]
    assert [(a["node"], a["verdict"]) for a in r1.extra_after_earlier] == \
        [("cost/Mean", "imprecision")]
    assert r1.ms == pytest.approx(4.0)
    assert not r2.defects[0].found and r2.unsupported_ops == ["Conv"]
    assert r3.error and "boom" in r3.error and not r3.defects[0].found
    s = harness.summary(results)
    assert (s["defects_found"], s["defects_total"], s["cases_detected"], s["cases_total"]) == \
        (2, 4, 1, 3)
    assert s["extra_alarms"] == 3 and s["extra_alarms_after_earlier"] == 1 and s["errors"] == 1
    # the after-earlier finding is not counted, whatever its verdict
    assert (s["extra_alarms_real"], s["extra_alarms_imprecision"],
            s["extra_alarms_unexplained"]) == (1, 1, 1)
    line = harness.summary_line(s)
    assert line.startswith("detected 2/4 defects in 1/3 cases; extra alarms 3; analysis total ")
    assert "median" in line and line.endswith(" ms")
    assert harness.extra_line(s) == "extra alarms: 1 real (witnessed), 1 imprecision, 1 unexplained"


def test_score_without_explanations() -> None:
    """Without ``extra_alarms`` in the truth every extra alarm is unexplained."""
    r = harness.score("1", ["cost/Log"], REPORTS["m1.onnx"])
    assert [a["verdict"] for a in r.extra_alarms] == [None, None, None]
    assert harness.summary([r])["extra_alarms_unexplained"] == 3
    bogus = {"other/Div NUM002": {"verdict": "maybe", "why": "?"}}
    r = harness.score("1", ["cost/Log"], REPORTS["m1.onnx"], explained=bogus)
    assert r.extra_alarms[0]["verdict"] is None


def test_main_prints_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``main`` prints the table and summary line and writes the JSON data."""
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(TRUTH[:2]))
    out = tmp_path / "out.json"
    rc = harness.main(["--truth", str(truth), "--json", str(out)], checker=fake_checker([]))
    assert rc == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split()[:3] == ["case", "defect", "nodes"]
    assert "other/Div (NUM002, real)" in "\n".join(text)
    assert text[-2].startswith("detected 2/3 defects in 1/2 cases; extra alarms 3;")
    assert text[-1] == "extra alarms: 1 real (witnessed), 1 imprecision, 1 unexplained"
    data = json.loads(out.read_text())
    assert data["summary"]["defects_found"] == 2
    assert data["summary"]["extra_alarms_real"] == 1
    assert data["cases"][0]["extra_alarms"][0]["verdict"] == "real"
    assert [c["case"] for c in data["cases"]] == ["1", "2"]


def test_main_selects_cases_and_reports_errors(tmp_path: Path) -> None:
    """``--cases`` filters; a crashing case makes the exit code 1; unknown ids are rejected."""
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(TRUTH))
    calls: list[tuple[str, list[str]]] = []
    assert harness.main(["--truth", str(truth), "--cases", "3"], checker=fake_checker(calls)) == 1
    assert len(calls) == 1
    with pytest.raises(SystemExit):
        harness.main(["--truth", str(truth), "--cases", "99"], checker=fake_checker([]))


def test_smoke_real_numsentry() -> None:
    """The real in-process checker runs on a few small cases (skipped if unavailable)."""
    api = pytest.importorskip("numsentry.api")
    if not hasattr(api, "check_json"):
        pytest.skip("numsentry.api.check_json not available yet")
    entries = [e for e in json.loads(harness.TRUTH.read_text()) if e["case"] in {"3", "4", "26"}]
    results = harness.run_cases(entries, api.check_json)
    assert [r.error for r in results] == [None, None, None]
    assert all(r.ms is not None for r in results)

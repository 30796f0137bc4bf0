"""``numsentry deviate`` and ``numsentry deviate report`` from the command line."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numsentry.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "src/numsentry/examples/digits"
MODEL = str(EXAMPLE / "model.onnx")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "m.yaml"
    p.write_text("baseline: numpy\nrepeats: 2\nconfigs:\n  - {runtime: numpy, vary: {batch: [32]}}\n"
                 "  - {runtime: float64}\n")
    return p


def test_json_html_db_and_report(matrix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, page, db = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "a.db"
    rc = main(["deviate", MODEL, "--inputs", str(EXAMPLE / "inputs.npy"), "--configs", str(matrix), "--layers",
               "--output-format", "json", "-o", str(out), "--html", str(page), "--db", str(db)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["version"] == 1 and d["baseline"] == "numpy" and d["reference"] == "float64"
    assert [c["name"] for c in d["configs"]] == ["numpy", "numpy/batch=32", "float64"]
    assert all(c["distinct_outputs"] == 1 and c["repeats"] == 2 for c in d["configs"])
    assert d["configs"][0]["class"] == "A" and d["configs"][0]["max_ulp"] == 0
    assert "first_divergence" in d and "layers" in d
    assert page.read_text().startswith("<!doctype html>")
    # a second "machine": copy the rows under another fingerprint, then merge
    db2 = tmp_path / "b.db"
    db2.write_bytes(db.read_bytes())
    with sqlite3.connect(db2) as con:
        con.execute("UPDATE runs SET platform = 'other-host'")
    capsys.readouterr()
    assert main(["deviate", "report", str(db), str(db2), "--output-format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    [g] = rep["groups"]
    assert len(g["platforms"]) == 2 and len(g["cells"]) == 6
    cls = {(c["config"], c["platform"]): c["class"] for c in g["cells"]}
    for cfg in ("numpy", "float64"):  # the same bits on both "hosts": one class each
        assert len({v for (c, _), v in cls.items() if c == cfg}) == 1
    assert main(["deviate", "report", str(db), str(db2)]) == 0
    assert "P2" in capsys.readouterr().out


def test_text_report_and_fail_on(matrix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["deviate", MODEL, "--random", "8", "--configs", str(matrix), "--no-db", "--only", "numpy,float64",
               "--repeats", "1", "--fail-on", "bits"])
    text = capsys.readouterr().out
    assert "equivalence classes" in text and "float64" in text
    assert rc == 1  # float64 is never bit-identical to float32


def test_boundary_saves_telltales(matrix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tell = tmp_path / "tell.npz"
    out = tmp_path / "b.json"
    rc = main(["deviate", MODEL, "--inputs", str(EXAMPLE / "inputs.npy"), "--boundary", "12", "--configs",
               str(matrix), "--repeats", "1", "--no-db", "--telltale", str(tell), "--output-format", "json",
               "-o", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    b = d["boundary"]
    assert b["n"] == 12 and b["margin_ulp_median"] <= 64 and b["telltale_file"] == str(tell)
    assert d["inputs"]["source"] == "boundary" and d["inputs"]["shapes"]["x"] == [12, 1, 8, 8]
    with np.load(tell) as z:
        assert z["inputs"].shape[0] == b["telltale_count"]
        assert z["labels"].shape == (3, b["telltale_count"])


@pytest.mark.parametrize("argv", [
    ["deviate", "missing.onnx"],
    ["deviate", MODEL, "--configs", "nonexistent.yaml"],
    ["deviate", MODEL, "--only", "nothing*"],
    ["deviate", MODEL, "--inputs", "x.npy", "--random", "3"],
    ["deviate", MODEL, "extra"],
    ["deviate", "report"],
    ["deviate", "report", "missing.db"],
])
def test_user_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_list_configurations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deviate", MODEL, "--list", "--configs", "all"]) == 0
    out = capsys.readouterr().out
    assert "torch/isa=SSE41" in out and "ONEDNN_MAX_CPU_ISA=SSE41" in out


def test_cli_stays_light() -> None:
    code = ("import sys; from numsentry.cli.main import build_parser; build_parser(); "
            "bad = [m for m in ('torch', 'onnxruntime', 'matplotlib', 'sklearn') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr

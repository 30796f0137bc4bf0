"""CLI tests: every output format and exit code, clean errors, the light import path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from numsentry.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "src/numsentry/examples/softmax_ce.onnx")
FIXED = str(ROOT / "src/numsentry/examples/softmax_ce_fixed.onnx")
ARGS = ["--range", "x=0,1", "--range", "y=0,1", "--weights", "trainable"]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_example_has_the_log_finding_and_exit_1(capsys):
    code, out, _ = run(capsys, "check", EXAMPLE, *ARGS)
    assert code == 1
    assert "NUM001" in out and "log_prob" in out


def test_fixed_example_is_clean_and_exit_0(capsys):
    code, out, _ = run(capsys, "check", FIXED, *ARGS)
    assert code == 0, out
    assert "no findings" in out


def test_exit_zero(capsys):
    code, _, _ = run(capsys, "check", EXAMPLE, *ARGS, "--exit-zero")
    assert code == 0


def test_json_report_shape(capsys, tmp_path):
    out_file = tmp_path / "r.json"
    code, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--output-format", "json", "-o", str(out_file))
    assert code == 1 and out == ""
    rep = json.loads(out_file.read_text())
    assert rep["version"] == 1
    assert {"version", "model", "ranges", "findings", "unsupported_ops", "stats"} <= set(rep)
    assert {"nodes", "seconds"} <= set(rep["stats"])
    f = next(f for f in rep["findings"] if f["node"] == "log_prob")
    assert {"rule", "name", "node", "op_type", "outputs", "input_intervals", "dtype", "message",
            "after_earlier_finding", "source"} <= set(f)
    assert f["rule"] == "NUM001" and f["name"] == "log-nonpositive" and f["dtype"] == "float32"
    names = {r["name"]: r for r in rep["ranges"]}
    assert names["x"]["origin"] == "user" and names["w1"]["origin"] == "trainable"


def test_sarif_is_valid(capsys):
    _, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--output-format", "sarif")
    doc = json.loads(out)
    schema = json.loads((ROOT / "tests/data/sarif-2.1.0-subset.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["runs"][0]["results"][0]["ruleId"].startswith("NUM")


def test_github_format(capsys):
    _, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--output-format", "github")
    assert out.startswith("::error file=") and "NUM001" in out


def test_select_and_ignore(capsys):
    _, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--ignore", "NUM001", "--output-format", "json")
    assert all(f["rule"] != "NUM001" for f in json.loads(out)["findings"])
    _, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--select", "NUM003", "--output-format", "json")
    assert all(f["rule"] == "NUM003" for f in json.loads(out)["findings"])


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["check", "/nonexistent/model.onnx"], "no such file"),
        (["check", EXAMPLE, "--range", "x=1"], "expected NAME=LO,HI"),
        (["check", EXAMPLE, "--range", "x=2,1"], "above upper bound"),
        (["check", EXAMPLE, "--range", "xx=0,1"], "did you mean x"),
        (["check", EXAMPLE, "--select", "NUM999"], "unknown rule"),
        (["check", EXAMPLE, "--dim", "batch"], "--dim"),
        (["rule", "NOPE"], "unknown rule"),
    ],
)
def test_user_errors_exit_2_with_one_line(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and needle in err
    assert "Traceback" not in err


def test_garbage_file_is_a_clean_error(capsys, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    code, _, err = run(capsys, "check", str(bad))
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(Path(EXAMPLE).read_bytes()[:777])
    code, _, err = run(capsys, "check", str(trunc))
    assert code == 2 and err.startswith("error: ")


def test_ranges_file_yaml_and_json(capsys, tmp_path):
    y = tmp_path / "r.yaml"
    y.write_text("x: [0, 1]\ny: [0, 1]\n")
    code, out, _ = run(capsys, "check", EXAMPLE, "--ranges", str(y), "--output-format", "json")
    rep = json.loads(out)
    assert {r["name"]: r["origin"] for r in rep["ranges"]}["x"] == "user"
    j = tmp_path / "r.json"
    j.write_text('{"x": [0, "bad"]}')
    code, _, err = run(capsys, "check", EXAMPLE, "--ranges", str(j))
    assert code == 2 and "not a number" in err


def test_ops_and_rule_commands(capsys):
    code, out, _ = run(capsys, "ops", "--output-format", "json")
    ops = {r["op_type"] for r in json.loads(out)}
    assert code == 0 and {"Log", "Exp", "MatMul", "Softmax"} <= ops
    code, out, _ = run(capsys, "rule", "NUM001")
    assert code == 0 and "log-nonpositive" in out and "Fix" in out


def test_console_script_does_not_import_torch_or_onnxruntime():
    code = (
        "import sys; from numsentry.cli.main import main; "
        f"rc = main(['check', {EXAMPLE!r}, '--range', 'x=0,1', '--exit-zero', '--output-format', 'json']); "
        "bad = [m for m in ('torch', 'onnxruntime') if m in sys.modules]; "
        "print('HEAVY', bad); sys.exit(rc)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "HEAVY []" in p.stdout

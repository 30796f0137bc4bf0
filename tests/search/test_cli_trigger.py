"""``numsentry trigger`` and ``numsentry check --confirm``: outputs, exit codes, light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from numsentry.cli.main import main
from tests.search import _models as M

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "src/numsentry/examples/softmax_ce.onnx")
FIXED = str(ROOT / "src/numsentry/examples/softmax_ce_fixed.onnx")
ARGS = ["--range", "x=0,1", "--range", "y=0,1", "--weights", "trainable", "--budget", "3"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_trigger_confirms_the_example_and_writes_a_reproduction(capsys, tmp_path: Path) -> None:
    wd = tmp_path / "w"
    code, out, _ = run(capsys, "trigger", EXAMPLE, *ARGS, "--witness-dir", str(wd), "--output-format", "json")
    doc = json.loads(out)
    assert code == 0, out
    (r,) = doc["results"]
    assert r["confirmed"] is True and r["rule"] == "NUM001" and Path(r["witness"]).is_dir()
    assert (Path(r["witness"]) / "witness.npz").is_file()
    assert doc["stats"] == {**doc["stats"], "targets": 1, "confirmed": 1}


def test_trigger_text_report_and_nothing_to_do(capsys, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "trigger", EXAMPLE, *ARGS, "--witness-dir", str(tmp_path))
    assert code == 0 and "1/1 confirmed" in out and "confirmed" in out
    code, out, _ = run(capsys, "trigger", FIXED, *ARGS, "--witness-dir", str(tmp_path / "none"))
    assert code == 0 and "0 finding(s) to trigger" in out
    assert not (tmp_path / "none").exists()


def test_unconfirmed_finding_exits_1_and_says_what_was_tried(capsys, tmp_path: Path) -> None:
    path = M.save(M.false_alarm(), str(tmp_path / "fa.onnx"))
    code, out, _ = run(capsys, "trigger", path, "--range", "x=0,1", "--budget", "1", "--restarts", "3",
                       "--witness-dir", str(tmp_path / "w"), "--output-format", "json")
    assert code == 1
    (r,) = json.loads(out)["results"]
    assert r["confirmed"] is False and r["witness"] is None and "restart" in r["tried"]


def test_system_flag_trains_and_reports_both(capsys, tmp_path: Path) -> None:
    path = M.save(M.softmax_ce(), str(tmp_path / "m.onnx"))
    code, out, _ = run(capsys, "trigger", path, "--range", "x=0,1", "--range", "y=0,1", "--weights",
                       "trainable", "--system", "--loss", "loss", "--lr", "20", "--steps", "1", "--budget", "4",
                       "--witness-dir", str(tmp_path / "w"), "--output-format", "json")
    (r,) = json.loads(out)["results"]
    assert code == 0, out
    assert r["confirmed"] and r["system"]["confirmed"] and r["system"]["method"] == "system"
    assert "system" in r["system"]["witness"]


def test_bad_arguments_are_user_errors(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "trigger", EXAMPLE, *ARGS, "--node", "nope")
    assert code == 2 and "no node" in err
    code, _, err = run(capsys, "trigger", EXAMPLE, *ARGS, "--system", "--loss", "nope",
                       "--witness-dir", str(tmp_path))
    assert code == 2 and "not a graph output" in err
    code, _, err = run(capsys, "trigger", EXAMPLE, *ARGS, "--budget", "0")
    assert code == 2 and "--budget" in err


def test_check_confirm_labels_findings_in_every_format(capsys, tmp_path: Path) -> None:
    wd = str(tmp_path / "w")
    code, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--confirm", "--witness-dir", wd, "--output-format", "json")
    (f,) = json.loads(out)["findings"]
    assert code == 1 and f["confirmed"] is True and Path(f["witness"]).is_dir()
    _, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--confirm", "--witness-dir", wd)
    assert "confirmed:" in out and "1/1 confirmed on onnxruntime" in out
    _, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--confirm", "--witness-dir", wd, "--output-format", "sarif")
    props = json.loads(out)["runs"][0]["results"][0]["properties"]
    assert props["confirmed"] is True and props["witness"]
    _, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--confirm", "--witness-dir", wd, "--output-format", "github")
    assert "(confirmed: " in out


def test_without_confirm_the_fields_are_null(capsys) -> None:
    _, out, _ = run(capsys, "check", EXAMPLE, *ARGS, "--output-format", "json")
    (f,) = json.loads(out)["findings"]
    assert f["confirmed"] is None and f["witness"] is None


def test_check_stays_light() -> None:
    code = ("import sys; import numsentry.cli.main as m; m.build_parser(); "
            "print('torch' in sys.modules, 'onnxruntime' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["False", "False"], r.stdout + r.stderr

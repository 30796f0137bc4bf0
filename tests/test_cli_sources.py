"""Where ranges and models come from: pyproject.toml ranges, `pkg.module:factory` models."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from numsentry.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "src/numsentry/examples/softmax_ce.onnx"


def test_ranges_from_pyproject(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(EXAMPLE, model)
    (tmp_path / "pyproject.toml").write_text('[tool.numsentry.ranges]\nx = [0, 0.5]\ny = [0, 1]\n')
    code = main(["check", str(model), "--output-format", "json", "--exit-zero"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 0
    r = {x["name"]: x for x in rep["ranges"]}
    assert (r["x"]["lo"], r["x"]["hi"], r["x"]["origin"]) == (0.0, 0.5, "user")
    # the command line wins over the file
    main(["check", str(model), "--range", "x=0,2", "--output-format", "json", "--exit-zero"])
    r = {x["name"]: x for x in json.loads(capsys.readouterr().out)["ranges"]}
    assert r["x"]["hi"] == 2.0


def test_bad_pyproject_is_a_clean_error(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(EXAMPLE, model)
    (tmp_path / "pyproject.toml").write_text("[tool.numsentry.ranges]\nx = 'wide'\n")
    assert main(["check", str(model)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_factory_spec_exports_and_points_at_source(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    (tmp_path / "ns_demo_model.py").write_text(textwrap.dedent("""
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(0)
                self.fc = torch.nn.Linear(4, 3)

            def forward(self, x):
                return torch.log(torch.softmax(self.fc(x) * 1000.0, dim=-1))

        def make():
            return Net(), (torch.rand(1, 4),)
    """))
    monkeypatch.chdir(tmp_path)
    code = main(["check", "ns_demo_model:make", "--range", "input_0=0,1", "--output-format", "json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 1
    logs = [f for f in rep["findings"] if f["op_type"] == "Log"]
    assert logs and logs[0]["source"]["file"].endswith("ns_demo_model.py")
    assert logs[0]["source"]["line"] == 11

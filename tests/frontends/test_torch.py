"""PyTorch front end: export, check, and findings that point at the Python source line."""

from __future__ import annotations

import inspect
import logging

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

import numsentry  # noqa: E402

logging.getLogger("torch").setLevel(logging.ERROR)


class HandWrittenCE(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.fc(x) * 100.0, dim=-1)
        return -torch.log(p).sum()  # the defect line


def test_module_check_maps_finding_to_source_line():
    res = numsentry.check(HandWrittenCE(), (torch.rand(2, 8),), {"input_0": (0.0, 1.0)})
    logs = [f for f in res.findings if f.op_type == "Log"]
    assert logs, [f.to_dict() for f in res.findings]
    src = logs[0].source
    assert src is not None and src.file.endswith("test_torch.py")
    lines, start = inspect.getsourcelines(HandWrittenCE.forward)
    expected = start + next(i for i, line in enumerate(lines) if "the defect line" in line)
    assert src.line == expected

"""pytest hooks of the op tests: list the runtime comparisons the property tests skipped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# the property tests import their helpers as `_harness`, whatever pytest's import mode
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """After the run: which ops were not compared against onnxruntime/onnx.reference, and why."""
    harness = sys.modules.get("_harness")
    recorded = getattr(harness, "RECORDED", None)
    if not recorded:
        return
    terminalreporter.section("op property tests: skipped comparisons (recorded reasons)")
    for (test, op), reasons in sorted(recorded.items()):
        for r in sorted(reasons)[:3]:
            terminalreporter.write_line(f"{test:12s} {op:28s} {r}")
        if len(reasons) > 3:
            terminalreporter.write_line(f"{'':12s} {op:28s} ... {len(reasons) - 3} more")

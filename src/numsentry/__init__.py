"""numsentry: make neural networks numerically trustworthy.

The static checker is importable without torch or onnxruntime::

    from numsentry.api import check_json, check_model
    report = check_json("model.onnx", ["--range", "x=0,1"])

``numsentry.check(module, example_inputs, ranges=...)`` checks a PyTorch module (needs torch).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "check"]


def check(module: Any, example_inputs: Any, ranges: Any = None, **kwargs: Any) -> Any:
    """Check a ``torch.nn.Module`` (exported to ONNX); see `numsentry.frontends.torch.check`."""
    from numsentry.frontends.torch import check as _check

    return _check(module, example_inputs, ranges, **kwargs)

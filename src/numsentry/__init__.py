"""numsentry: make neural networks numerically trustworthy.

The static checker is importable without torch or onnxruntime::

    from numsentry.api import check_json
    report = check_json("model.onnx", ["--range", "x=0,1"])
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

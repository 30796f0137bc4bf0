"""``numsentry deviate``: run one model under many execution configurations and explain the differences.

Modules: `configs` (knobs, matrix files, the ``default``/``all`` sets), `runner` and `worker`
(one fresh subprocess per configuration), `metrics` (bits, ULPs, labels), `localise` (first
diverging operator), `attribution` (which knob changes the output, and what pinning it costs),
`boundary` (inputs whose label flips between configurations), `store` (SQLite results),
`report` (rich, JSON, HTML). Nothing here imports torch or onnxruntime at import time.
"""

from __future__ import annotations

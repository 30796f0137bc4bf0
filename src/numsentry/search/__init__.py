"""Gradient-based searches through the torch interpretation of a graph.

* `trigger`: failure-exhibiting unit tests (inputs and weights within the ranges that make a
  finding produce NaN/Inf on onnxruntime);
* `system`: failure-exhibiting system tests (training data that drives SGD from the stored
  weights into the failure);
* `baseline`: random sampling within the same ranges, for comparison;
* `confirm`: the onnxruntime check every witness must pass;
* `reproduce`: writes ``witness.npz`` and a pytest file per confirmed finding.

Nothing here is imported by ``numsentry check``; torch and onnxruntime load on first use.
"""

"""GRIST benchmark (79 numerical-defect cases) built as ONNX models; see README.md."""

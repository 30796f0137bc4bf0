"""Front ends: .onnx files (numsentry.ir) and PyTorch modules (optional extra)."""

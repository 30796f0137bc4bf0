"""PyTorch backend of the concrete rules (autograd for the gradient-based searches)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from array_api_compat import torch as torch_compat

from numsentry.ops.kernels import Kernels

__all__ = ["TorchKernels"]

_DTYPES = {
    np.dtype(np.float16): torch.float16,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
    np.dtype(np.int8): torch.int8,
    np.dtype(np.int16): torch.int16,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64,
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.bool_): torch.bool,
}


class TorchKernels(Kernels):
    """PyTorch backend."""

    name = "torch"
    xp = torch_compat

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def erf(self, x: Any) -> Any:
        return torch.erf(x)

    def dtype(self, np_dtype: np.dtype) -> Any:
        np_dtype = np.dtype(np_dtype)
        if np_dtype.name == "bfloat16":
            return torch.bfloat16
        return _DTYPES[np_dtype]

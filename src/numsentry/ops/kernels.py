"""Per-backend kernels: the Array API namespace plus the few kernels it lacks.

Concrete rules call ``k.xp`` for everything in the Array API standard and ``k.<kernel>`` for
the rest (erf, convolution, pooling...). `NUMPY` is the default for analysis (fast start-up);
`torch_kernels()` builds the PyTorch one lazily so that ``numsentry check`` never imports torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from array_api_compat import numpy as np_compat

__all__ = ["NUMPY", "Kernels", "NumpyKernels", "backend_of", "torch_kernels"]


class Kernels:
    """Base of the backends: ``xp`` plus kernels outside the Array API.

    Attributes:
        name: ``numpy`` or ``torch``.
        xp: The Array API namespace (array-api-compat wrapped).
    """

    name: str = "?"
    xp: Any = None

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        """Convert to this backend's array type."""
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Convert an array of this backend to NumPy."""
        raise NotImplementedError

    def erf(self, x: Any) -> Any:
        """Error function."""
        raise NotImplementedError

    def dtype(self, np_dtype: np.dtype) -> Any:
        """This backend's dtype for a NumPy dtype."""
        raise NotImplementedError


class NumpyKernels(Kernels):
    """NumPy backend (float64 for interval endpoints, model dtypes for folding)."""

    name = "numpy"
    xp = np_compat

    def __init__(self) -> None:
        self._erf = np.frompyfunc(math.erf, 1, 1)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def erf(self, x: Any) -> Any:
        x = np.asarray(x)
        out = np.asarray(self._erf(x), dtype=np.float64)  # frompyfunc gives objects (or a float for 0-d)
        return out.astype(x.dtype if x.dtype.kind == "f" else np.float64)

    def dtype(self, np_dtype: np.dtype) -> Any:
        return np.dtype(np_dtype)


NUMPY = NumpyKernels()

_TORCH: Kernels | None = None


def torch_kernels() -> Kernels:
    """The PyTorch backend (imports torch on first use)."""
    global _TORCH
    if _TORCH is None:
        from numsentry.ops.kernels_torch import TorchKernels

        _TORCH = TorchKernels()
    return _TORCH


def backend_of(x: Any) -> Kernels:
    """The backend whose arrays ``x`` is (NumPy unless it is a torch tensor)."""
    if type(x).__module__.startswith("torch"):
        return torch_kernels()
    return NUMPY

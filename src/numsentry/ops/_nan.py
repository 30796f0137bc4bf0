"""NaN inputs of selection ops: onnxruntime's max/min kernels do not propagate NaN.

Their comparisons skip a NaN in ways that depend on its position: ReduceMax([0.1, nan, 0.5, 2])
is 0.5, and MaxPool of a window holding NaN can be -FLT_MAX. So when an input may be NaN, the
result may be any element of the input or the dtype's extreme value, besides NaN itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.registry import Ctx

__all__ = ["nan_tolerant"]


def nan_tolerant(rule: Callable[..., Any], largest: bool) -> Callable[..., Any]:
    """Wrap a max-type (``largest``) or min-type interval rule for inputs that may be NaN."""

    def wrapped(ctx: Ctx, x: Box, *args: Any, **kwargs: Any) -> Any:
        out = rule(ctx, x, *args, **kwargs)
        if not x.nan or x.dtype.kind != "f":
            return out
        outs = list(out) if isinstance(out, tuple) else [out]
        first = outs[0]
        fmax = ctx.fmt(x.dtype).max
        lo, hi = first.bounds64()
        if largest:
            lo = np.minimum(lo, min(x.min(), -fmax))
        else:
            hi = np.maximum(hi, max(x.max(), fmax))
        outs[0] = Box(lo, hi, first.shape, first.dtype, True)
        return tuple(outs) if isinstance(out, tuple) else outs[0]

    wrapped.__doc__ = rule.__doc__
    return wrapped

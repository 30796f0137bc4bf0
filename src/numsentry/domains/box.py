"""Interval boxes over partitioned tensors.

A `Box` bounds every element of a tensor of shape ``shape`` by ``lo <= x <= hi``. ``lo`` and
``hi`` are arrays *broadcastable* to ``shape``: along each dimension the partition is either one
block (length 1 in ``lo``/``hi``: one interval for the whole dimension, the coarsest and the
default) or one block per index (full length: exact). A dimension is refined only when an
operand forces it, e.g. a per-channel bias refines the channel dimension of a convolution's
output but not its spatial dimensions. This keeps ImageNet-size models cheap: a
``1x2048x7x7`` activation is usually bounded by ``2048`` pairs, not ``100352``.

A *point* box (``lo is hi``) holds exact values at full resolution in the tensor's own dtype
(int64 shapes and indices stay exact). Other float boxes hold float64 arrays whose values are
representable in the analysed dtype. ``nan`` says that some element may be NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Box"]


@dataclass(frozen=True, eq=False)
class Box:
    """Bounds of a tensor.

    Attributes:
        lo: Lower bounds, broadcastable to ``shape``.
        hi: Upper bounds, broadcastable to ``shape``; ``lo is hi`` for a point.
        shape: The tensor's shape.
        dtype: The tensor's element dtype as analysed (e.g. float16 under ``--as-dtype``).
        nan: Whether an element may be NaN.
    """

    lo: np.ndarray
    hi: np.ndarray
    shape: tuple[int, ...]
    dtype: np.dtype
    nan: bool = False

    # ---- construction -------------------------------------------------------------------
    @staticmethod
    def point(value: np.ndarray | float | int | bool, dtype: np.dtype | None = None) -> Box:
        """An exact tensor."""
        arr = np.asarray(value, dtype=dtype)
        nan = bool(arr.dtype.kind == "f" and np.isnan(arr).any()) if arr.size else False
        return Box(arr, arr, tuple(arr.shape), arr.dtype, nan)

    @staticmethod
    def range(
        lo: float | np.ndarray,
        hi: float | np.ndarray,
        shape: Sequence[int],
        dtype: np.dtype,
        nan: bool = False,
    ) -> Box:
        """A box from bounds broadcastable to ``shape`` (scalars give the coarsest box)."""
        shape = tuple(int(s) for s in shape)
        lo_a = np.asarray(lo, dtype=np.float64)
        hi_a = np.asarray(hi, dtype=np.float64)
        if hi_a is lo_a:  # equal bounds given as one array: still a range box, not a point
            hi_a = hi_a.copy()
        rank = len(shape)
        lo_a = lo_a.reshape((1,) * (rank - lo_a.ndim) + lo_a.shape) if lo_a.ndim < rank else lo_a
        hi_a = hi_a.reshape((1,) * (rank - hi_a.ndim) + hi_a.shape) if hi_a.ndim < rank else hi_a
        if lo_a.ndim > rank:
            lo_a = lo_a.reshape(lo_a.shape[lo_a.ndim - rank :])
            hi_a = hi_a.reshape(hi_a.shape[hi_a.ndim - rank :])
        return Box(lo_a, hi_a, shape, np.dtype(dtype), nan)

    @staticmethod
    def top(shape: Sequence[int], dtype: np.dtype) -> Box:
        """Nothing known: [-inf, +inf] and possibly NaN (floats), the dtype's range otherwise."""
        dt = np.dtype(dtype)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            return Box.range(float(info.min), float(info.max), shape, dt)
        if dt.kind == "b":
            return Box.range(0.0, 1.0, shape, dt)
        return Box.range(-np.inf, np.inf, shape, dt, nan=True)

    # ---- queries ------------------------------------------------------------------------
    @property
    def is_point(self) -> bool:
        """True when the box holds one exact tensor."""
        return self.lo is self.hi

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def value(self) -> np.ndarray:
        """The exact tensor of a point box."""
        if not self.is_point:
            raise ValueError("not a point box")
        return self.lo

    def bounds64(self) -> tuple[np.ndarray, np.ndarray]:
        """``lo`` and ``hi`` as float64 arrays (broadcastable, not materialised)."""
        if self.is_point:
            v = self.lo.astype(np.float64)
            return v, v
        return self.lo, self.hi

    def full(self) -> tuple[np.ndarray, np.ndarray]:
        """``lo`` and ``hi`` materialised at full resolution (float64)."""
        lo, hi = self.bounds64()
        return np.broadcast_to(lo, self.shape), np.broadcast_to(hi, self.shape)

    def _extremes(self) -> tuple[float, float]:
        # cached: checks ask for these at every use of a (possibly large) weight tensor
        cached = self.__dict__.get("_mm")
        if cached is not None:
            return cached
        if self.lo.size == 0:
            mm = (np.inf, -np.inf)
        elif self.is_point and (self.lo.dtype.kind in "fc" or self.lo.dtype.name == "bfloat16"):
            v = self.lo.astype(np.float32) if self.lo.dtype.name == "bfloat16" else self.lo
            with np.errstate(invalid="ignore"):
                mn, mx = np.nanmin(v) if self.nan else v.min(), np.nanmax(v) if self.nan else v.max()
            mm = (float(mn), float(mx)) if not np.isnan(mn) else (np.inf, -np.inf)
        else:
            mm = (float(self.lo.min()), float(self.hi.max()))
        object.__setattr__(self, "_mm", mm)
        return mm

    def min(self) -> float:
        """Smallest lower bound over all elements (``nan`` aside)."""
        return self._extremes()[0]

    def max(self) -> float:
        """Largest upper bound over all elements."""
        return self._extremes()[1]

    @property
    def finite(self) -> bool:
        """True when no element can be ±inf or NaN."""
        return not self.nan and np.isfinite(self.min()) and np.isfinite(self.max())

    def blocks(self) -> tuple[int, ...]:
        """Number of blocks per dimension (1 = coarse, the dim's length = exact)."""
        return tuple(int(s) for s in np.broadcast_shapes(np.shape(self.lo), np.shape(self.hi)))

    def describe(self) -> str:
        """A short human-readable interval, e.g. ``[-1.5, 3]`` or ``[0, inf] (may be NaN)``."""
        s = f"[{_fmt(self.min())}, {_fmt(self.max())}]"
        return s + (" (may be NaN)" if self.nan else "")

    # ---- transforms ---------------------------------------------------------------------
    def with_bounds(self, lo: np.ndarray, hi: np.ndarray, nan: bool | None = None) -> Box:
        """Same shape and dtype, new bounds."""
        return Box(lo, hi, self.shape, self.dtype, self.nan if nan is None else nan)

    def coarsen(self) -> Box:
        """Collapse dimensions along which all bounds agree (no precision is lost)."""
        if self.is_point:
            return self
        lo, hi = self.lo, self.hi
        if lo.ndim != len(self.shape):
            return self
        for ax in range(lo.ndim):
            if lo.shape[ax] > 1 and hi.shape[ax] > 1:
                l0 = np.take(lo, [0], axis=ax)
                h0 = np.take(hi, [0], axis=ax)
                if np.array_equal(lo, np.broadcast_to(l0, lo.shape)) and np.array_equal(
                    hi, np.broadcast_to(h0, hi.shape)
                ):
                    lo, hi = l0, h0
        return Box(lo, hi, self.shape, self.dtype, self.nan)

    def hull(self) -> Box:
        """The coarsest box containing this one (one interval for the whole tensor)."""
        return Box.range(self.min(), self.max(), self.shape, self.dtype, self.nan)

    def join(self, other: Box) -> Box:
        """The least box containing both (shapes must agree)."""
        a_lo, a_hi = self.bounds64()
        b_lo, b_hi = other.bounds64()
        lo, hi = np.minimum(a_lo, b_lo), np.maximum(a_hi, b_hi)
        shape = self.shape if self.shape == other.shape else tuple(np.broadcast_shapes(self.shape, other.shape))
        return Box(lo, hi, shape, self.dtype, self.nan or other.nan)

    def contains(self, value: np.ndarray, atol: float = 0.0) -> np.ndarray:
        """Elementwise: is each element of a concrete tensor inside the box (NaN only if ``nan``)?"""
        v = np.asarray(value, dtype=np.float64)
        lo, hi = self.bounds64()
        with np.errstate(invalid="ignore"):
            inside = (v >= lo - atol) & (v <= hi + atol)
        return inside | (np.isnan(v) & self.nan)

    def __repr__(self) -> str:
        kind = "point" if self.is_point else f"blocks={self.blocks()}"
        return f"Box({self.describe()}, shape={self.shape}, dtype={self.dtype}, {kind})"


def _fmt(v: float) -> str:
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.6g}"

"""Floating-point formats the analysis reasons in, and rounding into them.

Bounds are computed in float64 and then mapped into the model's (or ``--as-dtype``'s) format
with `round_bounds`: a tiny float64 widening absorbs our own float64 error, round-to-nearest
models the runtime's rounding (so underflow to 0 and overflow to inf come out as they would on
the runtime), and an optional number of ULPs in the target format absorbs kernel approximation
error (see docs/runtime-accuracy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx

__all__ = [
    "FLOAT_FORMATS",
    "FloatFormat",
    "float_format",
    "is_float_dtype",
    "np_dtype_of",
    "round_bounds",
    "shift_ulps",
]


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE-754 binary format the model may run in.

    Attributes:
        name: ``float16``, ``bfloat16``, ``float32`` or ``float64``.
        np_dtype: The numpy dtype (ml_dtypes for bfloat16).
        max: Largest finite value.
        tiny: Smallest positive subnormal.
        eps: Unit roundoff (half the gap between 1 and the next value).
        bits: Storage width in bits.
        log_max: ``log(max)``: exp of anything above overflows.
        log_tiny: ``log(tiny / 2)``: exp of anything below underflows to exactly 0.
    """

    name: str
    np_dtype: np.dtype
    max: float
    tiny: float
    eps: float
    bits: int

    @property
    def normal(self) -> float:
        """Smallest positive normal value."""
        return self.tiny / (2 * self.eps)

    @property
    def log_max(self) -> float:
        return float(np.log(self.max))

    @property
    def log_tiny(self) -> float:
        return float(np.log(self.tiny / 2))

    @property
    def uint(self) -> type[np.unsignedinteger]:
        return {16: np.uint16, 32: np.uint32, 64: np.uint64}[self.bits]  # type: ignore[return-value]

    @property
    def sint(self) -> type[np.signedinteger]:
        return {16: np.int16, 32: np.int32, 64: np.int64}[self.bits]  # type: ignore[return-value]


def _fmt(name: str, dt: np.dtype) -> FloatFormat:
    fi = ml_dtypes.finfo(dt) if name == "bfloat16" else np.finfo(dt)
    return FloatFormat(
        name=name,
        np_dtype=np.dtype(dt),
        max=float(fi.max),
        tiny=float(fi.smallest_subnormal),
        eps=float(fi.eps) / 2,
        bits=np.dtype(dt).itemsize * 8,
    )


FLOAT_FORMATS: dict[str, FloatFormat] = {
    "float16": _fmt("float16", np.dtype(np.float16)),
    "bfloat16": _fmt("bfloat16", np.dtype(ml_dtypes.bfloat16)),
    "float32": _fmt("float32", np.dtype(np.float32)),
    "float64": _fmt("float64", np.dtype(np.float64)),
}


def float_format(name: str) -> FloatFormat:
    """Return the `FloatFormat` called ``name`` (``float32``...)."""
    return FLOAT_FORMATS[name]


def np_dtype_of(elem_type: int) -> np.dtype:
    """Numpy dtype of an ONNX ``TensorProto`` element type."""
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def is_float_dtype(dt: np.dtype) -> bool:
    """True for the float formats the analysis tracks (incl. bfloat16)."""
    return dt.kind == "f" or dt == np.dtype(ml_dtypes.bfloat16)


def _keys(x: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Map values of ``fmt`` to integers that are ordered like the values (-0 and +0 to 0)."""
    bits = np.ascontiguousarray(x.astype(fmt.np_dtype)).view(fmt.sint).astype(np.int64)
    if fmt.bits == 64:
        bits = np.ascontiguousarray(x.astype(np.float64)).view(np.int64)
        mag = bits & np.int64(0x7FFFFFFFFFFFFFFF)
        return np.where(bits < 0, -mag, mag)
    mag = bits & np.int64((1 << (fmt.bits - 1)) - 1)
    return np.where(bits < 0, -mag, mag)


def _from_keys(k: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    sign_bit = np.int64(1 << (fmt.bits - 1)) if fmt.bits < 64 else np.int64(np.iinfo(np.int64).min)
    mag = np.abs(k)
    bits = np.where(k < 0, mag | sign_bit, mag)
    if fmt.bits == 64:
        return bits.astype(np.int64).view(np.float64)
    return bits.astype(fmt.sint).view(fmt.np_dtype).astype(np.float64)


def shift_ulps(x: np.ndarray, fmt: FloatFormat, n: int) -> np.ndarray:
    """Move each value of ``x`` (exactly representable in ``fmt``) ``n`` steps along ``fmt``.

    Negative ``n`` moves down. Saturates at ±inf; NaN stays NaN.
    """
    if n == 0:
        return x
    x = np.asarray(x, dtype=np.float64)
    inf_key = _keys(np.array([np.inf]), fmt)[0]
    k = np.clip(_keys(x, fmt) + n, -inf_key, inf_key)
    out = _from_keys(k, fmt).reshape(x.shape)
    return np.where(np.isnan(x), np.nan, out)


def _f32_down(x: np.ndarray) -> np.ndarray:
    r = x.astype(np.float32)
    return np.where(r.astype(np.float64) > x, np.nextafter(r, np.float32(-np.inf)), r).astype(np.float64)


def _f32_up(x: np.ndarray) -> np.ndarray:
    r = x.astype(np.float32)
    return np.where(r.astype(np.float64) < x, np.nextafter(r, np.float32(np.inf)), r).astype(np.float64)


_REL = 2.0**-48  # far above float64's own error of a few ops, far below any target ULP


def round_bounds(
    lo: np.ndarray, hi: np.ndarray, fmt: FloatFormat, ulps: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Map float64 bounds of a real result to bounds of what the runtime computes in ``fmt``.

    The runtime returns ``fl(v)`` (round to nearest) for a correctly rounded op, or a value
    within ``ulps`` steps of it for an approximate kernel. ``fl`` is monotone, so rounding both
    ends to nearest is sound once the float64 ends are nudged outwards by a relative 2^-48.

    Args:
        lo: Lower bounds in float64.
        hi: Upper bounds in float64.
        fmt: Target format.
        ulps: Extra steps in ``fmt`` to allow for kernel approximation error (plus an
            absolute slack of ``ulps * normal / 256`` in the subnormal range).

    Returns:
        The new (lo, hi) as float64 arrays whose values are representable in ``fmt``.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        lo = lo - np.where(np.isfinite(lo), np.abs(lo) * _REL, 0.0)
        hi = hi + np.where(np.isfinite(hi), np.abs(hi) * _REL, 0.0)
        if fmt.name == "bfloat16":
            # ml_dtypes converts through float32 (double rounding): round to float32 outwards
            # first, which keeps the final round-to-nearest on the safe side
            lo, hi = _f32_down(lo), _f32_up(hi)
        if fmt.bits < 64:
            lo = lo.astype(fmt.np_dtype).astype(np.float64)
            hi = hi.astype(fmt.np_dtype).astype(np.float64)
        else:
            lo = np.nextafter(lo, -np.inf)
            hi = np.nextafter(hi, np.inf)
    if ulps:
        lo = shift_ulps(lo, fmt, -ulps)
        hi = shift_ulps(hi, fmt, ulps)
        # Approximate kernels are accurate in ULPs of normal results only: in the subnormal range
        # they flush or mis-round by many subnormal steps (onnxruntime's float32 tanh: about 100
        # steps near 1e-38). Allow ulps * normal / 256 there: a multiple of `tiny`, so the
        # bounds stay representable.
        slack = ulps * fmt.normal / 256
        lo = np.where(np.abs(lo) <= fmt.normal, lo - slack, lo)
        hi = np.where(np.abs(hi) <= fmt.normal, hi + slack, hi)
    return lo, hi

"""Deviation metrics between two outputs of the same model: bits, ULPs, labels, distances.

All elementwise metrics compare two arrays in one IEEE-754 format (the model's declared output
dtype; arrays of other dtypes are rounded to it first, e.g. a float64 reference to float32).

- *Remaining precision* (Schlögl et al.): how many leading bits of the stored significand two
  values share, 0 when sign or exponent differ, the full width (23 for float32) when they are
  identical. Numerically equal values (``+0``/``-0``) and two NaNs count as identical. The
  literal bit prefix is meant: 1.0 and the float just below it share 0 bits (their exponents
  differ) although they are 1 ULP apart; report `ulp_distance` beside it.
- *ULP distance*: the number of representable values between the two (``+0``/``-0`` are 0 apart),
  ``inf`` when exactly one is NaN.
- *D_MAD* (LEMON, FSE 2020, after CRADLE): mean absolute difference ``sum |a - b| / n``.
- *Equivalence classes*: configurations whose outputs are bit-identical share a class, lettered
  ``A``, ``B``, ... in order of first appearance (the baseline first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "Comparison",
    "class_letters",
    "compare_outputs",
    "d_mad",
    "label_output",
    "mantissa_bits",
    "margins",
    "output_hash",
    "remaining_bits",
    "to_format",
    "top1_flips",
    "topk_changes",
    "ulp_distance",
]

_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
_INT = {2: np.int16, 4: np.int32, 8: np.int64}


def mantissa_bits(dtype: Any) -> int:
    """Stored significand bits of a float format (10, 23, 52; 7 for bfloat16)."""
    dt = np.dtype(dtype)
    if dt.name == "bfloat16":
        return 7
    return int(np.finfo(dt).nmant)


def to_format(a: Any, dtype: Any) -> np.ndarray:
    """``a`` rounded to nearest in float format ``dtype`` (exact when it already fits)."""
    arr = np.asarray(a)
    dt = np.dtype(dtype)
    if arr.dtype == dt:
        return arr
    with np.errstate(over="ignore", invalid="ignore"):
        return arr.astype(dt)


def _same_format(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype:
        raise ValueError(f"compare in one format: got {a.dtype} and {b.dtype} (use to_format)")
    if a.dtype.kind != "f" and a.dtype.name != "bfloat16":
        raise ValueError(f"not a float array: {a.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return a, b


def _ordered(a: np.ndarray) -> np.ndarray:
    """Signed integers in the order of the floats (``-0`` and ``+0`` both map to 0)."""
    v = np.ascontiguousarray(a).view(_INT[a.dtype.itemsize]).astype(np.int64)
    if a.dtype.itemsize < 8:
        lowest = np.int64(-(1 << (8 * a.dtype.itemsize - 1)))
        return np.where(v >= 0, v, lowest - v)
    lowest64 = np.iinfo(np.int64).min
    with np.errstate(over="ignore"):
        return np.where(v >= 0, v, np.int64(lowest64) - v)


def ulp_distance(a: Any, b: Any) -> np.ndarray:
    """Elementwise distance in units in the last place (float64 array; inf where one is NaN).

    Args:
        a: Float array.
        b: Float array of the same dtype and shape.
    """
    a, b = _same_format(a, b)
    oa, ob = _ordered(a), _ordered(b)
    ua, ub = oa.astype(np.uint64), ob.astype(np.uint64)  # two's complement wrap: differences stay exact
    with np.errstate(over="ignore"):
        d = np.where(oa >= ob, ua - ub, ub - ua).astype(np.float64)
    na, nb = np.isnan(a.astype(np.float64)), np.isnan(b.astype(np.float64))
    d = np.where(na & nb, 0.0, d)
    return np.where(na ^ nb, np.inf, d)


def remaining_bits(a: Any, b: Any) -> np.ndarray:
    """Elementwise leading significand bits that ``a`` and ``b`` share (int array, see module doc)."""
    a, b = _same_format(a, b)
    m = mantissa_bits(a.dtype)
    ut = _UINT[a.dtype.itemsize]
    x = (np.ascontiguousarray(a).view(ut) ^ np.ascontiguousarray(b).view(ut)).astype(np.uint64)
    high = (x >> np.uint64(m)) != 0  # sign or exponent differ
    low = (x & np.uint64((1 << m) - 1)).astype(np.float64)  # < 2^52: exact in float64
    _, e = np.frexp(low)  # low = f * 2^e with f in [0.5, 1): e is the bit length (0 for 0)
    bits = np.where(high, 0, m - e).astype(np.int64)
    af, bf = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        same = (af == bf) | (np.isnan(af) & np.isnan(bf))
    return np.where(same, m, bits)


def d_mad(a: Any, b: Any) -> float:
    """D_MAD: mean absolute difference (in float64); ``inf`` if any pair is not finite and differs."""
    af, bf = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if af.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(af - bf)
    diff = np.where((af == bf) | (np.isnan(af) & np.isnan(bf)), 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.mean())


def output_hash(outputs: Mapping[str, np.ndarray]) -> str:
    """A hash of the exact bits, dtypes and shapes of a set of named outputs."""
    h = hashlib.sha256()
    for name in sorted(outputs):
        arr = np.ascontiguousarray(outputs[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def class_letters(keys: Sequence[str | None]) -> list[str | None]:
    """Letter bit-identical groups ``A``, ``B``, ... ``Z``, ``AA``... by first appearance (None stays None)."""
    seen: dict[str, str] = {}
    out: list[str | None] = []
    for k in keys:
        if k is None:
            out.append(None)
            continue
        if k not in seen:
            n, s = len(seen), ""
            while True:
                s = chr(ord("A") + n % 26) + s
                n = n // 26 - 1
                if n < 0:
                    break
            seen[k] = s
        out.append(seen[k])
    return out


def label_output(outputs: Mapping[str, np.ndarray], prefer: str | None = None) -> str | None:
    """The output whose argmax over the last axis is the label: ``prefer`` or the first float
    output with rank >= 1 and at least two entries on its last axis."""
    if prefer is not None:
        return prefer if prefer in outputs else None
    for name, arr in outputs.items():
        a = np.asarray(arr)
        if (a.dtype.kind == "f" or a.dtype.name == "bfloat16") and a.ndim >= 1 and a.shape[-1] >= 2:
            return name
    return None


def _rows(a: Any) -> np.ndarray:
    arr = np.asarray(a, np.float64)
    return arr.reshape(-1, arr.shape[-1]) if arr.ndim >= 1 else arr.reshape(1, 1)


def top1_flips(a: Any, b: Any) -> int:
    """Rows (all but the last axis) whose argmax over the last axis differs."""
    ra, rb = _rows(a), _rows(b)
    return int((ra.argmax(axis=1) != rb.argmax(axis=1)).sum())


def topk_changes(a: Any, b: Any, k: int = 5) -> int:
    """Rows whose ordered top-``k`` indices differ (``k`` capped at the row length)."""
    ra, rb = _rows(a), _rows(b)
    kk = min(k, ra.shape[1])
    ta = np.argsort(-ra, axis=1, kind="stable")[:, :kk]
    tb = np.argsort(-rb, axis=1, kind="stable")[:, :kk]
    return int((ta != tb).any(axis=1).sum())


def margins(a: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per row: top-1 minus top-2 value, and that gap in ULPs of the row's dtype.

    Returns:
        ``(absolute margins (float64), margins in ULP (float64))``.
    """
    arr = np.asarray(a)
    if arr.ndim == 0 or arr.shape[-1] < 2:
        z = np.zeros(max(1, arr.size), np.float64)
        return z, z
    rows = arr.reshape(-1, arr.shape[-1])
    s = np.sort(rows, axis=1)
    t1, t2 = s[:, -1], s[:, -2]
    absm = t1.astype(np.float64) - t2.astype(np.float64)
    fmt = rows.dtype if rows.dtype.kind == "f" else np.dtype(np.float32)
    return absm, ulp_distance(to_format(t1, fmt), to_format(t2, fmt))


@dataclass
class Comparison:
    """Metrics of one set of outputs against a reference set (same names and shapes).

    Attributes:
        identical: Every output bit-identical (after rounding to the comparison format).
        remaining_precision_min: Fewest leading significand bits any element pair shares.
        remaining_precision_median: Median over elements of the shared bits.
        max_ulp: Largest ULP distance (``inf`` if a NaN meets a number).
        linf: Largest absolute difference.
        frac_differing: Fraction of elements that are not bit-identical.
        d_mad: Mean absolute difference.
        top1_flips: Rows of the label output whose argmax differs.
        topk_changes: Rows of the label output whose ordered top-k differs.
        rows: Rows of the label output (0 without one).
        mantissa_bits: Width of the comparison format's significand.
    """

    identical: bool
    remaining_precision_min: int
    remaining_precision_median: float
    max_ulp: float
    linf: float
    frac_differing: float
    d_mad: float
    top1_flips: int
    topk_changes: int
    rows: int
    mantissa_bits: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``inf`` becomes ``None`` nowhere: JSON writers handle it)."""
        return asdict(self)


def compare_outputs(
    ref: Mapping[str, np.ndarray],
    other: Mapping[str, np.ndarray],
    formats: Mapping[str, Any] | None = None,
    label: str | None = None,
    k: int = 5,
) -> Comparison:
    """Compare ``other`` against ``ref`` output by output.

    Args:
        ref: Reference outputs by name.
        other: Outputs to compare (same names and shapes).
        formats: Comparison dtype per output (default: the reference array's float dtype).
        label: The label output (default: `label_output` of ``ref``).
        k: ``k`` of the top-k metric.

    Raises:
        ValueError: Output names or shapes do not match.
    """
    names = [n for n in ref if np.asarray(ref[n]).dtype.kind == "f" or np.asarray(ref[n]).dtype.name == "bfloat16"]
    if set(ref) != set(other):
        raise ValueError(f"outputs differ: {sorted(ref)} vs {sorted(other)}")
    bits_all: list[np.ndarray] = []
    max_ulp = linf = abs_sum = 0.0
    n_diff = n_all = 0
    m_bits = 0
    identical = True
    for n in names:
        fmt = np.dtype((formats or {}).get(n, np.asarray(ref[n]).dtype))
        a, b = to_format(ref[n], fmt), to_format(other[n], fmt)
        if a.shape != b.shape:
            raise ValueError(f"output {n!r}: shapes differ {a.shape} vs {b.shape}")
        if a.size == 0:
            continue
        m_bits = max(m_bits, mantissa_bits(fmt))
        bits = remaining_bits(a, b)
        bits_all.append(bits.ravel())
        ulps = ulp_distance(a, b)
        same = np.ascontiguousarray(a).view(_UINT[a.dtype.itemsize]) == np.ascontiguousarray(b).view(_UINT[b.dtype.itemsize])
        identical &= bool(same.all())
        n_diff += int((~same).sum())
        n_all += a.size
        max_ulp = max(max_ulp, float(ulps.max()))
        af, bf = a.astype(np.float64), b.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.where(same | (af == bf), 0.0, np.abs(af - bf))
        diff = np.where(np.isnan(diff), np.inf, diff)
        linf = max(linf, float(diff.max()))
        abs_sum += float(diff.sum())
    for n in ref:  # non-float outputs (indices, masks): only exact equality matters
        if n not in names and not np.array_equal(np.asarray(ref[n]), np.asarray(other[n])):
            identical = False
    bits_cat = np.concatenate(bits_all) if bits_all else np.zeros(0, np.int64)
    lab = label if label is not None else label_output(ref)
    flips = changes = rows = 0
    if lab is not None and lab in ref and lab in other:
        flips = top1_flips(ref[lab], other[lab])
        changes = topk_changes(ref[lab], other[lab], k)
        rows = int(_rows(ref[lab]).shape[0])
    return Comparison(
        identical=identical,
        remaining_precision_min=int(bits_cat.min()) if bits_cat.size else m_bits,
        remaining_precision_median=float(np.median(bits_cat)) if bits_cat.size else float(m_bits),
        max_ulp=max_ulp, linf=linf, frac_differing=(n_diff / n_all) if n_all else 0.0,
        d_mad=(abs_sum / n_all) if n_all else 0.0, top1_flips=flips, topk_changes=changes,
        rows=rows, mantissa_bits=m_bits,
    )

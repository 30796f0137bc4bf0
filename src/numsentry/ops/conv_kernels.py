"""Convolution and pooling kernels per backend, and the window geometry they share.

The concrete rules of Conv, ConvTranspose, MaxPool and AveragePool and the interval rules'
full-resolution fallbacks call these. NumPy runs a loop over kernel taps (one strided view and
one matmul or multiply per tap: no im2col buffer); PyTorch uses ``torch.nn.functional`` where it
covers the configuration (autograd for the searches). torch is imported only inside the torch
branches, so ``numsentry check`` never imports it.

Geometry conventions: ``pb``/``pe`` are the begin/end pads of each spatial dim; for Conv and
pools output index ``o`` of a dim reads input indices ``o * s + t * d - pb`` for taps
``t < k``; for ConvTranspose input index ``i`` writes full-output index ``i * s + t * d`` and
output index ``o`` is full index ``o + pb``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "avg_pool",
    "conv",
    "conv_geometry",
    "conv_transpose",
    "conv_transpose_geometry",
    "max_pool",
    "pool_geometry",
    "pool_pad_variants",
    "tap_masks",
    "tap_masks_transpose",
]

Ints = Sequence[int]


# ---- geometry ----------------------------------------------------------------------------


def _defaults(n: int, kernel: Ints, strides: Ints | None, dilations: Ints | None,
              pads: Ints | None) -> tuple[list[int], list[int], list[int], list[int]]:
    k = [int(v) for v in kernel]
    s = [int(v) for v in strides] if strides else [1] * n
    d = [int(v) for v in dilations] if dilations else [1] * n
    p = [int(v) for v in pads] if pads else [0] * (2 * n)
    if len(k) != n or len(s) != n or len(d) != n or len(p) != 2 * n:
        raise ValueError(f"kernel/strides/dilations/pads do not match {n} spatial dims")
    if min(s) < 1 or min(d) < 1:
        raise ValueError("strides and dilations must be positive")
    return k, s, d, p


def _same_pads(size: int, k_eff: int, s: int, auto_pad: str) -> tuple[int, int, int]:
    out = -(-size // s)
    total = max(0, (out - 1) * s + k_eff - size)
    pb = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
    return out, pb, total - pb


def conv_geometry(
    in_spatial: Ints, kernel: Ints, strides: Ints | None, dilations: Ints | None,
    pads: Ints | None, auto_pad: str = "NOTSET",
) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """Output size and pads of a convolution.

    Returns:
        ``(out, pb, pe, strides, dilations)`` per spatial dim.
    """
    n = len(in_spatial)
    k, s, d, p = _defaults(n, kernel, strides, dilations, pads)
    out, pb, pe = [], [], []
    for i in range(n):
        k_eff = (k[i] - 1) * d[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o, b, e = _same_pads(in_spatial[i], k_eff, s[i], auto_pad)
        elif auto_pad == "VALID":
            o, b, e = (in_spatial[i] - k_eff) // s[i] + 1, 0, 0
        else:
            b, e = p[i], p[n + i]
            o = (in_spatial[i] + b + e - k_eff) // s[i] + 1
        if o < 1:
            raise ValueError(f"empty output along spatial dim {i} (input {in_spatial[i]}, kernel {k_eff})")
        out.append(o)
        pb.append(b)
        pe.append(e)
    return out, pb, pe, s, d


def pool_geometry(
    in_spatial: Ints, kernel: Ints, strides: Ints | None, dilations: Ints | None,
    pads: Ints | None, auto_pad: str = "NOTSET", ceil_mode: int = 0,
) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """Output size and pads of a pooling window (onnxruntime's rules).

    With ``ceil_mode`` the last window may run past the end pad; a window that would start
    inside the end pad is dropped (PyTorch's and onnxruntime's rule).

    Returns:
        ``(out, pb, pe, strides, dilations)`` per spatial dim.
    """
    n = len(in_spatial)
    k, s, d, p = _defaults(n, kernel, strides, dilations, pads)
    out, pb, pe = [], [], []
    for i in range(n):
        k_eff = (k[i] - 1) * d[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o, b, e = _same_pads(in_spatial[i], k_eff, s[i], auto_pad)
        elif auto_pad == "VALID":
            o, b, e = (in_spatial[i] - k_eff) // s[i] + 1, 0, 0
        else:
            b, e = p[i], p[n + i]
            span = in_spatial[i] + b + e - k_eff
            if ceil_mode:
                o = -(-span // s[i]) + 1
                if (o - 1) * s[i] >= in_spatial[i] + b:
                    o -= 1
            else:
                o = span // s[i] + 1
        if o < 1:
            raise ValueError(f"empty output along spatial dim {i} (input {in_spatial[i]}, kernel {k_eff})")
        out.append(o)
        pb.append(b)
        pe.append(e)
    return out, pb, pe, s, d


def pool_pad_variants(
    in_spatial: Ints, kernel: Ints, strides: Ints | None, dilations: Ints | None,
    auto_pad: str, pb: list[int], pe: list[int],
) -> list[tuple[list[int], list[int]]]:
    """All (begin, end) pads runtimes may use for a pooling window; the first is `pool_geometry`'s.

    For SAME padding onnxruntime computes the total pad from the undilated kernel and does not
    clamp it at 0 (a stride above the kernel gives a negative begin pad: windows shift right);
    interval rules join over every variant.
    """
    out = [(list(pb), list(pe))]
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return out
    n = len(in_spatial)
    s = [int(v) for v in strides] if strides else [1] * n
    per_dim: list[list[tuple[int, int]]] = []
    for i in range(n):
        o = -(-int(in_spatial[i]) // s[i])
        total = (o - 1) * s[i] + int(kernel[i]) - int(in_spatial[i])
        half_floor = total // 2
        half_trunc = int(total / 2)
        opts = {(pb[i], pe[i])}
        for h in (half_floor, half_trunc):
            head = h if auto_pad == "SAME_UPPER" else total - h
            opts.add((head, total - head))
        per_dim.append(sorted(opts))
    for combo in itertools.product(*per_dim):
        cand = ([c[0] for c in combo], [c[1] for c in combo])
        if cand not in out:
            out.append(cand)
    return out


def conv_transpose_geometry(
    in_spatial: Ints, kernel: Ints, strides: Ints | None, dilations: Ints | None,
    pads: Ints | None, auto_pad: str = "NOTSET", output_padding: Ints | None = None,
    output_shape: Ints | None = None,
) -> tuple[list[int], list[list[int]], list[int], list[int]]:
    """Output size and candidate begin pads of a transposed convolution.

    Output index ``o`` is full-result index ``o + pb``. Runtimes disagree on ``pb`` when
    ``output_shape`` or SAME padding leave an odd or negative total padding (the ONNX spec,
    its reference implementation and onnxruntime each split it differently), so every
    candidate is returned; the first is the reference implementation's, the one the concrete
    rule uses. Interval rules join over all of them.

    Returns:
        ``(out, pb_candidates, strides, dilations)``.
    """
    n = len(in_spatial)
    k, s, d, p = _defaults(n, kernel, strides, dilations, pads)
    op = [int(v) for v in output_padding] if output_padding else [0] * n
    if output_shape is not None and len(output_shape) > n:
        output_shape = list(output_shape)[-n:]  # some exporters include N and C
    out, pbs = [], []
    for i in range(n):
        full = s[i] * (in_spatial[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = int(output_shape[i]) if output_shape is not None else in_spatial[i] * s[i]
            total = full - o
            first = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            cands = [first]
        elif output_shape is not None:
            o = int(output_shape[i])
            total = full - o
            first = 0 if auto_pad == "VALID" else p[i]
            cands = [first, total - total // 2]
        else:
            b = 0 if auto_pad == "VALID" else p[i]
            e = 0 if auto_pad == "VALID" else p[n + i]
            o = full - b - e
            total = b + e
            cands = [b]
        if auto_pad != "NOTSET" or output_shape is not None:
            t0 = max(total, 0)  # onnxruntime clamps a negative total padding to 0
            cands += [total // 2, total - total // 2, t0 // 2, t0 - t0 // 2]
        if o < 1:
            raise ValueError(f"empty output along spatial dim {i}")
        out.append(o)
        pbs.append(list(dict.fromkeys(cands)))
    return out, pbs, s, d


def tap_masks(out: int, size: int, k: int, s: int, d: int, pb: int) -> np.ndarray:
    """``[out, k]`` booleans: does tap ``t`` of output ``o`` read inside the input?"""
    idx = np.arange(out)[:, None] * s + np.arange(k)[None, :] * d - pb
    return (idx >= 0) & (idx < size)


def tap_masks_transpose(out: int, size: int, k: int, s: int, d: int, pb: int) -> np.ndarray:
    """``[out, k]`` booleans: does tap ``t`` bring an input element to output ``o`` (ConvTranspose)?"""
    j = np.arange(out)[:, None] + pb - np.arange(k)[None, :] * d
    return (j >= 0) & (j % s == 0) & (j // s < size)


# ---- helpers -----------------------------------------------------------------------------


def _is_torch(k: Any) -> bool:
    return getattr(k, "name", "numpy") == "torch"


def _pad(k: Any, x: Any, pb: Ints, pe: Ints, value: float) -> Any:
    """Pad the spatial dims of ``x`` (negative pads crop)."""
    xp = k.xp
    for i, (b, e) in enumerate(zip(pb, pe, strict=True)):
        ax = 2 + i
        if b < 0 or e < 0:
            sl = [slice(None)] * x.ndim
            sl[ax] = slice(max(-b, 0), x.shape[ax] - max(-e, 0))
            x = x[tuple(sl)]
            b, e = max(b, 0), max(e, 0)
        if b == 0 and e == 0:
            continue
        parts = []
        for n in (b, e):
            shape = list(x.shape)
            shape[ax] = n
            parts.append(xp.full(tuple(shape), value, dtype=x.dtype) if n else None)
        if _is_torch(k):
            parts = [p.to(x.device) if p is not None else None for p in parts]
        seq = [q for q in (parts[0], x, parts[1]) if q is not None]
        x = xp.concat(seq, axis=ax)
    return x


def _tap_view(x: Any, tap: Sequence[int], out: Ints, s: Ints, d: Ints) -> Any:
    sl = [slice(None), slice(None)]
    for t, o, si, di in zip(tap, out, s, d, strict=True):
        start = t * di
        sl.append(slice(start, start + si * (o - 1) + 1, si))
    return x[tuple(sl)]


def _lowest(k: Any, x: Any) -> float:
    """The lowest finite value of ``x``'s dtype (the minimum of an integer dtype)."""
    name = str(x.dtype).replace("torch.", "")
    if "bfloat16" in name:
        import ml_dtypes

        return -float(ml_dtypes.finfo(name).max)
    dt = np.dtype(name)
    return float(np.iinfo(dt).min) if dt.kind in "iu" else -float(np.finfo(dt).max)


def _bias(k: Any, y: Any, b: Any) -> Any:
    if b is None:
        return y
    return y + k.xp.reshape(b, (1, -1) + (1,) * (y.ndim - 2))


# ---- convolution -------------------------------------------------------------------------


def conv(k: Any, x: Any, w: Any, b: Any, strides: Ints, dilations: Ints, pb: Ints, pe: Ints,
         group: int, out: Ints) -> Any:
    """``Conv`` with explicit geometry (from `conv_geometry`) on backend ``k``."""
    nsp = x.ndim - 2
    if _is_torch(k) and 1 <= nsp <= 3:
        import torch.nn.functional as F

        xp_ = _pad(k, x, pb, pe, 0.0)
        fn = (F.conv1d, F.conv2d, F.conv3d)[nsp - 1]
        return _bias(k, fn(xp_, w, None, stride=tuple(strides), dilation=tuple(dilations), groups=group), b)
    xp = k.xp
    xpad = _pad(k, x, pb, pe, 0.0)
    n_, c = x.shape[0], x.shape[1]
    m = w.shape[0]
    cg, mg = c // group, m // group
    p = math.prod(out)
    y: Any = None
    for tap in itertools.product(*(range(v) for v in w.shape[2:])):
        xs = xp.reshape(_tap_view(xpad, tap, out, strides, dilations), (n_, group, cg, p))
        wt = w[(slice(None), slice(None), *tap)]  # [M, Cg]
        if cg == 1 and mg == 1:
            term = xs * xp.reshape(wt, (1, group, 1, 1))
        else:
            term = xp.matmul(xp.reshape(wt, (group, mg, cg)), xs)  # [N, G, Mg, P]
        y = term if y is None else y + term
    assert y is not None
    y = xp.reshape(y, (n_, m, *out))
    return _bias(k, y, b)


def conv_transpose(k: Any, x: Any, w: Any, b: Any, strides: Ints, dilations: Ints, pb: Ints,
                   group: int, out: Ints) -> Any:
    """``ConvTranspose`` with explicit geometry (from `conv_transpose_geometry`)."""
    xp = k.xp
    nsp = x.ndim - 2
    ins = list(x.shape[2:])
    kern = list(w.shape[2:])
    full = [s * (i - 1) + (kk - 1) * d + 1 for s, i, kk, d in zip(strides, ins, kern, dilations, strict=True)]
    n_, c = x.shape[0], x.shape[1]
    mg = w.shape[1]
    m = mg * group
    cg = c // group
    if _is_torch(k) and 1 <= nsp <= 3:
        import torch.nn.functional as F

        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nsp - 1]
        yf = fn(x, w, None, stride=tuple(strides), dilation=tuple(dilations), groups=group)
    else:
        p = math.prod(ins)
        xs = xp.reshape(x, (n_, group, cg, p))
        yf = xp.zeros((n_, m, *full), dtype=x.dtype)
        for tap in itertools.product(*(range(v) for v in kern)):
            wt = xp.reshape(w[(slice(None), slice(None), *tap)], (group, cg, mg))
            contrib = xp.matmul(xp.permute_dims(wt, (0, 2, 1)), xs)  # [N, G, Mg, P]
            contrib = xp.reshape(contrib, (n_, m, *ins))
            sl = [slice(None), slice(None)]
            for t, i, s, d in zip(tap, ins, strides, dilations, strict=True):
                sl.append(slice(t * d, t * d + s * (i - 1) + 1, s))
            yf[tuple(sl)] = yf[tuple(sl)] + contrib
    # output index o is full index o + pb; positions outside the full result are 0
    pe = [f - (o + b) for f, o, b in zip(full, out, pb, strict=True)]
    y = _pad(k, yf, [-b for b in pb], [-e for e in pe], 0.0)
    return _bias(k, y, b)


# ---- pooling -----------------------------------------------------------------------------


def _pool_pad(k: Any, x: Any, kernel: Ints, strides: Ints, dilations: Ints, pb: Ints, out: Ints,
              value: float) -> Any:
    """Pad so that every window of the ``out`` grid fits (ceil mode may need more than pe)."""
    need = [(o - 1) * s + (kk - 1) * d + 1 for o, s, kk, d in zip(out, strides, kernel, dilations, strict=True)]
    pe = [n - (sz + b) for n, sz, b in zip(need, x.shape[2:], pb, strict=True)]
    return _pad(k, x, pb, pe, value)


def max_pool(k: Any, x: Any, kernel: Ints, strides: Ints, dilations: Ints, pb: Ints, out: Ints,
             indices: bool = False, storage_order: int = 0) -> Any:
    """``MaxPool``; with ``indices`` also the flat input index of each maximum (int64).

    As in onnxruntime, the maximum starts from the dtype's lowest finite value (a window with
    no input element gives it, and so does a window of -inf), and ties keep the first tap in
    row-major window order.
    """
    xp = k.xp
    low = _lowest(k, x)
    xpad = _pool_pad(k, x, kernel, strides, dilations, pb, out, low)
    y = None
    best: np.ndarray | None = None
    for tap in itertools.product(*(range(v) for v in kernel)):
        v = _tap_view(xpad, tap, out, strides, dilations)
        t_id = int(np.ravel_multi_index(tap, tuple(kernel)))
        if y is None:
            y = v
            if indices:
                best = np.full(tuple(x.shape[:2]) + tuple(out), t_id, dtype=np.int64)
            continue
        if best is not None:
            best = np.where(k.to_numpy(v > y), t_id, best)
        y = xp.maximum(y, v)
    assert y is not None
    y = xp.maximum(y, xp.full((), low, dtype=x.dtype))  # onnxruntime starts from the lowest finite value
    if best is None:
        return y
    # tap number -> input spatial position -> flat index
    taps = np.unravel_index(best, tuple(kernel))
    pos = []
    for i, t in enumerate(taps):
        grid = np.arange(out[i]).reshape((1, 1, *(out[j] if j == i else 1 for j in range(len(out)))))
        pos.append(grid * strides[i] + t * dilations[i] - pb[i])
    sizes = list(x.shape[2:])
    if storage_order:
        flat = np.zeros_like(pos[0])
        for i in reversed(range(len(pos))):
            flat = flat * sizes[i] + pos[i]
    else:
        flat = np.zeros_like(pos[0])
        for i in range(len(pos)):
            flat = flat * sizes[i] + pos[i]
    n_, c = x.shape[0], x.shape[1]
    plane = math.prod(sizes)
    base = (np.arange(n_)[:, None] * c + np.arange(c)[None, :]) * plane
    flat = flat + base.reshape((n_, c) + (1,) * len(out))
    return y, k.asarray(flat.astype(np.int64))


def avg_pool(k: Any, x: Any, kernel: Ints, strides: Ints, dilations: Ints, pb: Ints, pe: Ints,
             out: Ints, count_include_pad: int) -> Any:
    """``AveragePool``; the divisor counts input taps, plus pad taps if ``count_include_pad``.

    Taps past the end pad (ceil mode) never count, as in onnxruntime.
    """
    xpad = _pool_pad(k, x, kernel, strides, dilations, pb, out, 0.0)
    total = None
    for tap in itertools.product(*(range(v) for v in kernel)):
        v = _tap_view(xpad, tap, out, strides, dilations)
        total = v if total is None else total + v
    assert total is not None
    div = avg_divisor(list(x.shape[2:]), kernel, strides, dilations, pb, pe, out, count_include_pad)
    # a window without any counted tap gives 0 in onnxruntime (its sum is 0: divide by 1)
    return total / k.asarray(np.maximum(div, 1.0), dtype=x.dtype)


def avg_divisor(sizes: Ints, kernel: Ints, strides: Ints, dilations: Ints, pb: Ints, pe: Ints,
                out: Ints, count_include_pad: int) -> np.ndarray:
    """The divisor of each output position of an AveragePool, shape ``out``."""
    div = np.ones(tuple(out), dtype=np.float64)
    for i in range(len(out)):
        lo_bound = -pb[i] if count_include_pad else 0
        hi_bound = sizes[i] + pe[i] if count_include_pad else sizes[i]
        idx = np.arange(out[i])[:, None] * strides[i] + np.arange(kernel[i])[None, :] * dilations[i] - pb[i]
        cnt = ((idx >= lo_bound) & (idx < hi_bound)).sum(axis=1).astype(np.float64)
        div = div * cnt.reshape(tuple(out[i] if j == i else 1 for j in range(len(out))))
    return div

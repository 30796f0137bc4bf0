"""Resize (opsets 13, 18, 19) and the deprecated Upsample (opset 9).

Resize is separable: along each resized axis, output ``o`` is ``sum_j c[o, j] * x[idx[o, j]]``
(nearest: one tap; linear: 2; cubic: 4; antialias: a wider footprint), or the extrapolation
value for ``tf_crop_and_resize`` outside the region. `_axis_plan` computes ``idx`` and ``c``
exactly as ``onnx.reference`` does; the concrete rule applies them one axis at a time.

The interval rule applies them to boxes in centre-radius form, axis by axis: a refined axis
gives ``sum c * mid +- sum |c| * rad``; a coarse axis stays coarse, taking the min/max over
outputs of ``S_o * mid -+ A_o * rad`` with ``S_o = sum_j c`` and ``A_o = sum_j |c|`` (cubic
weights are negative in places: ``A_o`` reaches 1.375 for a = -0.75). Runtimes disagree with
the reference in the source coordinate (onnxruntime computes it in float32 and uses the integer
output length in ``align_corners`` and ``tf_crop_and_resize``): every axis joins over both
conventions and adds a margin for a coordinate error ``delta`` (``Lambda * delta * |x|``, with
``Lambda`` bounding how fast the weights move with the coordinate), plus the rounding of the
weighted sum. Nearest takes the hull of every index within ``delta`` of the coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.registry import BoxSpec, Ctx, register
from numsentry.ops.rules import bcast, draw_interval

_U32 = 2.0**-24  # runtimes compute coordinates and weights in float32


# ---- per-axis plans -----------------------------------------------------------------------


@dataclass
class _Plan:
    """One axis: output o reads ``x[idx[o, j]]`` with weight ``coef[o, j]`` (or ``extrap[o]``).

    Attributes:
        idx: ``[out, T]`` input indices (clipped into range: edge padding).
        coef: ``[out, T]`` float64 weights.
        extrap: ``[out]`` outputs set to the extrapolation value, or None.
        x_ori: ``[out]`` source coordinates.
        lam: ``[out]`` bounds on ``sum_j |d coef[o, j] / d x_ori|`` (how fast weights move).
    """

    idx: np.ndarray
    coef: np.ndarray
    extrap: np.ndarray | None
    x_ori: np.ndarray
    lam: np.ndarray


def _x_ori(ctm: str, out_n: int, in_n: int, scale: float, roi: tuple[float, float] | None,
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """Source coordinate of each output index, as onnx.reference computes it (float64)."""
    y = np.arange(out_n, dtype=np.float64)
    width = scale * in_n  # the reference divides by the real-valued output width
    extrap = None
    if ctm == "align_corners":
        x = np.zeros(out_n) if width == 1 else y * (in_n - 1) / (width - 1)
    elif ctm == "asymmetric":
        x = y / scale
    elif ctm == "tf_crop_and_resize":
        if roi is None:
            raise NotImplementedError("tf_crop_and_resize without a roi")
        # onnx.reference subtracts and scales the float32 roi values in float32
        r0, r1 = np.float32(roi[0]), np.float32(roi[1])
        span = np.float32(r1 - r0)
        if width == 1:
            x = np.full(out_n, float(np.float32(span * np.float32(in_n - 1)) / np.float32(2)))
        else:
            x = y * float(span) * (in_n - 1) / (width - 1)
        x = x + float(np.float32(r0 * np.float32(in_n - 1)))
        extrap = (x < 0) | (x > in_n - 1)
    elif ctm == "pytorch_half_pixel":
        x = np.full(out_n, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif ctm == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif ctm == "half_pixel_symmetric":
        adjustment = out_n / (scale * in_n)
        offset = in_n / 2 * (1 - adjustment)
        x = offset + (y + 0.5) / scale - 0.5
    else:
        raise ValueError(f"unknown coordinate_transformation_mode {ctm!r}")
    return x, extrap


def _x_ori_ort(ctm: str, out_n: int, in_n: int, s32: np.float32, roi: tuple[float, float] | None,
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Source coordinates as onnxruntime computes them: float32, integer output length."""
    f = np.float32
    y = np.arange(out_n, dtype=np.float32)
    half, one = f(0.5), f(1)
    length_o, length_r = f(in_n), f(out_n)
    extrap = None
    if ctm == "align_corners":
        x = np.zeros(out_n, np.float32) if out_n == 1 else (y * f(in_n - 1)) / f(out_n - 1)
    elif ctm == "asymmetric":
        x = y / s32
    elif ctm == "tf_crop_and_resize":
        if roi is None:
            raise NotImplementedError("tf_crop_and_resize without a roi")
        r0, r1 = f(roi[0]), f(roi[1])
        if out_n > 1:
            x = r0 * (length_o - one) + (y * (r1 - r0) * (length_o - one)) / (length_r - one)
        else:
            x = np.full(out_n, half * (r0 + r1) * (length_o - one), dtype=np.float32)
        extrap = (x < 0) | (x > length_o - one)
    elif ctm == "pytorch_half_pixel":
        x = (y + half) / s32 - half if out_n > 1 else np.zeros(out_n, np.float32)
    elif ctm == "half_pixel":
        x = (y + half) / s32 - half
    elif ctm == "half_pixel_symmetric":
        adjustment = length_r / (s32 * length_o)
        offset = (length_o / f(2)) * (one - adjustment)
        x = (offset + (y + half) / s32) - half
    else:
        raise ValueError(f"unknown coordinate_transformation_mode {ctm!r}")
    return x.astype(np.float64), extrap


def _cubic_k(s: np.ndarray, a: float) -> np.ndarray:
    s = np.abs(s)
    near = ((a + 2) * s - (a + 3)) * s * s + 1
    far = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return np.where(s <= 1, near, np.where(s < 2, far, 0.0))


def _cubic_dk(s: np.ndarray, a: float) -> np.ndarray:
    """|k'(s)| of the cubic kernel."""
    s = np.abs(s)
    near = np.abs(3 * (a + 2) * s * s - 2 * (a + 3) * s)
    far = np.abs(a * (3 * s * s - 10 * s + 8))
    return np.where(s <= 1, near, np.where(s < 2, far, 0.0))


def _cubic_lambda(a: float) -> float:
    """max over r of sum_j |d c_j / d r| for the 4 cubic taps (fine grid, 10% slack)."""
    r = np.linspace(0, 1, 2001)
    tot = np.sum([_cubic_dk(d, a) for d in (r + 1, r, 1 - r, 2 - r)], axis=0)
    return float(tot.max()) * 1.1 + 1e-9


def _cubic_slope(a: float) -> float:
    """max |k'(s)| of the cubic kernel (fine grid, 25% slack)."""
    return float(_cubic_dk(np.linspace(0, 2, 4001), a).max()) * 1.25 + 1e-9


def _nearest_index(x: np.ndarray, mode: str) -> np.ndarray:
    if mode == "round_prefer_floor":
        return np.ceil(x - 0.5)
    if mode == "round_prefer_ceil":
        return np.floor(x + 0.5)
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    raise ValueError(f"unknown nearest_mode {mode!r}")


def _axis_plan(x: np.ndarray, extrap: np.ndarray | None, in_n: int, scale: float, mode: str, a: float,
               exclude_outside: int, antialias: int, nearest_mode: str) -> _Plan:
    """Indices and weights for source coordinates ``x`` (onnx.reference's formulas)."""
    out_n = x.shape[0]
    if out_n == 0:
        return _Plan(np.zeros((0, 1), dtype=np.int64), np.zeros((0, 1)), None, x, np.zeros(0))
    if mode == "nearest":
        idx = np.clip(_nearest_index(x, nearest_mode), 0, in_n - 1).astype(np.int64)[:, None]
        return _Plan(idx, np.ones((out_n, 1)), extrap, x, np.zeros(out_n))
    x0 = np.floor(x)
    ratio = np.where(x == x0, 1.0, x - x0)  # in (0, 1]: the reference prefers the left pixel
    s_aa = min(scale, 1.0) if antialias else 1.0
    if mode == "linear":
        if antialias:
            start = int(np.floor(-1 / s_aa)) + 1
            offs = np.arange(start, start + 2 - 2 * start)
            raw = np.clip(1 - np.abs((offs[None, :] - ratio[:, None]) * s_aa), 0, 1)
        else:
            raw = np.stack([1 - ratio, ratio], axis=1)
        slope = 1.0
    elif mode == "cubic":
        if antialias:
            i0 = int(np.floor(-2 / s_aa)) + 1
            offs = np.arange(i0, 2 - i0)
            raw = _cubic_k(s_aa * (offs[None, :] - ratio[:, None]), a)
        else:
            raw = _cubic_k(np.stack([ratio + 1, ratio, 1 - ratio, 2 - ratio], axis=1), a)
        slope = _cubic_slope(a)
    else:
        raise ValueError(f"unknown Resize mode {mode!r}")
    n = raw.shape[1]
    # the n source pixels nearest to x (ties to the smaller index), in edge-padded coordinates
    pad = int(np.ceil(n / 2))
    xp_ = x + pad
    p = np.floor(xp_)
    frac = xp_ - p
    if n % 2 == 0:
        off = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        base = -((n - 1) // 2)
        off = np.where(frac <= 0.5, base, base + 1)
    idx = (p + off).astype(np.int64)[:, None] + np.arange(n)[None, :] - pad
    coef = raw / raw.sum(axis=1, keepdims=True) if antialias else raw
    if exclude_outside:
        coef = np.where((idx < 0) | (idx >= in_n), 0.0, coef)
        tot = coef.sum(axis=1, keepdims=True)
        coef = coef / np.where(tot == 0, 1.0, tot)
    # how fast the weights move with x, per output: sum_j |d coef_j / dx|. Normalised weights
    # c = k / S move at most sum|k'| * (1 + sum|c|) / S.
    a_o = np.abs(coef).sum(axis=1)
    if antialias and s_aa < 1:
        dk = n * slope * s_aa  # n taps of slope <= slope * s_aa
        norm = raw.sum(axis=1)
    else:
        dk = 2.0 if mode == "linear" else _cubic_lambda(a)
        norm = None
    if exclude_outside:
        norm = np.where((idx < 0) | (idx >= in_n), 0.0, raw).sum(axis=1)
    if norm is None:
        lam: np.ndarray = np.full(out_n, dk)
    else:
        lam = dk * (1 + a_o) / np.maximum(np.abs(norm), 1e-12)
    return _Plan(np.clip(idx, 0, in_n - 1), coef, extrap, x, lam)


# ---- attributes -> per-axis geometry ------------------------------------------------------


def _values(box_or_arr: Any) -> np.ndarray | None:
    """Exact values of a shape-like input (None or empty: absent)."""
    if box_or_arr is None:
        return None
    if isinstance(box_or_arr, Box):
        if not box_or_arr.is_point:
            raise NotImplementedError("Resize: roi, scales and sizes must be exact")
        v = np.asarray(box_or_arr.value)
    else:
        v = np.asarray(box_or_arr)
    return None if v.size == 0 else v


def _geometry(shape: tuple[int, ...], roi: Any, scales: Any, sizes: Any, axes: Any, keep_aspect_ratio_policy: str,
              ) -> tuple[list[int], list[float], list[np.float32], list[tuple[float, float] | None]]:
    """Output shape, per-axis scales (reference float64 and onnxruntime float32) and rois."""
    r = len(shape)
    ax = [int(a) % r for a in axes] if axes is not None and len(axes) else list(range(r))
    sc_v, sz_v, roi_v = _values(scales), _values(sizes), _values(roi)
    out = list(shape)
    scale = [1.0] * r
    s32 = [np.float32(1)] * r
    if sz_v is not None:
        sz_v = sz_v.astype(np.int64).reshape(-1)
        if len(sz_v) != len(ax):
            raise ValueError("Resize: sizes do not match the axes")
        for i, d in enumerate(ax):
            scale[d] = float(sz_v[i]) / shape[d]
            s32[d] = np.float32(sz_v[i]) / np.float32(shape[d])
            out[d] = int(sz_v[i])
        if keep_aspect_ratio_policy in ("not_larger", "not_smaller"):
            pick = min if keep_aspect_ratio_policy == "not_larger" else max
            sv = pick(scale[d] for d in ax)
            sv32 = pick(s32[d] for d in ax)
            for d in ax:
                scale[d], s32[d] = sv, sv32
                out[d] = int(sv * shape[d] + 0.5)
    elif sc_v is not None:
        sc_v = sc_v.astype(np.float32).reshape(-1)
        if len(sc_v) != len(ax):
            raise ValueError("Resize: scales do not match the axes")
        for i, d in enumerate(ax):
            scale[d] = float(sc_v[i])
            s32[d] = sc_v[i]
            out[d] = int(np.float64(sc_v[i]) * shape[d])
    else:
        raise ValueError("Resize needs scales or sizes")
    rois: list[tuple[float, float] | None] = [None] * r
    if roi_v is not None:
        roi_v = roi_v.astype(np.float32).reshape(-1)
        k = len(roi_v) // 2
        names = ax if k == len(ax) else list(range(r))
        for i, d in enumerate(names):
            rois[d] = (roi_v[i], roi_v[k + i])
    return out, scale, s32, rois


def _axis_todo(shape: tuple[int, ...], out: list[int], scale: list[float],
               rois: list[tuple[float, float] | None], ctm: str) -> list[int]:
    """Axes that change (the reference skips identity axes)."""
    todo = []
    for d in range(len(shape)):
        ident = np.isclose(scale[d], 1.0) and out[d] == shape[d]
        if ctm == "tf_crop_and_resize" and rois[d] is not None:
            ident = ident and np.isclose(rois[d][0], 0.0) and np.isclose(rois[d][1], 1.0)  # type: ignore[index]
        if not ident:
            todo.append(d)
    return todo


@dataclass
class _Spec:
    mode: str = "nearest"
    ctm: str = "half_pixel"
    a: float = -0.75
    exclude_outside: int = 0
    extrapolation_value: float = 0.0
    nearest_mode: str = "round_prefer_floor"
    antialias: int = 0


def _plans(spec: _Spec, in_n: int, out_n: int, scale: float, s32: np.float32,
           roi: tuple[float, float] | None) -> list[_Plan]:
    """The reference's plan first, then onnxruntime's where it differs.

    onnxruntime computes the coordinate in float32 with the integer output length, and its
    linear and cubic kernels leave an axis of scale 1 untouched (its roi is ignored there).
    """
    args = (in_n, scale, spec.mode, spec.a, spec.exclude_outside, spec.antialias, spec.nearest_mode)
    x_ref, e_ref = _x_ori(spec.ctm, out_n, in_n, scale, roi)
    plans = [_axis_plan(x_ref, e_ref, *args)]
    if spec.mode != "nearest" and s32 == 1 and out_n == in_n:
        x_ort, e_ort = np.arange(out_n, dtype=np.float64), None
    else:
        x_ort, e_ort = _x_ori_ort(spec.ctm, out_n, in_n, s32, roi)
    same_ext = (e_ref is None and e_ort is None) or (
        e_ref is not None and e_ort is not None and np.array_equal(e_ref, e_ort))
    if not (np.array_equal(x_ref, x_ort) and same_ext):
        plans.append(_axis_plan(x_ort, e_ort, *args))
    return plans


# ---- concrete -----------------------------------------------------------------------------


def _apply_axis(k: Any, x: Any, axis: int, plan: _Plan, ev: float) -> Any:
    xp = k.xp
    out_n, taps = plan.idx.shape
    g = xp.take(x, k.asarray(plan.idx.reshape(-1)), axis=axis)
    shape = list(x.shape)
    shape[axis:axis + 1] = [out_n, taps]
    g = xp.reshape(g, tuple(shape))
    if taps == 1 and np.all(plan.coef == 1):
        y = xp.reshape(g, tuple(shape[:axis + 1] + shape[axis + 2:]))
    else:
        cshape = [1] * len(shape)
        cshape[axis], cshape[axis + 1] = out_n, taps
        c = k.asarray(plan.coef.reshape(cshape), dtype=x.dtype)
        y = xp.sum(g * c, axis=axis + 1)
    if plan.extrap is not None and plan.extrap.any():
        mshape = [1] * len(y.shape)
        mshape[axis] = out_n
        y = xp.where(k.asarray(plan.extrap.reshape(mshape)), xp.asarray(ev, dtype=y.dtype), y)
    return y


def _resize_c(k: Any, x: Any, roi: Any = None, scales: Any = None, sizes: Any = None, antialias: int = 0,
              axes: Any = None, coordinate_transformation_mode: str = "half_pixel", cubic_coeff_a: float = -0.75,
              exclude_outside: int = 0, extrapolation_value: float = 0.0, keep_aspect_ratio_policy: str = "stretch",
              mode: str = "nearest", nearest_mode: str = "round_prefer_floor") -> Any:
    spec = _Spec(mode, coordinate_transformation_mode, float(cubic_coeff_a), int(exclude_outside),
                 float(extrapolation_value), nearest_mode, int(antialias))
    roi_n, sc_n, sz_n = (None if v is None else np.asarray(k.to_numpy(v)) for v in (roi, scales, sizes))
    shape = tuple(int(s) for s in x.shape)
    out, scale, s32, rois = _geometry(shape, roi_n, sc_n, sz_n, axes, keep_aspect_ratio_policy)
    xp = k.xp
    int_dtype = x.dtype if xp.isdtype(x.dtype, "integral") and spec.mode != "nearest" else None
    if int_dtype is not None:
        x = xp.astype(x, xp.float64)  # interpolate integers in float64, round and saturate after
    for d in _axis_todo(shape, out, scale, rois, spec.ctm):
        x = _apply_axis(k, x, d, _plans(spec, shape[d], out[d], scale[d], s32[d], rois[d])[0],
                        spec.extrapolation_value)
    if int_dtype is not None:
        info = xp.iinfo(int_dtype)
        x = xp.astype(xp.clip(xp.round(x), float(info.min), float(info.max)), int_dtype)
    return x


# ---- interval -----------------------------------------------------------------------------


def _take(a: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """``a`` gathered along ``axis`` with ``[out, T]`` indices -> ``[.., out, T, ..]``."""
    g = np.take(a, idx.reshape(-1), axis=axis)
    shape = list(a.shape)
    shape[axis:axis + 1] = list(idx.shape)
    return g.reshape(shape)


def _cshape(arr: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """A ``[out]`` or ``[out, T]`` array shaped to broadcast at ``axis`` of a gathered array."""
    shape = [1] * (rank + arr.ndim - 1)
    shape[axis:axis + arr.ndim] = list(arr.shape)
    return arr.reshape(shape)


def _delta(plan: _Plan, in_n: int, roi: tuple[float, float] | None) -> np.ndarray:
    """Slack for a runtime coordinate an ulp or two off ours (e.g. a contracted multiply-add)."""
    extra = 0.0 if roi is None else (abs(float(roi[0])) + abs(float(roi[1]))) * in_n
    return 2 * _U32 * (np.abs(plan.x_ori) + 1 + extra)


def _tiny_of(eps: float) -> float:
    """Smallest subnormal of the format whose unit roundoff is ``eps``."""
    from numsentry.dtypes import FLOAT_FORMATS

    return next((f.tiny for f in FLOAT_FORMATS.values() if f.eps == eps), 2.0**-149)


def _interval_axis(lo: np.ndarray, hi: np.ndarray, axis: int, plans: list[_Plan], in_n: int, spec: _Spec,
                   eps: float, total_taps: int, roi: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Bounds after resizing one axis (joined over the plans)."""
    rank = lo.ndim
    if plans[0].idx.shape[0] == 0:
        shape = list(lo.shape)
        shape[axis] = 0
        return np.zeros(shape), np.zeros(shape)
    coarse = lo.shape[axis] == 1 and hi.shape[axis] == 1 and in_n > 1
    out_lo = out_hi = None
    ev = spec.extrapolation_value
    for plan in plans:
        out_n = plan.idx.shape[0]
        if spec.mode == "nearest":
            if coarse:
                l2, h2 = lo, hi
            else:
                l2 = _take(lo, plan.idx, axis)[(slice(None),) * (axis + 1) + (0,)]
                h2 = _take(hi, plan.idx, axis)[(slice(None),) * (axis + 1) + (0,)]
        else:
            mid, rad = lo / 2 + hi / 2, hi / 2 - lo / 2
            mag = np.maximum(np.abs(lo), np.abs(hi))
            absc = np.abs(plan.coef)
            a_o = absc.sum(axis=1)
            s_o = plan.coef.sum(axis=1)
            taps = plan.idx.shape[1]
            # rounding: float32 weights (a few ops each), the weighted sum, our own float64 sums
            acc = 6 * _U32 + _gamma(total_taps + 2, eps) + _gamma(2 * taps + 4, 2.0**-53)
            # products that underflow lose up to half a subnormal each (gamma does not cover it)
            under = (2 * taps + 2) * _tiny_of(eps)
            # a coordinate a few float32 roundings off moves the weights by up to lam * delta
            slack = plan.lam * _delta(plan, in_n, roi)
            if coarse:
                sh = [1] * rank
                sh[axis] = out_n
                s_b, a_b = s_o.reshape(sh), a_o.reshape(sh)
                r_b = (acc * a_o + slack).reshape(sh)
                l2 = s_b * mid - a_b * rad - r_b * mag - under
                h2 = s_b * mid + a_b * rad + r_b * mag + under
            else:
                c = _cshape(plan.coef, axis, rank)
                ac = _cshape(absc, axis, rank)
                nm = (_take(mid, plan.idx, axis) * c).sum(axis=axis + 1)
                nr = (_take(rad, plan.idx, axis) * ac).sum(axis=axis + 1)
                nmag = (_take(mag, plan.idx, axis) * ac).sum(axis=axis + 1)
                # the window widened by one pixel each side: a shifted coordinate brings it in
                wide = np.concatenate([plan.idx[:, :1] - 1, plan.idx, plan.idx[:, -1:] + 1], axis=1)
                mmax = _take(mag, np.clip(wide, 0, in_n - 1), axis).max(axis=axis + 1)
                margin = acc * nmag + _cshape(slack, axis, rank) * mmax + under
                l2 = nm - nr - margin
                h2 = nm + nr + margin
        if plan.extrap is not None and plan.extrap.any():
            sh = [1] * rank
            sh[axis] = out_n
            ext = plan.extrap.reshape(sh)
            l2 = np.where(ext, ev, l2)
            h2 = np.where(ext, ev, h2)
        if coarse:
            l2 = l2.min(axis=axis, keepdims=True) if l2.shape[axis] > 1 else l2
            h2 = h2.max(axis=axis, keepdims=True) if h2.shape[axis] > 1 else h2
        out_lo = l2 if out_lo is None else np.minimum(out_lo, l2)
        out_hi = h2 if out_hi is None else np.maximum(out_hi, h2)
    assert out_lo is not None and out_hi is not None
    return out_lo, out_hi


def _gamma(n: int, u: float) -> float:
    nu = n * u
    return nu / (1 - nu) if nu < 1 else np.inf


def _resize_iv(ctx: Ctx, x: Box, roi: Box | None = None, scales: Box | None = None, sizes: Box | None = None,
               antialias: int = 0, axes: Any = None, coordinate_transformation_mode: str = "half_pixel",
               cubic_coeff_a: float = -0.75, exclude_outside: int = 0, extrapolation_value: float = 0.0,
               keep_aspect_ratio_policy: str = "stretch", mode: str = "nearest",
               nearest_mode: str = "round_prefer_floor") -> Box:
    spec = _Spec(mode, coordinate_transformation_mode, float(cubic_coeff_a), int(exclude_outside),
                 float(extrapolation_value), nearest_mode, int(antialias))
    out, scale, s32, rois = _geometry(x.shape, roi, scales, sizes, axes, keep_aspect_ratio_policy)
    todo = _axis_todo(x.shape, out, scale, rois, spec.ctm)
    lo, hi = bcast(x, x.rank)
    lo, hi = np.broadcast_arrays(lo, hi)
    nan = x.nan
    if x.dtype.kind in "f" and not (np.isfinite(lo).all() and np.isfinite(hi).all()) and spec.mode != "nearest":
        # inf * 0 weights make NaN; any infinity spreads over the interpolated outputs
        nan = True
        lo = np.where(np.isfinite(lo), lo, -np.inf)
        hi = np.where(np.isfinite(hi), hi, np.inf)
    plans_all = {d: _plans(spec, x.shape[d], out[d], scale[d], s32[d], rois[d]) for d in todo}
    total_taps = int(np.prod([p[0].idx.shape[1] for p in plans_all.values()], dtype=np.int64)) if todo else 1
    eps = ctx.fmt(x.dtype).eps if x.dtype.kind == "f" else _U32
    with np.errstate(invalid="ignore"):
        for d in todo:
            lo, hi = _interval_axis(lo, hi, d, plans_all[d], x.shape[d], spec, eps, total_taps, rois[d])
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        lo = np.clip(np.floor(lo), info.min, info.max)
        hi = np.clip(np.ceil(hi), info.min, info.max)
    return Box(lo, hi, tuple(out), x.dtype, nan)


# ---- samplers and registration ------------------------------------------------------------


def _resize_sample(opset: int) -> Any:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        # onnxruntime implements cubic for 2-D inputs or 4-D ones resized on the last two axes
        mode = draw(st.sampled_from(["nearest", "linear", "cubic"]))
        rank = draw(st.sampled_from([2, 4] if mode == "cubic" else [2, 3, 4]))
        shape = tuple(draw(st.integers(1, 4)) for _ in range(rank))
        ctms = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"]
        if opset >= 19:
            ctms.append("half_pixel_symmetric")
        ctm = draw(st.sampled_from(ctms))
        resized = list(range(rank)) if rank <= 2 else [rank - 2, rank - 1]
        lo, hi = draw_interval(draw, -5, 5)
        x = BoxSpec(lo, hi, shape)
        attrs: dict[str, Any] = {"mode": mode, "coordinate_transformation_mode": ctm}
        if mode == "nearest":
            attrs["nearest_mode"] = draw(st.sampled_from(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]))
        if mode == "cubic":
            attrs["cubic_coeff_a"] = draw(st.sampled_from([-0.75, -0.5]))
            attrs["exclude_outside"] = draw(st.integers(0, 1))
        if opset >= 18 and mode != "nearest" and draw(st.booleans()):
            attrs["antialias"] = 1
        # onnxruntime uses the integer output length where the reference uses scale * length,
        # and maps a length-1 output differently: sample where they agree
        exact_width = ctm in ("align_corners", "tf_crop_and_resize", "pytorch_half_pixel", "half_pixel_symmetric")
        if draw(st.booleans()):
            # output sizes (the reference and onnxruntime agree on scales derived from sizes)
            lo_n = 2 if exact_width else 1
            out = [shape[d] if d not in resized else draw(st.integers(lo_n, 7)) for d in range(rank)]
            sizes: np.ndarray | None = np.asarray(out, dtype=np.int64)
            scales = None
        else:
            choices = [0.5, 1.5, 2.0, 3.0, 0.75]
            sc = [1.0 if d not in resized else draw(st.sampled_from(choices)) for d in range(rank)]
            ok = [v * n >= (2 if exact_width else 1) and (not exact_width or float(v * n).is_integer())
                  for v, n in zip(sc, shape, strict=True)]
            sc = [v if good else 1.0 for v, good in zip(sc, ok, strict=True)]
            out = [int(v * n) for v, n in zip(sc, shape, strict=True)]
            sizes, scales = None, np.asarray(sc, dtype=np.float32)
        roi = None
        if ctm == "tf_crop_and_resize":
            # dyadic regions: runtimes then agree on coordinates that hit the region's edge;
            # onnxruntime ignores the region of an axis it does not resize
            starts = [0.0 if out[d] == shape[d] else draw(st.sampled_from([0.0, 0.125, -0.25])) for d in range(rank)]
            ends = [1.0 if out[d] == shape[d] else draw(st.sampled_from([1.0, 0.875, 1.25])) for d in range(rank)]
            roi = np.asarray(starts + ends, dtype=np.float32)
            attrs["extrapolation_value"] = draw(st.sampled_from([0.0, 7.5]))
        if opset >= 18 and draw(st.booleans()):
            # the same resize named by axes (scales/sizes/roi then cover those axes only)
            attrs["axes"] = resized
            sizes = None if sizes is None else sizes[resized]
            scales = None if scales is None else scales[resized]
            if roi is not None:
                roi = np.concatenate([roi[resized], roi[[rank + d for d in resized]]])
            if sizes is not None and ctm != "tf_crop_and_resize":
                attrs["keep_aspect_ratio_policy"] = draw(st.sampled_from(["stretch", "not_larger", "not_smaller"]))
        if sizes is not None:
            ins = [x, roi if roi is not None else np.zeros(0, np.float32), None, sizes]
        else:
            ins = [x, roi, scales, None]
        return ins, attrs

    return sample


for _v in (13, 18, 19):
    register(
        "Resize", since=_v, concrete=_resize_c, interval=_resize_iv, overflow_rule=None,
        property="separable linear map per axis (centre-radius with |weights|; coarse boxes stay coarse)",
        sample=_resize_sample(_v), doc="nearest/linear/cubic resize (coordinate modes, antialias, axes)",
    )


# ---- Upsample (deprecated since opset 10) -------------------------------------------------

_UPSAMPLE: dict[str, Any] = {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}


def _upsample_c(k: Any, x: Any, scales: Any, mode: str = "nearest") -> Any:
    return _resize_c(k, x, None, scales, None, mode=mode, **_UPSAMPLE)


def _upsample_iv(ctx: Ctx, x: Box, scales: Box, mode: str = "nearest") -> Box:
    return _resize_iv(ctx, x, None, scales, None, mode=mode, **_UPSAMPLE)


def _upsample_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    # onnx.reference implements only nearest with integer scales
    rank = draw(st.integers(2, 4))
    shape = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    sc = np.asarray([1.0] * (rank - 2) + [float(draw(st.integers(1, 3))) for _ in range(2)], dtype=np.float32)
    lo, hi = draw_interval(draw, -5, 5)
    return [BoxSpec(lo, hi, shape), sc], {"mode": "nearest"}


register(
    "Upsample", since=9, concrete=_upsample_c, interval=_upsample_iv, overflow_rule=None,
    property="Resize (asymmetric coordinates, nearest floor or linear)", sample=_upsample_sample,
    doc="deprecated Upsample: Resize with asymmetric coordinates",
)

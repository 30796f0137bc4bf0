"""Attention (opset 23/24): softmax(Q K^T * scale [softcap] + mask) V, with GQA and KV caches.

Bounds follow the op's dataflow and reuse the registry's pieces: the scores are a bilinear
product bounded by `linalg.matmul_bounds` (centre-radius plus accumulation error, with the
scaling of Q and K by sqrt(scale) as extra roundings), softcap is monotone, masks add -inf
(definitely masked keys) or a bounded bias, and the probabilities come from the Softmax rule of
the registry. The output ``P @ V`` is bounded twice and the tighter bound kept: by
``matmul_bounds`` and by the hull of V over the keys (each output is a convex combination of
value rows, up to the rounding of the probabilities and of the dot product). A row whose keys can
all be masked gives 0 (onnxruntime and the reference evaluator zero such rows: measured), so
such rows include 0. Scores that can overflow the format make the output unbounded (NaN).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.dtypes import round_bounds
from numsentry.ops.linalg import accumulation_error, matmul_bounds
from numsentry.ops.reduce import align, guard_inf, reduce_max, reduce_min
from numsentry.ops.registry import REGISTRY, BoxSpec, Ctx, register
from numsentry.ops.rules import draw_interval

_MASKED = -1e300  # stands for -inf in score bounds (exp of it is 0 in float64)


# ---- concrete -----------------------------------------------------------------------------


def _to4d_c(k: Any, x: Any, heads: int | None) -> Any:
    if len(tuple(x.shape)) == 4:
        return x
    b, s, hid = tuple(x.shape)
    if not heads:
        raise ValueError("Attention with 3-D inputs needs q_num_heads and kv_num_heads")
    return k.xp.permute_dims(k.xp.reshape(x, (b, s, heads, hid // heads)), (0, 2, 1, 3))


def _repeat_heads_c(k: Any, x: Any, rep: int) -> Any:
    if rep == 1:
        return x
    b, h, s, d = tuple(x.shape)
    xp = k.xp
    return xp.reshape(xp.broadcast_to(xp.reshape(x, (b, h, 1, s, d)), (b, h, rep, s, d)), (b, h * rep, s, d))


def _causal_allowed(q_len: int, kv_len: int, offset: int) -> np.ndarray:
    return np.arange(kv_len)[None, :] <= np.arange(q_len)[:, None] + offset


def _check_attrs(nonpad_kv_seqlen: Any, left_window_size: int, right_window_size: int) -> None:
    if nonpad_kv_seqlen is not None:
        raise NotImplementedError("Attention with nonpad_kv_seqlen")
    if left_window_size != -1 or right_window_size != -1:
        raise NotImplementedError("Attention with a sliding window")


def _attn_c(k: Any, q: Any, key: Any, v: Any, attn_mask: Any = None, past_key: Any = None,
            past_value: Any = None, nonpad_kv_seqlen: Any = None, is_causal: int = 0,
            kv_num_heads: int | None = None, q_num_heads: int | None = None,
            qk_matmul_output_mode: int = 0, scale: float | None = None, softcap: float = 0.0,
            softmax_precision: int | None = None, left_window_size: int = -1,
            right_window_size: int = -1) -> Any:
    _check_attrs(nonpad_kv_seqlen, left_window_size, right_window_size)
    xp = k.xp
    rank = len(tuple(q.shape))
    q4, k4, v4 = _to4d_c(k, q, q_num_heads), _to4d_c(k, key, kv_num_heads), _to4d_c(k, v, kv_num_heads)
    past_len = 0
    if past_key is not None:
        past_len = int(tuple(past_key.shape)[2])
        k4 = xp.concat([past_key, k4], axis=2)
        v4 = xp.concat([past_value, v4], axis=2)
    present_k, present_v = k4, v4
    rep = int(tuple(q4.shape)[1]) // int(tuple(k4.shape)[1])
    kk, vv = _repeat_heads_c(k, k4, rep), _repeat_heads_c(k, v4, rep)
    sc = float(scale) if scale is not None else 1.0 / float(np.sqrt(tuple(q4.shape)[3]))
    s = float(np.sqrt(sc))
    qk = xp.matmul(q4 * s, xp.matrix_transpose(kk * s))
    raw = qk
    if softcap and softcap > 0:
        qk = xp.tanh(qk / softcap) * softcap
    q_len, kv_len = int(tuple(q4.shape)[2]), int(tuple(kk.shape)[2])
    bias = np.zeros((q_len, kv_len), dtype=np.float64)
    bias_x: Any = None
    if attn_mask is not None:
        m = attn_mask
        pad = kv_len - int(tuple(m.shape)[-1])
        if str(m.dtype).endswith("bool"):
            m = xp.where(m, xp.zeros(tuple(m.shape), dtype=q.dtype), xp.full(tuple(m.shape), -np.inf, dtype=q.dtype))
        if pad > 0:
            m = xp.concat([m, xp.full((*tuple(m.shape)[:-1], pad), -np.inf, dtype=m.dtype)], axis=-1)
        bias_x = m
    if is_causal:
        bias = np.where(_causal_allowed(q_len, kv_len, past_len), 0.0, -np.inf)
    total = xp.astype(k.asarray(bias), qk.dtype)
    if bias_x is not None:
        total = total + bias_x
    scores = qk + total
    dead = xp.max(total + xp.zeros_like(scores), axis=-1, keepdims=True) == -np.inf  # fully masked rows
    m_ = xp.max(scores, axis=-1, keepdims=True)
    m_ = xp.where(dead, xp.zeros_like(m_), m_)
    e = xp.exp(scores - m_)
    ssum = xp.sum(e, axis=-1, keepdims=True)
    p = xp.where(dead, xp.zeros_like(e), e / xp.where(dead, xp.ones_like(ssum), ssum))
    y = xp.matmul(p, vv)
    if rank == 3:
        b_, h_, sq, dv = tuple(y.shape)
        y = xp.reshape(xp.permute_dims(y, (0, 2, 1, 3)), (b_, sq, h_ * dv))
    # mode 0 is the raw product (spec, onnxruntime); onnx's reference evaluator returns it softcapped
    qk_out = {0: raw, 1: qk, 2: scores, 3: p}.get(int(qk_matmul_output_mode), raw)
    return y, present_k, present_v, qk_out


# ---- boxes --------------------------------------------------------------------------------


def _bounds4(b: Box, heads: int | None) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Bounds in the (B, H, S, D) layout (3-D inputs are split into heads)."""
    lo, hi = (align(a, b.rank) for a in b.bounds64())
    if b.rank == 4:
        return lo, hi, b.shape
    if not heads:
        raise ValueError("Attention with 3-D inputs needs q_num_heads and kv_num_heads")
    bs, s, hid = b.shape
    shape4 = (bs, heads, s, hid // heads)
    out = []
    for a in (lo, hi):
        if a.shape[2] == 1:
            a4 = a.reshape(a.shape[0], a.shape[1], 1, 1)
        else:
            a4 = a.reshape(a.shape[0], a.shape[1], heads, hid // heads)
        out.append(np.transpose(a4, (0, 2, 1, 3)))
    return out[0], out[1], shape4


def _concat_seq(a: tuple[np.ndarray, np.ndarray, tuple[int, ...]],
                b: tuple[np.ndarray, np.ndarray, tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    shape = (*a[2][:2], a[2][2] + b[2][2], a[2][3])
    lo = np.concatenate([np.broadcast_to(a[0], a[2]), np.broadcast_to(b[0], b[2])], axis=2)
    hi = np.concatenate([np.broadcast_to(a[1], a[2]), np.broadcast_to(b[1], b[2])], axis=2)
    return lo, hi, shape


def _repeat(a: np.ndarray, rep: int) -> np.ndarray:
    return a if rep == 1 or a.shape[1] == 1 else np.repeat(a, rep, axis=1)


def _softmax_box(ctx: Ctx, s: Box) -> Box:
    from numsentry.ops.apply import apply_interval

    op = REGISTRY.lookup("", "Softmax", 13)
    if op is None:  # pragma: no cover - registered by the softmax module
        raise NotImplementedError("Softmax is not registered")
    return apply_interval(op, ctx, [s], {"axis": -1})[0]


def _mask_bounds(mask: Box | None, q_len: int, kv_len: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Additive bias bounds (rank 4, broadcastable) from a bool or float mask."""
    if mask is None:
        z = np.zeros((1, 1, 1, 1))
        return z, z, False
    lo, hi = (align(a, 4) for a in mask.bounds64())
    if mask.dtype == np.bool_:
        # True takes part (bias 0), False is masked (-inf)
        lo, hi = np.where(lo > 0, 0.0, -np.inf), np.where(hi > 0, 0.0, -np.inf)
    full = np.broadcast_shapes(lo.shape, hi.shape, (1, 1, 1, mask.shape[-1]))
    lo, hi = np.broadcast_to(lo, full), np.broadcast_to(hi, full)
    pad = kv_len - mask.shape[-1]
    if pad > 0:  # missing keys count as masked
        fill = np.full((*full[:-1], pad), -np.inf)
        lo, hi = np.concatenate([lo, fill], axis=-1), np.concatenate([hi, fill], axis=-1)
    return lo, hi, mask.nan


def _attn_iv(ctx: Ctx, q: Box, key: Box, v: Box, attn_mask: Box | None = None, past_key: Box | None = None,
             past_value: Box | None = None, nonpad_kv_seqlen: Box | None = None, is_causal: int = 0,
             kv_num_heads: int | None = None, q_num_heads: int | None = None,
             qk_matmul_output_mode: int = 0, scale: float | None = None, softcap: float = 0.0,
             softmax_precision: int | None = None, left_window_size: int = -1,
             right_window_size: int = -1) -> tuple[Box, ...]:
    _check_attrs(nonpad_kv_seqlen, left_window_size, right_window_size)
    fmt = ctx.fmt(q.dtype)
    n_out = max(len(ctx.output_shapes), 1) if ctx.output_shapes else 4
    q4 = _bounds4(q, q_num_heads)
    k4 = _bounds4(key, kv_num_heads)
    v4 = _bounds4(v, kv_num_heads)
    past_len = 0
    if past_key is not None and past_value is not None:
        past_len = past_key.shape[2]
        k4 = _concat_seq(_bounds4(past_key, None), k4)
        v4 = _concat_seq(_bounds4(past_value, None), v4)
    present_k = Box(k4[0], k4[1], k4[2], key.dtype, key.nan or (past_key is not None and past_key.nan))
    present_v = Box(v4[0], v4[1], v4[2], v.dtype, v.nan or (past_value is not None and past_value.nan))
    bsz, heads, q_len, d = q4[2]
    kv_heads, kv_len = k4[2][1], k4[2][2]
    if kv_heads <= 0 or heads % kv_heads:
        raise ValueError(f"Attention: {heads} query heads and {kv_heads} key/value heads")
    rep = heads // kv_heads
    dv = v4[2][3]
    sc = float(scale) if scale is not None else 1.0 / float(np.sqrt(d))
    nan_in = q.nan or key.nan or v.nan

    # scores = (Q sqrt(s)) (K sqrt(s))^T: exact scaling, roundings counted as 3 extra terms
    qb = Box(q4[0] * sc, q4[1] * sc, q4[2], q.dtype) if sc >= 0 else Box(q4[1] * sc, q4[0] * sc, q4[2], q.dtype)
    kb = Box(np.swapaxes(_repeat(k4[0], rep), -1, -2), np.swapaxes(_repeat(k4[1], rep), -1, -2),
             (bsz, heads, d, kv_len), key.dtype)
    s_lo, s_hi, _ = matmul_bounds(qb, kb, fmt.eps * (d + 3) / max(d, 1))
    s_lo, s_hi = round_bounds(s_lo, s_hi, fmt)  # stored scores: overflow becomes inf
    overflow = not (np.all(np.isfinite(s_lo)) and np.all(np.isfinite(s_hi)))
    raw = (s_lo, s_hi)
    if softcap and softcap > 0:
        with np.errstate(all="ignore"):
            c_lo = softcap * np.tanh(s_lo / softcap) - 4 * fmt.eps * softcap
            c_hi = softcap * np.tanh(s_hi / softcap) + 4 * fmt.eps * softcap
        c_lo, c_hi = np.maximum(c_lo, -softcap), np.minimum(c_hi, softcap)
        overflow = False  # tanh saturates: inf scores become ±softcap
    else:
        c_lo, c_hi = s_lo, s_hi
    m_lo, m_hi, m_nan = _mask_bounds(attn_mask, q_len, kv_len)
    if is_causal:
        # the spec aligns the causal frontier at past_len; with a KV cache onnxruntime 1.31
        # (opset 24) aligns it at kv_len - q_len (measured): keys allowed by one of them only may
        # or may not be masked. Without a cache both use 0.
        a1 = _causal_allowed(q_len, kv_len, past_len)[None, None]
        a2 = _causal_allowed(q_len, kv_len, kv_len - q_len if past_len else 0)[None, None]
        m_lo, m_hi = np.where(a1 & a2, m_lo, -np.inf), np.where(a1 | a2, m_hi, -np.inf)
    with np.errstate(all="ignore"):
        b_lo, b_hi = c_lo + m_lo, c_hi + m_hi
    if m_nan or np.any(np.isposinf(m_hi)) or np.any(np.isnan(b_lo)) or np.any(np.isnan(b_hi)):
        overflow = True
    shape4 = (bsz, heads, q_len, kv_len)
    # keys that are surely masked get probability 0; rows whose keys can all be masked give 0
    dead_key = np.broadcast_to(np.isneginf(m_hi), np.broadcast_shapes(m_hi.shape, shape4))
    maybe_dead_row = np.all(np.isneginf(np.broadcast_to(m_lo, np.broadcast_shapes(m_lo.shape, shape4))),
                            axis=-1, keepdims=True)
    outs_qk = _qk_output(int(qk_matmul_output_mode), raw, (c_lo, c_hi), (b_lo, b_hi), shape4, q.dtype)

    if overflow:  # inf - inf in the softmax: NaN
        y4 = (np.full((1, 1, 1, 1), -np.inf), np.full((1, 1, 1, 1), np.inf))
        p_box = Box.range(0.0, 1.0, shape4, q.dtype, nan=True)
        y_nan = True
    else:
        x_lo = np.where(np.isneginf(b_lo), _MASKED, b_lo)
        x_hi = np.where(np.isneginf(b_hi), _MASKED, b_hi)
        x_lo, x_hi = np.broadcast_arrays(x_lo, x_hi)
        p = _softmax_box(ctx, Box(np.array(x_lo), np.array(x_hi), shape4, q.dtype))
        p_lo, p_hi = (np.broadcast_to(a, shape4) for a in p.bounds64())
        p_lo, p_hi = np.where(dead_key, 0.0, p_lo), np.where(dead_key, 0.0, p_hi)
        p_lo = np.where(maybe_dead_row, 0.0, p_lo)
        p_box = Box(p_lo, p_hi, shape4, q.dtype, p.nan)
        vb = Box(_repeat(v4[0], rep), _repeat(v4[1], rep), (bsz, heads, kv_len, dv), v.dtype)
        y_lo, y_hi, _ = matmul_bounds(p_box, vb, fmt.eps)
        # the convex-combination bound: sum p in [1 - g, 1 + g], plus the dot product's rounding
        g = float(accumulation_error(kv_len + 6, np.ones(()), fmt.eps))
        v_min = reduce_min(vb.lo, (2,), vb.shape)
        v_max = reduce_max(vb.hi, (2,), vb.shape)
        mag = np.maximum(np.abs(v_min), np.abs(v_max))
        h_lo = np.minimum(v_min * (1 - g), v_min * (1 + g)) - g * (1 + g) * mag
        h_hi = np.maximum(v_max * (1 - g), v_max * (1 + g)) + g * (1 + g) * mag
        y_lo, y_hi = np.maximum(y_lo, h_lo), np.minimum(y_hi, h_hi)
        dead_any = np.broadcast_to(maybe_dead_row, (*shape4[:3], 1))
        y_lo = np.where(dead_any, np.minimum(y_lo, 0.0), y_lo)
        y_hi = np.where(dead_any, np.maximum(y_hi, 0.0), y_hi)
        y4 = (y_lo, y_hi)
        y_nan = p.nan
    y = _from4d(y4[0], y4[1], (bsz, heads, q_len, dv), q.rank == 3, q.dtype, nan_in or y_nan)
    qk_box = p_box if int(qk_matmul_output_mode) == 3 else outs_qk
    return (y, present_k, present_v, qk_box)[:n_out]


def _qk_output(mode: int, raw: tuple[np.ndarray, np.ndarray], capped: tuple[np.ndarray, np.ndarray],
               biased: tuple[np.ndarray, np.ndarray], shape4: tuple[int, ...], dtype: np.dtype) -> Box:
    """qk_matmul_output: the raw product (0), after softcap (1), after the mask (2)."""
    lo, hi = raw if mode == 0 else capped if mode == 1 else biased
    lo, hi = guard_inf(lo, hi)  # masked scores are exactly -inf
    return Box(np.broadcast_to(lo, np.broadcast_shapes(np.shape(lo), (1, 1, 1, 1))),
               np.broadcast_to(hi, np.broadcast_shapes(np.shape(hi), (1, 1, 1, 1))), shape4, dtype)


def _from4d(lo: np.ndarray, hi: np.ndarray, shape4: tuple[int, ...], to3: bool, dtype: np.dtype, nan: bool) -> Box:
    if not to3:
        return Box(lo, hi, shape4, dtype, nan)
    b, h, s, d = shape4
    out = []
    for a in (lo, hi):
        a = align(a, 4)
        if a.shape[1] == 1 and a.shape[3] == 1:
            out.append(np.transpose(a, (0, 2, 1, 3)).reshape(a.shape[0], a.shape[2], 1))
        else:
            full = np.broadcast_to(a, (a.shape[0], h, a.shape[2], d))
            out.append(np.transpose(full, (0, 2, 1, 3)).reshape(a.shape[0], a.shape[2], h * d))
    return Box(out[0], out[1], (b, s, h * d), dtype, nan)


# ---- sampler and registration -------------------------------------------------------------


def _sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    b, kvh = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = kvh * draw(st.integers(1, 2))
    sq, skv, d, dv = (draw(st.integers(1, 3)) for _ in range(4))
    three_d = draw(st.booleans())
    specs: list[Any] = []
    for heads, s, dd in ((h, sq, d), (kvh, skv, d), (kvh, skv, dv)):
        lo, hi = draw_interval(draw, -3, 3)
        specs.append(BoxSpec(lo, hi, (b, s, heads * dd) if three_d else (b, heads, s, dd)))
    attrs: dict[str, Any] = {}
    if three_d:
        attrs.update(q_num_heads=h, kv_num_heads=kvh)
    past = draw(st.booleans()) and not three_d
    total = skv + (1 if past else 0)
    mask_kind = draw(st.sampled_from(["none", "bool", "float"]))
    mask: Any = None
    if mask_kind == "bool":
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        mask = rng.random((sq, total)) < 0.7
        mask[:, 0] = True  # every query keeps a key (fully masked rows differ across versions)
    elif mask_kind == "float":
        lo, hi = draw_interval(draw, -2, 2)
        mask = BoxSpec(lo, hi, (sq, total))
    specs.append(mask)
    if past:
        lo, hi = draw_interval(draw, -3, 3)
        specs.append(BoxSpec(lo, hi, (b, kvh, 1, d)))
        lo, hi = draw_interval(draw, -3, 3)
        specs.append(BoxSpec(lo, hi, (b, kvh, 1, dv)))
    if draw(st.booleans()) and (not past or sq == skv):
        # with a KV cache and q_len != new kv_len onnxruntime and the spec place the causal
        # frontier differently (the rule covers both; exactness could not hold for numpy)
        attrs["is_causal"] = 1
    if draw(st.booleans()):
        attrs["scale"] = draw(st.sampled_from([0.5, 2.0]))
    if draw(st.booleans()):
        attrs["softcap"] = 5.0
    return specs, attrs


for _v in (23, 24):
    register(
        "Attention", since=_v, concrete=_attn_c, interval=_attn_iv, ulps=4,
        property="matmul_bounds + Softmax rule + convex hull of V", sample=_sample,
        doc="scaled dot-product attention (MHA/GQA/MQA, masks, causal, softcap, KV cache)",
    )

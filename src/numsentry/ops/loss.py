"""Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

``loss_i = -x[i, t_i] * w[t_i]`` (0 where ``t_i == ignore_index``); ``reduction`` is ``none``,
``sum`` or ``mean`` = ``sum_i loss_i / sum_i w[t_i]`` over the non-ignored i (the count when
there are no weights). The mean divides by zero when every target can be ignored or the weights
of the targets can sum to 0: onnxruntime returns NaN then (measured), hence NUM002. With
non-negative weights the mean is a convex combination of the ``-x[i, t_i]`` and stays within
their hull, which is intersected with the plain quotient bound.

SoftmaxCrossEntropyLoss computes ``log_prob = LogSoftmax(scores, axis=1)`` stably on
onnxruntime (scores [0, 1000] give log-probabilities [-1000, 0], not -inf: measured), so it has
no log-of-zero hazard; its bounds come from the LogSoftmax rule of the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.linalg import accumulation_error
from numsentry.ops.reduce import align, interval_mul, sum_bounds
from numsentry.ops.registry import REGISTRY, BoxSpec, Ctx, Hazard, register
from numsentry.ops.rules import draw_interval

# ---- concrete -----------------------------------------------------------------------------


def _nll_c(k: Any, x: Any, target: Any, weight: Any = None, ignore_index: int | None = None,
           reduction: str = "mean") -> Any:
    xp = k.xp
    shape = tuple(x.shape)
    c = shape[1]
    t = xp.astype(target, k.dtype(np.dtype(np.int64)))
    cls = xp.reshape(xp.arange(c, dtype=t.dtype), (1, c) + (1,) * (len(shape) - 2))
    onehot = xp.expand_dims(t, axis=1) == cls
    zero = xp.zeros_like(x)
    picked = xp.sum(xp.where(onehot, x, zero), axis=1)  # exactly x[i, t_i]
    valid = t != ignore_index if ignore_index is not None else xp.ones_like(t, dtype=xp.bool)
    if weight is not None:
        wb = xp.reshape(weight, (1, c) + (1,) * (len(shape) - 2))
        w = xp.sum(xp.where(onehot, xp.broadcast_to(wb, shape), zero), axis=1)
    else:
        w = xp.ones_like(picked)
    w = xp.where(valid, w, xp.zeros_like(w))
    loss = -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return xp.sum(loss)
    return xp.sum(loss) / xp.sum(w)


def _log_softmax_c(k: Any, x: Any) -> Any:
    xp = k.xp
    m = xp.max(x, axis=1, keepdims=True)
    s = x - m
    return s - xp.log(xp.sum(xp.exp(s), axis=1, keepdims=True))


def _sce_c(k: Any, scores: Any, labels: Any, weights: Any = None, ignore_index: int | None = None,
           reduction: str = "mean") -> Any:
    lp = _log_softmax_c(k, scores)
    return _nll_c(k, lp, labels, weights, ignore_index, reduction), lp


# ---- interval -----------------------------------------------------------------------------


def _picked(x: Box, target: Box, weight: Box | None, ignore_index: int | None) -> dict[str, Any]:
    """Bounds of the per-element loss, of its weight, and of ``-x[i, t_i]`` (full target shape)."""
    shape = target.shape
    c = x.shape[1]
    xl, xh = (np.broadcast_to(align(a, x.rank), x.shape) for a in x.bounds64())
    if weight is not None:
        wl, wh = (np.broadcast_to(np.asarray(a, np.float64).reshape(-1), (c,)) for a in weight.bounds64())
    else:
        wl = wh = np.ones((c,))
    if target.is_point:
        t = np.asarray(target.value, dtype=np.int64)
        valid = t != ignore_index if ignore_index is not None else np.ones(shape, bool)
        tc = np.clip(t, 0, c - 1)
        gl = np.take_along_axis(xl, tc[:, None], axis=1)[:, 0]
        gh = np.take_along_axis(xh, tc[:, None], axis=1)[:, 0]
        w_lo, w_hi = wl[tc], wh[tc]
        may_ignore = ~valid
        must_ignore = ~valid
    else:  # any class (and the ignored one) can be picked
        gl = np.broadcast_to(xl.min(axis=1), shape)
        gh = np.broadcast_to(xh.max(axis=1), shape)
        w_lo, w_hi = np.full(shape, wl.min()), np.full(shape, wh.max())
        tl, th = target.bounds64()
        may_ignore = np.broadcast_to(
            (ignore_index is not None) & (tl <= (ignore_index or 0)) & (th >= (ignore_index or 0)), shape)
        must_ignore = np.zeros(shape, bool)
    n_lo, n_hi = -gh, -gl  # -x[i, t_i]
    l_lo, l_hi = interval_mul(n_lo, n_hi, w_lo, w_hi)
    l_lo = np.where(must_ignore, 0.0, np.where(may_ignore, np.minimum(l_lo, 0.0), l_lo))
    l_hi = np.where(must_ignore, 0.0, np.where(may_ignore, np.maximum(l_hi, 0.0), l_hi))
    ww_lo = np.where(must_ignore, 0.0, np.where(may_ignore, np.minimum(w_lo, 0.0), w_lo))
    ww_hi = np.where(must_ignore, 0.0, np.where(may_ignore, np.maximum(w_hi, 0.0), w_hi))
    return {"l": (l_lo, l_hi), "w": (ww_lo, ww_hi), "neg": (n_lo, n_hi), "active": ~must_ignore,
            "w_nonneg": bool(np.all(w_lo[~must_ignore] >= 0)) if np.any(~must_ignore) else True}


def _denominator(ctx: Ctx, x: Box, p: dict[str, Any]) -> tuple[float, float]:
    w_lo, w_hi = p["w"]
    axes = tuple(range(w_lo.ndim))
    lo, hi, _ = sum_bounds(w_lo, w_hi, axes, w_lo.shape, ctx.fmt(x.dtype))
    return float(np.min(lo)), float(np.max(hi))


def _nll_boxes(ctx: Ctx, x: Box, target: Box, weight: Box | None, ignore_index: int | None,
               reduction: str) -> Box:
    if not (x.finite and (weight is None or weight.finite)):
        out_shape = target.shape if reduction == "none" else ()
        return Box.range(-np.inf, np.inf, out_shape, x.dtype, nan=True)
    p = _picked(x, target, weight, ignore_index)
    l_lo, l_hi = p["l"]
    fmt = ctx.fmt(x.dtype)
    if reduction == "none":
        return Box(l_lo, l_hi, target.shape, x.dtype, False)
    axes = tuple(range(l_lo.ndim))
    sums = sum_bounds(l_lo, l_hi, axes, l_lo.shape, fmt, products=weight is not None)
    s_lo, s_hi, nan = float(np.min(sums[0])), float(np.max(sums[1])), sums[2]
    if reduction == "sum":
        return Box.range(s_lo, s_hi, (), x.dtype, nan)
    d_lo, d_hi = _denominator(ctx, x, p)
    if d_lo <= 0 <= d_hi:  # 0 / 0 or s / 0: NaN or inf
        return Box.range(-np.inf, np.inf, (), x.dtype, nan=True)
    q = [s_lo / d_lo, s_lo / d_hi, s_hi / d_lo, s_hi / d_hi]
    lo, hi = min(q), max(q)
    if p["w_nonneg"] and d_lo > 0:
        # a weighted average of -x[i, t_i] over the active elements
        act = p["active"]
        n_lo, n_hi = p["neg"]
        h_lo, h_hi = float(np.min(n_lo[act])), float(np.max(n_hi[act]))
        n = int(np.sum(act)) + 2
        pad = float(accumulation_error(2 * n, np.asarray(max(abs(h_lo), abs(h_hi))), fmt.eps))
        pad += n * fmt.tiny / d_lo  # products that underflow
        lo, hi = max(lo, h_lo - pad), min(hi, h_hi + pad)
    return Box.range(lo, hi, (), x.dtype, nan)


def _nll_iv(ctx: Ctx, x: Box, target: Box, weight: Box | None = None, ignore_index: int | None = None,
            reduction: str = "mean") -> Box:
    return _nll_boxes(ctx, x, target, weight, ignore_index, reduction)


def _log_softmax_box(ctx: Ctx, scores: Box) -> Box:
    """LogSoftmax over axis 1 through the registry's rule (rounded like the op)."""
    from numsentry.ops.apply import apply_interval

    op = REGISTRY.lookup("", "LogSoftmax", 13)
    if op is None:  # pragma: no cover - the softmax module registers it
        raise NotImplementedError("LogSoftmax is not registered")
    lp = apply_interval(op, ctx, [scores], {"axis": 1})[0]
    # the runtime's log(sum exp(x - max)) errs by about gamma_C in absolute terms, which the
    # rule's ULPs do not cover next to 0 (max element); the result is never above 0 (sum >= 1)
    fmt = ctx.fmt(scores.dtype)
    c = scores.shape[1] if scores.rank > 1 else 1
    err = float(accumulation_error(c + 8, np.ones(()), fmt.eps)) if c > 1 else 0.0  # one class: 0
    lo, hi = lp.bounds64()
    lo = lo - err - 2 * fmt.eps * np.abs(lo)
    hi = np.minimum(hi + err, 0.0)
    return Box(lo, hi, lp.shape, lp.dtype, lp.nan)


def _sce_iv(ctx: Ctx, scores: Box, labels: Box, weights: Box | None = None,
            ignore_index: int | None = None, reduction: str = "mean") -> tuple[Box, Box]:
    lp = _log_softmax_box(ctx, scores)
    return _nll_boxes(ctx, lp, labels, weights, ignore_index, reduction), lp


def _mean_zero_check(name: str, softmax: bool) -> Hazard:
    def check(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
        if attrs.get("reduction", "mean") != "mean":
            return None
        x, target = inputs[0], inputs[1]
        weight = inputs[2] if len(inputs) > 2 else None
        if x is None or target is None:
            return None
        ignore = attrs.get("ignore_index")
        if weight is None and ignore is None:
            return None  # the count of elements, at least 1
        if softmax:  # only the shape matters for the denominator
            x = Box.range(-1.0, 0.0, x.shape, x.dtype)
        p = _picked(x, target, weight, ignore)
        d_lo, d_hi = _denominator(ctx, x, p)
        if d_lo <= 0 <= d_hi:
            what = "weights of the targets" if weight is not None else "number of non-ignored targets"
            return f"{name} with reduction='mean': the {what} can sum to 0 (range [{d_lo:g}, {d_hi:g}])"
        return None

    return Hazard("NUM002", check)


# ---- samplers and registration ------------------------------------------------------------


def _sample(low: float, high: float) -> Any:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        extra = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
        lo, hi = draw_interval(draw, low, high)
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        target = rng.integers(0, c, size=(n, *extra)).astype(np.int64)
        attrs: dict[str, Any] = {"reduction": draw(st.sampled_from(["none", "sum", "mean"]))}
        if draw(st.booleans()):
            ign = int(draw(st.sampled_from([-100, 0])))
            if not np.all(target == ign):  # keep the mean defined
                attrs["ignore_index"] = ign
        weight = None
        if draw(st.booleans()):
            w_lo, w_hi = draw_interval(draw, 0.125, 2.0)
            weight = BoxSpec(w_lo, w_hi, (c,))
        return [BoxSpec(lo, hi, (n, c, *extra)), target, weight], attrs

    return sample


for _v in (12, 22):
    register(
        "NegativeLogLikelihoodLoss", since=_v, concrete=_nll_c, interval=_nll_iv,
        hazards=(_mean_zero_check("NegativeLogLikelihoodLoss", False),),
        property="gather + weighted sum (hull of a convex combination for the mean)",
        sample=_sample(-10.0, 0.0), doc="-x[i, target_i] * w, reduced (none, sum, mean)",
    )
for _v in (12, 13):
    register(
        "SoftmaxCrossEntropyLoss", since=_v, concrete=_sce_c, interval=_sce_iv,
        hazards=(_mean_zero_check("SoftmaxCrossEntropyLoss", True),),
        property="LogSoftmax rule + NLL rule", sample=_sample(-10.0, 10.0),
        doc="NLL of a stable LogSoftmax over axis 1; also outputs log_prob",
    )

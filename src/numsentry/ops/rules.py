"""Building blocks for interval rules and hazards, shared by the op declarations.

Derivations from declared properties live here (`monotone`, `piecewise_monotone`), as do the
interval arithmetic primitives (`imul`, `isquare`, `idiv`) and the hazard factories
(`below`, `outside`, `zero_in`). All of them work on broadcast-shaped bounds, so a coarse box
stays coarse and a refined operand refines only the dimensions it must.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.ops.kernels import NUMPY
from numsentry.ops.registry import BoxSpec, Ctx, Hazard

__all__ = [
    "bcast",
    "below",
    "draw_interval",
    "draw_shape",
    "elementwise_sample",
    "elementwise_shape",
    "iadd",
    "idiv",
    "imul",
    "isquare",
    "monotone",
    "out_dtype",
    "outside",
    "piecewise_monotone",
    "zero_in",
]


def elementwise_shape(*boxes: Box | None) -> tuple[int, ...]:
    """Broadcast shape of the given boxes (multidirectional broadcasting)."""
    return tuple(np.broadcast_shapes(*(b.shape for b in boxes if b is not None)))


def bcast(box: Box, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """A box's float64 bounds with leading unit dims added up to ``rank``."""
    lo, hi = box.bounds64()
    pad = (1,) * (rank - lo.ndim)
    return lo.reshape(pad + lo.shape), hi.reshape(pad + hi.shape)


def out_dtype(*boxes: Box | None) -> np.dtype:
    """The dtype of the first box (elementwise ops keep their input dtype)."""
    for b in boxes:
        if b is not None:
            return b.dtype
    raise ValueError("no inputs")


def _nan_guard(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    bad = np.isnan(lo) | np.isnan(hi)
    if bad.any():
        return np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi), True
    return lo, hi, False


# ---- derived interval rules ------------------------------------------------------------


def monotone(fn: Callable[..., Any], increasing: bool = True) -> Callable[..., Box]:
    """Interval rule of an elementwise unary op that is monotone on its whole domain.

    ``fn(k, x, **attrs)`` is the op's concrete rule; it is evaluated at the two endpoints in
    float64, which is sound only because the op is monotone.
    """

    def rule(ctx: Ctx, x: Box, **attrs: Any) -> Box:
        lo, hi = x.bounds64()
        with np.errstate(all="ignore"):
            a = np.asarray(fn(NUMPY, lo, **attrs), dtype=np.float64)
            b = np.asarray(fn(NUMPY, hi, **attrs), dtype=np.float64)
        if not increasing:
            a, b = b, a
        a, b, nan = _nan_guard(a, b)
        return Box(a, b, x.shape, x.dtype, x.nan or nan)

    rule.__doc__ = f"monotone {'increasing' if increasing else 'decreasing'}"
    return rule


def piecewise_monotone(
    fn: Callable[..., Any],
    critical: Callable[[np.ndarray, np.ndarray], Sequence[np.ndarray]],
) -> Callable[..., Box]:
    """Interval rule of a unary op monotone between known critical points.

    Args:
        fn: The concrete rule.
        critical: ``critical(lo, hi)`` returns arrays of critical points (broadcastable to the
            bounds, NaN where none applies); the extremes over [lo, hi] are among ``fn`` at
            ``lo``, ``hi`` and the critical points inside.
    """

    def rule(ctx: Ctx, x: Box, **attrs: Any) -> Box:
        lo, hi = x.bounds64()
        lo, hi = np.broadcast_arrays(lo, hi)
        with np.errstate(all="ignore"):
            cands = [np.asarray(fn(NUMPY, lo, **attrs), np.float64),
                     np.asarray(fn(NUMPY, hi, **attrs), np.float64)]
            a = np.minimum(cands[0], cands[1])
            b = np.maximum(cands[0], cands[1])
            for c in critical(lo, hi):
                c = np.broadcast_to(c, lo.shape)
                inside = (c >= lo) & (c <= hi)
                if inside.any():
                    v = np.asarray(fn(NUMPY, np.where(inside, c, lo), **attrs), np.float64)
                    a = np.where(inside, np.minimum(a, v), a)
                    b = np.where(inside, np.maximum(b, v), b)
        a, b, nan = _nan_guard(a, b)
        return Box(a, b, x.shape, x.dtype, x.nan or nan)

    rule.__doc__ = "piecewise monotone"
    return rule


# ---- interval arithmetic ----------------------------------------------------------------


def _safe_prod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product for bounds: 0 * inf counts as 0 (the NaN it makes is tracked separately)."""
    with np.errstate(invalid="ignore"):
        p = a * b
    return np.where(np.isnan(p) & ~np.isnan(a) & ~np.isnan(b), 0.0, p)


def iadd(a: Box, b: Box) -> tuple[np.ndarray, np.ndarray, bool]:
    """Bounds of a + b; the flag says whether inf - inf (NaN) is possible."""
    rank = len(elementwise_shape(a, b))
    al, ah = bcast(a, rank)
    bl, bh = bcast(b, rank)
    with np.errstate(invalid="ignore"):
        lo, hi = al + bl, ah + bh
    nan = bool(((al == -np.inf) & (bh == np.inf)).any() or ((ah == np.inf) & (bl == -np.inf)).any())
    lo, hi, n2 = _nan_guard(lo, hi)
    return lo, hi, nan or n2


def imul(a: Box, b: Box) -> tuple[np.ndarray, np.ndarray, bool]:
    """Bounds of a * b (elementwise, broadcast); the flag says whether 0 * inf is possible.

    The same tensor times itself is a square: never negative, tight around 0.
    """
    if a is b:
        lo, hi = isquare(a)
        return lo, hi, False
    rank = len(elementwise_shape(a, b))
    al, ah = bcast(a, rank)
    bl, bh = bcast(b, rank)
    ps = [_safe_prod(al, bl), _safe_prod(al, bh), _safe_prod(ah, bl), _safe_prod(ah, bh)]
    lo = np.minimum(np.minimum(ps[0], ps[1]), np.minimum(ps[2], ps[3]))
    hi = np.maximum(np.maximum(ps[0], ps[1]), np.maximum(ps[2], ps[3]))
    a_zero = (al <= 0) & (ah >= 0)
    b_zero = (bl <= 0) & (bh >= 0)
    a_inf = np.isinf(al) | np.isinf(ah)
    b_inf = np.isinf(bl) | np.isinf(bh)
    nan = bool((a_zero & b_inf).any() or (b_zero & a_inf).any())
    return lo, hi, nan


def isquare(a: Box) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of a * a: [0, max(lo², hi²)] when the interval holds 0."""
    lo, hi = a.bounds64()
    with np.errstate(over="ignore"):
        l2, h2 = lo * lo, hi * hi
    straddles = (lo <= 0) & (hi >= 0)
    out_lo = np.where(straddles, 0.0, np.minimum(l2, h2))
    out_hi = np.maximum(l2, h2)
    return out_lo, out_hi


def reciprocal(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds of 1/x and a mask of where the divisor can be 0 (the result is then unbounded).

    Boxes do not track the sign of zero: a divisor range that holds 0 may hold +0 and -0 (a
    computed -0 from -x, x * -1, ...), so 1/x can be both +inf and -inf there: [-inf, +inf].
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        r_lo = 1.0 / hi
        r_hi = 1.0 / lo
    zero = (lo <= 0) & (hi >= 0)
    out_lo = np.where(zero, -np.inf, r_lo)
    out_hi = np.where(zero, np.inf, r_hi)
    return out_lo, out_hi, zero


def idiv(a: Box, b: Box) -> tuple[np.ndarray, np.ndarray, bool]:
    """Bounds of a / b; the flag says whether 0/0 or inf/inf (NaN) is possible."""
    rank = len(elementwise_shape(a, b))
    bl, bh = bcast(b, rank)
    rl, rh, zero = reciprocal(bl, bh)
    recip = Box(rl, rh, elementwise_shape(b), b.dtype)
    lo, hi, _ = imul(a, recip)
    al, ah = bcast(a, rank)
    a_zero = (al <= 0) & (ah >= 0)
    a_inf = np.isinf(al) | np.isinf(ah)
    b_inf = np.isinf(bl) | np.isinf(bh)
    nan = bool((a_zero & zero).any() or (a_inf & b_inf).any())
    return lo, hi, nan


# ---- hazard factories -------------------------------------------------------------------


def below(
    rule: str, what: str, threshold: float, strict: bool = False, index: int = 0
) -> Hazard:
    """Hazard: input ``index`` can be below ``threshold`` (``<=`` unless ``strict``).

    ``strict=True`` flags values strictly below (sqrt of a negative); otherwise values at the
    threshold are invalid too (log of 0).
    """

    def check(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
        x = inputs[index]
        if x is None:
            return None
        lo = x.min()
        bad = lo < threshold if strict else lo <= threshold
        if bad:
            return f"{what}: input can be {'<' if strict else '<='} {threshold:g}, range {x.describe()}"
        return None

    def restrict(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> list[Box | None]:
        x = inputs[index]
        out = list(inputs)
        if x is None:
            return out
        fmt = ctx.fmt(x.dtype)
        floor = threshold if strict else (fmt.tiny if threshold == 0 else np.nextafter(threshold, np.inf))
        lo, hi = x.bounds64()
        out[index] = x.with_bounds(np.maximum(lo, floor), np.maximum(hi, floor))
        return out

    return Hazard(rule, check, restrict)


def outside(
    rule: str, what: str, low: float, high: float, closed: bool = True, index: int = 0
) -> Hazard:
    """Hazard: input can leave [low, high] (``closed``) or (low, high) (open)."""

    def check(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
        x = inputs[index]
        if x is None:
            return None
        lo, hi = x.min(), x.max()
        bad = (lo < low or hi > high) if closed else (lo <= low or hi >= high)
        if bad:
            iv = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g})"
            return f"{what}: input can leave {iv}, range {x.describe()}"
        return None

    def restrict(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> list[Box | None]:
        x = inputs[index]
        out = list(inputs)
        if x is None:
            return out
        a = low if closed else np.nextafter(low, np.inf)
        b = high if closed else np.nextafter(high, -np.inf)
        lo, hi = x.bounds64()
        out[index] = x.with_bounds(np.clip(lo, a, b), np.clip(hi, a, b))
        return out

    return Hazard(rule, check, restrict)


def zero_in(rule: str, what: str, index: int = 1) -> Hazard:
    """Hazard: input ``index`` (a divisor) can be exactly 0."""

    def check(ctx: Ctx, inputs: Sequence[Box | None], attrs: dict[str, Any]) -> str | None:
        x = inputs[index]
        if x is None:
            return None
        lo, hi = x.bounds64()
        if bool(((lo <= 0) & (hi >= 0)).any()):
            return f"{what}: divisor can be 0, range {x.describe()}"
        return None

    return Hazard(rule, check, None)


# ---- test samplers ----------------------------------------------------------------------


def draw_shape(draw: Any, max_rank: int = 3, max_dim: int = 4) -> tuple[int, ...]:
    """Draw a small tensor shape (rank 0 to ``max_rank``)."""
    from hypothesis import strategies as st

    return tuple(draw(st.lists(st.integers(1, max_dim), min_size=0, max_size=max_rank)))


def draw_interval(draw: Any, low: float, high: float) -> tuple[float, float]:
    """Draw a sub-interval of [low, high] with float32 endpoints."""
    from hypothesis import strategies as st

    # hypothesis wants float32-representable limits for width=32: round inwards
    lo32 = np.float32(low)
    lo32 = lo32 if float(lo32) >= low else np.nextafter(lo32, np.float32(np.inf))
    hi32 = np.float32(high)
    hi32 = hi32 if float(hi32) <= high else np.nextafter(hi32, np.float32(-np.inf))
    a = draw(st.floats(float(lo32), float(hi32), allow_nan=False, width=32))
    b = draw(st.floats(float(lo32), float(hi32), allow_nan=False, width=32))
    return min(a, b), max(a, b)


def elementwise_sample(
    arity: int = 1, low: float = -10.0, high: float = 10.0, attrs: dict[str, Any] | None = None
) -> Callable[..., Any]:
    """Sampler for elementwise ops: ``arity`` float inputs in [low, high], broadcastable shapes."""

    def sample(draw: Any) -> tuple[list[BoxSpec], dict[str, Any]]:
        from hypothesis import strategies as st

        shape = draw_shape(draw)
        specs = []
        for i in range(arity):
            s = shape
            if i > 0 and shape and draw(st.booleans()):
                s = shape[draw(st.integers(0, len(shape))):]  # a broadcast suffix
            lo, hi = draw_interval(draw, low, high)
            specs.append(BoxSpec(lo, hi, s))
        return specs, dict(attrs or {})

    return sample

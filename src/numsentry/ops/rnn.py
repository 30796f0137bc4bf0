"""Recurrent layers: RNN, GRU, LSTM (opset 7, 14 and 22 forms).

Supported: every direction (forward, reverse, bidirectional), ``layout`` 0 and 1, optional
bias, ``sequence_lens``, initial states, LSTM peepholes and ``input_forget``, GRU
``linear_before_reset``, ``clip`` and the activation functions onnxruntime implements (with its
alpha/beta defaults and consumption order).

The interval rule unrolls the sequence. Each step bounds the gate pre-activations with
centre-radius matmuls (`numsentry.ops.linalg.matmul_bounds`: exact when the weights are stored
constants) plus the rounding error of summing all ``I + H + 2`` terms in any order (Higham's
gamma), then applies the activations by monotonicity (critical points where there are some).
Two facts keep the recurrence from diverging:

* squashing activations bound the state: a Tanh RNN's hidden state is in [-1, 1];
* GRU's update ``(1 - z) h + z H`` is multilinear in ``(z, h, H)``, so it is bounded by its
  values at the 8 corners: a convex combination never leaves the hull of ``h`` and ``H``,
  where naive interval products would double the width at every step.

Tanh bounds are widened by ``max(2^-20, 16 eps) |tanh|``: onnxruntime's GRU uses a rational
approximation of tanh that is off by up to 6.1e-7 |tanh(x)| and exceeds 1 by 6e-7 (measured
on a 2e7-point grid over [-12, 12]), and computes sigmoid through it as ``(1 + tanh(x/2)) / 2``,
off by up to 3.1e-7 |2s - 1| (it can even be slightly negative); Sigmoid bounds get
``2^-21 |2s - 1|`` plus 16 ULPs. ``t + e |t|`` is increasing in ``t``, so widening the bounds at
the endpoints is sound even though the approximations are not monotone at fine scale; both
are then clamped to their codomain plus that overshoot. Other activations get 16 ULPs. A GRU
state bound still grows by a few ULPs per step (the rounding of the update itself).

``sequence_lens`` must be constant: positions past an entry's length give 0 in ``Y`` and leave
its state alone; an entry of length 0 ends with zero states, as onnxruntime does. The batch
dimension stays one block unless ``sequence_lens`` or the inputs refine it; the sequence
dimension of ``Y`` has one block per step. (onnxruntime's CPU kernels reject ``layout=1``; the
rule follows the ONNX definition there.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.dtypes import is_float_dtype
from numsentry.ops.kernels import NUMPY
from numsentry.ops.linalg import accumulation_error, matmul_bounds
from numsentry.ops.registry import BoxSpec, Ctx, register

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_DEFAULT_ACTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
# onnxruntime's table (rnn_helpers.cc): which activations take alpha/beta, and their defaults
_USES = {"affine": (True, True), "relu": (False, False), "leakyrelu": (True, False),
         "thresholdedrelu": (True, False), "tanh": (False, False), "scaledtanh": (True, True),
         "sigmoid": (False, False), "hardsigmoid": (True, True), "elu": (True, False),
         "softsign": (False, False), "softplus": (False, False)}
_DEFAULTS = {"leakyrelu": (0.01, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}

Act = tuple[str, float, float]
Iv = tuple[np.ndarray, np.ndarray]


def _activations(kind: str, activations: Any, alpha: Any, beta: Any, dirs: int) -> list[list[Act]]:
    """Activation (name, alpha, beta) per direction, consumed as onnxruntime does."""
    per = len(_DEFAULT_ACTS[kind])
    names = [str(a) for a in activations] if activations else _DEFAULT_ACTS[kind] * dirs
    if len(names) == per and dirs == 2:
        names = names * 2
    elif len(names) == 2 * per and dirs == 1:  # RNN's schema default lists both directions
        names = names[:per]
    if len(names) != per * dirs:
        raise ValueError(f"{kind}: {len(names)} activations for {dirs} direction(s), expected {per * dirs}")
    alphas, betas = iter(alpha or []), iter(beta or [])
    acts: list[Act] = []
    for name in names:
        key = name.lower()
        if key not in _USES:
            raise NotImplementedError(f"{kind}: activation {name!r}")
        ua, ub = _USES[key]
        da, db = _DEFAULTS.get(key, (0.0, 0.0))
        a = float(next(alphas, da)) if ua else 0.0
        b = float(next(betas, db)) if ub else 0.0
        acts.append((key, a, b))
    return [acts[d * per:(d + 1) * per] for d in range(dirs)]


def _act(xp: Any, act: Act, x: Any) -> Any:
    name, a, b = act
    if name == "sigmoid":
        return 1.0 / (1.0 + xp.exp(-x))
    if name == "tanh":
        return xp.tanh(x)
    zero = xp.zeros_like(x)
    if name == "relu":
        return xp.maximum(x, zero)
    if name == "affine":
        return a * x + b
    if name == "leakyrelu":
        return xp.where(x >= 0, x, a * x)
    if name == "thresholdedrelu":
        return xp.where(x > a, x, zero)
    if name == "scaledtanh":
        return a * xp.tanh(b * x)
    if name == "hardsigmoid":
        return xp.minimum(xp.maximum(a * x + b, zero), zero + 1.0)
    if name == "elu":
        return xp.where(x >= 0, x, a * (xp.exp(x) - 1.0))
    if name == "softsign":
        return x / (1.0 + xp.abs(x))
    if name == "softplus":
        return xp.logaddexp(zero, x)
    raise NotImplementedError(name)


# ---- concrete rule ----------------------------------------------------------------------


def _rnn_c(kind: str, k: Any, X: Any, W: Any, R: Any, B: Any = None, sequence_lens: Any = None,
           initial_h: Any = None, initial_c: Any = None, P: Any = None, *, activation_alpha: Any = None,
           activation_beta: Any = None, activations: Any = None, clip: float | None = None,
           direction: str = "forward", hidden_size: int | None = None, layout: int = 0,
           linear_before_reset: int = 0, input_forget: int = 0) -> tuple[Any, ...]:
    xp = k.xp
    if layout:
        X = xp.permute_dims(X, (1, 0, 2))
        initial_h = None if initial_h is None else xp.permute_dims(initial_h, (1, 0, 2))
        initial_c = None if initial_c is None else xp.permute_dims(initial_c, (1, 0, 2))
    T, nb, _ = X.shape
    D, H, G = W.shape[0], R.shape[-1], _GATES[kind]
    acts = _activations(kind, activations, activation_alpha, activation_beta, D)
    lens = None if sequence_lens is None else np.asarray(k.to_numpy(sequence_lens)).astype(np.int64)

    def clipped(x: Any) -> Any:
        return x if clip is None else xp.clip(x, -float(clip), float(clip))

    ys_all, hs, cs = [], [], []
    for d in range(D):
        f, g, h_act = (acts[d] + [acts[d][-1]] * 3)[:3]
        wt = [xp.permute_dims(W[d, i * H:(i + 1) * H, :], (1, 0)) for i in range(G)]
        rt = [xp.permute_dims(R[d, i * H:(i + 1) * H, :], (1, 0)) for i in range(G)]
        zeros_b = xp.zeros((H,), dtype=X.dtype)
        wb = [zeros_b if B is None else B[d, i * H:(i + 1) * H] for i in range(G)]
        rb = [zeros_b if B is None else B[d, (G + i) * H:(G + i + 1) * H] for i in range(G)]
        h = xp.zeros((nb, H), dtype=X.dtype) if initial_h is None else initial_h[d]
        c = xp.zeros((nb, H), dtype=X.dtype) if initial_c is None else initial_c[d]
        xw = [xp.matmul(X, wt[i]) for i in range(G)]
        steps = range(T - 1, -1, -1) if direction == "reverse" or d == 1 else range(T)
        pd = None if P is None else (P[d, :H], P[d, H:2 * H], P[d, 2 * H:])
        ys, h, c = _direction_c(kind, k, xw, rt, [wb[i] + rb[i] for i in range(G)], (wb[2], rb[2]) if kind == "GRU" else None,
                                pd, h, c, (f, g, h_act), steps, lens, clipped, linear_before_reset, input_forget)
        ys_all.append(xp.stack(ys, axis=0))
        hs.append(h)
        cs.append(c)
    Y = xp.stack(ys_all, axis=1)
    Yh, Yc = xp.stack(hs, axis=0), xp.stack(cs, axis=0)
    if layout:
        Y = xp.permute_dims(Y, (2, 0, 1, 3))
        Yh, Yc = xp.permute_dims(Yh, (1, 0, 2)), xp.permute_dims(Yc, (1, 0, 2))
    return (Y, Yh, Yc) if kind == "LSTM" else (Y, Yh)


def _direction_c(kind: str, k: Any, xw: list[Any], rt: list[Any], bias: list[Any], gru_h_bias: Any, pd: Any,
                 h: Any, c: Any, acts: tuple[Act, Act, Act], steps: range, lens: np.ndarray | None,
                 clipped: Any, linear_before_reset: int, input_forget: int) -> tuple[list[Any], Any, Any]:
    """One direction of the recurrence; returns per-position outputs and the final states."""
    xp = k.xp
    f, g, h_act = acts
    ys: list[Any] = [None] * len(steps)
    for t in steps:
        c_new = c
        if kind == "RNN":
            h_new = _act(xp, f, clipped(xw[0][t] + xp.matmul(h, rt[0]) + bias[0]))
        elif kind == "GRU":
            z = _act(xp, f, clipped(xw[0][t] + xp.matmul(h, rt[0]) + bias[0]))
            r = _act(xp, f, clipped(xw[1][t] + xp.matmul(h, rt[1]) + bias[1]))
            wbh, rbh = gru_h_bias
            if linear_before_reset:
                hh = xw[2][t] + r * (xp.matmul(h, rt[2]) + rbh) + wbh
            else:
                hh = xw[2][t] + xp.matmul(r * h, rt[2]) + bias[2]
            h_new = (1.0 - z) * _act(xp, g, clipped(hh)) + z * h
        else:
            pi, po, pf = (None, None, None) if pd is None else pd
            gi = xw[0][t] + xp.matmul(h, rt[0]) + bias[0]
            i_g = _act(xp, f, clipped(gi if pi is None else gi + pi * c))
            if input_forget:
                f_g = 1.0 - i_g
            else:
                gf = xw[2][t] + xp.matmul(h, rt[2]) + bias[2]
                f_g = _act(xp, f, clipped(gf if pf is None else gf + pf * c))
            gc = xw[3][t] + xp.matmul(h, rt[3]) + bias[3]
            c_new = f_g * c + i_g * _act(xp, g, clipped(gc))
            go = xw[1][t] + xp.matmul(h, rt[1]) + bias[1]
            h_new = _act(xp, f, clipped(go if po is None else go + po * c_new)) * _act(xp, h_act, c_new)
        y = h_new
        if lens is not None:
            on = k.asarray((lens > t)[:, None])
            h_new = xp.where(on, h_new, h)
            c_new = xp.where(on, c_new, c)
            y = xp.where(on, h_new, xp.zeros_like(h_new))
        ys[t] = y
        h, c = h_new, c_new
    if lens is not None and (lens == 0).any():  # onnxruntime: an empty sequence ends in zero states
        on = k.asarray((lens > 0)[:, None])
        h, c = xp.where(on, h, xp.zeros_like(h)), xp.where(on, c, xp.zeros_like(c))
    return ys, h, c


# ---- interval arithmetic on (lo, hi) pairs ------------------------------------------------


def _prod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        p = a * b
    return np.where(np.isnan(p) & ~np.isnan(a) & ~np.isnan(b), 0.0, p)  # 0 * inf bounds 0


def _mul(a: Iv, b: Iv) -> Iv:
    ps = [_prod(x, y) for x in a for y in b]
    return np.minimum(np.minimum(ps[0], ps[1]), np.minimum(ps[2], ps[3])), np.maximum(
        np.maximum(ps[0], ps[1]), np.maximum(ps[2], ps[3]))


def _mag(a: Iv) -> np.ndarray:
    return np.maximum(np.abs(a[0]), np.abs(a[1]))


def _grow(a: Iv, err: np.ndarray | float) -> Iv:
    with np.errstate(invalid="ignore"):
        lo, hi = a[0] - err, a[1] + err
    return np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)


class _Num:
    """The analysed format's facts used by the step bounds."""

    def __init__(self, eps: float, tiny: float, clip: float | None) -> None:
        self.eps, self.tiny, self.clip = eps, tiny, clip
        self.squash = max(2.0**-20, 16 * eps)

    def lin(self, terms: list[Iv], mags: list[np.ndarray], n: int) -> Iv:
        """Sum of ``n`` float terms in any order: exact sum plus gamma_n * sum of magnitudes."""
        lo = sum(t[0] for t in terms)
        hi = sum(t[1] for t in terms)
        err = accumulation_error(n, np.sum(np.broadcast_arrays(*mags), axis=0), self.eps) + self.tiny * n
        return _grow((np.asarray(lo), np.asarray(hi)), err)

    def act(self, act: Act, x: Iv, clip: bool = True) -> Iv:
        lo, hi = x
        if clip and self.clip is not None:
            lo, hi = np.clip(lo, -self.clip, self.clip), np.clip(hi, -self.clip, self.clip)
        name, a, _ = act
        with np.errstate(all="ignore"):
            cands = [_act(NUMPY.xp, act, lo), _act(NUMPY.xp, act, hi)]
            crit = {"leakyrelu": [0.0], "elu": [0.0], "thresholdedrelu": [a]}.get(name, [])
            for c in crit:
                inside = (lo <= c) & (hi >= c)
                if name == "thresholdedrelu":  # the jump: values just above a, and 0 below it
                    cands.append(np.where(inside, a, cands[0]))
                    cands.append(np.where(lo <= a, 0.0, cands[0]))
                else:
                    cands.append(np.where(inside, _act(NUMPY.xp, act, np.asarray(c)), cands[0]))
        out_lo = np.minimum.reduce([np.broadcast_to(c, np.broadcast_shapes(*(np.shape(v) for v in cands)))
                                    for c in cands])
        out_hi = np.maximum.reduce([np.broadcast_to(c, out_lo.shape) for c in cands])
        out_lo = np.where(np.isnan(out_lo), -np.inf, out_lo)
        out_hi = np.where(np.isnan(out_hi), np.inf, out_hi)
        # the recurrent kernels flush subnormal results to 0 (measured): allow up to the smallest
        # normal around any value, plus an absolute 4 eps for the approximate activations
        tiny = self.tiny / (2 * self.eps) + 4 * self.eps
        # Clamped to the codomain plus the worst overshoot measured (tanh 6e-7 past +-1, sigmoid
        # 3e-7): without the clamp a GRU's z slightly beyond [0, 1] would let the state grow
        # geometrically, (1 + 16 eps)^T, in a float16 analysis of a long sequence.
        if name in ("tanh", "scaledtanh"):
            # relative error: the kernels' tanh approximations are off by <= 6.1e-7 |tanh|
            e = self.squash
            top = (abs(a) if name == "scaledtanh" else 1.0) * (1 + 2.0**-20)
            return (np.maximum(out_lo - e * np.abs(out_lo) - tiny, -top),
                    np.minimum(out_hi + e * np.abs(out_hi) + tiny, top))
        if name == "sigmoid":
            # onnxruntime's GRU computes sigmoid as (1 + tanh(x / 2)) / 2: off by <= 3.1e-7 |2s - 1|
            e, r = self.squash / 2, 16 * self.eps
            return (np.maximum(out_lo - e * np.abs(2 * out_lo - 1) - r * np.abs(out_lo) - tiny, -(2.0**-21)),
                    np.minimum(out_hi + e * np.abs(2 * out_hi - 1) + r * np.abs(out_hi) + tiny, 1 + 2.0**-21))
        rel = 16 * self.eps
        return out_lo - rel * np.abs(out_lo) - tiny, out_hi + rel * np.abs(out_hi) + tiny


def _norm(b: Box) -> Iv:
    lo, hi = b.bounds64()
    r = b.rank
    return lo.reshape((1,) * (r - lo.ndim) + lo.shape), hi.reshape((1,) * (r - hi.ndim) + hi.shape)


def _sub(b: Box, axis: int, start: int, stop: int | None = None) -> Box:
    """Rows ``start:stop`` (or the single index ``start`` when ``stop`` is None) along ``axis``."""
    if b.is_point:
        v = b.value
        idx: list[Any] = [slice(None)] * v.ndim
        idx[axis] = start if stop is None else slice(start, stop)
        return Box.point(v[tuple(idx)])
    lo, hi = _norm(b)
    out = []
    for a in (lo, hi):
        idx = [slice(None)] * a.ndim
        if a.shape[axis] == 1:
            idx[axis] = 0 if stop is None else slice(0, 1)
        else:
            idx[axis] = start if stop is None else slice(start, stop)
        out.append(a[tuple(idx)])
    shape = list(b.shape)
    if stop is None:
        shape.pop(axis)
    else:
        shape[axis] = stop - start
    return Box(out[0], out[1], tuple(shape), b.dtype, b.nan)


def _transpose(b: Box) -> Box:
    if b.is_point:
        return Box.point(np.ascontiguousarray(b.value.T))
    lo, hi = _norm(b)
    return Box(lo.T, hi.T, b.shape[::-1], b.dtype, b.nan)


def _box(iv: Iv, shape: tuple[int, ...], dtype: np.dtype) -> Box:
    lo, hi = iv
    return Box(np.asarray(lo, dtype=np.float64), np.array(hi, dtype=np.float64, copy=True), shape, dtype)


def _mat(num: _Num, a: Box, b: Box) -> tuple[Iv, np.ndarray]:
    """a @ b (centre-radius) and |a| @ |b| (for the rounding error of the whole sum)."""
    lo, hi, _ = matmul_bounds(a, b, num.eps)
    al, ah = _norm(a)
    bl, bh = _norm(b)
    k = a.shape[-1]
    ga = np.maximum(np.abs(al), np.abs(ah))
    gb = np.maximum(np.abs(bl), np.abs(bh))
    ga = np.broadcast_to(ga, (*ga.shape[:-1], k))
    gb = np.broadcast_to(gb, (k, *gb.shape[1:]))
    with np.errstate(invalid="ignore", over="ignore"):
        mag = ga @ gb
    return (lo, hi), mag


def _at(a: np.ndarray, t: int) -> np.ndarray:
    return a[0 if a.shape[0] == 1 else t]


def _convex(num: _Num, z: Iv, h: Iv, hp: Iv) -> Iv:
    """(1 - z) h + z hp over the box: a multilinear form, extreme at the 8 corners."""
    vals = [_prod(1.0 - zz, hh) + _prod(zz, pp) for zz in z for hh in h for pp in hp]
    lo, hi = np.minimum.reduce(np.broadcast_arrays(*vals)), np.maximum.reduce(np.broadcast_arrays(*vals))
    err = 4 * num.eps * (_prod(np.maximum(np.abs(1.0 - z[0]), np.abs(1.0 - z[1])), _mag(h)) + _prod(_mag(z), _mag(hp)))
    return _grow((lo, hi), err + num.tiny)


def _chunks(iv: Iv | None, n: int, size: int) -> list[Iv | None]:
    """Split the last axis of (1-D) bounds into ``n`` rows of ``size`` (coarse bounds repeat)."""
    if iv is None:
        return [None] * n
    lo, hi = iv
    if lo.shape[-1] == 1 and hi.shape[-1] == 1:
        return [(lo[None], hi[None])] * n
    lo, hi = np.broadcast_arrays(lo, hi)
    return [(lo[None, j * size:(j + 1) * size], hi[None, j * size:(j + 1) * size]) for j in range(n)]


@dataclass
class _Cell:
    """One direction's weights as boxes and the bounds of one recurrence step."""

    kind: str
    num: _Num
    acts: tuple[Act, Act, Act]
    xw: list[tuple[Iv, np.ndarray]]  # X @ W_g^T for all steps, with |X| @ |W_g^T|
    rt: list[Box]  # R_g^T
    bias: list[Iv | None]  # Wb_g..., Rb_g...
    peep: list[Iv | None]  # P_i, P_o, P_f
    n_in: int
    hidden: int
    batch: int
    dtype: np.dtype
    lbr: bool
    input_forget: bool

    def _x(self, i: int, t: int) -> tuple[Iv, np.ndarray]:
        (lo, hi), mag = self.xw[i]
        return (_at(lo, t), _at(hi, t)), _at(mag, t)

    def _rec(self, i: int, h: Iv) -> tuple[Iv, np.ndarray]:
        return _mat(self.num, _box(h, (self.batch, self.hidden), self.dtype), self.rt[i])

    def pre(self, i: int, t: int, h: Iv, extra: Iv | None = None) -> Iv:
        """Gate ``i``'s pre-activation: x W^T + h R^T + Wb + Rb (+ a peephole term)."""
        x, xm = self._x(i, t)
        r, rm = self._rec(i, h)
        terms, mags = [x, r], [xm, rm]
        for extra_term in (self.bias[i], self.bias[len(self.xw) + i], extra):
            if extra_term is not None:
                terms.append(extra_term)
                mags.append(_mag(extra_term))
        return self.num.lin(terms, mags, self.n_in + self.hidden + 3)

    def step(self, t: int, h: Iv, c: Iv) -> tuple[Iv, Iv]:
        num, (f, g, h_act) = self.num, self.acts
        if self.kind == "RNN":
            return num.act(f, self.pre(0, t, h)), c
        if self.kind == "GRU":
            z, r = num.act(f, self.pre(0, t, h)), num.act(f, self.pre(1, t, h))
            x, xm = self._x(2, t)
            wbh, rbh = self.bias[2], self.bias[5]
            if self.lbr:
                rec, rm = self._rec(2, h)
                inner = num.lin([rec] if rbh is None else [rec, rbh], [rm] if rbh is None else [rm, _mag(rbh)], self.hidden + 1)
                rin = _mul(r, inner)
                terms, mags = [x, rin], [xm, _mag(rin)]
                if wbh is not None:
                    terms.append(wbh)
                    mags.append(_mag(wbh))
                hh = num.lin(terms, mags, self.n_in + 3)
            else:
                rh = _grow(_mul(r, h), num.eps * _prod(_mag(r), _mag(h)) + num.tiny)
                rec, rm = self._rec(2, rh)
                terms, mags = [x, rec], [xm, rm]
                for bterm in (wbh, rbh):
                    if bterm is not None:
                        terms.append(bterm)
                        mags.append(_mag(bterm))
                hh = num.lin(terms, mags, self.n_in + self.hidden + 3)
            return _convex(num, z, num.act(g, hh), h), c
        p_i, p_o, p_f = self.peep
        i_g = num.act(f, self.pre(0, t, h, None if p_i is None else _mul(p_i, c)))
        if self.input_forget:
            f_g = _grow((1.0 - i_g[1], 1.0 - i_g[0]), num.eps)
        else:
            f_g = num.act(f, self.pre(2, t, h, None if p_f is None else _mul(p_f, c)))
        fc, ic = _mul(f_g, c), _mul(i_g, num.act(g, self.pre(3, t, h)))
        c_new = _grow((fc[0] + ic[0], fc[1] + ic[1]), 2 * num.eps * (_mag(fc) + _mag(ic)) + num.tiny)
        o_g = num.act(f, self.pre(1, t, h, None if p_o is None else _mul(p_o, c_new)))
        ho = _mul(o_g, num.act(h_act, c_new, clip=False))
        return _grow(ho, num.eps * _mag(ho) + num.tiny), c_new


# ---- interval rule ----------------------------------------------------------------------


def _rnn_iv(kind: str, ctx: Ctx, X: Box, W: Box, R: Box, B: Box | None = None,
            sequence_lens: Box | None = None, initial_h: Box | None = None, initial_c: Box | None = None,
            P: Box | None = None, *, activation_alpha: Any = None, activation_beta: Any = None,
            activations: Any = None, clip: float | None = None, direction: str = "forward",
            hidden_size: int | None = None, layout: int = 0, linear_before_reset: int = 0,
            input_forget: int = 0) -> tuple[Box, ...]:
    if sequence_lens is not None and not sequence_lens.is_point:
        raise NotImplementedError(f"{kind} with sequence_lens that are not constant")
    fmt = ctx.fmt(X.dtype)
    num = _Num(fmt.eps, fmt.tiny, None if clip is None else float(clip))
    dt = X.dtype
    xl, xh = _norm(X)
    shape_x = X.shape
    if layout:
        xl, xh, shape_x = np.swapaxes(xl, 0, 1), np.swapaxes(xh, 0, 1), (X.shape[1], X.shape[0], X.shape[2])
    xb = Box(xl, xh, shape_x, dt, X.nan) if not X.is_point else Box.point(np.swapaxes(X.value, 0, 1) if layout else X.value)
    T, nb, n_in = shape_x
    D, H, G = W.shape[0], R.shape[-1], _GATES[kind]
    acts = _activations(kind, activations, activation_alpha, activation_beta, D)
    lens = None if sequence_lens is None else np.asarray(sequence_lens.value).astype(np.int64)
    floats = [b for b in (X, W, R, B, initial_h, initial_c, P) if b is not None and is_float_dtype(b.dtype)]
    nan = any(b.nan or not b.finite for b in floats)
    state_axis = 1 if layout else 0
    zero: Iv = (np.zeros((1, 1)), np.zeros((1, 1)))

    def state0(b: Box | None, d: int) -> Iv:
        return zero if b is None else _norm(_sub(b, state_axis, d))

    ys_all: list[Iv] = []
    hs: list[Iv] = []
    cs: list[Iv] = []
    for d in range(D):
        wd, rd = _sub(W, 0, d), _sub(R, 0, d)
        wt = [_transpose(_sub(wd, 0, i * H, (i + 1) * H)) for i in range(G)]
        cell = _Cell(
            kind=kind, num=num, acts=tuple((acts[d] + [acts[d][-1]] * 3)[:3]),  # type: ignore[arg-type]
            xw=[_mat(num, xb, wt[i]) for i in range(G)],
            rt=[_transpose(_sub(rd, 0, i * H, (i + 1) * H)) for i in range(G)],
            bias=_chunks(None if B is None else _norm(_sub(B, 0, d)), 2 * G, H),
            peep=_chunks(None if P is None else _norm(_sub(P, 0, d)), 3, H),
            n_in=n_in, hidden=H, batch=nb, dtype=dt, lbr=bool(linear_before_reset),
            input_forget=bool(input_forget),
        )
        h, c = state0(initial_h, d), state0(initial_c, d)
        ys: list[Iv] = [zero] * T
        for t in (range(T - 1, -1, -1) if direction == "reverse" or d == 1 else range(T)):
            h_new, c_new = cell.step(t, h, c)
            y = h_new
            if lens is not None:
                on = (lens > t)[:, None]
                if not on.all():
                    h_new = (np.where(on, h_new[0], h[0]), np.where(on, h_new[1], h[1]))
                    c_new = (np.where(on, c_new[0], c[0]), np.where(on, c_new[1], c[1]))
                    y = (np.where(on, y[0], 0.0), np.where(on, y[1], 0.0))
            ys[t] = y
            h, c = h_new, c_new
        if lens is not None and (lens == 0).any():  # onnxruntime: an empty sequence ends in zero states
            on = (lens > 0)[:, None]
            h = (np.where(on, h[0], 0.0), np.where(on, h[1], 0.0))
            c = (np.where(on, c[0], 0.0), np.where(on, c[1], 0.0))
        ys_all.append(_stack_pairs(ys, 0))
        hs.append(h)
        cs.append(c)
    y_iv = _stack_pairs(ys_all, 1)
    yh_iv, yc_iv = _stack_pairs(hs, 0), _stack_pairs(cs, 0)
    y_shape, s_shape = (T, D, nb, H), (D, nb, H)
    if layout:
        y_iv = (np.transpose(y_iv[0], (2, 0, 1, 3)), np.transpose(y_iv[1], (2, 0, 1, 3)))
        yh_iv = (np.swapaxes(yh_iv[0], 0, 1), np.swapaxes(yh_iv[1], 0, 1))
        yc_iv = (np.swapaxes(yc_iv[0], 0, 1), np.swapaxes(yc_iv[1], 0, 1))
        y_shape, s_shape = (nb, T, D, H), (nb, D, H)
    outs = [_out(y_iv, y_shape, dt, nan), _out(yh_iv, s_shape, dt, nan)]
    if kind == "LSTM":
        outs.append(_out(yc_iv, s_shape, dt, nan))
    return tuple(outs)


def _stack_pairs(ivs: list[Iv], axis: int) -> Iv:
    shape = np.broadcast_shapes(*(np.shape(a) for iv in ivs for a in iv))
    lo = np.stack([np.broadcast_to(iv[0], shape) for iv in ivs], axis=axis)
    hi = np.stack([np.broadcast_to(iv[1], shape) for iv in ivs], axis=axis)
    return lo, hi


def _out(iv: Iv, shape: tuple[int, ...], dt: np.dtype, nan: bool) -> Box:
    lo, hi = (np.asarray(a, dtype=np.float64) for a in iv)
    bad = np.isnan(lo) | np.isnan(hi)
    if bad.any():
        lo, hi, nan = np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi), True
    return Box(lo, hi, shape, dt, nan).coarsen()


# ---- samplers and registration ------------------------------------------------------------


def _sampler(kind: str, since: int) -> Any:
    def sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
        from hypothesis import strategies as st

        from numsentry.ops.rules import draw_interval

        T, nb, n_in, H = (draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 4)),
                          draw(st.integers(1, 4)))
        direction = draw(st.sampled_from(["forward", "reverse", "bidirectional"]))
        D, G = (2 if direction == "bidirectional" else 1), _GATES[kind]
        layout = draw(st.integers(0, 1)) if since >= 14 else 0
        seed = draw(st.integers(0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        scale = draw(st.sampled_from([0.5, 1.0, 3.0]))

        def w(*shape: int) -> np.ndarray:
            return (rng.uniform(-scale, scale, shape)).astype(np.float32)

        lo, hi = draw_interval(draw, -3, 3)
        xs = (nb, T, n_in) if layout else (T, nb, n_in)
        ss = (nb, D, H) if layout else (D, nb, H)
        # recurrent weights with row sums <= scale: a contracting-ish recurrence, as trained ones are
        ins: list[Any] = [BoxSpec(lo, hi, xs), w(D, G * H, n_in), w(D, G * H, H) / np.float32(H)]
        ins.append(w(D, 2 * G * H) if draw(st.booleans()) else None)
        ins.append(None)  # sequence_lens: onnx.reference ignores it (tests/ops/test_control_rnn.py covers it)
        ins.append(BoxSpec(*draw_interval(draw, -1, 1), ss) if draw(st.booleans()) else None)
        if kind == "LSTM":
            ins.append(BoxSpec(*draw_interval(draw, -2, 2), ss) if draw(st.booleans()) else None)
            ins.append(w(D, 3 * H) if draw(st.booleans()) else None)
        attrs: dict[str, Any] = {"hidden_size": H, "direction": direction}
        if layout:
            attrs["layout"] = 1
        if kind == "GRU":
            attrs["linear_before_reset"] = draw(st.integers(0, 1))
        while ins and ins[-1] is None:
            ins.pop()
        return ins, attrs

    return sample


def _declare(kind: str, doc: str) -> None:
    import onnx

    versions = sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                       if s.name == kind and s.domain == ""})
    base = max(v for v in versions if v <= 13)
    for v in (x for x in versions if x >= base):
        register(
            kind, since=v,
            concrete=lambda k, *ins, _kind=kind, **at: _rnn_c(_kind, k, *ins, **at),
            interval=lambda ctx, *ins, _kind=kind, **at: _rnn_iv(_kind, ctx, *ins, **at),
            property="unrolled; centre-radius matmuls, monotone activations, multilinear gate updates",
            sample=_sampler(kind, v), doc=doc,
        )


_declare("RNN", "simple recurrent layer (default Tanh: hidden state in [-1, 1])")
_declare("GRU", "gated recurrent unit (z, r, h gates; linear_before_reset)")
_declare("LSTM", "long short-term memory (i, o, f, c gates; peepholes; cell state grows at most 1 per step)")

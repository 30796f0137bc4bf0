"""Boundary samples (iNNformant): inputs whose top-2 margin is a few ULP.

Between two inputs that get different labels there is a point where the label changes; there
the two best scores are equal up to rounding. Bisecting the segment between them until its two
ends are adjacent floats gives inputs whose top-1/top-2 margin is a few ULP, so a change of
kernel, SIMD width or summation order flips their label: they tell configurations (and
platforms) apart. All pairs are bisected at once, one batched model evaluation per step.

The search runs in this process on onnxruntime's default session when it is installed (else
on the registry's NumPy backend); which one does not matter much: the point is only to land
within a few ULP of a boundary, and each configuration then decides its own label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numsentry.deviation.metrics import label_output, margins
from numsentry.errors import UserError

__all__ = ["BoundarySet", "evaluator", "find_boundary", "save_telltale"]

Evaluate = Callable[[np.ndarray], np.ndarray]


@dataclass
class BoundarySet:
    """Boundary inputs and how close to the boundary they are.

    Attributes:
        inputs: ``[n, ...]`` inputs (the label input's dtype).
        margin: Top-1 minus top-2 score per input, as the search runtime computed it.
        margin_ulp: The same in ULPs of the top score.
        labels: Label per input under the search runtime.
        pairs: Indices of the two pool inputs each one was bisected between.
        searcher: The runtime the search used.
    """

    inputs: np.ndarray
    margin: np.ndarray
    margin_ulp: np.ndarray
    labels: np.ndarray
    pairs: np.ndarray
    searcher: str


def evaluator(model_path: str, input_name: str, other: Mapping[str, np.ndarray] | None = None,
              output: str | None = None) -> tuple[Evaluate, str]:
    """A function from a batch of the label input to the label output's scores, and its name."""
    other = dict(other or {})
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        dim0 = sess.get_inputs()[0].shape[0] if sess.get_inputs()[0].shape else None

        def run_ort(x: np.ndarray) -> np.ndarray:
            def one(xb: np.ndarray) -> dict[str, np.ndarray]:
                return dict(zip(names, sess.run(None, {input_name: xb, **other}), strict=True))

            if isinstance(dim0, int) and dim0 != x.shape[0]:
                parts = [one(x[i:i + dim0]) for i in range(0, x.shape[0], dim0)]
                outs = {n: np.concatenate([p[n] for p in parts]) for n in names}
            else:
                outs = one(x)
            lab = label_output(outs, output)
            if lab is None:
                raise UserError("the model has no output to take labels from (float, last axis >= 2)",
                                hint="pass --label-output NAME")
            return np.asarray(outs[lab])

        return run_ort, "onnxruntime"
    except ModuleNotFoundError:
        pass
    from numsentry.concrete import run_concrete
    from numsentry.ir.load import load_model

    cache: dict[int, Any] = {}

    def run_np(x: np.ndarray) -> np.ndarray:
        n = int(x.shape[0])
        if n not in cache:
            cache[n] = load_model(model_path, dims=_dims_for(model_path, input_name, x.shape))
        outs = run_concrete(cache[n], {input_name: x, **other})
        lab = label_output(outs, output)
        if lab is None:
            raise UserError("the model has no output to take labels from", hint="pass --label-output NAME")
        return np.asarray(outs[lab])

    return run_np, "numpy"


def _dims_for(model_path: str, input_name: str, shape: tuple[int, ...]) -> dict[str, int]:
    import onnx

    proto = onnx.load(model_path, load_external_data=False)
    dims: dict[str, int] = {}
    for i in proto.graph.input:
        if i.name == input_name:
            for ax, d in enumerate(i.type.tensor_type.shape.dim):
                if not d.HasField("dim_value") and ax < len(shape):
                    dims[d.dim_param or f"{i.name}_dim"] = int(shape[ax])
    return dims


def _pairs(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = np.arange(min(len(labels), 256))  # enough pairs; keeps the candidate list small
    cand = [(i, j) for i in idx for j in idx if i < j and labels[i] != labels[j]]
    if not cand:
        raise UserError("every input gets the same label: there is no boundary to bisect towards",
                        hint="give --inputs with several classes, or more --random samples")
    order = rng.permutation(len(cand))
    chosen = [cand[k] for k in order[:n]]
    while len(chosen) < n:  # fewer distinct pairs than asked: reuse them (bisection is deterministic)
        chosen.append(chosen[len(chosen) % len(cand)])
    return np.asarray(chosen, dtype=np.int64)


def find_boundary(evaluate: Evaluate, pool: np.ndarray, n: int, seed: int = 0, steps: int = 64,
                  searcher: str = "?") -> BoundarySet:
    """Bisect between pool inputs of different labels until the ends are adjacent floats.

    Args:
        evaluate: Batch of inputs -> scores ``[batch, classes]``.
        pool: Candidate end points, ``[m, ...]`` (at least two labels among them).
        n: Boundary inputs wanted.
        seed: Seed of the pair choice.
        steps: Bisection steps at most (64 reach adjacent floats for float32 inputs).
        searcher: Name of the runtime behind ``evaluate`` (recorded).

    Raises:
        UserError: Every pool input gets the same label.
    """
    dt = pool.dtype
    labels = _argmax(evaluate(pool))
    pairs = _pairs(labels, n, seed)
    a = pool[pairs[:, 0]].astype(np.float64)
    b = pool[pairs[:, 1]].astype(np.float64)
    la = labels[pairs[:, 0]]
    lo = np.zeros(n)
    hi = np.ones(n)
    shape = (n,) + (1,) * (pool.ndim - 1)

    def at(t: np.ndarray) -> np.ndarray:
        tt = t.reshape(shape)
        return ((1 - tt) * a + tt * b).astype(dt)

    for _ in range(steps):
        mid = (lo + hi) / 2
        same = _argmax(evaluate(at(mid))) == la
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
        xl, xh = at(lo), at(hi)
        if all(np.array_equal(xl[i], xh[i]) for i in range(n)):
            break
    xl, xh = at(lo), at(hi)
    _, mlu = margins(evaluate(xl))
    _, mhu = margins(evaluate(xh))
    pick_hi = mhu < mlu
    x = np.where(pick_hi.reshape(shape), xh, xl)
    scores = evaluate(x)
    m_abs, m_ulp = margins(scores)
    return BoundarySet(inputs=x, margin=m_abs, margin_ulp=m_ulp, labels=_argmax(scores), pairs=pairs,
                       searcher=searcher)


def _argmax(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, np.float64)
    return s.reshape(s.shape[0], -1).argmax(axis=1) if s.ndim > 1 else np.zeros(len(s), np.int64)


def save_telltale(path: str | Path, bset: BoundarySet, labels: Mapping[str, np.ndarray], input_name: str) -> int:
    """Save the boundary inputs whose label differs between configurations.

    Writes an ``.npz`` with ``inputs`` (telltale inputs only), ``margin_ulp``, ``configs``
    (names) and ``labels`` (``[configs, inputs]``), and ``input_name``.

    Returns:
        The number of telltale inputs.
    """
    names = list(labels)
    if not names:
        mat = np.zeros((0, len(bset.inputs)), np.int64)
    else:
        mat = np.stack([np.asarray(labels[c], np.int64) for c in names])
    tell = (mat != mat[:1]).any(axis=0) if len(names) else np.zeros(len(bset.inputs), bool)
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        np.savez(p, inputs=bset.inputs[tell], margin_ulp=bset.margin_ulp[tell], configs=np.asarray(names),
                 labels=mat[:, tell], input_name=np.asarray(input_name))
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from e
    return int(tell.sum())

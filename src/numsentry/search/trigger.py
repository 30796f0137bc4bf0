"""Failure-exhibiting unit tests: concrete inputs and weights that make a finding fire.

For each finding, a projected gradient search runs through numsentry's torch interpretation of
the graph (`numsentry.concrete.run_concrete`, pruned to the nodes the objective needs). The
search box is exactly the check's: every graph input within its range, every weight with a range
(``--weights trainable`` or a user range) within it, weights without one fixed at their stored
values. Per finding, restarts cycle through the hazard's objectives (`objectives.goals_for`:
most specific first) and three starting points (stored weights with random inputs, uniform in
the box, random corners); each restart takes Adam steps scaled to the range widths, clamps to
the box, and checks candidates on onnxruntime, where alone a witness is confirmed
(`confirm.OrtRunner`): when the torch loss first says the hazard fires, every few steps while
it improves, at the end, and after snapping values near a bound (or near 0) onto it. A
confirmed witness is then reduced (weight tensors that are not needed go back to their stored
values) and re-checked the way the generated test runs it (`confirm.confirm_exact`).

Every onnxruntime run checks all pending findings of the model, so a witness found for one
finding confirms the others it happens to trigger as well. A finding that is not confirmed is
reported with what was tried; it is never claimed.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from numsentry.analyses.check import CheckResult
from numsentry.dtypes import is_float_dtype
from numsentry.errors import UserError
from numsentry.ir.graph import Node
from numsentry.ir.load import Model
from numsentry.search.confirm import (
    Attempt,
    OrtRunner,
    Outcome,
    Target,
    Witness,
    confirm_exact,
    has_random_ops,
)
from numsentry.search.objectives import SEARCHABLE_RULES, Goal, TorchView, goals_for, torch_threads

__all__ = [
    "Attempt",
    "Outcome",
    "SearchVar",
    "TorchView",
    "TriggerOptions",
    "Witness",
    "default_rule",
    "search_space",
    "targets_for",
    "trigger",
]

#: Rule searched at a node named with ``--node`` that has no finding, by op type.
_RULE_OF_OP = {"Log": "NUM001", "ReduceLogSum": "NUM001", "Div": "NUM002", "Reciprocal": "NUM002",
               "Mod": "NUM002", "Exp": "NUM003", "Softplus": "NUM003", "Cosh": "NUM003", "Sinh": "NUM003",
               "ReduceLogSumExp": "NUM003", "Sqrt": "NUM004", "Pow": "NUM005", "Asin": "NUM006",
               "Acos": "NUM006", "Acosh": "NUM006", "Atanh": "NUM006", "Cast": "NUM008"}

_INITS = ("stored", "uniform", "corners")


@dataclass
class TriggerOptions:
    """Knobs of the unit-test search.

    Attributes:
        seed: Seed of all random choices (restart points, integer inputs).
        restarts: Restarts per finding (objectives x starting points, cycled).
        steps: Adam steps per restart.
        lr: Step size as a fraction of each value's range width (decays tenfold per restart).
        budget_s: Wall-clock budget per finding, in seconds.
        check_every: Steps between onnxruntime checks while the loss improves.
        search_weights: Search weights that have ranges (else every weight keeps its stored value).
        denormal_as_zero: Run onnxruntime with denormals flushed to zero (as TF/XLA CPU and most GPU
            kernels do); off by default.
        reduce: After a witness fires, put back the stored value of every weight tensor that is not
            needed for it.
        threads: Threads for torch and onnxruntime (1 by default: the searches run small tensors,
            for which more threads mostly add contention; ``None`` keeps the libraries' defaults).
    """

    seed: int = 0
    restarts: int = 12
    steps: int = 60
    lr: float = 0.1
    budget_s: float = 10.0
    check_every: int = 10
    search_weights: bool = True
    denormal_as_zero: bool = False
    reduce: bool = True
    threads: int | None = 1


@dataclass
class SearchVar:
    """One tensor the search may choose: a graph input or a weight with a range.

    Attributes:
        name: Graph input or initializer name.
        kind: ``input`` or ``weight``.
        shape: Concrete shape.
        dtype: NumPy dtype.
        lo: Lowest value allowed (already inside the dtype: the first representable >= range lo).
        hi: Highest value allowed.
        stored: The stored value (weights), else ``None``.
        searched: False for weights held at their stored values.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype
    lo: float
    hi: float
    stored: np.ndarray | None = None
    searched: bool = True

    @property
    def is_float(self) -> bool:
        return is_float_dtype(self.dtype)

    @property
    def width(self) -> float:
        w = self.hi - self.lo
        return float(w) if np.isfinite(w) else np.inf

    def clip(self, x: np.ndarray) -> np.ndarray:
        """``x`` clipped into [lo, hi], in the var's dtype."""
        if self.is_float:
            return np.clip(np.asarray(x, np.float64), self.lo, self.hi).astype(self.dtype)
        return np.clip(np.rint(np.asarray(x, np.float64)), self.lo, self.hi).astype(self.dtype)

    def sample(self, rng: np.random.Generator, how: str) -> np.ndarray:
        """A starting value: ``stored`` (weights), ``uniform`` or ``corners``."""
        if how == "stored" and self.stored is not None:
            return self.clip(self.stored)
        lo, hi = self._finite()
        if not self.is_float:
            return rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1, size=self.shape).astype(self.dtype)
        if how == "corners":
            return np.where(rng.random(self.shape) < 0.5, lo, hi).astype(self.dtype)
        return self.clip(rng.uniform(lo, hi, size=self.shape))

    def _finite(self) -> tuple[float, float]:
        lo = self.lo if np.isfinite(self.lo) else min(-1.0, self.hi - 2.0 if np.isfinite(self.hi) else -1.0)
        hi = self.hi if np.isfinite(self.hi) else max(1.0, lo + 2.0)
        return lo, hi

    def scale(self, x: np.ndarray) -> np.ndarray:
        """Step scale per element: the range width, or 1 + |x| for unbounded ranges."""
        if np.isfinite(self.width) and self.width > 0:
            return np.full(self.shape, self.width)
        return 1.0 + np.abs(np.asarray(x, np.float64))


def _inside(lo: float, hi: float, dtype: np.dtype) -> tuple[float, float]:
    """The tightest [lo', hi'] within [lo, hi] whose ends are representable in ``dtype``."""
    if not is_float_dtype(dtype) or dtype.itemsize >= 8:
        return lo, hi
    dt = np.dtype(dtype)
    a = dt.type(lo)
    if np.isfinite(lo) and float(a) < lo:
        a = np.nextafter(a, dt.type(np.inf))
    b = dt.type(hi)
    if np.isfinite(hi) and float(b) > hi:
        b = np.nextafter(b, dt.type(-np.inf))
    if a > b:  # no representable value inside (e.g. [0.3, 0.3] in float32): the nearest one
        a = b = dt.type((lo + hi) / 2)
    return float(a), float(b)


def search_space(model: Model, result: CheckResult, search_weights: bool = True) -> dict[str, SearchVar]:
    """The search box of a check result: every graph input, every weight with a range.

    Weights whose range origin is ``stored`` keep their stored values (``searched`` False).
    """
    g = model.graph
    ranges = {r.name: r for r in result.ranges}
    out: dict[str, SearchVar] = {}
    for v in g.inputs:
        shape = tuple(int(d) if isinstance(d, int) else 1 for d in (v.shape or []))
        dt = v.dtype
        r = ranges.get(v.name)
        lo, hi = (r.lo, r.hi) if r is not None else (-1.0, 1.0)
        if dt.kind == "b":
            lo, hi = 0.0, 1.0
        elif not is_float_dtype(dt):
            lo, hi = float(np.ceil(lo)), float(np.floor(hi))
        lo, hi = _inside(lo, hi, dt)
        out[v.name] = SearchVar(v.name, "input", shape, dt, lo, hi)
    for name, arr in g.initializers.items():
        r = ranges.get(name)
        if r is None or not is_float_dtype(arr.dtype):
            continue
        searched = search_weights and r.origin in ("user", "trainable") and arr.size > 0
        lo, hi = _inside(r.lo, r.hi, arr.dtype)
        out[name] = SearchVar(name, "weight", tuple(arr.shape), arr.dtype, lo, hi, arr, searched)
    return out


def default_rule(op_type: str) -> str | None:
    """The rule searched at a node of this op type when it has no finding."""
    return _RULE_OF_OP.get(op_type)


def targets_for(model: Model, result: CheckResult, nodes: Sequence[str] | None = None) -> list[Target]:
    """Targets of a trigger run: every finding, or the findings (else the op's rule) of ``nodes``.

    Raises:
        UserError: A node name the main graph does not have, or an op with no hazard to search.
    """
    by_name = {n.name: n for n in model.graph.nodes}
    if not nodes:
        return [Target(by_name[f.node], f.rule, f.after_earlier_finding) if f.node in by_name
                else Target(_sub_node(model, f.node), f.rule, f.after_earlier_finding) for f in result.findings]
    out: list[Target] = []
    for name in nodes:
        if name not in by_name:
            import difflib

            close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.5)
            raise UserError(f"--node {name!r}: the model has no node of that name",
                            hint=f"did you mean {', '.join(close)}?" if close else "see the node names in `numsentry check`")
        fs = [f for f in result.findings if f.node == name]
        if fs:
            out += [Target(by_name[name], f.rule, f.after_earlier_finding) for f in fs]
            continue
        rule = default_rule(by_name[name].op_type)
        if rule is None:
            raise UserError(f"--node {name!r}: {by_name[name].op_type} has no hazard to trigger",
                            hint="name a node with a finding, or a Log/Exp/Div/Sqrt/Pow/... node")
        out.append(Target(by_name[name], rule, False))
    return out


def _sub_node(model: Model, name: str) -> Node:
    return next(n for n in model.graph.all_nodes() if n.name == name)


# ---- the search ---------------------------------------------------------------------------------


def seed_of(*parts: Any) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def _snap(var: SearchVar, x: np.ndarray, tol: float = 0.02) -> np.ndarray:
    """Values within ``tol`` of a range bound (or of 0) moved onto it."""
    if not var.is_float or not np.isfinite(var.width) or var.width == 0:
        return x
    t = tol * var.width
    y = np.asarray(x, np.float64).copy()
    y = np.where(np.abs(y - var.lo) < t, var.lo, y)
    y = np.where(np.abs(y - var.hi) < t, var.hi, y)
    if var.lo <= 0 <= var.hi:
        y = np.where(np.abs(y) < t, 0.0, y)
    return var.clip(y)


class ScaledAdam:
    """Adam on the search's leaves, each step scaled to the value's range width.

    Gradients are divided by their tensor's largest magnitude first: Adam's update is invariant
    to that, and it keeps the epsilon out of the picture when gradients are tiny (saturated
    sigmoids, underflowing exponentials). NaN gradients count as 0. (Not torch.optim: importing
    it pulls in torch._dynamo, a second of start-up.)
    """

    def __init__(self, leaves: Mapping[str, Any], scale: Mapping[str, float]) -> None:
        import torch

        self.leaves = dict(leaves)
        self.scale = dict(scale)
        self.m = {n: torch.zeros_like(x) for n, x in leaves.items()}
        self.v = {n: torch.zeros_like(x) for n, x in leaves.items()}
        self.t = 0

    def step(self, grads: Sequence[Any], lr: float, b1: float = 0.9, b2: float = 0.999) -> None:
        import torch

        self.t += 1
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        with torch.no_grad():
            for (n, x), g in zip(self.leaves.items(), grads, strict=True):
                if g is None:
                    continue
                g = torch.nan_to_num(g.to(x.dtype), nan=0.0, posinf=1.0, neginf=-1.0)
                gmax = float(g.abs().max()) if g.numel() else 0.0
                if gmax > 0:
                    g = g / gmax
                self.m[n].mul_(b1).add_(g, alpha=1 - b1)
                self.v[n].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (self.v[n] / c2).sqrt_().add_(1e-8)
                x.addcdiv_(self.m[n], denom, value=-lr * self.scale[n] / c1)


class UnitSearch:
    """The unit-test search over one model (shared onnxruntime session for all its targets).

    Args:
        model: The model.
        result: Its check result (ranges, as-dtype).
        targets: What to trigger.
        options: Search knobs.
    """

    def __init__(self, model: Model, result: CheckResult, targets: Sequence[Target],
                 options: TriggerOptions | None = None) -> None:
        self.model = model
        self.result = result
        self.opt = options or TriggerOptions()
        self.targets = list(targets)
        self.space = search_space(model, result, self.opt.search_weights)
        free = [v.name for v in self.space.values() if v.kind == "weight" and v.searched]
        self.top = {n.name for n in model.graph.nodes}
        self.ort = OrtRunner(model, free, [t for t in self.targets if t.node.name in self.top],
                             denormal_as_zero=self.opt.denormal_as_zero, threads=self.opt.threads)
        self.found: dict[tuple[str, str], Witness] = {}
        self.runs = 3 if has_random_ops(model) else 1
        self.guards = _guard_constants(model, self.space)

    # -- candidates ---------------------------------------------------------------------------
    def start(self, rng: np.random.Generator, how: str) -> dict[str, np.ndarray]:
        """A starting point: every input and searched weight."""
        return {n: v.sample(rng, "stored" if v.kind == "weight" and how == "stored" else
                            ("uniform" if how == "stored" else how))
                for n, v in self.space.items() if v.kind == "input" or v.searched}

    def split(self, point: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(graph inputs, weights differing from the stored ones) of a point."""
        ins = {n: np.asarray(point[n]) for n, v in self.space.items() if v.kind == "input"}
        ws = {n: np.asarray(point[n]) for n, v in self.space.items()
              if v.kind == "weight" and v.searched and n in point and v.stored is not None
              and not np.array_equal(np.asarray(point[n]), v.stored)}
        return ins, ws

    def check(self, point: Mapping[str, np.ndarray], pending: Sequence[Target], method: str, goal: str,
              t0: float) -> list[Target]:
        """Run a candidate on onnxruntime; records witnesses; returns the targets it confirmed."""
        ins, ws = self.split(point)
        hits = self.ort.check(ins, ws, [t for t in pending if t.key not in self.found])
        done = []
        for t in pending:
            if t.key in hits and t.key not in self.found:
                w = self.finish(t, dict(point), hits[t.key], method, goal, t0)
                if w is not None:
                    self.found[t.key] = w
                    done.append(t)
        return done

    def finish(self, t: Target, point: dict[str, np.ndarray], observed: str, method: str, goal: str,
               t0: float) -> Witness | None:
        """Reduce a firing point and re-check it the way the generated test does.

        Reduction (weight tensors put back to their stored values, one at a time, kept where the
        failure stays) only runs while the finding's time budget lasts.
        """
        if self.opt.reduce:
            changed = [n for n, v in self.space.items() if v.kind == "weight" and v.searched and v.stored is not None
                       and n in point and not np.array_equal(point[n], v.stored)]
            for n in changed:
                if time.perf_counter() - t0 > self.opt.budget_s:
                    break
                stored = self.space[n].stored
                assert stored is not None
                trial = dict(point)
                trial[n] = self.space[n].clip(stored)
                ins, ws = self.split(trial)
                hit = self.ort.check(ins, ws, [t])
                if t.key in hit:
                    point = trial
        ins, ws = self.split(point)
        exact = confirm_exact(self.model.proto, ins, ws, t, self.opt.denormal_as_zero, runs=self.runs,
                              threads=self.opt.threads)
        if exact is None:
            return None
        return Witness(t.rule, t.node.name, t.node.op_type, ins, ws, exact, method, goal,
                       time.perf_counter() - t0)

    # -- gradient search ----------------------------------------------------------------------
    def search(self, t: Target, progress: Callable[[str], None] | None = None) -> Outcome:
        """Search a witness for one target."""
        t0 = time.perf_counter()
        node = t.node
        if t.key in self.found:
            return Outcome(t.rule, node.name, node.op_type, True, self.found[t.key], 0.0,
                           note="confirmed by the witness of another finding")
        if node.name not in self.top:
            return Outcome(t.rule, node.name, node.op_type, False, None, 0.0,
                           note="node inside a subgraph: onnxruntime cannot show its values")
        if t.rule not in SEARCHABLE_RULES:
            return Outcome(t.rule, node.name, node.op_type, False, None, 0.0,
                           note=f"{t.rule} is an integer hazard: not searched (onnxruntime may crash on it)")
        goals = goals_for(self.model.graph, node, t.rule, self.result.options.as_dtype)
        if not goals:
            return Outcome(t.rule, node.name, node.op_type, False, None, 0.0, note="no objective for this op")
        attempts: list[Attempt] = []
        views: dict[int, TorchView] = {}
        note = ""
        for r in range(self.opt.restarts):
            if time.perf_counter() - t0 > self.opt.budget_s or t.key in self.found:
                break
            gi = r % len(goals)
            how = _INITS[(r // len(goals)) % len(_INITS)]
            goal = goals[gi]
            try:
                if gi not in views:  # the node's inputs too: whether they are finite matters
                    views[gi] = TorchView(self.model, list(dict.fromkeys([*goal.values, *_node_inputs(node)])))
                att = self._restart(t, goal, views[gi], how, r, t0)
            except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError, UserError) as e:
                note = f"torch interpretation failed for '{goal.name}': {failure(e)}"
                attempts.append(Attempt(goal.name, how, 0, float("inf"), 0))
                continue
            attempts.append(att)
            if progress is not None:
                progress(f"{node.name}: restart {r + 1}, best loss {att.best_loss:.3g}")
        w = self.found.get(t.key)
        if w is None and t.key in self.ort.closest:
            note = "; ".join(x for x in (note, f"closest: {self.ort.closest[t.key][1]}") if x)
        return Outcome(t.rule, node.name, node.op_type, w is not None, w, time.perf_counter() - t0, attempts, note)

    def _restart(self, t: Target, goal: Goal, view: TorchView, how: str, r: int, t0: float) -> Attempt:
        import torch

        rng = np.random.default_rng(seed_of(self.opt.seed, t.node.name, t.rule, r))
        point = self.start(rng, how)
        free = [n for n in view.inputs + view.weights if n in point and self.space[n].is_float
                and self.space[n].width > 0]
        leaves = {n: torch.tensor(np.array(point[n]), requires_grad=True) for n in free}
        consts = {n: torch.as_tensor(np.array(point[n])) for n in view.inputs + view.weights
                  if n in point and n not in leaves}
        scale = {n: float(np.max(self.space[n].scale(point[n]))) for n in free}
        adam = ScaledAdam(leaves, scale)
        pending = [x for x in self.targets if x.key not in self.found]
        last_grads: dict[str, Any] = {}
        best, checks, last_checked, reached_before = np.inf, 0, np.inf, False
        steps = 0

        def current() -> dict[str, np.ndarray]:
            p = dict(point)
            for n, x in leaves.items():
                p[n] = x.detach().numpy().copy()
            return p

        for step in range(self.opt.steps):
            if time.perf_counter() - t0 > self.opt.budget_s:
                break
            steps += 1
            vals: dict[str, Any] = dict(leaves)
            vals.update(consts)
            with np.errstate(all="ignore"):
                out = view.run(vals)
                loss = goal.loss(out)
            lf = _effective(float(loss.detach()), out, t)
            reached = lf <= 0
            best = min(best, lf)
            due = (reached and not reached_before) or (
                step % self.opt.check_every == self.opt.check_every - 1 and (lf < last_checked or reached))
            reached_before = reached_before or reached
            if due:
                checks += 1
                last_checked = lf
                if self.check(current(), pending, "gradient", goal.name, t0) and t.key in self.found:
                    return Attempt(goal.name, how, steps, best, checks)
            if not leaves or not loss.requires_grad:
                break
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            last_grads = dict(zip(leaves, grads, strict=True))
            adam.step(grads, self.opt.lr * 0.1 ** (step / max(1, self.opt.steps - 1)))
            for n, x in leaves.items():
                x.data.clamp_(self.space[n].lo, self.space[n].hi)
        if leaves and time.perf_counter() - t0 < self.opt.budget_s:
            best = min(best, self._probe(t, goal, view, leaves, consts, last_grads, t0))
        final = current()
        checks += 1
        if self.check(final, pending, "gradient", goal.name, t0) and t.key in self.found:
            return Attempt(goal.name, how, steps, best, checks)
        snapped = {n: _snap(self.space[n], x) for n, x in final.items()}
        if any(not np.array_equal(snapped[n], final[n]) for n in final):
            checks += 1
            self.check(snapped, pending, "gradient", goal.name + " (snapped)", t0)
        return Attempt(goal.name, how, steps, best, checks)


    def _probe(self, t: Target, goal: Goal, view: TorchView, leaves: Mapping[str, Any], consts: Mapping[str, Any],
               grads: Mapping[str, Any], t0: float) -> float:
        """Discrete moves the gradient cannot make, kept when they lower the torch loss.

        First every searched tensor set entirely to 0, its lower and its upper bound (a zero
        weight matrix, a saturating bias); then the most sensitive scalar of the four most
        sensitive tensors, and every element of tensors with at most 4 elements, tried on a grid of magnitudes from the format's smallest
        subnormal up to the bound (a gain of exactly -1e-7 against a +1e-7 guard, a scale of
        1e-35). Returns the best loss.
        """
        import torch

        def value() -> float:
            vals: dict[str, Any] = dict(leaves)
            vals.update(consts)
            with np.errstate(all="ignore"):
                out = view.run(vals)
                return _effective(float(goal.loss(out)), out, t)

        with torch.no_grad():
            base = value()
            for n, x in leaves.items():
                var = self.space[n]
                for fill in sorted({var.lo, var.hi} | ({0.0} if var.lo <= 0 <= var.hi else set())):
                    if time.perf_counter() - t0 > self.opt.budget_s or base == -np.inf:
                        return base
                    old = x.data.clone()
                    x.data.fill_(fill)
                    f = value()
                    if f < base:
                        base = f
                    else:
                        x.data.copy_(old)
            sens = [(float((g.abs() * self.space[n].width).max()), n, int(g.abs().argmax()))
                    for n, g in grads.items() if g is not None and g.numel() and np.isfinite(self.space[n].width)]
            # the most sensitive scalar of the (up to 4) most sensitive tensors, and every element
            # of tiny tensors (gains, scales)
            cands = [(n, i) for _, n, i in sorted(sens, reverse=True)[:4]]
            cands += [(n, i) for n, x in leaves.items() if x.numel() <= 4 and np.isfinite(self.space[n].width)
                      for i in range(x.numel()) if (n, i) not in cands]
            for n, i in cands:
                if base == -np.inf or time.perf_counter() - t0 > self.opt.budget_s:
                    break
                base = self._grid(n, i, leaves[n], value, base, t0)
        return base

    def _grid(self, n: str, i: int, x: Any, value: Callable[[], float], base: float, t0: float) -> float:
        """Element ``i`` of ``n`` tried on a grid of magnitudes; kept at the best value found.

        The magnitudes of the graph's scalar constants (a gain of exactly -1e-7 against a `+ 1e-7`
        guard), powers of 10 from the smallest subnormal up to the bound, and, when evaluations
        are cheap enough for the budget, every power of 2 (an overflow window can be a factor 2
        wide); each with both signs.
        """
        var = self.space[n]
        flat = x.data.view(-1)
        keep = float(flat[i])
        top = min(max(abs(float(var.lo)), abs(float(var.hi)), 1e-30), float(np.finfo(np.float64).max))
        if not np.isfinite(top):
            return base
        t1 = time.perf_counter()
        value()
        cost = time.perf_counter() - t1
        left = self.opt.budget_s - (time.perf_counter() - t0)
        # the graph's own small constants first (x = -eps cancels a `+ eps` guard exactly), then
        # powers of ten, then (when evaluations are cheap enough) every power of two
        # (exponents as literals: under flush-to-zero, log10 of the smallest subnormal is -inf)
        tens = 10.0 ** np.arange(-45, np.floor(np.log10(top)) + 1)
        mags = np.concatenate([self.guards, tens])
        if cost * 2 * (np.log2(top) + 150) < left / 4:
            mags = np.concatenate([mags, 2.0 ** np.arange(-149, np.ceil(np.log2(top)) + 1)])
        grid = np.concatenate([[0.0, var.lo, var.hi], np.stack([-mags, mags], axis=1).ravel()])
        for v in grid[(grid >= var.lo) & (grid <= var.hi)]:
            if time.perf_counter() - t0 > self.opt.budget_s:
                break
            flat[i] = float(v)
            f = value()
            if f < base:
                base, keep = f, float(flat[i])
                if f == -np.inf:
                    break
        flat[i] = keep
        return base


def _guard_constants(model: Model, space: Mapping[str, SearchVar]) -> np.ndarray:
    """Magnitudes of the graph's scalar float constants (Constant nodes, unsearched initializers)."""
    vals: set[float] = set()
    for node in model.graph.nodes:
        if node.op_type == "Constant":
            a = np.asarray(node.attrs.get("value", node.attrs.get("value_float", np.zeros(0))))
            if a.size == 1 and is_float_dtype(a.dtype):
                vals.add(abs(float(a.reshape(-1)[0])))
    for name, a in model.graph.initializers.items():
        v = space.get(name)
        if a.size == 1 and is_float_dtype(a.dtype) and (v is None or not v.searched):
            vals.add(abs(float(np.asarray(a).reshape(-1)[0])))
    return np.array(sorted(x for x in vals if 0 < x < np.inf and x not in (1.0, 2.0, 0.5)), dtype=np.float64)


def failure(e: BaseException) -> str:
    """``Type: message (at file:line)``: the exception and where it was raised, for reports."""
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {str(e)[:160]}{where}"


def _node_inputs(node: Node) -> list[str]:
    return [i for i in node.inputs if i]


def _effective(loss: float, out: Mapping[str, Any], t: Target) -> float:
    """The loss as the search should rank it: NaN counts as reached (-inf), but a state where the
    node's own inputs are already non-finite is worthless (+inf) unless the finding is one that
    only fires after an earlier one: onnxruntime would not confirm it there."""
    if not t.after_earlier:
        for name in _node_inputs(t.node):
            x = out.get(name)
            if x is not None and x.dtype.is_floating_point and not bool(x.isfinite().all()):
                return np.inf
    return -np.inf if np.isnan(loss) else loss


def trigger(model: Model, result: CheckResult, targets: Sequence[Target] | None = None,
            options: TriggerOptions | None = None,
            progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Search a failure-exhibiting unit test for every target (default: every finding).

    Args:
        model: The model.
        result: Its check result: ranges (the search box) and findings.
        targets: Nodes and rules to trigger (`targets_for`).
        options: Search knobs.
        progress: Called with each finished outcome.

    Returns:
        One outcome per target, in order.
    """
    tg = list(targets) if targets is not None else targets_for(model, result)
    if not tg:
        return []
    opt = options or TriggerOptions()
    outs: list[Outcome] = []
    with torch_threads(opt.threads):
        try:
            search = UnitSearch(model, result, tg, opt)
        except UserError as e:  # onnxruntime cannot run the model: nothing can be confirmed
            return [Outcome(t.rule, t.node.name, t.node.op_type, False, None, 0.0, note=e.message) for t in tg]
        for t in tg:
            o = search.search(t)
            outs.append(o)
            if progress is not None:
                progress(o)
    # a later finding's witness may have confirmed an earlier one
    for i, t in enumerate(tg):
        if not outs[i].confirmed and t.key in search.found:
            o = outs[i]
            outs[i] = replace(o, confirmed=True, witness=search.found[t.key],
                              note="confirmed by the witness of another finding")
    return outs

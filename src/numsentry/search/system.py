"""Failure-exhibiting system tests: training data that drives SGD into the failure.

Given the loss output, the trainable initializers, the learning rate and the number of steps K,
the search looks for a training batch ``D`` (within the input ranges) such that K steps of plain
SGD on ``D`` from the stored weights lead to the unit-test failure: the finding fires on
onnxruntime for the trained weights and some input ``P`` within the ranges (a probe input), or
training itself produces NaN/Inf (the finding fires on the training batch during one of the
steps; for NUM011 that is the step whose gradient becomes infinite).

It adapts the deep-leakage-from-gradients idea RANUM uses (search data whose gradient step lands
on failure-exhibiting weights) into one objective: the K SGD steps are unrolled in torch
(``create_graph``: gradients of gradients) and the hazard's objective at ``(P, w_K(D))`` is
minimised over ``D`` and ``P`` together, projected onto the ranges. Steps beyond the last
`UNROLL` are applied without second-order terms (truncated unrolling).

Before that, the cheapest system test is tried: a unit witness that needs no weight change
(inputs only, stored weights) is a training batch whose very first forward pass fails.

Every candidate is *confirmed* by really training (torch, float32, the same SGD) and running the
trained weights on onnxruntime.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from numsentry.analyses.check import CheckResult
from numsentry.dtypes import is_float_dtype
from numsentry.errors import UserError
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
from numsentry.search.objectives import SEARCHABLE_RULES, TorchView, goals_for, torch_threads
from numsentry.search.trigger import (
    ScaledAdam,
    TriggerOptions,
    UnitSearch,
    _effective,
    _node_inputs,
    failure,
    search_space,
    seed_of,
    targets_for,
)

__all__ = ["UNROLL", "SystemOptions", "TrainResult", "system_trigger", "train"]

#: At most this many SGD steps are differentiated through (second order); earlier ones are not.
UNROLL = 4


@dataclass
class SystemOptions:
    """Knobs of the system-test search.

    Attributes:
        loss: Name of the graph output that training minimises (summed if not a scalar).
        lr: SGD learning rate.
        steps: SGD steps K.
        trainable: Initializers that training updates (``None``: every float initializer).
        seed: Seed of the random choices.
        restarts: Restarts of the batch search.
        iters: Adam steps on the batch per restart.
        budget_s: Wall-clock budget per finding, in seconds.
        unit_first: First try a unit witness with the stored weights as the training batch.
        denormal_as_zero: Run onnxruntime with denormals flushed to zero.
        threads: Threads for torch and onnxruntime (``None``: the libraries' defaults).
    """

    loss: str
    lr: float = 0.1
    steps: int = 1
    trainable: list[str] | None = None
    seed: int = 0
    restarts: int = 24
    iters: int = 40
    budget_s: float = 20.0
    unit_first: bool = True
    denormal_as_zero: bool = False
    threads: int | None = 1


@dataclass
class TrainResult:
    """What K steps of SGD did.

    Attributes:
        weights: The trainable weights after the last step that ran (NumPy).
        history: Weights before each step (``history[j]`` is w_j; ``history[0]`` the stored ones).
        losses: The loss at each step.
        failed_at: The first step whose loss or gradient was not finite, else ``None``.
    """

    weights: dict[str, np.ndarray]
    history: list[dict[str, np.ndarray]]
    losses: list[float]
    failed_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _scalar(x: Any) -> Any:
    return x if x.dim() == 0 else x.sum()


def train(model: Model, loss: str, batch: Mapping[str, np.ndarray], lr: float, steps: int,
          trainable: Sequence[str], start: Mapping[str, np.ndarray] | None = None) -> TrainResult:
    """Plain SGD in torch (float32, the model's dtypes): ``w <- w - lr * grad(loss)``, K times.

    Args:
        model: The model.
        loss: Graph output to minimise (summed when not a scalar).
        batch: Values of the graph inputs (the training batch, used at every step).
        lr: Learning rate.
        steps: Number of steps.
        trainable: Initializers updated by training.
        start: Starting weights (default: the stored values).

    Returns:
        The weights after training, the weights before each step, the losses, and the first
        step whose loss or gradient was not finite (training stops there).
    """
    import torch

    view = TorchView(model, [loss])
    names = [n for n in trainable if n in view.weights]
    w = {n: torch.tensor(np.array(start[n] if start and n in start else model.graph.initializers[n]))
         for n in names}
    feeds = {n: torch.as_tensor(np.asarray(batch[n])) for n in view.inputs}
    history: list[dict[str, np.ndarray]] = []
    losses: list[float] = []
    for step in range(steps):
        history.append({n: x.detach().numpy().copy() for n, x in w.items()})
        leaves = {n: x.detach().requires_grad_(True) for n, x in w.items()}
        with np.errstate(all="ignore"):
            out = _scalar(view.run({**feeds, **leaves})[loss])
        lf = float(out.detach())
        losses.append(lf)
        if not np.isfinite(lf):
            return TrainResult(history[-1], history, losses, step)
        grads = torch.autograd.grad(out, list(leaves.values()), allow_unused=True) if leaves else []
        if any(g is not None and not bool(torch.isfinite(g).all()) for g in grads):
            return TrainResult(history[-1], history, losses, step)
        with torch.no_grad():
            w = {n: (x - lr * g if g is not None else x).detach()
                 for (n, x), g in zip(leaves.items(), grads, strict=True)}
    final = {n: x.detach().numpy().copy() for n, x in w.items()}
    history.append(final)
    return TrainResult(final, history, losses, None)


class SystemSearch:
    """The system-test search over one model.

    Args:
        model: The model.
        result: Its check result (input ranges).
        targets: Findings to drive training into.
        options: Search knobs.
    """

    def __init__(self, model: Model, result: CheckResult, targets: Sequence[Target], options: SystemOptions) -> None:
        self.model = model
        self.result = result
        self.opt = options
        outs = {o.name for o in model.graph.outputs}
        if options.loss not in outs:
            raise UserError(f"--loss {options.loss!r}: not a graph output of the model",
                            hint=f"graph outputs: {', '.join(sorted(outs))}")
        inits = model.graph.initializers
        if options.trainable is None:
            self.trainable = [n for n, a in inits.items() if is_float_dtype(a.dtype) and a.size > 0]
        else:
            missing = [n for n in options.trainable if n not in inits]
            if missing:
                raise UserError(f"--trainable {missing[0]!r}: the model has no initializer of that name")
            self.trainable = list(options.trainable)
        self.space = {n: v for n, v in search_space(model, result, False).items() if v.kind == "input"}
        self.targets = list(targets)
        top = {n.name for n in model.graph.nodes}
        self.ort = OrtRunner(model, self.trainable, [t for t in self.targets if t.node.name in top],
                             denormal_as_zero=options.denormal_as_zero, threads=options.threads)
        self.top = top
        self.runs = 3 if has_random_ops(model) else 1
        self.found: dict[tuple[str, str], Witness] = {}
        self.loss_view = TorchView(model, [options.loss])

    # -- confirmation by training ---------------------------------------------------------------
    def confirm(self, batch: Mapping[str, np.ndarray], probe: Mapping[str, np.ndarray], pending: Sequence[Target],
                goal: str, t0: float) -> list[Target]:
        """Train on ``batch`` and check the targets on onnxruntime; records system witnesses."""
        tr = train(self.model, self.opt.loss, batch, self.opt.lr, self.opt.steps, self.trainable)
        done: list[Target] = []
        todo = [t for t in pending if t.key not in self.found]
        # training itself hits the failure: the batch at the failing step, else at steps 0, 1, 2,
        # 4, 8, ... and the last (onnxruntime can fail before torch does: its Sigmoid saturates
        # at -16.3, torch's 1 / (1 + exp(-x)) at -88)
        last = tr.failed_at if tr.failed_at is not None else len(tr.history) - 1
        for j in sorted({0, last} | {2 ** i for i in range(last.bit_length()) if 2 ** i < last}):
            wj = self._changed(tr.history[j])
            hits = self.ort.check(batch, wj, todo)
            for t in todo:
                if t.key in hits:
                    w = self._witness(t, dict(batch), wj, batch, tr, j, goal, t0)
                    if w is not None:
                        done.append(t)
            todo = [t for t in todo if t.key not in self.found]
            if not todo:
                return done
        if tr.failed_at is None:
            wk = self._changed(tr.weights)
            hits = self.ort.check(probe, wk, todo)
            for t in todo:
                if t.key in hits:
                    w = self._witness(t, dict(probe), wk, batch, tr, self.opt.steps, goal, t0)
                    if w is not None:
                        done.append(t)
        return done

    def _changed(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        inits = self.model.graph.initializers
        return {n: v for n, v in weights.items() if not np.array_equal(v, inits[n])}

    def _witness(self, t: Target, probe: dict[str, np.ndarray], weights: dict[str, np.ndarray],
                 batch: Mapping[str, np.ndarray], tr: Any, step: int, goal: str, t0: float) -> Witness | None:
        exact = confirm_exact(self.model.proto, probe, weights, t, self.opt.denormal_as_zero, runs=self.runs,
                              threads=self.opt.threads)
        if exact is None:
            return None
        during = tr.failed_at is not None or step < self.opt.steps
        how = (f"training on the batch fails at step {step}" if during
               else f"after {self.opt.steps} SGD step(s) the probe input fails")
        w = Witness(t.rule, t.node.name, t.node.op_type, probe, weights, f"{exact} ({how})", "system", goal,
                    time.perf_counter() - t0,
                    extra={"batch": {k: np.asarray(v) for k, v in batch.items()}, "loss": self.opt.loss,
                           "lr": self.opt.lr, "steps": self.opt.steps, "trainable": list(self.trainable),
                           "failure_step": step, "during_training": during,
                           "losses": [float(x) for x in tr.losses]})
        self.found[t.key] = w
        return w

    # -- the search -----------------------------------------------------------------------------
    def search(self, t: Target) -> Outcome:
        """Search a system test for one target."""
        t0 = time.perf_counter()
        node = t.node
        if t.key in self.found:
            return Outcome(t.rule, node.name, node.op_type, True, self.found[t.key], 0.0,
                           note="confirmed by the system test of another finding")
        if node.name not in self.top or t.rule not in SEARCHABLE_RULES:
            return Outcome(t.rule, node.name, node.op_type, False, None, 0.0,
                           note="not searchable (subgraph node or integer hazard)")
        attempts: list[Attempt] = []
        note = ""
        if self.opt.unit_first:
            a = self._unit_first(t, t0)
            attempts.append(a)
        goals = goals_for(self.model.graph, node, t.rule, self.result.options.as_dtype)
        for r in range(self.opt.restarts):
            if t.key in self.found or time.perf_counter() - t0 > self.opt.budget_s or not goals:
                break
            goal = goals[r % len(goals)]
            try:
                attempts.append(self._restart(t, goal, r, t0))
            except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as e:
                note = f"unrolled training failed for '{goal.name}': {failure(e)}"
                attempts.append(Attempt(goal.name, "unrolled", 0, float("inf"), 0))
        w = self.found.get(t.key)
        return Outcome(t.rule, node.name, node.op_type, w is not None, w, time.perf_counter() - t0, attempts, note)

    def _unit_first(self, t: Target, t0: float) -> Attempt:
        """A unit witness with the stored weights: its inputs are a batch that fails at once."""
        uopt = TriggerOptions(seed=self.opt.seed, restarts=3, steps=40, search_weights=False,
                              budget_s=min(self.opt.budget_s / 4, 5.0), denormal_as_zero=self.opt.denormal_as_zero,
                              threads=self.opt.threads, reduce=False)
        unit = UnitSearch(self.model, self.result, [t], uopt)
        o = unit.search(t)
        if o.witness is not None:
            self.confirm(o.witness.inputs, o.witness.inputs, [t], "unit witness with the stored weights", t0)
        best = min((a.best_loss for a in o.attempts), default=float("inf"))
        return Attempt("unit test with the stored weights as the training batch", "stored",
                       sum(a.steps for a in o.attempts), best, sum(a.ort_checks for a in o.attempts))

    def _restart(self, t: Target, goal: Any, r: int, t0: float) -> Attempt:
        import torch

        rng = np.random.default_rng(seed_of("system", self.opt.seed, t.node.name, t.rule, r))
        how = ("uniform", "corners")[r % 2]
        # the node's inputs too: a hazard "reached" on non-finite inputs is not one onnxruntime confirms
        gview = TorchView(self.model, list(dict.fromkeys([*goal.values, *_node_inputs(t.node)])))
        batch = {n: v.sample(rng, how) for n, v in self.space.items()}
        probe = {n: v.sample(rng, how) for n, v in self.space.items()}
        free = [n for n, v in self.space.items() if v.is_float and v.width > 0]
        leaves = {**{("D", n): torch.tensor(np.array(batch[n]), requires_grad=True) for n in free},
                  **{("P", n): torch.tensor(np.array(probe[n]), requires_grad=True) for n in free}}
        keyed = {f"{k[0]}:{k[1]}": x for k, x in leaves.items()}
        scale = {f"{k[0]}:{k[1]}": float(np.max(self.space[k[1]].scale(batch[k[1]]))) for k in leaves}
        adam = ScaledAdam(keyed, scale)
        trainable = [n for n in self.trainable if n in self.loss_view.weights or n in gview.weights]
        w0 = {n: torch.as_tensor(np.array(self.model.graph.initializers[n])) for n in trainable}
        best, checks, steps = float("inf"), 0, 0
        pending = [x for x in self.targets if x.key not in self.found]

        def values(which: str) -> dict[str, Any]:
            base = batch if which == "D" else probe
            return {n: leaves[(which, n)] if (which, n) in leaves else torch.as_tensor(np.asarray(base[n]))
                    for n in self.space}

        def snapshot(which: str) -> dict[str, np.ndarray]:
            base = batch if which == "D" else probe
            return {n: (leaves[(which, n)].detach().numpy().copy() if (which, n) in leaves else np.asarray(base[n]))
                    for n in self.space}

        good = {key: x.detach().clone() for key, x in leaves.items()}  # last batch whose training stayed finite
        damp, moved = 1.0, False
        for it in range(self.opt.iters):
            if time.perf_counter() - t0 > self.opt.budget_s:
                break
            steps += 1
            d = values("D")
            w = {n: x.clone().requires_grad_(True) for n, x in w0.items()}
            first = max(0, self.opt.steps - UNROLL)
            with np.errstate(all="ignore"):
                for k in range(self.opt.steps):
                    inner = {n: x for n, x in w.items() if n in self.loss_view.weights}
                    lo = _scalar(self.loss_view.run({**d, **inner})[self.opt.loss])
                    grads = torch.autograd.grad(lo, list(inner.values()), create_graph=k >= first, allow_unused=True)
                    upd = dict(zip(inner, grads, strict=True))
                    w = {n: (x - self.opt.lr * upd[n] if upd.get(n) is not None else x) for n, x in w.items()}
                    if k < first:
                        w = {n: x.detach().requires_grad_(True) for n, x in w.items()}
                out_p = gview.run({**values("P"), **{n: x for n, x in w.items() if n in gview.weights}})
                out_d = gview.run({**d, **{n: x for n, x in w.items() if n in gview.weights}})
                lp, ld = goal.loss(out_p), goal.loss(out_d)
            ep, ed = _effective(float(lp.detach()), out_p, t), _effective(float(ld.detach()), out_d, t)
            loss, lf = (lp, ep) if ep <= ed else (ld, ed)
            blew_up = not all(bool(torch.isfinite(x).all()) for x in w.values())
            if blew_up:
                # training itself hit a non-finite loss or gradient: a candidate (the finding may be
                # what fails on the batch at that step; `confirm` trains and checks each step)
                checks += 1
                if self.confirm(snapshot("D"), snapshot("P"), pending, goal.name, t0) and t.key in self.found:
                    break
            if lf == np.inf or blew_up:
                # otherwise the hazard's value at non-finite weights, or on node inputs that are
                # already non-finite on both probe and batch, says nothing: onnxruntime would only
                # see NaN arrive. Back off to the last batch whose training stayed finite, with
                # smaller steps (a start that is already there is a dead end).
                if not moved:
                    break
                moved = False
                with torch.no_grad():
                    for key, x in leaves.items():
                        x.copy_(good[key])
                damp *= 0.5
                continue
            good = {key: x.detach().clone() for key, x in leaves.items()}
            reached = lf <= 0
            best = min(best, lf)
            if reached or it % 10 == 9 or it == self.opt.iters - 1:
                checks += 1
                if self.confirm(snapshot("D"), snapshot("P"), pending, goal.name, t0) and t.key in self.found:
                    break
            if not loss.requires_grad:
                break
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            adam.step(grads, damp * 0.1 * 0.1 ** (it / max(1, self.opt.iters - 1)))
            moved = True
            for (_, n), x in leaves.items():
                x.data.clamp_(self.space[n].lo, self.space[n].hi)
        return Attempt(goal.name, f"unrolled SGD from {how} data", steps, best, checks)


def system_trigger(model: Model, result: CheckResult, targets: Sequence[Target] | None = None,
                   options: SystemOptions | None = None,
                   progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Search a failure-exhibiting system test for every target (default: every finding).

    Args:
        model: The model.
        result: Its check result (input ranges, findings).
        targets: Nodes and rules to drive training into.
        options: Loss, learning rate, steps, trainable weights and search knobs.
        progress: Called with each finished outcome.

    Raises:
        UserError: No loss given, or a loss/trainable name the model does not have.
    """
    if options is None:
        raise UserError("system tests need the loss output", hint="pass --loss NAME")
    tg = list(targets) if targets is not None else targets_for(model, result)
    outs: list[Outcome] = []
    if not tg:
        return outs
    with torch_threads(options.threads):
        search = SystemSearch(model, result, tg, options)  # bad --loss/--trainable: UserError
        for t in tg:
            o = search.search(t)
            outs.append(o)
            if progress is not None:
                progress(o)
    for i, t in enumerate(tg):
        if not outs[i].confirmed and t.key in search.found:
            outs[i] = replace(outs[i], confirmed=True, witness=search.found[t.key],
                              note="confirmed by the system test of another finding")
    return outs

"""The random-sampling baseline, in the same harness as the gradient searches.

Unit tests: draw every graph input and every weight that has a range uniformly inside its range
(integers uniformly among the allowed values) and run the candidate on onnxruntime, until the
finding fires or the time budget is spent. System tests: draw a training batch the same way,
train K SGD steps on it from the stored weights (`numsentry.search.system.train`), and check the
training batch at each step and a random probe input after the last one. Confirmation is the
same as for the searches (`numsentry.search.confirm`), so the numbers compare like for like.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from numsentry.analyses.check import CheckResult
from numsentry.ir.load import Model
from numsentry.search.confirm import Attempt, Outcome, Target
from numsentry.search.objectives import SEARCHABLE_RULES, torch_threads
from numsentry.search.system import SystemOptions, SystemSearch
from numsentry.search.trigger import TriggerOptions, UnitSearch, seed_of, targets_for

__all__ = ["random_system", "random_unit"]


def _sampling(search: UnitSearch | SystemSearch, tg: Sequence[Target], budget_s: float, what: str,
              draw: Callable[[np.random.Generator, float], None], seed: Sequence[object],
              progress: Callable[[Outcome], None] | None) -> list[Outcome]:
    """Per target: ``draw(rng, t0)`` candidates (each checked by ``search``) until it fires or time is up."""
    outs: list[Outcome] = []
    for t in tg:
        t0 = time.perf_counter()
        node = t.node
        if t.key in search.found:
            o = Outcome(t.rule, node.name, node.op_type, True, search.found[t.key], 0.0,
                        note=f"confirmed by the {what} of another finding")
        elif node.name not in search.top or t.rule not in SEARCHABLE_RULES:
            o = Outcome(t.rule, node.name, node.op_type, False, None, 0.0, note="not searchable")
        else:
            rng = np.random.default_rng(seed_of(*seed, node.name, t.rule))
            n = 0
            while time.perf_counter() - t0 < budget_s and t.key not in search.found:
                n += 1
                draw(rng, t0)
            w = search.found.get(t.key)
            label = "uniform sampling in the ranges" if what == "sample" else "random training batches"
            o = Outcome(t.rule, node.name, node.op_type, w is not None, w, time.perf_counter() - t0,
                        [Attempt(label, "uniform", n, float("nan"), n)])
        outs.append(o)
        if progress is not None:
            progress(o)
    return outs


def random_unit(model: Model, result: CheckResult, targets: Sequence[Target] | None = None,
                options: TriggerOptions | None = None,
                progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Random sampling within the ranges, ``options.budget_s`` seconds per finding.

    Args:
        model: The model.
        result: Its check result (the ranges).
        targets: What to trigger (default: every finding).
        options: Seed, budget, threads, denormal handling (the search knobs are ignored).
        progress: Called with each finished outcome.
    """
    opt = replace(options or TriggerOptions(), reduce=False)
    tg = list(targets) if targets is not None else targets_for(model, result)
    if not tg:
        return []
    with torch_threads(opt.threads):
        search = UnitSearch(model, result, tg, opt)
        pending = [x for x in tg if x.node.name in search.top]

        def draw(rng: np.random.Generator, t0: float) -> None:
            search.check(search.start(rng, "uniform"), pending, "random", "uniform sampling", t0)

        return _sampling(search, tg, opt.budget_s, "sample", draw, ("random", opt.seed), progress)


def random_system(model: Model, result: CheckResult, targets: Sequence[Target] | None = None,
                  options: SystemOptions | None = None,
                  progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Random training batches: train K steps on each, ``options.budget_s`` seconds per finding.

    Args:
        model: The model.
        result: Its check result (the input ranges).
        targets: What to drive training into (default: every finding).
        options: Loss, learning rate, steps, trainable weights, seed and budget.
        progress: Called with each finished outcome.
    """
    if options is None:
        raise ValueError("random_system needs SystemOptions (the loss)")
    tg = list(targets) if targets is not None else targets_for(model, result)
    if not tg:
        return []
    with torch_threads(options.threads):
        search = SystemSearch(model, result, tg, options)
        pending = [x for x in tg if x.node.name in search.top]

        def draw(rng: np.random.Generator, t0: float) -> None:
            batch = {k: v.sample(rng, "uniform") for k, v in search.space.items()}
            probe = {k: v.sample(rng, "uniform") for k, v in search.space.items()}
            search.confirm(batch, probe, pending, "random batch", t0)

        return _sampling(search, tg, options.budget_s, "batch", draw, ("random-system", options.seed), progress)

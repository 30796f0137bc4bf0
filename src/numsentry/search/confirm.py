"""Confirmation on onnxruntime: does a candidate make *that* node produce NaN/Inf?

A candidate (graph inputs plus replacement values for some initializers) is run on a copy of
the model whose watched values (the hazard nodes' inputs and outputs) are extra graph outputs,
on onnxruntime's CPU provider. A finding is confirmed when

* its node's output holds a NaN or an Inf while every float input of the node is finite (the
  node itself created it), or, for a finding the check marked ``after_earlier_finding``, when its
  output is non-finite at all (it only fires downstream of an earlier failure);
* for NUM011 (sqrt-zero-gradient): the Sqrt input holds an exact 0 (the forward value is fine,
  the derivative is infinite).

`OrtRunner` keeps one session per model during a search (the searched initializers become
graph inputs, so new weights need no new session); `confirm_exact` re-checks a witness the way
the generated pytest file does (initializers replaced in the model, a fresh session).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from numsentry.errors import UserError
from numsentry.ir.graph import Node
from numsentry.ir.load import Model
from numsentry.search.fpenv import Session

__all__ = ["RANDOM_OPS", "Attempt", "OrtRunner", "Outcome", "Target", "Witness", "closeness", "confirm_exact", "fired",
           "has_random_ops", "substituted"]

#: Ops whose output changes from run to run: a witness must fire on every one of several runs.
RANDOM_OPS = frozenset({"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike",
                        "Multinomial", "Bernoulli"})


@dataclass(frozen=True)
class Target:
    """A node to confirm a hazard at.

    Attributes:
        node: The hazard node (top level of the main graph).
        rule: Rule code.
        after_earlier: The check found it fires only after an earlier finding.
    """

    node: Node
    rule: str
    after_earlier: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.node.name)


@dataclass
class Witness:
    """Concrete values that make a finding fire on onnxruntime.

    Attributes:
        rule: Rule code.
        node: Node name.
        op_type: Op type.
        inputs: Every graph input.
        weights: The weights whose values differ from the stored ones.
        observed: What onnxruntime showed at the node.
        method: ``gradient``, ``random`` or ``system``.
        goal: The objective (or sampler) that found it.
        seconds: Search time until it was found.
        extra: Method-specific data (the system test's training batch, steps, learning rate...).
    """

    rule: str
    node: str
    op_type: str
    inputs: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    observed: str
    method: str
    goal: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Attempt:
    """One restart: its objective, starting point, steps and the best torch loss reached."""

    goal: str
    init: str
    steps: int
    best_loss: float
    ort_checks: int


@dataclass
class Outcome:
    """The result of triggering one finding.

    Attributes:
        rule: Rule code.
        node: Node name.
        op_type: Op type.
        confirmed: Whether onnxruntime showed the failure with a witness.
        witness: The witness, if confirmed.
        seconds: Time spent on this finding.
        attempts: What was tried.
        note: Why nothing was tried, or what came closest.
        path: Directory of the written reproduction (set by `numsentry.search.reproduce`).
    """

    rule: str
    node: str
    op_type: str
    confirmed: bool
    witness: Witness | None
    seconds: float
    attempts: list[Attempt] = field(default_factory=list)
    note: str = ""
    path: str | None = None

    def tried(self) -> str:
        """One line: what the search tried."""
        if not self.attempts:
            return self.note or "nothing tried"
        goals = sorted({a.goal for a in self.attempts})
        best = min(a.best_loss for a in self.attempts)
        steps = sum(a.steps for a in self.attempts)
        checks = sum(a.ort_checks for a in self.attempts)
        return (f"{len(self.attempts)} restart(s), {steps} steps, {checks} onnxruntime checks in "
                f"{self.seconds:.1f} s; objectives: {'; '.join(goals)}; best torch loss {best:.4g}"
                + (f"; {self.note}" if self.note else ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the witness arrays)."""
        return {"rule": self.rule, "node": self.node, "op_type": self.op_type, "confirmed": self.confirmed,
                "witness": self.path, "observed": self.witness.observed if self.witness else None,
                "method": self.witness.method if self.witness else None, "seconds": round(self.seconds, 4),
                "tried": self.tried()}


def has_random_ops(model: Model) -> bool:
    """Whether any node of the model draws random numbers (outputs differ between runs)."""
    return any(n.op_type in RANDOM_OPS for n in model.graph.all_nodes())


def _first(mask: np.ndarray) -> tuple[int, ...]:
    idx = np.argwhere(mask)
    return tuple(int(i) for i in idx[0]) if idx.size else ()


def fired(target: Target, ins: Sequence[np.ndarray | None], outs: Sequence[np.ndarray | None]) -> str | None:
    """Whether the runtime values of the target node show its failure; returns what was seen.

    Args:
        target: The node and rule.
        ins: The node's input values on the runtime (``None`` for omitted inputs).
        outs: The node's output values on the runtime.

    Returns:
        A one-line description of the failure, or ``None`` when it did not happen.
    """
    f_ins = [np.asarray(a) for a in ins if a is not None and np.asarray(a).dtype.kind == "f"]
    finite_in = all(bool(np.isfinite(a).all()) for a in f_ins)
    name = target.node.name
    if target.rule == "NUM011":
        x = ins[0] if ins else None
        if x is None or not finite_in:
            return None
        zero = np.asarray(x) == 0
        if zero.any():
            return f"input of {name} is exactly 0 at index {_first(zero)}: forward finite, derivative inf"
        return None
    for k, o in enumerate(outs):
        if o is None:
            continue
        a = np.asarray(o)
        if a.dtype.kind != "f":
            continue
        bad = ~np.isfinite(a)
        if not bad.any():
            continue
        i = _first(bad)
        v = a[i] if a.ndim else a
        which = f"output {k} of {name}" if len(outs) > 1 else f"output of {name}"
        if finite_in:
            return f"{which} is {v} at index {i} from finite inputs"
        if target.after_earlier:
            return f"{which} is {v} at index {i} (its inputs are already non-finite: after an earlier finding)"
    return None


def closeness(t: Target, ins: Sequence[Any], outs: Sequence[Any]) -> tuple[float, str] | None:
    """How close a runtime state came to the failure: (score, text); lower is closer."""
    def arr(a: Any) -> np.ndarray | None:
        return None if a is None or np.asarray(a).dtype.kind != "f" or np.asarray(a).size == 0 else np.asarray(a)

    x = arr(ins[0]) if ins else None
    y = arr(outs[0]) if outs else None
    if any(a is not None and not np.isfinite(a).all() for a in map(arr, ins)):
        return None  # propagated: not a step towards this node's own failure
    op, rule = t.node.op_type, t.rule
    with np.errstate(all="ignore"):
        if rule in ("NUM001", "NUM004", "NUM011") and x is not None and op in ("Log", "Sqrt"):
            v = float(np.min(x))
            return v, f"smallest {op} input on onnxruntime: {v:.4g}"
        d = arr(ins[1]) if len(ins) > 1 else None
        if rule == "NUM002" and op in ("Div", "Mod") and d is not None:
            v = float(np.min(np.abs(d)))
            return v, f"smallest |divisor| on onnxruntime: {v:.4g}"
        if y is not None:
            v = float(np.max(np.abs(y)))
            return -v, f"largest |output| on onnxruntime: {v:.4g}"
    return None


def _value_types(proto: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    g = proto.graph
    out: dict[str, onnx.TypeProto] = {}
    for v in list(g.value_info) + list(g.input) + list(g.output):
        out[v.name] = v.type
    return out


def _session(proto: onnx.ModelProto, denormal_as_zero: bool, threads: int | None = None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - optional dependency
        raise UserError("confirmation needs onnxruntime", hint="pip install 'numsentry[runtime]'") from e
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if denormal_as_zero:
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    # the session sets FTZ/DAZ on this thread when it is built: keep that to its own runs
    return Session(lambda: _build(ort, proto, opts), denormal_as_zero)


def _build(ort: Any, proto: onnx.ModelProto, opts: Any) -> Any:
    try:
        try:
            return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            # a model written by a newer onnx than this onnxruntime reads: the IR version is only
            # a file-format stamp here (the opset decides the semantics), so stamp the newest one
            m = re.search(r"max supported IR version: (\d+)", str(e))
            if m is None or proto.ir_version <= int(m.group(1)):
                raise
            older = onnx.ModelProto()
            older.CopyFrom(proto)
            older.ir_version = int(m.group(1))
            return ort.InferenceSession(older.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise UserError(f"onnxruntime cannot load the model: {str(e).splitlines()[0][:200]}",
                        hint="confirmation runs the model on onnxruntime's CPU provider") from e


def _with_outputs(proto: onnx.ModelProto, names: Iterable[str]) -> list[str]:
    """Add ``names`` as graph outputs of ``proto`` (in place); returns those now fetchable."""
    g = proto.graph
    types = _value_types(proto)
    existing = {o.name for o in g.output}
    given = {i.name for i in g.input} | {t.name for t in g.initializer}
    fetch: list[str] = []
    for n in names:
        if not n or n in given or n in fetch:
            continue
        if n not in existing:
            vi = onnx.ValueInfoProto()
            vi.name = n
            if n in types:
                vi.type.CopyFrom(types[n])
                vi.type.tensor_type.ClearField("shape")
            else:
                vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
            g.output.append(vi)
            existing.add(n)
        fetch.append(n)
    return fetch


class OrtRunner:
    """One onnxruntime session of a model with some initializers fed as inputs.

    Args:
        model: The loaded model (its validated proto is run).
        free_weights: Initializers whose values each run supplies.
        targets: Nodes whose inputs and outputs every run fetches.
        denormal_as_zero: Run onnxruntime with flush-to-zero / denormals-are-zero.
        threads: onnxruntime intra-op threads (``None``: its default).
    """

    def __init__(self, model: Model, free_weights: Iterable[str], targets: Iterable[Target],
                 denormal_as_zero: bool = False, threads: int | None = None) -> None:
        self.model = model
        self.targets = list(targets)
        proto = onnx.ModelProto()
        proto.CopyFrom(model.proto)
        g = proto.graph
        free = set(free_weights)
        keep = [t for t in g.initializer if t.name not in free]
        moved = [t for t in g.initializer if t.name in free]
        inputs = {i.name for i in g.input}
        for t in moved:
            if t.name not in inputs:
                g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        del g.initializer[:]
        g.initializer.extend(keep)
        self.free = [t.name for t in moved]
        watch = [v for t in self.targets for v in (*t.node.inputs, *t.node.outputs)]
        self.fetch = _with_outputs(proto, watch)
        self.given = {i.name for i in g.input} | {t.name for t in g.initializer}
        self.stored = model.graph.initializers
        self.sess = _session(proto, denormal_as_zero, threads)
        self.runs = 3 if has_random_ops(model) else 1
        #: per target, the candidate that came closest on onnxruntime: (score, description)
        self.closest: dict[tuple[str, str], tuple[float, str]] = {}

    def run(self, inputs: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns every watched value (inputs and weights included) by name."""
        feeds = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        for name in self.free:
            feeds[name] = np.ascontiguousarray(weights[name] if name in weights else self.stored[name])
        with np.errstate(all="ignore"):
            outs = self.sess.run(self.fetch, feeds)
        vals: dict[str, np.ndarray] = dict(zip(self.fetch, outs, strict=True))
        for k, v in feeds.items():
            vals.setdefault(k, v)
        for k, v in self.stored.items():
            vals.setdefault(k, v)
        return vals

    def check(self, inputs: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray],
              targets: Iterable[Target] | None = None) -> dict[tuple[str, str], str]:
        """Which targets fire on this candidate (on every run when the model is random)."""
        todo = list(targets) if targets is not None else self.targets
        seen: dict[tuple[str, str], str] = {}
        for r in range(self.runs):
            vals = self.run(inputs, weights)
            now: dict[tuple[str, str], str] = {}
            for t in todo:
                ins = [vals.get(i) if i else None for i in t.node.inputs]
                outs = [vals.get(o) if o else None for o in t.node.outputs]
                msg = fired(t, ins, outs)
                if msg is not None and (r == 0 or t.key in seen):
                    now[t.key] = msg
                elif r == 0:
                    self._near(t, ins, outs)
            seen = now
            if not seen:
                break
            todo = [t for t in todo if t.key in seen]
        return seen

    def _near(self, t: Target, ins: Sequence[Any], outs: Sequence[Any]) -> None:
        c = closeness(t, ins, outs)
        if c is not None and (t.key not in self.closest or c[0] < self.closest[t.key][0]):
            self.closest[t.key] = c

    def values(self, inputs: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray],
               target: Target) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
        """The target node's input and output values on one run."""
        vals = self.run(inputs, weights)
        return ([vals.get(i) if i else None for i in target.node.inputs],
                [vals.get(o) if o else None for o in target.node.outputs])


def substituted(proto: onnx.ModelProto, weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``proto`` with the given initializers replaced (same names, dtypes, shapes)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for t in out.graph.initializer:
        if t.name in weights:
            arr = np.asarray(weights[t.name])
            old = numpy_helper.to_array(t)
            if arr.shape != old.shape:
                raise UserError(f"weight {t.name!r}: shape {arr.shape} differs from the model's {old.shape}")
            t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arr.astype(old.dtype)), t.name))
    return out


def confirm_exact(proto: onnx.ModelProto, inputs: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray],
                  target: Target, denormal_as_zero: bool = False, runs: int = 1,
                  threads: int | None = None) -> str | None:
    """Re-check a witness as the generated test does: replace initializers, fresh session.

    Args:
        proto: The model.
        inputs: Graph input values.
        weights: Replacement initializer values.
        target: The node and rule.
        denormal_as_zero: onnxruntime flushes denormals to zero.
        runs: Number of runs that must all fire (models with random ops).
        threads: onnxruntime intra-op threads (``None``: its default).

    Returns:
        What was seen on the last run, or ``None`` when some run did not fire.
    """
    m = substituted(proto, weights)
    fetch = _with_outputs(m, [*target.node.inputs, *target.node.outputs])
    sess = _session(m, denormal_as_zero, threads)
    msg: str | None = None
    for _ in range(max(1, runs)):
        with np.errstate(all="ignore"):
            outs = sess.run(fetch, {k: np.ascontiguousarray(v) for k, v in inputs.items()})
        vals: dict[str, Any] = dict(zip(fetch, outs, strict=True))
        for k, v in inputs.items():
            vals.setdefault(k, v)
        for t in m.graph.initializer:
            if t.name in target.node.inputs:
                vals.setdefault(t.name, numpy_helper.to_array(t))
        msg = fired(target, [vals.get(i) if i else None for i in target.node.inputs],
                    [vals.get(o) if o else None for o in target.node.outputs])
        if msg is None:
            return None
    return msg

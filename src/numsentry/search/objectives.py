"""Search objectives: one differentiable "how far from failing" loss per hazard.

A `Goal` names the tensors it needs (captured from numsentry's torch interpretation of the
graph) and a loss on them that the search minimises; the loss is <= 0 once the hazard fires in
torch. Where the hazard's input comes out of a saturating op, the loss looks *through* it, so
that its gradient does not vanish before the failure:

* ``Log(Softmax(z))``: spread the logits until ``z_i - max(z)`` is below the format's exp
  underflow point (-104 in float32), so that ``softmax(z)_i`` is exactly 0;
* ``Log(Sigmoid(a))``: push ``a`` down (onnxruntime's Sigmoid is exactly 0 below about -16.3);
  ``Log(c - Sigmoid(a))``: push ``a`` up until the sigmoid rounds to 1;
* ``Sqrt(Exp(u))``, ``Log(Exp(u))``: push ``u`` below the underflow point;
* ``Exp(u)``: push ``u`` past ``log(max)`` of the format (88.72 in float32, 11.09 in float16);
* division: drive ``min |divisor|`` to 0; overflow: drive ``max |y|`` to the format's max.

Every hazard also gets a *generic* goal on the hazard's own input or output; restarts cycle
through a finding's goals. Whatever the loss says, only onnxruntime confirms a witness (see
`numsentry.search.confirm`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from numsentry.dtypes import FLOAT_FORMATS, FloatFormat
from numsentry.ir.graph import Graph, Node, ValueInfo
from numsentry.ir.load import Model

__all__ = ["SEARCHABLE_RULES", "Goal", "TorchView", "goals_for", "producers", "prune", "torch_threads"]

#: Rules the gradient search has objectives for. NUM009 (Range step) and NUM010 (integer
#: division) are integer hazards: gradients say nothing there, and onnxruntime may crash on an
#: integer division by zero, so they are never searched.
SEARCHABLE_RULES = frozenset({"NUM001", "NUM002", "NUM003", "NUM004", "NUM005", "NUM006", "NUM007",
                              "NUM008", "NUM011"})

#: Ops a value passes through unchanged (up to layout): the objective looks past them.
_TRANSPARENT = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
                          "Cast", "Dropout", "Expand", "Tile", "Concat", "Slice", "Gather"})

#: onnxruntime's Sigmoid is exactly 0 below about -16.3 and exactly 1 from about 30 on.
_SIGMOID_ZERO = -20.0
_SIGMOID_ONE = 32.0

Loss = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Goal:
    """One objective for one hazard.

    Attributes:
        name: What it drives, for reports (``spread the logits of loss/Softmax``).
        values: Value names the loss reads (captured from the torch interpretation).
        loss: ``loss(values)`` returns a 0-d torch tensor; <= 0 once the hazard fires in torch.
    """

    name: str
    values: tuple[str, ...]
    loss: Loss


def producers(graph: Graph) -> dict[str, Node]:
    """The node producing each value of ``graph`` (top level only)."""
    return {o: n for n in graph.nodes for o in n.outputs if o}


def _fmt_of(graph: Graph, value: str, as_dtype: str | None) -> FloatFormat:
    vi = graph.value_types.get(value)
    name = vi.dtype.name if vi is not None and vi.elem_type else "float32"
    if as_dtype is not None and name == "float32":
        name = as_dtype
    return FLOAT_FORMATS.get(name, FLOAT_FORMATS["float32"])


def _back(prod: Mapping[str, Node], value: str, inits: Mapping[str, Any]) -> tuple[str, Node | None]:
    """Follow ``value`` back through layout-only ops; returns the value and its producer."""
    for _ in range(32):
        n = prod.get(value)
        if n is None or n.op_type not in _TRANSPARENT:
            return value, n
        if n.op_type == "Concat":  # follow the first input that is computed, not constant
            nxt = next((i for i in n.inputs if i and i not in inits and i in prod), None)
            if nxt is None:
                return value, n
            value = nxt
        else:
            value = n.inputs[0]
    return value, prod.get(value)


def _const(prod: Mapping[str, Node], inits: Mapping[str, Any], value: str) -> float | None:
    """The scalar value of a constant input (initializer or Constant node), else ``None``."""
    arr: Any = None
    if value in inits:
        arr = inits[value]
    else:
        n = prod.get(value)
        if n is not None and n.op_type == "Constant":
            arr = n.attrs.get("value")
    if arr is None:
        return None
    a = np.asarray(arr)
    return float(a.reshape(-1)[0]) if a.size == 1 and a.dtype.kind in "fiu" else None


def _torch() -> Any:
    import torch

    return torch


# ---- loss builders (all return 0-d float64 tensors) ------------------------------------------


def _amin(x: Any) -> Any:
    return _torch().amin(x.double()) if x.numel() else x.double().sum()


def _amax(x: Any) -> Any:
    return _torch().amax(x.double()) if x.numel() else x.double().sum()


def _log_abs_max(y: Any, fmt: FloatFormat) -> Any:
    """log(max) - log(max |y|): <= 0 once y overflows (NaN counts as reached)."""
    t = _torch()
    a = _amax(t.nan_to_num(y.double().abs(), nan=math.inf))
    return math.log(fmt.max) - t.log(a + fmt.tiny)


def _softmax_gap(z: str, axis: int, fmt: FloatFormat) -> Loss:
    margin = -fmt.log_tiny + 2.0  # 106 in float32: exp(z_i - max) underflows to exactly 0

    def loss(v: Mapping[str, Any]) -> Any:
        x = v[z].double()
        if x.dim() == 0 or x.shape[axis] < 2:
            return x.sum() * 0 + margin
        # sorted (stably) so that tied logits (e.g. all-zero weights) still get a gradient
        s = _torch().sort(x, dim=axis, stable=True).values
        gap = s.narrow(axis, 0, 1) - s.narrow(axis, x.shape[axis] - 1, 1)
        return _amin(gap) + margin

    return loss


def _below(value: str, target: float) -> Loss:
    """min(value) - target: reached when some element is at or below ``target``."""
    return lambda v: _amin(v[value]) - target


def _above(value: str, target: float) -> Loss:
    """target - max(value): reached when some element is at or above ``target``."""
    return lambda v: target - _amax(v[value])


def _all_below(value: str, target: float) -> Loss:
    """max(value) - target: reached when every element is at or below ``target``."""
    return lambda v: _amax(v[value]) - target


def _abs_above(value: str, target: float) -> Loss:
    """target - max |value|: reached when some element's magnitude reaches ``target``."""
    return lambda v: target - _amax(v[value].abs())


def _abs_min(value: str) -> Loss:
    return lambda v: _amin(v[value].abs())


def _overflow(value: str, fmt: FloatFormat) -> Loss:
    return lambda v: _log_abs_max(v[value], fmt)


# ---- per-hazard goals -------------------------------------------------------------------------


def _zero_goals(graph: Graph, prod: Mapping[str, Node], value: str, fmt: FloatFormat,
                what: str, strict_negative: bool = False) -> list[Goal]:
    """Goals that make ``value`` exactly 0 (or negative) by looking through its producer."""
    inits = graph.initializers
    src, p = _back(prod, value, inits)
    goals: list[Goal] = []
    if p is not None and p.op_type == "Softmax" and not strict_negative:
        axis = int(p.attrs.get("axis", -1))
        goals.append(Goal(f"spread the logits of {p.name} until a softmax output underflows to 0",
                          (p.inputs[0],), _softmax_gap(p.inputs[0], axis, fmt)))
    elif p is not None and p.op_type == "Sigmoid" and not strict_negative:
        goals.append(Goal(f"push the input of {p.name} below {_SIGMOID_ZERO:g} (sigmoid exactly 0)",
                          (p.inputs[0],), _below(p.inputs[0], _SIGMOID_ZERO)))
    elif p is not None and p.op_type == "Exp" and not strict_negative:
        goals.append(Goal(f"push the input of {p.name} below {fmt.log_tiny - 1:.4g} (exp underflows to 0)",
                          (p.inputs[0],), _below(p.inputs[0], fmt.log_tiny - 1.0)))
    elif p is not None and p.op_type == "Relu" and not strict_negative:
        goals.append(Goal(f"push the input of {p.name} below 0 (relu exactly 0)",
                          (p.inputs[0],), _below(p.inputs[0], -1e-3)))
    elif p is not None and p.op_type == "Sub":
        a, b = p.inputs[0], p.inputs[1]
        _, bp = _back(prod, b, inits)
        if bp is not None and bp.op_type == "Sigmoid":
            goals.append(Goal(f"push the input of {bp.name} above {_SIGMOID_ONE:g} (sigmoid exactly 1)",
                              (bp.inputs[0],), _above(bp.inputs[0], _SIGMOID_ONE)))
        goals.append(Goal(f"make {a} - {b} reach 0 (min of the difference)", (src,),
                          _below(src, 0.0) if not strict_negative else _below(src, -fmt.tiny)))
    elif p is not None and p.op_type in ("Div", "Mul") and not strict_negative:
        # hand-written softmax exp(z) / sum(exp(z)): the numerator's exp must underflow
        _, ep = _back(prod, p.inputs[0], inits)
        if ep is not None and ep.op_type == "Exp":
            goals.append(Goal(f"push the input of {ep.name} below {fmt.log_tiny - 1:.4g} (exp underflows)",
                              (ep.inputs[0],), _below(ep.inputs[0], fmt.log_tiny - 1.0)))
    target = -fmt.tiny if strict_negative else 0.0
    goals.append(Goal(f"minimise {what} (want {'< 0' if strict_negative else '<= 0'})",
                      (value,), _below(value, target)))
    return goals


def goals_for(graph: Graph, node: Node, rule: str, as_dtype: str | None = None) -> list[Goal]:
    """Objectives for ``rule`` at ``node``, most specific first (empty: not searchable).

    Args:
        graph: The model's main graph.
        node: The hazard node (top level).
        rule: Rule code of the finding.
        as_dtype: ``--as-dtype`` of the check (thresholds follow the analysed format).
    """
    if rule not in SEARCHABLE_RULES:
        return []
    prod = producers(graph)
    ins = [i for i in node.inputs]
    x = ins[0] if ins and ins[0] else None
    out = node.outputs[0] if node.outputs else None
    fmt = _fmt_of(graph, out or x or "", as_dtype)
    op = node.op_type
    goals: list[Goal] = []
    if (rule == "NUM001" and x is not None) or (rule == "NUM011" and x is not None):
        goals = _zero_goals(graph, prod, x, fmt, f"the input of {node.name}")
    elif rule == "NUM004" and op == "Sqrt" and x is not None:
        goals = _zero_goals(graph, prod, x, fmt, f"the input of {node.name}", strict_negative=True)
    elif rule == "NUM004" and op == "BatchNormalization" and len(ins) > 4:
        eps = float(node.attrs.get("epsilon", 1e-5))
        goals = [Goal("push the variance + epsilon below 0", (ins[4],), _below(ins[4], -eps - fmt.tiny))]
    elif rule == "NUM002":
        d = ins[1] if op in ("Div", "Mod") and len(ins) > 1 else (x if op == "Reciprocal" else None)
        if op == "BatchNormalization" and len(ins) > 4:
            d = ins[4]
        if d:
            _, p = _back(prod, d, graph.initializers)
            if p is not None and p.op_type in ("ReduceSum", "Sum", "ReduceMean"):
                _, ep = _back(prod, p.inputs[0], graph.initializers)
                if ep is not None and ep.op_type == "Exp":
                    goals.append(Goal(f"make every exp under {p.name} underflow (sum of exps = 0)",
                                      (ep.inputs[0],), _all_below(ep.inputs[0], fmt.log_tiny - 1.0)))
            goals.append(Goal(f"drive min |{d}| to 0", (d,), _abs_min(d)))
    elif rule == "NUM003" and op == "Exp" and x is not None:
        goals = [Goal(f"push the input of {node.name} above {fmt.log_max + 0.5:.4g} (exp overflows)",
                      (x,), _above(x, fmt.log_max + 0.5))]
    elif rule == "NUM005" and op == "Pow" and len(ins) > 1:
        b, e = ins[0], ins[1]

        def pow_loss(v: Mapping[str, Any], b: str = b, e: str = e) -> Any:
            t = _torch()
            bb, ee = t.broadcast_tensors(v[b].double(), v[e].double())
            frac = ee != t.round(ee)
            cand = t.where(frac, bb + fmt.tiny, t.where(ee < 0, bb.abs(), t.full_like(bb, 1e30)))
            return _amin(cand)

        goals = [Goal("negative base with a non-integer exponent, or 0 ** negative", (b, e), pow_loss)]
    elif rule == "NUM006" and x is not None:
        if op in ("Asin", "Acos"):
            goals = [Goal("push |x| above 1", (x,), _abs_above(x, 1.0 + 1e-6))]
        elif op == "Acosh":
            goals = [Goal("push x below 1", (x,), _below(x, 1.0 - 1e-6))]
        elif op == "Atanh":
            goals = [Goal("push |x| to 1", (x,), _abs_above(x, 1.0))]
    elif rule == "NUM008" and out is not None:
        goals = [Goal(f"push |{x}| past the target format's max", (out,), _overflow(out, fmt))]
    # every hazard: the node's own output overflowing (or turning NaN) is the generic goal
    if out is not None and rule not in ("NUM011",):
        goals.append(Goal(f"maximise |output of {node.name}|", (out,), _overflow(out, fmt)))
    # hazards that can only fire downstream of an earlier failure have a non-finite input
    return goals


# ---- the torch view of a model --------------------------------------------------------------------------


def _reads(n: Node) -> list[str]:
    out = [i for i in n.inputs if i]
    for v in n.attrs.values():
        for sg in v if isinstance(v, list) else [v]:
            if isinstance(sg, Graph):
                out += sorted(sg.outer_refs)
    return out


def prune(model: Model, values: Sequence[str]) -> Model:
    """A model computing only ``values`` (as its outputs) from the inputs they depend on."""
    g = model.graph
    prod = {o: n for n in g.nodes for o in n.outputs if o}
    need: set[int] = set()
    stack = list(values)
    seen: set[str] = set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        n = prod.get(v)
        if n is not None and n.index not in need:
            need.add(n.index)
            stack += _reads(n)
    nodes = [n for n in g.nodes if n.index in need]
    types = g.value_types
    outs = [types.get(v) or ValueInfo(v, 1, None) for v in values]
    graph = replace(g, nodes=nodes, inputs=[v for v in g.inputs if v.name in seen],
                    outputs=[ValueInfo(v.name, v.elem_type, v.shape) for v in outs],
                    initializers={k: a for k, a in g.initializers.items() if k in seen})
    return replace(model, graph=graph)


class TorchView:
    """A pruned model run on torch with chosen inputs and weights (differentiable).

    Step functions (Sign, Floor, Ceil, Round) pass gradients straight through (their true
    derivative is 0 almost everywhere, which would hide e.g. the weights that drive a sampled
    Bernoulli ``relu(sign(p - u))`` or a dropout mask ``floor(keep + u)``); the values are exact.

    Args:
        model: The model.
        values: Value names to compute (returned by `run`).
    """

    def __init__(self, model: Model, values: Sequence[str]) -> None:
        import torch

        from numsentry.ops.kernels import torch_kernels

        self.k = torch_kernels()
        self.model = prune(model, list(values))
        self.inputs = [v.name for v in self.model.graph.inputs]
        self.weights = list(self.model.graph.initializers)
        self.fixed = {k: torch.as_tensor(np.array(a)) for k, a in self.model.graph.initializers.items()}

    def run(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Run with torch tensors (or arrays) by name; unnamed weights keep their stored values."""
        import warnings

        from numsentry.concrete import run_concrete

        feeds = {n: values[n] for n in self.inputs}
        w = {n: values.get(n, self.fixed[n]) for n in self.weights}
        with warnings.catch_warnings():
            # Constant's torch rule wraps the (read-only) attribute array; nothing writes to it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return run_concrete(self.model, feeds, k=self.k, weights=w, observe=_straight_through)


_STEP_OPS = frozenset({"Sign", "Floor", "Ceil", "Round"})


def _straight_through(node: Node, ins: list[Any], outs: list[Any]) -> None:
    """Give step functions an identity gradient (outputs are replaced in place, values kept)."""
    if node.op_type not in _STEP_OPS or not outs or ins[0] is None:
        return
    x, y = ins[0], outs[0]
    if getattr(x, "requires_grad", False) and x.dtype.is_floating_point:
        outs[0] = y.detach() + (x - x.detach())


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with torch limited to ``n`` intra-op threads (``None``: unchanged)."""
    import torch

    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)

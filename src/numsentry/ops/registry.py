"""The operator registry: one declaration per ONNX op (or family) with all its rules.

An `OpDef` carries, on one screen:

* ``concrete``: the concrete rule, written against the Array API through a `Kernels` object
  (``k.xp`` is the namespace; ``k.conv`` etc. are the few kernels the Array API lacks), so the
  same code runs on NumPy and on PyTorch;
* ``interval``: the interval rule over `Box` values, usually *derived* from a declared property
  (`monotone`, `piecewise_monotone`) and otherwise written out;
* ``hazards``: invalid-input conditions, each with a rule code (NUM001...);
* numeric facts: ``ulps`` (kernel error allowed on float outputs), ``codomain`` (e.g. [0, 1] for
  Sigmoid), ``exact`` (point inputs fold through the concrete rule without rounding error),
  ``overflow_rule`` (the rule reported when finite inputs can give ±inf).

Ops are registered by (domain, op_type, since_version); the newest version not above the model's
opset wins. Rules receive the node's attributes, bound once and validated against the ONNX
schema, as keyword arguments. Analysis state never lives here: rules are pure functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from numsentry.domains.box import Box
from numsentry.dtypes import FloatFormat, is_float_dtype

if TYPE_CHECKING:
    from numsentry.ir.graph import Graph

__all__ = [
    "REGISTRY",
    "BoxSpec",
    "Ctx",
    "Hazard",
    "OpDef",
    "Registry",
    "register",
]


@dataclass
class Ctx:
    """What a rule may know beyond its inputs and attributes.

    Attributes:
        node_name: The node's stable name (for messages).
        op_type: The node's op type.
        opset: The model's opset for the node's domain.
        as_dtype: Name of the float format float32 tensors are analysed in (``--as-dtype``),
            or ``None`` to analyse the model's own dtypes.
        run_graph: Runs a subgraph (If/Loop/Scan bodies) in the current domain:
            ``run_graph(graph, inputs)`` returns the subgraph's outputs; names the subgraph
            reads from enclosing scopes are resolved by the caller.
        output_shapes: Shapes from ONNX shape inference for the node's outputs where known.
        output_dtypes: Element dtypes of the node's outputs where known (before ``as_dtype``).
    """

    node_name: str = "?"
    op_type: str = "?"
    opset: int = 21
    as_dtype: str | None = None
    run_graph: Callable[[Graph, list[Any]], list[Any]] | None = None
    output_shapes: list[tuple[int, ...] | None] = field(default_factory=list)
    output_dtypes: list[np.dtype | None] = field(default_factory=list)

    def analysed(self, dtype: np.dtype | int) -> np.dtype:
        """The dtype a tensor of ``dtype`` is analysed in (maps float32 under ``as_dtype``).

        ``dtype`` may also be an ONNX ``TensorProto`` element type (e.g. Cast's ``to``).
        """
        if isinstance(dtype, (int, np.integer)):
            from numsentry.dtypes import np_dtype_of

            dtype = np_dtype_of(int(dtype))
        dt = np.dtype(dtype)
        if self.as_dtype is not None and dt == np.float32:
            from numsentry.dtypes import float_format

            return float_format(self.as_dtype).np_dtype
        return dt

    def fmt(self, dtype: np.dtype) -> FloatFormat:
        """The float format of ``dtype`` (float32's for non-float dtypes)."""
        from numsentry.dtypes import FLOAT_FORMATS

        return FLOAT_FORMATS.get(np.dtype(dtype).name, FLOAT_FORMATS["float32"])


HazardCheck = Callable[[Ctx, Sequence["Box | None"], dict[str, Any]], "str | None"]
Restrict = Callable[[Ctx, Sequence["Box | None"], dict[str, Any]], "list[Box | None]"]


@dataclass(frozen=True)
class Hazard:
    """An invalid-input condition of an op.

    Attributes:
        rule: Rule code, e.g. ``NUM001`` (see `numsentry.reports.rules`).
        check: ``check(ctx, inputs, attrs)`` returns a message when some input allowed by the
            boxes is invalid (sound: it may say so when none is, never the reverse).
        restrict: Optional ``restrict(ctx, inputs, attrs)`` returning the inputs cut down to
            their valid part; used to tell findings that only follow from an earlier one.
    """

    rule: str
    check: HazardCheck
    restrict: Restrict | None = None


@dataclass(frozen=True)
class BoxSpec:
    """A test input drawn by a sampler: a box to sample concrete values from.

    Samplers return ``(inputs, attrs)`` where each input is a `BoxSpec`, a NumPy array (an
    exact input: shapes, indices, axes, fixed weights) or ``None`` (an omitted optional input).

    Attributes:
        lo: Lower bound (scalar or broadcastable to ``shape``).
        hi: Upper bound.
        shape: Tensor shape.
        dtype: NumPy dtype name.
    """

    lo: float
    hi: float
    shape: tuple[int, ...] = ()
    dtype: str = "float32"


ConcreteRule = Callable[..., Any]
IntervalRule = Callable[..., "Box | tuple[Box, ...]"]
Sampler = Callable[..., Any]


@dataclass(frozen=True)
class OpDef:
    """Everything numsentry knows about one ONNX operator (from ``since`` on).

    Attributes:
        op_type: ONNX op type, e.g. ``Exp``.
        concrete: ``concrete(k, *inputs, **attrs)`` on arrays of ``k.xp``; returns an array or
            a tuple of arrays.
        interval: ``interval(ctx, *boxes, **attrs)``; returns a Box or tuple of Boxes. Missing
            optional inputs arrive as ``None``.
        hazards: Invalid-input conditions.
        domain: ONNX domain (``""`` is the default ``ai.onnx``).
        since: First opset version this declaration covers.
        ulps: Kernel error, in ULPs of the output's format, allowed on float outputs.
        codomain: Mathematical range of the output (clamped after widening).
        exact: Point inputs fold through the concrete rule (NumPy, model dtypes) with no rounding
            beyond IEEE's: integer ops, shape ops, comparisons, +, -, *, /, sqrt...
        overflow_rule: Rule reported when finite inputs can give an infinite output; ``None``
            for ops that cannot overflow.
        differentiable: Whether torch gradients are meaningful (for the gradient tests).
        propagates_nan: Whether a NaN in any input may reach the outputs; ``False`` when the
            interval rule sets the output's NaN flag itself (e.g. Where drops a branch).
        sample: Test helper: ``sample(draw)`` returns ``(inputs, attrs)`` for property tests;
            ``None`` uses the generic elementwise sampler.
        doc: One line for ``numsentry ops``.
    """

    op_type: str
    concrete: ConcreteRule | None
    interval: IntervalRule | None
    hazards: tuple[Hazard, ...] = ()
    domain: str = ""
    since: int = 1
    ulps: int = 0
    codomain: tuple[float, float] | None = None
    exact: bool = False
    overflow_rule: str | None = "NUM007"
    differentiable: bool = True
    propagates_nan: bool = True
    sample: Sampler | None = None
    doc: str = ""
    property: str = "custom"


class Registry:
    """All op declarations, looked up by (domain, op_type, opset)."""

    def __init__(self) -> None:
        self._ops: dict[tuple[str, str], list[OpDef]] = {}

    def add(self, op: OpDef) -> OpDef:
        """Register ``op``; a second declaration of the same (domain, op_type, since) is a bug."""
        versions = self._ops.setdefault((op.domain, op.op_type), [])
        if any(v.since == op.since for v in versions):
            raise ValueError(f"{op.op_type} since {op.since} declared twice")
        versions.append(op)
        versions.sort(key=lambda o: o.since)
        return op

    def lookup(self, domain: str, op_type: str, opset: int) -> OpDef | None:
        """The newest declaration with ``since <= opset``, or ``None``."""
        domain = "" if domain == "ai.onnx" else domain
        best = None
        for v in self._ops.get((domain, op_type), []):
            if v.since <= opset:
                best = v
        return best

    def all(self) -> list[OpDef]:
        """Every declaration, sorted by op type then version."""
        return sorted(
            (o for vs in self._ops.values() for o in vs), key=lambda o: (o.domain, o.op_type, o.since)
        )

    def latest(self) -> list[OpDef]:
        """The newest declaration of every op."""
        return [vs[-1] for _, vs in sorted(self._ops.items())]

    def __contains__(self, op_type: str) -> bool:
        return ("", op_type) in self._ops


REGISTRY = Registry()


def register(op_type: str, *, since: int = 1, **kwargs: Any) -> OpDef:
    """Create an `OpDef` and add it to the global registry; returns it."""
    op = OpDef(op_type=op_type, since=since, concrete=kwargs.pop("concrete", None),
               interval=kwargs.pop("interval", None), **kwargs)
    return REGISTRY.add(op)


def float_out(box: Box) -> bool:
    """True when a box is a float tensor (bounds need rounding into its format)."""
    return is_float_dtype(box.dtype)

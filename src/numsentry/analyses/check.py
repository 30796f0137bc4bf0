"""`numsentry check`: every operator that can receive an invalid input, by interval analysis.

The model is interpreted over boxes (see `numsentry.domains.box`). At each node the op's
hazards are checked against the input boxes, and any float output that can become ±inf from
finite inputs is an overflow finding. To tell findings that can only fire because an earlier
one already produced inf/NaN, a *clean view* is kept next to the main one: downstream of a
finding it holds the boxes computed as if the earlier finding had not fired (its inputs cut to
their valid part, its outputs kept finite). A hazard that fires in the main view but not in the
clean view is reported with ``after_earlier_finding``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from numsentry.analyses.ranges import (
    DEFAULT_FLOAT_RANGE,
    DEFAULT_INT_RANGE,
    check_names,
    trainable_range,
)
from numsentry.analyses.relational import refine
from numsentry.domains.box import Box
from numsentry.dtypes import FLOAT_FORMATS, is_float_dtype
from numsentry.errors import UnsupportedOpError
from numsentry.interp import run_graph
from numsentry.ir.graph import Graph, Node
from numsentry.ir.load import Model
from numsentry.ops import REGISTRY
from numsentry.ops.apply import apply_interval
from numsentry.ops.registry import Ctx, OpDef
from numsentry.reports.finding import Finding
from numsentry.reports.rules import RULES

__all__ = ["CheckOptions", "CheckResult", "RangeInfo", "run_check"]


@dataclass
class CheckOptions:
    """Options of a check run (the CLI fills them from flags and files).

    Attributes:
        ranges: Ranges by tensor name (graph inputs or initializers).
        weights: ``stored`` (exact stored values) or ``trainable`` (RANUM's widened span).
        as_dtype: Analyse float32 tensors as if deployed in this format.
        unsupported: ``top`` (outputs become [-inf, inf]) or ``error``.
        rules: Enabled rule codes (``None``: all).
    """

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    weights: str = "stored"
    as_dtype: str | None = None
    unsupported: str = "top"
    rules: set[str] | None = None


@dataclass
class RangeInfo:
    """An assumed range and where it came from (``user``, ``default``, ``stored``, ``trainable``)."""

    name: str
    lo: float
    hi: float
    origin: str
    kind: str  # input | weight

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lo": self.lo, "hi": self.hi, "origin": self.origin, "kind": self.kind}


@dataclass
class CheckResult:
    """What a check found."""

    model: Model
    options: CheckOptions
    findings: list[Finding]
    ranges: list[RangeInfo]
    unsupported: dict[str, list[str]]  # op type -> node names
    nodes: int
    seconds: float
    outputs: dict[str, Box] = field(default_factory=dict)


def _clamp_finite(b: Box) -> Box:
    if b.is_point or not is_float_dtype(b.dtype):
        return b
    fmt = FLOAT_FORMATS.get(b.dtype.name, FLOAT_FORMATS["float32"])
    lo, hi = b.bounds64()
    lo = np.clip(lo, -fmt.max, fmt.max)
    hi = np.clip(hi, -fmt.max, fmt.max)
    return Box(lo, hi, b.shape, b.dtype, False)


def _infinite(b: Box | None) -> bool:
    if b is None or not is_float_dtype(b.dtype):
        return False
    return not (np.isfinite(b.min()) and np.isfinite(b.max()))


class _Checker:
    def __init__(self, model: Model, options: CheckOptions, progress: Callable[[Node], None] | None) -> None:
        self.model = model
        self.opt = options
        self.findings: dict[tuple[str, str], Finding] = {}
        self.unsupported: dict[str, list[str]] = {}
        self.clean: dict[str, Box] = {}
        self.progress = progress
        self.rules = options.rules if options.rules is not None else set(RULES)
        # value types of the graph each node lives in (subgraph nodes see their own graph's)
        self.types_of: dict[str, dict[str, Any]] = {}
        self._index_types(model.graph)
        # for the relational refinements: who produces each value, and value shapes
        self.producers: dict[str, Node] = {o: n for n in model.graph.all_nodes() for o in n.outputs if o}
        self.shapes: dict[str, tuple[int, ...]] = {}

    def _index_types(self, g: Graph) -> None:
        for n in g.nodes:
            self.types_of[n.name] = g.value_types
            for v in n.attrs.values():
                for sg in v if isinstance(v, list) else [v]:
                    if isinstance(sg, Graph):
                        self._index_types(sg)

    # ---- environment ------------------------------------------------------------------
    def initial_env(self) -> tuple[dict[str, Box], list[RangeInfo]]:
        g = self.model.graph
        known = [v.name for v in g.inputs] + list(g.initializers)
        check_names(self.opt.ranges, known)
        env: dict[str, Box] = {}
        infos: list[RangeInfo] = []
        ctx = Ctx(as_dtype=self.opt.as_dtype)
        for v in g.inputs:
            if v.shape is None or any(not isinstance(d, int) for d in v.shape):
                shape: tuple[int, ...] = tuple(d if isinstance(d, int) else 1 for d in (v.shape or []))
            else:
                shape = tuple(int(d) for d in v.shape if isinstance(d, int))
            dt = ctx.analysed(v.dtype)
            if v.name in self.opt.ranges:
                lo, hi = self.opt.ranges[v.name]
                origin = "user"
            else:
                lo, hi = DEFAULT_FLOAT_RANGE if is_float_dtype(dt) else DEFAULT_INT_RANGE
                if dt.kind == "b":
                    lo, hi = 0.0, 1.0
                origin = "default"
            env[v.name] = self._range_box(lo, hi, shape, dt)
            infos.append(RangeInfo(v.name, lo, hi, origin, "input"))
        for name, arr in g.initializers.items():
            dt = ctx.analysed(arr.dtype)
            if name in self.opt.ranges:
                lo, hi = self.opt.ranges[name]
                env[name] = self._range_box(lo, hi, arr.shape, dt)
                infos.append(RangeInfo(name, lo, hi, "user", "weight"))
            elif is_float_dtype(dt) and self.opt.weights == "trainable" and arr.ndim > 0:
                lo, hi = trainable_range(arr)
                env[name] = self._range_box(lo, hi, arr.shape, dt)
                infos.append(RangeInfo(name, lo, hi, "trainable", "weight"))
            else:
                env[name] = Box.point(arr.astype(dt) if dt != arr.dtype else arr)
                if is_float_dtype(dt) and arr.size:
                    infos.append(RangeInfo(name, float(np.nanmin(arr)), float(np.nanmax(arr)), "stored", "weight"))
        return env, infos

    def _range_box(self, lo: float, hi: float, shape: tuple[int, ...], dt: np.dtype) -> Box:
        if lo == hi and np.isfinite(lo):
            return Box.point(np.full(shape, lo, dtype=dt))
        if is_float_dtype(dt):
            from numsentry.dtypes import round_bounds

            fmt = FLOAT_FORMATS.get(dt.name, FLOAT_FORMATS["float32"])
            l64, h64 = round_bounds(np.array(lo), np.array(hi), fmt)
            return Box.range(l64, h64, shape, dt)
        return Box.range(np.ceil(lo), np.floor(hi), shape, dt)

    # ---- the step -----------------------------------------------------------------------
    def ctx(self, node: Node, scope: Mapping[str, Any], clean: bool) -> Ctx:
        g_types = self.types_of.get(node.name, self.model.graph.value_types)
        shapes: list[tuple[int, ...] | None] = []
        dtypes: list[np.dtype | None] = []
        for o in node.outputs:
            vi = g_types.get(o)
            if vi is not None and vi.shape is not None and all(isinstance(d, int) for d in vi.shape):
                shapes.append(tuple(int(d) for d in vi.shape))
            else:
                shapes.append(None)
            dtypes.append(vi.dtype if vi is not None and vi.elem_type else None)

        self_ctx = Ctx(as_dtype=self.opt.as_dtype)

        def sub(graph: Graph, inputs: list[Any]) -> list[Any]:
            env = {v.name: b for v, b in zip(graph.inputs, inputs, strict=False)}
            for k, v in graph.initializers.items():
                dt = self_ctx.analysed(v.dtype)
                env[k] = Box.point(v.astype(dt) if dt != v.dtype else v)
            outer = self._clean_scope(scope) if clean else scope
            return run_graph(graph, env, self.step, outer=outer)

        return Ctx(node_name=node.name, op_type=node.op_type, opset=node.opset, as_dtype=self.opt.as_dtype,
                   run_graph=sub, output_shapes=shapes, output_dtypes=dtypes)

    def _clean_scope(self, scope: Mapping[str, Any]) -> Mapping[str, Any]:
        class _View(Mapping[str, Any]):
            def __init__(s, base: Mapping[str, Any], over: dict[str, Box]) -> None:
                s.base, s.over = base, over

            def __getitem__(s, k: str) -> Any:
                return s.over.get(k, s.base[k])

            def __iter__(s) -> Any:
                return iter(s.base)

            def __len__(s) -> int:
                return len(s.base)

        return _View(scope, self.clean)

    def top_outputs(self, node: Node, ctx: Ctx) -> list[Box]:
        outs = []
        for shape, dt in zip(ctx.output_shapes, ctx.output_dtypes, strict=False):
            outs.append(Box.top(shape or (), ctx.analysed(dt) if dt is not None else np.dtype(np.float32)))
        return outs

    def step(self, node: Node, ins: list[Box | None], scope: Mapping[str, Any]) -> list[Box]:
        op = REGISTRY.lookup(node.domain, node.op_type, node.opset)
        ctx = self.ctx(node, scope, clean=False)
        if op is None:
            self.unsupported.setdefault(node.op_type if not node.domain else f"{node.domain}.{node.op_type}", []).append(node.name)
            if self.opt.unsupported == "error":
                raise UnsupportedOpError(f"node {node.label}: no rule for {node.op_type} (opset {node.opset})",
                                         hint="see `numsentry ops`; drop --unsupported error to treat its outputs as unknown")
            for out_name in node.outputs:
                self.clean.pop(out_name, None)
            return self.top_outputs(node, ctx)
        clean_ins = [self.clean.get(name, b) if name else None for name, b in zip(node.inputs, ins, strict=False)]
        differs = any(c is not b for c, b in zip(clean_ins, ins, strict=False)) or any(
            isinstance(v, Graph) and any(r in self.clean for r in v.outer_refs) for v in node.attrs.values())
        cctx = self.ctx(node, scope, clean=True) if differs else ctx
        # hazards depend on the inputs only: check them even if the interval rule declines
        fired: list[Any] = []
        for hz in op.hazards:
            if hz.rule not in self.rules:
                continue
            msg = hz.check(ctx, ins, node.attrs)
            # the clean view is checked too: a hazard may decline on a non-finite main view
            clean_msg = hz.check(cctx, clean_ins, node.attrs) if differs else msg
            if msg is None and clean_msg is None:
                continue
            self.report(node, op, hz.rule, clean_msg or msg or "", ins, ctx, after=clean_msg is None)
            if clean_msg is not None:
                fired.append(hz)
        try:
            outs = refine(node, ins, list(apply_interval(op, ctx, ins, node.attrs)), self.producers, self.shapes)
            clean_outs = (refine(node, clean_ins, list(apply_interval(op, cctx, clean_ins, node.attrs)),
                                 self.producers, self.shapes) if differs else outs)
            for hz in fired:
                if hz.restrict is not None:
                    clean_ins = hz.restrict(cctx, clean_ins, node.attrs)
                    clean_outs = list(apply_interval(op, cctx, clean_ins, node.attrs))
        except (NotImplementedError, ValueError, IndexError, TypeError, KeyError) as e:
            # a rule that cannot handle this configuration: sound fallback, listed as unsupported
            key = f"{node.op_type} ({type(e).__name__}: {str(e)[:80]})"
            self.unsupported.setdefault(key, []).append(node.name)
            if self.opt.unsupported == "error":
                raise UnsupportedOpError(f"node {node.label}: {e}") from e
            for out_name in node.outputs:
                self.clean.pop(out_name, None)
            return self.top_outputs(node, ctx)
        fired_clean = bool(fired)
        # an infinite output already explained by this node's own hazard is not a second finding
        if op.overflow_rule is not None and op.overflow_rule in self.rules and not fired:
            clean_in_finite = all(not _infinite(b) for b in clean_ins)
            if clean_in_finite and any(_infinite(b) for b in clean_outs):
                # independent even downstream of a finding: finite values up to the dtype's
                # limit can overflow here (ten exps of 88 each are finite; their sum is not)
                self.report(node, op, op.overflow_rule, self._overflow_msg(op, clean_outs, ctx), ins, ctx,
                            after=False)
                fired_clean = True
        if fired_clean:
            clean_outs = [_clamp_finite(b) for b in clean_outs]
        for name, o, c in zip(node.outputs, outs, clean_outs, strict=False):
            self.shapes[name] = o.shape
            if c is not o:
                self.clean[name] = c
            else:
                self.clean.pop(name, None)
        return outs

    def _overflow_msg(self, op: OpDef, outs: list[Box], ctx: Ctx) -> str:
        b = next(o for o in outs if _infinite(o))
        fmt = ctx.fmt(b.dtype)
        return f"output can exceed the {fmt.name} range (max {fmt.max:.6g}) and become inf: {b.describe()}"

    def report(self, node: Node, op: OpDef, rule: str, msg: str, ins: list[Box | None], ctx: Ctx, after: bool) -> None:
        key = (rule, node.name)
        if key in self.findings:
            old = self.findings[key]
            old.after_earlier_finding = old.after_earlier_finding and after
            return
        intervals = []
        for name, b in zip(node.inputs, ins, strict=False):
            if b is None:
                continue
            intervals.append({"name": name, "interval": b.describe(), "lo": _j(b.min()), "hi": _j(b.max()),
                              "may_be_nan": b.nan, "shape": list(b.shape)})
        dt = next((b.dtype for b in ins if b is not None and is_float_dtype(b.dtype)), None)
        self.findings[key] = Finding(
            rule=rule, name=RULES[rule].name, node=node.name, op_type=node.op_type, outputs=list(node.outputs),
            input_intervals=intervals, dtype=dt.name if dt is not None else "n/a", message=msg,
            after_earlier_finding=after, source=node.source,
        )

    def on_free(self, name: str) -> None:
        self.clean.pop(name, None)


def _j(v: float) -> float | str:
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(v)


def run_check(model: Model, options: CheckOptions | None = None,
              progress: Callable[[Node], None] | None = None) -> CheckResult:
    """Run the static check on a loaded model.

    Args:
        model: From `numsentry.ir.load_model`.
        options: Ranges, weights mode, dtype, unsupported-op policy, enabled rules.
        progress: Called after each top-level node (for progress bars).

    Returns:
        The findings (in graph order), assumed ranges, unsupported ops and timing.

    Raises:
        RangeError: A range names an unknown tensor.
        UnsupportedOpError: An op has no rule and ``unsupported == "error"``.
    """
    opt = options or CheckOptions()
    t0 = time.perf_counter()
    checker = _Checker(model, opt, progress)
    env, infos = checker.initial_env()
    checker.shapes.update({k: b.shape for k, b in env.items()})
    outs = run_graph(model.graph, env, checker.step, on_free=checker.on_free, progress=progress)
    order = {n.name: i for i, n in enumerate(model.graph.all_nodes())}
    findings = sorted(checker.findings.values(), key=lambda f: (order.get(f.node, 1 << 30), f.rule))
    return CheckResult(
        model=model, options=opt, findings=findings, ranges=infos, unsupported=checker.unsupported,
        nodes=len(model.graph.all_nodes()), seconds=time.perf_counter() - t0,
        outputs={o.name: b for o, b in zip(model.graph.outputs, outs, strict=False)},
    )

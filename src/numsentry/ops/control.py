"""Control flow: If, Loop, Scan (bodies are subgraphs, run in the current domain).

Interval semantics:

* **If** with a known condition runs only the taken branch (hazards in the other branch are
  not reported: they cannot happen); with an unknown condition it runs both and joins their
  outputs (branches whose output shapes differ are not supported).
* **Loop** with a trip count whose upper bound is at most `UNROLL` is unrolled exactly: every
  iteration runs on the previous iteration's boxes; where the loop *may* stop (a trip count
  that is a range, a condition that may be false) the exit states are joined. Otherwise the
  loop-carried values are iterated to a post-fixpoint: ``X <- X join body(X)``, widening
  bounds that still move to +-inf (or the integer range) after `WIDEN_AFTER` rounds, so the
  analysis terminates for any trip count; the body then runs once more on the fixpoint, which
  bounds every iteration. Scan outputs need a known count (a point trip count and a condition
  that cannot end the loop early).
* **Scan** walks the sequence: unrolled (per-step precision) when it has at most `UNROLL`
  steps, else the state is iterated to a fixpoint with the hull of all slices and the scan
  outputs share one block along the scan axis.

Hazards inside bodies are found because bodies run through ``ctx.run_graph``, i.e. the checker's
own step (nodes inside are named ``<parent>/<attr>/<node>``).

Concrete rules run bodies with a small private interpreter (`numsentry.interp.run_graph` plus
the registry's concrete rules). Values a body reads from *enclosing* scopes are not among the
op's inputs: a concrete interpreter that runs a model with control flow publishes its scope with
`concrete_scope` (this module's own interpreter does so for nested bodies). Without it, concrete
If/Loop/Scan rules support bodies that only read their own inputs and initializers, and raise
`NotImplementedError` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import onnx

from numsentry.domains.box import Box
from numsentry.dtypes import is_float_dtype
from numsentry.interp import run_graph
from numsentry.ir.graph import Graph, Node
from numsentry.ops.apply import apply_concrete, apply_interval
from numsentry.ops.registry import REGISTRY, BoxSpec, Ctx, register

__all__ = ["UNROLL", "WIDEN_AFTER", "concrete_scope"]

#: Loops and scans with at most this many iterations are unrolled exactly.
UNROLL = 64
#: Fixpoint rounds before bounds that still move are widened to infinity.
WIDEN_AFTER = 3
#: Rounds after which a fixpoint iteration gives up (NotImplementedError: outputs unknown).
_MAX_ROUNDS = 64

_OUTER: ContextVar[Mapping[str, Any] | None] = ContextVar("numsentry_concrete_outer", default=None)


@contextmanager
def concrete_scope(scope: Mapping[str, Any]) -> Iterator[None]:
    """Make ``scope`` (name -> array) visible to bodies run by concrete If/Loop/Scan rules.

    A concrete model interpreter wraps the call of a control-flow op's concrete rule in this,
    passing the values of the enclosing graph, so that bodies can read outer-scope names.
    """
    token = _OUTER.set(scope)
    try:
        yield
    finally:
        _OUTER.reset(token)


# ---- running bodies ---------------------------------------------------------------------


def _graph(g: Graph | onnx.GraphProto) -> Graph:
    """Bodies arrive as `Graph` (loader-bound attributes); a raw GraphProto is converted."""
    if isinstance(g, Graph):
        return g
    if isinstance(g, onnx.GraphProto):
        from numsentry.ir.load import _convert_graph, max_opset  # the loader's own conversion

        return _convert_graph(g, {"": max_opset()}, "<subgraph>", prefix=f"{g.name}/")
    raise TypeError(f"expected a graph attribute, got {type(g).__name__}")


def _run_concrete(k: Any, body: Graph | onnx.GraphProto, inputs: Sequence[Any]) -> list[Any]:
    g = _graph(body)
    outer = _OUTER.get()
    if g.outer_refs and outer is None:
        raise NotImplementedError(
            f"body {g.name!r} reads {sorted(g.outer_refs)[:3]} from the enclosing graph; concrete "
            "control-flow rules see them only inside numsentry.ops.control.concrete_scope(...)")
    env: dict[str, Any] = {v.name: x for v, x in zip(g.inputs, inputs, strict=False)}
    # torch warns about (and must not write through) read-only arrays: copy those
    env.update({name: k.asarray(arr if arr.flags.writeable else arr.copy()) for name, arr in g.initializers.items()})

    def step(node: Node, ins: list[Any], scope: Mapping[str, Any]) -> list[Any]:
        op = REGISTRY.lookup(node.domain, node.op_type, node.opset)
        if op is None:
            raise NotImplementedError(f"no rule for {node.op_type} inside a body")
        with concrete_scope(scope):  # nested bodies see this body's values
            return list(apply_concrete(op, k, ins, node.attrs))

    return run_graph(g, env, step, outer=outer)


def _plain_interval(as_dtype: str | None, g: Graph, inputs: Sequence[Box | None],
                    outer: Mapping[str, Any] | None) -> list[Box]:
    """Box interpretation without a checker (no hazards): for callers whose Ctx has no run_graph."""
    env: dict[str, Any] = {v.name: b for v, b in zip(g.inputs, inputs, strict=False)}
    env.update({name: Box.point(arr) for name, arr in g.initializers.items()})

    def step(node: Node, ins: list[Any], scope: Mapping[str, Any]) -> list[Any]:
        op = REGISTRY.lookup(node.domain, node.op_type, node.opset)
        if op is None:
            raise NotImplementedError(f"no rule for {node.op_type} inside a body")
        sub = Ctx(node_name=node.name, op_type=node.op_type, opset=node.opset, as_dtype=as_dtype,
                  run_graph=lambda gg, ii: _plain_interval(as_dtype, gg, ii, scope))
        return list(apply_interval(op, sub, ins, node.attrs))

    return run_graph(g, env, step, outer=outer)


def _run_interval(ctx: Ctx, body: Graph | onnx.GraphProto, inputs: Sequence[Box | None]) -> list[Box]:
    g = _graph(body)
    if ctx.run_graph is not None:
        return list(ctx.run_graph(g, list(inputs)))
    if g.outer_refs:
        raise NotImplementedError("body reads the enclosing graph but the caller gave no run_graph")
    return _plain_interval(ctx.as_dtype, g, inputs, None)


# ---- box helpers ------------------------------------------------------------------------


def _bounds(b: Box) -> tuple[np.ndarray, np.ndarray]:
    """Float64 bounds with exactly ``b.rank`` dims (size 1 where coarse)."""
    lo, hi = b.bounds64()
    r = b.rank
    if lo.ndim < r:
        lo = lo.reshape((1,) * (r - lo.ndim) + lo.shape)
    if hi.ndim < r:
        hi = hi.reshape((1,) * (r - hi.ndim) + hi.shape)
    return lo, hi


def _same_point(a: Box, b: Box) -> bool:
    if not (a.is_point and b.is_point) or a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(a.value, b.value, equal_nan=is_float_dtype(a.dtype)))


def _join(a: Box, b: Box, what: str = "value") -> Box:
    if a is b or _same_point(a, b):
        return a
    if a.shape != b.shape:
        raise NotImplementedError(f"{what} has shape {a.shape} on one path and {b.shape} on another")
    al, ah = _bounds(a)
    bl, bh = _bounds(b)
    return Box(np.minimum(al, bl), np.maximum(ah, bh), a.shape, a.dtype, a.nan or b.nan)


def _leq(a: Box, b: Box) -> bool:
    """``a`` is contained in ``b``."""
    if a is b or _same_point(a, b):
        return True
    if a.shape != b.shape or (a.nan and not b.nan):
        return False
    if b.is_point:
        return False
    al, ah = _bounds(a)
    bl, bh = _bounds(b)
    return bool(np.all(al >= bl) and np.all(ah <= bh))


def _dtype_range(dt: np.dtype) -> tuple[float, float]:
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return float(info.min), float(info.max)
    if dt.kind == "b":
        return 0.0, 1.0
    return -np.inf, np.inf


def _sanitize(b: Box) -> Box:
    """Integer bounds outside the dtype's range mean wrap-around: anything in the range."""
    if b.is_point or b.dtype.kind not in "iu":
        return b
    lo, hi = _bounds(b)
    mn, mx = _dtype_range(b.dtype)
    if bool(np.any(lo < mn) or np.any(hi > mx)):
        return Box.range(mn, mx, b.shape, b.dtype)
    return b


def _widen(old: Box, new: Box) -> Box:
    """Bounds of ``new`` that moved beyond ``old`` jump to the end of the dtype's range."""
    if _leq(new, old):
        return old
    ol, oh = _bounds(old)
    nl, nh = _bounds(new)
    mn, mx = _dtype_range(new.dtype)
    lo = np.where(nl < ol, mn, nl)
    hi = np.where(nh > oh, mx, nh)
    return Box(lo, hi, new.shape, new.dtype, new.nan)


def _take(b: Box, axis: int, t: int) -> Box:
    """Element ``t`` along ``axis`` (the axis is dropped)."""
    if b.is_point:
        return Box.point(np.take(b.value, t, axis=axis))
    lo, hi = _bounds(b)
    lo = np.take(lo, 0 if lo.shape[axis] == 1 else t, axis=axis)
    hi = np.take(hi, 0 if hi.shape[axis] == 1 else t, axis=axis)
    return Box(lo, hi, b.shape[:axis] + b.shape[axis + 1:], b.dtype, b.nan)


def _hull_axis(b: Box, axis: int) -> Box:
    """A box for every element along ``axis`` (the axis is dropped)."""
    lo, hi = _bounds(b)
    return Box(lo.min(axis=axis), hi.max(axis=axis), b.shape[:axis] + b.shape[axis + 1:], b.dtype, b.nan)


def _stack(boxes: Sequence[Box], axis: int) -> Box:
    """Stack per-step boxes along a new ``axis`` (one block per step: per-step precision)."""
    first = boxes[0]
    for b in boxes[1:]:
        if b.shape != first.shape:
            raise NotImplementedError(f"scan output changes shape across iterations ({first.shape} vs {b.shape})")
    if all(b.is_point for b in boxes):
        return Box.point(np.stack([b.value for b in boxes], axis=axis))
    pairs = [_bounds(b) for b in boxes]
    common = np.broadcast_shapes(*(p.shape for pair in pairs for p in pair))
    lo = np.stack([np.broadcast_to(p[0], common) for p in pairs], axis=axis)
    hi = np.stack([np.broadcast_to(p[1], common) for p in pairs], axis=axis)
    shape = (*first.shape[:axis], len(boxes), *first.shape[axis:])
    return Box(lo, hi, shape, first.dtype, any(b.nan for b in boxes)).coarsen()


def _repeat_axis(b: Box, axis: int, n: int) -> Box:
    """The same box for each of ``n`` steps along a new ``axis`` (one coarse block)."""
    shape = (*b.shape[:axis], n, *b.shape[axis:])
    if b.is_point:
        return Box.point(np.ascontiguousarray(np.broadcast_to(np.expand_dims(b.value, axis), shape)))
    lo, hi = _bounds(b)
    return Box(np.expand_dims(lo, axis), np.expand_dims(hi, axis), shape, b.dtype, b.nan)


def _truth(b: Box | None) -> tuple[bool, bool]:
    """(may be true, may be false) of a boolean scalar box; an omitted one is true."""
    if b is None:
        return True, False
    if b.is_point:
        v = bool(np.asarray(b.value).reshape(-1)[0])
        return v, not v
    lo, hi = b.min(), b.max()
    return hi > 0, lo <= 0


def _empty_scan(g: Graph, index: int, dt: np.dtype | None = None) -> np.ndarray:
    """Zero iterations: a scan output of length 0 (needs the body's declared output shape)."""
    vi = g.outputs[index]
    if vi.shape is None or any(not isinstance(d, int) for d in vi.shape):
        raise NotImplementedError("zero iterations and a scan output of unknown shape")
    return np.zeros((0, *[int(d) for d in vi.shape]), dtype=dt or vi.dtype)  # type: ignore[arg-type]


def _scalar(k: Any, x: Any) -> Any:
    return np.asarray(k.to_numpy(x)).reshape(-1)[0]


# ---- If -------------------------------------------------------------------------------------


def _if_c(k: Any, cond: Any, then_branch: Any = None, else_branch: Any = None) -> tuple[Any, ...]:
    branch = then_branch if bool(_scalar(k, cond)) else else_branch
    return tuple(_run_concrete(k, branch, []))


def _if_iv(ctx: Ctx, cond: Box, then_branch: Any = None, else_branch: Any = None) -> tuple[Box, ...]:
    may_true, may_false = _truth(cond)
    if may_true and not may_false:
        return tuple(_run_interval(ctx, then_branch, []))
    if may_false and not may_true:
        return tuple(_run_interval(ctx, else_branch, []))
    a = _run_interval(ctx, then_branch, [])
    b = _run_interval(ctx, else_branch, [])
    return tuple(_join(x, y, f"If output {i}") for i, (x, y) in enumerate(zip(a, b, strict=True)))


# ---- Loop -----------------------------------------------------------------------------------


def _loop_c(k: Any, m: Any, cond: Any, *v: Any, body: Any = None) -> tuple[Any, ...]:
    g = _graph(body)
    n = len(v)
    trip = None if m is None else int(_scalar(k, m))
    go = True if cond is None else bool(_scalar(k, cond))
    state = list(v)
    scans: list[list[Any]] = [[] for _ in range(len(g.outputs) - 1 - n)]
    i = 0
    while go and (trip is None or i < trip):
        outs = _run_concrete(k, g, [k.asarray(np.array(i, dtype=np.int64)), k.asarray(np.array(True)), *state])
        go = bool(_scalar(k, outs[0]))
        state = list(outs[1:1 + n])
        for j, s in enumerate(outs[1 + n:]):
            scans[j].append(s)
        i += 1
    stacked = [k.xp.stack(s, axis=0) if s else k.asarray(_empty_scan(g, 1 + n + j))
               for j, s in enumerate(scans)]
    return (*state, *stacked)


def _loop_iv(ctx: Ctx, m: Box | None, cond: Box | None, *v: Box, body: Any = None) -> tuple[Box, ...]:
    g = _graph(body)
    n, n_scan = len(v), len(g.outputs) - 1 - len(v)
    if m is None:
        m_lo = m_hi = np.inf
    else:
        m_lo, m_hi = max(m.min(), 0.0), max(m.max(), 0.0)
    if m_hi <= UNROLL:
        return _loop_unrolled(ctx, g, int(m_lo), int(m_hi), cond, list(v), n, n_scan)
    return _loop_fixpoint(ctx, g, m_lo, m_hi, cond, list(v), n, n_scan)


def _loop_unrolled(ctx: Ctx, g: Graph, m_lo: int, m_hi: int, cond: Box | None, state: list[Box],
                   n: int, n_scan: int) -> tuple[Box, ...]:
    may_true, may_false = _truth(cond)
    exit_state: list[Box] | None = None
    fixed_count = True
    scans: list[list[Box]] = [[] for _ in range(n_scan)]
    true = Box.point(np.array(True))
    for i in range(m_hi + 1):
        may_stop = may_false or i >= m_lo
        must_stop = not may_true or i >= m_hi
        if may_stop:
            exit_state = state if exit_state is None else [
                _join(a, b, f"Loop-carried value {j}") for j, (a, b) in enumerate(zip(exit_state, state, strict=True))]
            if not must_stop:
                fixed_count = False
        if must_stop:
            break
        outs = _run_interval(ctx, g, [Box.point(np.array(i, dtype=np.int64)), true, *state])
        may_true, may_false = _truth(outs[0])
        state = [_sanitize(b) for b in outs[1:1 + n]]
        for j, s in enumerate(outs[1 + n:]):
            scans[j].append(s)
    assert exit_state is not None
    if not n_scan:
        return tuple(exit_state)
    if not fixed_count:
        raise NotImplementedError("Loop scan outputs whose length depends on the data (the loop may stop early)")
    stacked = [_stack(s, 0) if s else Box.point(_empty_scan(g, 1 + n + j)) for j, s in enumerate(scans)]
    return (*exit_state, *stacked)


def _fixpoint(ctx: Ctx, g: Graph, before: Sequence[Box], state: list[Box], after: Sequence[Box],
              out0: int, what: str) -> tuple[list[Box], list[Box]]:
    """Post-fixpoint of ``state <- state join body(before..., state..., after...)`` with widening.

    The body's new states are its outputs ``out0 .. out0 + len(state)``. Returns the fixpoint and
    the body's outputs on it, which bound the outputs of every iteration.
    """
    x = list(state)
    n = len(x)
    for rnd in range(_MAX_ROUNDS):
        outs = _run_interval(ctx, g, [*before, *x, *after])
        new_state = [_sanitize(b) for b in outs[out0:out0 + n]]
        if all(_leq(b, a) for a, b in zip(x, new_state, strict=True)):
            return x, outs
        joined = [_join(a, b, f"{what} state {j}") for j, (a, b) in enumerate(zip(x, new_state, strict=True))]
        if rnd >= WIDEN_AFTER:
            joined = [_widen(a, b) for a, b in zip(x, joined, strict=True)]
        x = joined
    raise NotImplementedError(f"{what}: no fixpoint after {_MAX_ROUNDS} rounds")


def _loop_fixpoint(ctx: Ctx, g: Graph, m_lo: float, m_hi: float, cond: Box | None, state: list[Box],
                   n: int, n_scan: int) -> tuple[Box, ...]:
    may_true, may_false = _truth(cond)
    if not may_true:
        if n_scan:
            return (*state, *(Box.point(_empty_scan(g, 1 + n + j)) for j in range(n_scan)))
        return tuple(state)
    top = float(np.iinfo(np.int64).max) - 1
    it = Box.range(0.0, min(m_hi - 1, top), (), np.dtype(np.int64))
    true = Box.point(np.array(True))
    fix, outs = _fixpoint(ctx, g, [it, true], state, [], 1, "Loop")
    if not n_scan:
        return tuple(fix)
    _, body_may_false = _truth(outs[0])
    if m_lo != m_hi or not np.isfinite(m_hi) or may_false or body_may_false:
        raise NotImplementedError("Loop scan outputs need a constant trip count and a condition that stays true")
    count = int(m_hi)
    return (*fix, *(_repeat_axis(s, 0, count) for s in outs[1 + n:]))


# ---- Scan -----------------------------------------------------------------------------------


def _scan_c(k: Any, *inputs: Any, body: Any = None, num_scan_inputs: int = 1, scan_input_axes: Any = None,
            scan_input_directions: Any = None, scan_output_axes: Any = None,
            scan_output_directions: Any = None) -> tuple[Any, ...]:
    g = _graph(body)
    m = int(num_scan_inputs)
    n = len(inputs) - m
    state, xs = list(inputs[:n]), list(inputs[n:])
    n_out = len(g.outputs) - n
    in_axes = [int(a) % len(x.shape) for a, x in zip(scan_input_axes or [0] * m, xs, strict=True)]
    in_dirs = [int(d) for d in (scan_input_directions or [0] * m)]
    length = int(xs[0].shape[in_axes[0]])
    steps: list[list[Any]] = [[] for _ in range(n_out)]
    for t in range(length):
        sl = []
        for x, ax, d in zip(xs, in_axes, in_dirs, strict=True):
            idx: list[Any] = [slice(None)] * len(x.shape)
            idx[ax] = length - 1 - t if d else t
            sl.append(x[tuple(idx)])
        outs = _run_concrete(k, g, [*state, *sl])
        state = list(outs[:n])
        for j, s in enumerate(outs[n:]):
            steps[j].append(s)
    results = []
    out_axes = scan_output_axes or [0] * n_out
    out_dirs = scan_output_directions or [0] * n_out
    for j, s in enumerate(steps):
        if not s:
            results.append(k.asarray(_empty_scan(g, n + j)))
            continue
        ax = int(out_axes[j]) % (len(s[0].shape) + 1)
        results.append(k.xp.stack(s[::-1] if out_dirs[j] else s, axis=ax))
    return (*state, *results)


def _scan_iv(ctx: Ctx, *inputs: Box, body: Any = None, num_scan_inputs: int = 1, scan_input_axes: Any = None,
             scan_input_directions: Any = None, scan_output_axes: Any = None,
             scan_output_directions: Any = None) -> tuple[Box, ...]:
    g = _graph(body)
    m = int(num_scan_inputs)
    n = len(inputs) - m
    state, xs = list(inputs[:n]), list(inputs[n:])
    n_out = len(g.outputs) - n
    in_axes = [int(a) % x.rank for a, x in zip(scan_input_axes or [0] * m, xs, strict=True)]
    in_dirs = [int(d) for d in (scan_input_directions or [0] * m)]
    out_axes_raw = [int(a) for a in (scan_output_axes or [0] * n_out)]
    out_dirs = [int(d) for d in (scan_output_directions or [0] * n_out)]
    lengths = {x.shape[ax] for x, ax in zip(xs, in_axes, strict=True)}
    if len(lengths) != 1:
        raise ValueError(f"Scan inputs disagree on the sequence length: {sorted(lengths)}")
    length = lengths.pop()
    if length <= UNROLL:
        steps: list[list[Box]] = [[] for _ in range(n_out)]
        for t in range(length):
            sl = [_take(x, ax, length - 1 - t if d else t) for x, ax, d in zip(xs, in_axes, in_dirs, strict=True)]
            outs = _run_interval(ctx, g, [*state, *sl])
            state = [_sanitize(b) for b in outs[:n]]
            for j, s in enumerate(outs[n:]):
                steps[j].append(s)
        results: list[Box] = []
        for j, seq in enumerate(steps):
            if not seq:
                results.append(Box.point(_empty_scan(g, n + j)))
                continue
            ax = out_axes_raw[j] % (seq[0].rank + 1)
            results.append(_stack(seq[::-1] if out_dirs[j] else seq, ax))
        return (*state, *results)
    hulls = [_hull_axis(x, ax) for x, ax in zip(xs, in_axes, strict=True)]
    fix, outs = _fixpoint(ctx, g, [], state, hulls, 0, "Scan")
    results = [_repeat_axis(s, out_axes_raw[j] % (s.rank + 1), length) for j, s in enumerate(outs[n:])]
    return (*fix, *results)


# ---- samplers (property tests) -----------------------------------------------------------


def _f32(name: str, shape: Sequence[int]) -> onnx.ValueInfoProto:
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(shape))


def _const(name: str, value: float) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def _if_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    # rank >= 1: scalar Tanh boxes come out with lo of shape (1,) (dtypes._keys, reported)
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    branches = []
    for tag in ("then", "else"):
        # quarters: the branches test If, not Tanh at subnormal inputs
        n = int(np.prod(shape))
        c = (np.asarray(draw(st.lists(st.integers(-16, 16), min_size=n, max_size=n)), dtype=np.float32)
             / 4).reshape(shape)
        nodes = [onnx.helper.make_node("Constant", [], [f"{tag}_c"], value=onnx.numpy_helper.from_array(c)),
                 onnx.helper.make_node("Tanh", [f"{tag}_c"], [f"{tag}_y"])]
        branches.append(onnx.helper.make_graph(nodes, tag, [], [_f32(f"{tag}_y", shape)]))
    cond: Any = BoxSpec(0, 1, (), "bool") if draw(st.booleans()) else np.array(draw(st.booleans()))
    return [cond], {"then_branch": branches[0], "else_branch": branches[1]}


def _loop_body(shape: tuple[int, ...], with_scan: bool) -> onnx.GraphProto:
    nodes = [onnx.helper.make_node("Mul", ["x", "half"], ["y"]),
             onnx.helper.make_node("Add", ["y", "one"], ["z"]),
             onnx.helper.make_node("Identity", ["cond_in"], ["cond_out"])]
    outs = [onnx.helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []), _f32("z", shape)]
    if with_scan:
        outs.append(_f32("y", shape))
    ins = [onnx.helper.make_tensor_value_info("iter", onnx.TensorProto.INT64, []),
           onnx.helper.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, []), _f32("x", shape)]
    return onnx.helper.make_graph(nodes, "body", ins, outs, initializer=[_const("half", 0.5), _const("one", 1.0)])


def _loop_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    from numsentry.ops.rules import draw_interval, draw_shape

    shape = draw_shape(draw, max_rank=2, max_dim=3)
    lo, hi = draw_interval(draw, -5, 5)
    if draw(st.booleans()):  # constant trip count: exact unrolling, scan outputs
        m: Any = np.array(draw(st.integers(1, 4)), dtype=np.int64)
        return [m, np.array(True), BoxSpec(lo, hi, shape)], {"body": _loop_body(shape, True)}
    m = BoxSpec(0, draw(st.integers(0, 6)), (), "int64")  # a range of trip counts: joined exits
    return [m, None, BoxSpec(lo, hi, shape)], {"body": _loop_body(shape, False)}


def _scan_sample(draw: Any) -> tuple[list[Any], dict[str, Any]]:
    from hypothesis import strategies as st

    from numsentry.ops.rules import draw_interval

    k, length = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    axis = draw(st.integers(0, 1))
    lo, hi = draw_interval(draw, -2, 2)
    lo2, hi2 = draw_interval(draw, -2, 2)
    body = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["s", "x"], ["s2"]), onnx.helper.make_node("Relu", ["s2"], ["y"])],
        "body", [_f32("s", (k,)), _f32("x", (k,))], [_f32("s2", (k,)), _f32("y", (k,))])
    attrs = {"body": body, "num_scan_inputs": 1, "scan_input_axes": [axis],
             "scan_input_directions": [draw(st.integers(0, 1))],
             "scan_output_axes": [draw(st.sampled_from([0, 1, -1]))],
             "scan_output_directions": [draw(st.integers(0, 1))]}
    xshape = (length, k) if axis == 0 else (k, length)
    return [BoxSpec(lo, hi, (k,)), BoxSpec(lo2, hi2, xshape)], attrs


# ---- registration -------------------------------------------------------------------------


def _versions(op_type: str, floor: int = 13) -> list[int]:
    """Versions of ``op_type`` the installed onnx defines, from the one in force at ``floor`` on."""
    vs = sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                 if s.name == op_type and s.domain == ""})
    base = max((v for v in vs if v <= floor), default=vs[0])
    return [v for v in vs if v >= base]


for _v in _versions("If"):
    register(
        "If", since=_v, concrete=_if_c, interval=_if_iv, overflow_rule=None, property="control flow",
        sample=_if_sample,
        doc="runs one branch; known condition: the taken branch only, else both, joined",
    )
for _v in _versions("Loop"):
    register(
        "Loop", since=_v, concrete=_loop_c, interval=_loop_iv, overflow_rule=None, property="control flow",
        sample=_loop_sample,
        doc=f"loop; unrolled up to {UNROLL} iterations, else a widened fixpoint",
    )
for _v in _versions("Scan"):
    register(
        "Scan", since=_v, concrete=_scan_c, interval=_scan_iv, overflow_rule=None, property="control flow",
        sample=_scan_sample,
        doc=f"scan over sequence axes; unrolled up to {UNROLL} steps, else a widened fixpoint",
    )

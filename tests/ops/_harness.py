"""Helpers of the registry-driven op property tests (tests/ops/test_op_properties.py).

One *case* is what an op's sampler drew: inputs (`BoxSpec`, exact NumPy arrays or ``None``)
and attributes. From a case the harness builds what every check needs:

* the input boxes (float endpoints rounded into the input's format with ``round_bounds``);
* concrete points inside the boxes (corners, random points, mixtures) in the input dtypes;
* a single-node ONNX model (box inputs are graph inputs, exact arrays initializers) with the
  attributes bound exactly as the model loader binds them (schema defaults filled in), and the
  output shapes/dtypes ONNX shape inference gives (what `Ctx` gets in a real check);
* runners for onnxruntime and ``onnx.reference`` on that model.

Runtime gaps (an op, opset or dtype onnxruntime or the reference evaluator does not implement)
are not failures: they are recorded in `RECORDED` with their reason and listed at the end of
the pytest run by tests/ops/conftest.py.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
import onnx
from onnx import helper, numpy_helper

from numsentry.domains.box import Box
from numsentry.dtypes import FLOAT_FORMATS, is_float_dtype, round_bounds
from numsentry.ops import REGISTRY
from numsentry.ops.apply import apply_concrete, apply_interval
from numsentry.ops.kernels import NUMPY
from numsentry.ops.registry import BoxSpec, Ctx, OpDef

__all__ = [
    "ORT_MAX_OPSET",
    "RECORDED",
    "Case",
    "containment_failure",
    "draw_case",
    "float_input_scale",
    "malformed",
    "op_id",
    "opset_for",
    "ort_reason",
    "ort_session",
    "record",
    "reference_run",
    "sampler_of",
    "short",
    "width_failure",
]

# onnxruntime 1.31 loads models up to this default-domain opset; newer ones are tested by the
# numpy rule and the reference evaluator only.
ORT_MAX_OPSET = 25

# (test name, op id) -> reasons a runtime comparison was skipped; printed by conftest.py.
RECORDED: dict[tuple[str, str], set[str]] = defaultdict(set)


def record(test: str, op: OpDef, reason: str) -> None:
    """Remember why a comparison was skipped for ``op`` (shown in the pytest summary)."""
    RECORDED[(test, op_id(op))].add(reason.strip().splitlines()[0][:200])


def op_id(op: OpDef) -> str:
    """Test id of an op declaration: ``Exp-13`` (``domain.Op-N`` outside ai.onnx)."""
    name = f"{op.domain}.{op.op_type}" if op.domain else op.op_type
    return f"{name}-{op.since}"


def _next_since(op: OpDef) -> int | None:
    later = [o.since for o in REGISTRY.all() if o.domain == op.domain and o.op_type == op.op_type
             and o.since > op.since]
    return min(later) if later else None


def opset_for(op: OpDef) -> int:
    """The model opset a declaration is tested at.

    ``max(since, 13)`` (the loader's minimum) capped by the installed onnx, by the next
    registered version of the op (that one covers later opsets) and by ONNX's own schema: when
    the schema at that opset is deprecated (Upsample) the declaration's own version is used.
    """
    if op.domain:
        return op.since
    top = int(onnx.defs.onnx_opset_version())
    nxt = _next_since(op)
    opset = min(max(op.since, 13), top, (nxt - 1) if nxt else top)
    try:
        if onnx.defs.get_schema(op.op_type, opset, op.domain).deprecated:
            opset = op.since
    except Exception:  # unknown to onnx: keep the computed opset; the tests report it
        pass
    return opset


# ---- boxes and points -------------------------------------------------------------------


def np_dtype(name: str | np.dtype) -> np.dtype:
    """NumPy dtype from a BoxSpec dtype name (``bfloat16`` via ml_dtypes)."""
    if isinstance(name, str) and name == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def spec_bounds(spec: BoxSpec) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """Full-resolution float64 bounds of a spec as the box holds them, and its dtype."""
    dt = np_dtype(spec.dtype)
    lo = np.broadcast_to(np.asarray(spec.lo, dtype=np.float64), spec.shape)
    hi = np.broadcast_to(np.asarray(spec.hi, dtype=np.float64), spec.shape)
    if np.any(lo > hi):
        raise AssertionError(f"sampler bug: BoxSpec with lo > hi: {spec}")
    if is_float_dtype(dt):
        lo, hi = round_bounds(lo, hi, FLOAT_FORMATS[dt.name])
    elif dt.kind in "iub":
        lo, hi = np.ceil(lo), np.floor(hi)
        if np.any(lo > hi):
            raise AssertionError(f"sampler bug: integer BoxSpec holds no integer: {spec}")
    else:
        raise AssertionError(f"sampler bug: unsupported BoxSpec dtype {spec.dtype!r}")
    return np.array(lo), np.array(hi), dt


def spec_box(spec: BoxSpec) -> Box:
    """The box a spec stands for (coarse when its bounds are scalars)."""
    dt = np_dtype(spec.dtype)
    lo = np.asarray(spec.lo, dtype=np.float64)
    hi = np.asarray(spec.hi, dtype=np.float64)
    if is_float_dtype(dt):
        lo, hi = round_bounds(lo, hi, FLOAT_FORMATS[dt.name])
    else:
        lo, hi = np.ceil(lo), np.floor(hi)
    return Box.range(lo, hi, spec.shape, dt)


def _cast_into(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Values of dtype ``dt`` inside [lo, hi] (rounding could step outside: clip after)."""
    if dt.kind in "iu":
        return np.clip(np.round(v), lo, hi).astype(dt)
    if dt.kind == "b":
        return np.clip(np.round(v), lo, hi).astype(bool)
    with np.errstate(over="ignore", invalid="ignore"):
        out = v.astype(dt).astype(np.float64)
    return np.clip(out, lo, hi).astype(dt)


def _uniform(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, dt: np.dtype) -> np.ndarray:
    if dt.kind in "iub":
        return rng.integers(lo.astype(np.int64), hi.astype(np.int64), endpoint=True).astype(np.float64)
    big = FLOAT_FORMATS.get(dt.name, FLOAT_FORMATS["float64"]).max
    a, b = np.clip(lo, -big, big), np.clip(hi, -big, big)
    u = rng.uniform(size=lo.shape)
    return a * (1 - u) + b * u  # no b - a: it overflows for [-max, max]


@dataclass
class Inputs:
    """Concrete inputs: one value per sampled input (``None`` kept)."""

    values: list[np.ndarray | None]
    kind: str  # corner | random | mixed | point


@dataclass
class Case:
    """One drawn sample of an op, with everything derived from it.

    Attributes:
        op: The declaration under test.
        opset: The model opset.
        specs: The sampler's inputs (BoxSpec, exact arrays, None).
        raw_attrs: The sampler's attributes.
        attrs: Attributes as the loader binds them (schema defaults filled in).
        boxes: Input boxes (points for exact arrays).
        seed: Seed for the concrete points (drawn, so runs are reproducible).
    """

    op: OpDef
    opset: int
    specs: list[Any]
    raw_attrs: dict[str, Any]
    attrs: dict[str, Any]
    boxes: list[Box | None]
    seed: int
    _model: dict[tuple[str, ...], onnx.ModelProto] = field(default_factory=dict)
    _inferred: Any = None
    _fired: list[str] | None = None

    # ---- description (failure messages) ---------------------------------------------------
    def describe(self) -> str:
        parts = []
        for i, s in enumerate(self.specs):
            if isinstance(s, BoxSpec):
                parts.append(f"x{i}=BoxSpec(lo={short(s.lo)}, hi={short(s.hi)}, shape={s.shape}, "
                             f"dtype={s.dtype})")
            elif s is None:
                parts.append(f"x{i}=None")
            else:
                parts.append(f"x{i}=array({short(s)}, dtype={s.dtype}, shape={s.shape})")
        return f"{op_id(self.op)} at opset {self.opset}: " + ", ".join(parts) + f"; attrs={self.raw_attrs}"

    # ---- points ---------------------------------------------------------------------------
    def box_slots(self) -> list[int]:
        return [i for i, s in enumerate(self.specs) if isinstance(s, BoxSpec)]

    def random_point(self, rng: np.random.Generator) -> list[np.ndarray | None]:
        """One point drawn uniformly inside every box input (exact inputs as they are)."""
        out: list[np.ndarray | None] = []
        for s in self.specs:
            if isinstance(s, BoxSpec):
                lo, hi, dt = spec_bounds(s)
                out.append(_cast_into(_uniform(rng, lo, hi, dt), lo, hi, dt))
            else:
                out.append(s)
        return out

    def points(self, max_corner_elems: int = 5, n_corners: int = 8, n_random: int = 6,
               n_mixed: int = 4) -> list[Inputs]:
        """Concrete inputs inside the boxes: corners, random points and mixtures.

        All 2^n corners (every element at its lo or hi) when the box inputs hold at most
        ``max_corner_elems`` elements together, else the all-lo and all-hi corners plus random
        ones. Mixed points pick per element among lo, hi, 0 (when inside), the midpoint and a
        random value: they hit the critical points (0, +-1...) that pure random points miss.
        """
        rng = np.random.default_rng(self.seed)
        slots = self.box_slots()
        bounds = {i: spec_bounds(self.specs[i]) for i in slots}
        n = sum(int(np.prod(self.specs[i].shape, dtype=np.int64)) for i in slots)
        pts: list[Inputs] = []

        def make(choose: Any, kind: str) -> None:
            vals: list[np.ndarray | None] = list(self.specs)
            for i in slots:
                lo, hi, dt = bounds[i]
                vals[i] = _cast_into(choose(i, lo, hi, dt), lo, hi, dt)
            pts.append(Inputs(vals, kind))

        if not slots:
            return [Inputs(list(self.specs), "point")]
        if n <= max_corner_elems:
            for bits in itertools.product((0, 1), repeat=n):
                it = iter(bits)
                make(lambda i, lo, hi, dt, it=it: np.where(
                    np.array([next(it) for _ in range(lo.size)], dtype=bool).reshape(lo.shape), hi, lo),
                    "corner")
        else:
            make(lambda i, lo, hi, dt: lo, "corner")
            make(lambda i, lo, hi, dt: hi, "corner")
            for _ in range(n_corners):
                make(lambda i, lo, hi, dt: np.where(rng.integers(0, 2, lo.shape) == 1, hi, lo), "corner")
        for _ in range(n_random):
            make(lambda i, lo, hi, dt: _uniform(rng, lo, hi, dt), "random")
        for _ in range(n_mixed):
            def mixed(i: int, lo: np.ndarray, hi: np.ndarray, dt: np.dtype) -> np.ndarray:
                zero = np.where((lo <= 0) & (hi >= 0), 0.0, lo)
                with np.errstate(over="ignore", invalid="ignore"):
                    mid = np.where(np.isfinite(lo) & np.isfinite(hi), lo / 2 + hi / 2, zero)
                cands = np.stack(np.broadcast_arrays(lo, hi, zero, mid, _uniform(rng, lo, hi, dt)))
                pick = rng.integers(0, cands.shape[0], lo.shape)
                return np.take_along_axis(cands, pick[None], 0)[0]

            make(mixed, "mixed")
        return pts

    # ---- rules ----------------------------------------------------------------------------
    def ctx(self) -> Ctx:
        shapes, dtypes = self.inferred_types()
        return Ctx(node_name=f"{self.op.op_type}_0", op_type=self.op.op_type, opset=self.opset,
                   run_graph=self._run_graph, output_shapes=shapes, output_dtypes=dtypes)

    def interval(self, boxes: Sequence[Box | None] | None = None) -> tuple[Box, ...]:
        return apply_interval(self.op, self.ctx(), list(self.boxes if boxes is None else boxes),
                              self.attrs)

    def concrete(self, values: Sequence[Any], k: Any = NUMPY) -> tuple[np.ndarray, ...]:
        with np.errstate(all="ignore"):
            outs = apply_concrete(self.op, k, list(values), self.attrs)
        return tuple(np.asarray(k.to_numpy(o)) for o in outs)

    def _run_graph(self, graph: Any, inputs: list[Any]) -> list[Any]:
        """Box interpretation of a subgraph (If/Loop/Scan bodies), as the checker does it."""
        from numsentry.interp import run_graph

        env = {v.name: b for v, b in zip(graph.inputs, inputs, strict=False)}
        env.update({k: Box.point(v) for k, v in graph.initializers.items()})
        outer = {f"x{i}": b for i, b in enumerate(self.boxes) if b is not None}

        def step(node: Any, ins: list[Any], scope: Any) -> list[Any]:
            op = REGISTRY.lookup(node.domain, node.op_type, node.opset)
            if op is None:
                raise NotImplementedError(f"no rule for {node.op_type} in a subgraph")
            ctx = Ctx(node_name=node.name, op_type=node.op_type, opset=node.opset, run_graph=self._run_graph)
            return list(apply_interval(op, ctx, ins, node.attrs))

        return run_graph(graph, env, step, outer=outer)

    def hazards_fired(self) -> list[str]:
        """Rule codes of the op's hazards that fire for the input boxes (as the checker asks)."""
        if self._fired is None:
            ctx = self.ctx()
            self._fired = [h.rule for h in self.op.hazards if h.check(ctx, list(self.boxes), self.attrs)]
        return self._fired

    # ---- ONNX model -----------------------------------------------------------------------
    def model(self, outs: Sequence[np.ndarray]) -> onnx.ModelProto:
        """The single-node model with one output per concrete output (its dtype and rank)."""
        sig = [(np.asarray(o).dtype, np.asarray(o).ndim) for o in outs]
        key = tuple(f"{d.str}{r}" for d, r in sig)
        if key not in self._model:
            self._model[key] = _build_model(self, sig)
        return self._model[key]

    def inferred_types(self) -> tuple[list[tuple[int, ...] | None], list[np.dtype | None]]:
        """Output shapes and dtypes from ONNX shape inference (empty lists when it fails)."""
        if self._inferred is None:
            try:
                outs = self.concrete(self.random_point(np.random.default_rng(self.seed)))
                m = onnx.shape_inference.infer_shapes(self.model(outs),
                                                      strict_mode=True, data_prop=True)
                shapes: list[tuple[int, ...] | None] = []
                dtypes: list[np.dtype | None] = []
                for v in m.graph.output:
                    tt = v.type.tensor_type
                    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
                    shapes.append(tuple(dims) if tt.HasField("shape") and None not in dims else None)  # type: ignore[arg-type]
                    dtypes.append(np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
                                  if tt.elem_type else None)
                self._inferred = (shapes, dtypes)
            except Exception:  # reported by the conformance test; rules get no hints here
                self._inferred = ([], [])
        return self._inferred

    def feeds(self, values: Sequence[np.ndarray | None]) -> dict[str, np.ndarray]:
        """Graph-input feeds for a concrete point (box inputs only)."""
        return {f"x{i}": np.asarray(values[i]) for i in self.box_slots()}


def short(v: Any) -> str:
    a = np.asarray(v)
    return np.array2string(a, precision=8, threshold=12, separator=",").replace("\n", "")


def _attr_proto_value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return numpy_helper.from_array(v)
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [x.item() if isinstance(x, np.generic) else x for x in v]
    return v


def _node(case_op: OpDef, specs: Sequence[Any], attrs: dict[str, Any], n_out: int) -> onnx.NodeProto:
    names = ["" if s is None else f"x{i}" for i, s in enumerate(specs)]
    while names and names[-1] == "":
        names.pop()  # trailing omitted optional inputs are simply left out
    kw = {k: _attr_proto_value(v) for k, v in attrs.items() if v is not None}
    return helper.make_node(case_op.op_type, names, [f"y{j}" for j in range(n_out)],
                            name=f"{case_op.op_type}_0", domain=case_op.domain or None, **kw)


def _build_model(case: Case, outs: list[tuple[np.dtype, int]]) -> onnx.ModelProto:
    node = _node(case.op, case.specs, case.raw_attrs, len(outs))
    inputs, inits = [], []
    for i, s in enumerate(case.specs):
        if isinstance(s, BoxSpec):
            et = helper.np_dtype_to_tensor_dtype(np_dtype(s.dtype))
            inputs.append(helper.make_tensor_value_info(f"x{i}", et, list(s.shape)))
        elif s is not None:
            inits.append(numpy_helper.from_array(np.asarray(s), f"x{i}"))
    # symbolic dims of the concrete rank: shape inference fills in what it knows, and a shape
    # that depends on values (NonZero) does not pin the runtime to one point's shape
    outputs = [helper.make_tensor_value_info(f"y{j}", helper.np_dtype_to_tensor_dtype(d),
                                             [f"y{j}_{k}" for k in range(r)])
               for j, (d, r) in enumerate(outs)]
    graph = helper.make_graph([node], "case", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid("", case.opset if not case.op.domain else 13)]
    if case.op.domain:
        opsets.append(helper.make_opsetid(case.op.domain, case.opset))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="numsentry-tests")
    # an opset newer than onnx's version table keeps onnx's default IR version
    with contextlib.suppress(Exception):
        model.ir_version = helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    return model


def bind_attrs(op: OpDef, opset: int, specs: Sequence[Any], raw: dict[str, Any]) -> dict[str, Any]:
    """Attributes as `numsentry.ir.load` binds them (schema defaults, graphs converted)."""
    # the loader's own binding, so rules get the same keywords as in a check
    from numsentry.ir.load import _bind_attrs

    node = _node(op, specs, raw, 1)
    domain = op.domain or ""
    return _bind_attrs(node, opset, {"": opset if not domain else 13, domain: opset}, "<test>", "")


def sampler_of(op: OpDef) -> Any:
    """The op's sampler; ``None`` means the generic elementwise one (as `OpDef` documents),
    with as many float inputs as the schema requires. ``None`` when even that does not apply."""
    if op.sample is not None:
        return op.sample
    from numsentry.ops.rules import elementwise_sample

    try:
        schema = onnx.defs.get_schema(op.op_type, opset_for(op), op.domain)
    except Exception:
        return None
    n = sum(1 for i in schema.inputs if i.option != onnx.defs.OpSchema.FormalParameterOption.Optional)
    return elementwise_sample(max(n, 1)) if n else None


def draw_case(op: OpDef, draw: Any) -> Case:
    """Draw a case with the op's sampler (and a seed for its concrete points)."""
    from hypothesis import strategies as st

    sampler = sampler_of(op)
    assert sampler is not None
    specs, raw = sampler(draw)
    specs = list(specs)
    for i, s in enumerate(specs):
        if not (s is None or isinstance(s, (BoxSpec, np.ndarray))):
            raise AssertionError(f"sampler bug: input {i} is {type(s).__name__}, "
                                 "expected BoxSpec, np.ndarray or None")
    raw = dict(raw)
    opset = opset_for(op)
    boxes: list[Box | None] = []
    for s in specs:
        if isinstance(s, BoxSpec):
            boxes.append(spec_box(s))
        elif s is None:
            boxes.append(None)
        else:
            boxes.append(Box.point(s))
    seed = draw(st.integers(0, 2**32 - 1))
    return Case(op=op, opset=opset, specs=specs, raw_attrs=raw, attrs=bind_attrs(op, opset, specs, raw),
                boxes=boxes, seed=seed)


# ---- runtimes ---------------------------------------------------------------------------

_ORT_UNSUPPORTED: dict[tuple[Any, ...], str] = {}


def ort_signature(case: Case, outs: Sequence[np.ndarray]) -> tuple[Any, ...]:
    ins = tuple(None if s is None else np_dtype(s.dtype).str if isinstance(s, BoxSpec) else s.dtype.str
                for s in case.specs)
    return (case.op.domain, case.op.op_type, case.opset, ins, tuple(np.asarray(o).dtype.str for o in outs))


def ort_session(case: Case, outs: Sequence[np.ndarray]) -> tuple[Any, str | None]:
    """An onnxruntime session for the case's model, or ``(None, why not)``.

    Failures that say the op/opset/type is not implemented are cached per signature; any other
    rejection (the model itself) is returned each time, so the test records it.
    """
    if case.opset > ORT_MAX_OPSET:
        return None, f"onnxruntime supports opsets <= {ORT_MAX_OPSET}, model has {case.opset}"
    if any(isinstance(s, BoxSpec) and np_dtype(s.dtype).name == "bfloat16" for s in case.specs) or any(
            np.asarray(o).dtype.name == "bfloat16" for o in outs):
        return None, "onnxruntime's Python API does not take bfloat16 arrays"
    sig = ort_signature(case, outs)
    if sig in _ORT_UNSUPPORTED:
        return None, _ORT_UNSUPPORTED[sig]
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(case.model(outs).SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:
        msg = str(e)
        if "NOT_IMPLEMENTED" in msg or "Could not find an implementation" in msg or "is not a registered" in msg:
            _ORT_UNSUPPORTED[sig] = f"onnxruntime lacks it: {ort_reason(msg)}"
            return None, _ORT_UNSUPPORTED[sig]
        if "not supported" in msg or "not implemented" in msg.lower():
            return None, f"onnxruntime lacks it: {ort_reason(msg)}"
        return None, f"onnxruntime rejects the model: {ort_reason(msg)}"
    return sess, None


def ort_reason(msg: str) -> str:
    """The informative part of an onnxruntime error (no source paths or C++ signatures)."""
    msg = msg.replace("\n", " ")
    for key in ("Could not find an implementation for ", "] : "):
        if key in msg:
            msg = msg.split(key, 1)[1]
            break
    msg = re.sub(r"/onnxruntime_src/\S+:\d+ ", "", msg)
    msg = re.sub(r"onnxruntime::\S+\(.*?\)( \[with [^\]]*\])? ", "", msg)
    return msg[:200]


_REF_UNSUPPORTED: dict[tuple[str, str, int], str] = {}


def reference_run(case: Case, values: Sequence[np.ndarray | None],
                  outs: Sequence[np.ndarray]) -> tuple[list[np.ndarray] | None, str | None]:
    """Outputs of ``onnx.reference.ReferenceEvaluator``, or ``(None, why not)`` when it lacks the op."""
    from onnx.reference import ReferenceEvaluator

    key = (case.op.domain, case.op.op_type, case.opset)
    if key in _REF_UNSUPPORTED:
        return None, _REF_UNSUPPORTED[key]
    try:
        ref = ReferenceEvaluator(case.model(outs))
    except NotImplementedError as e:
        _REF_UNSUPPORTED[key] = f"onnx.reference lacks it: {str(e).splitlines()[0][:160]}"
        return None, _REF_UNSUPPORTED[key]
    with np.errstate(all="ignore"):
        outs = ref.run(None, case.feeds(values))
    return [np.asarray(o) for o in outs], None


# ---- checks -----------------------------------------------------------------------------


def malformed(box: Box) -> str | None:
    """Why a box breaks the `Box` invariants (bounds broadcastable to its shape), or ``None``."""
    for name, arr in (("lo", box.lo), ("hi", box.hi)):
        a = np.asarray(arr)
        if a.ndim > len(box.shape):
            return f"malformed box: {name} has shape {a.shape}, more dims than the tensor's {box.shape}"
        try:
            if np.broadcast_shapes(a.shape, box.shape) != tuple(box.shape):
                raise ValueError
        except ValueError:
            return f"malformed box: {name} of shape {a.shape} does not broadcast to {box.shape}"
    if not (isinstance(box.lo, (np.ndarray, np.generic)) and isinstance(box.hi, (np.ndarray, np.generic))):
        return f"malformed box: bounds must be NumPy arrays, got {type(box.lo).__name__}/{type(box.hi).__name__}"
    with np.errstate(invalid="ignore"):
        if not box.is_point and np.any(np.asarray(box.lo) > np.asarray(box.hi)):
            return "malformed box: lo > hi somewhere"
    return None


def containment_failure(box: Box, value: np.ndarray, what: str) -> str | None:
    """Why ``value`` is not inside ``box`` (shape, NaN or bounds), or ``None`` when it is."""
    value = np.asarray(value)
    if (msg := malformed(box)) is not None:
        return f"{what}: {msg}"
    if tuple(value.shape) != tuple(box.shape):
        return f"{what}: shape {tuple(value.shape)} but the box says {box.shape}"
    v = value.astype(np.float64)
    ok = box.contains(v)
    ok = np.broadcast_to(ok, v.shape)
    if ok.all():
        return None
    lo, hi = box.full()
    bad = np.argwhere(~ok)[:4]
    rows = []
    for idx in bad:
        t = tuple(int(i) for i in idx)
        rows.append(f"{t}: {v[t]!r} not in [{lo[t]!r}, {hi[t]!r}]" + (" (box nan=False)" if np.isnan(v[t]) else ""))
    return f"{what}: {int((~ok).sum())} of {v.size} elements outside the box {box!r}: " + "; ".join(rows)


_SMALLEST_NORMAL = {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126, "float64": 2.0**-1022}


def width_failure(box: Box, value: np.ndarray, scale_in: float, what: str) -> str | None:
    """Why a point input's result box is too wide around the concrete ``value``, or ``None``.

    Allowed width per element: ``rel * (|v| + max|outputs| + max|float inputs|) + abs`` with
    ``rel`` 256 ULPs of the output format (2^-16 for float32) and ``abs`` its smallest normal;
    integer and bool outputs must be exact.
    """
    value = np.asarray(value)
    lo, hi = box.full()
    if value.dtype.kind in "iub":
        wide = lo != hi
        if wide.any():
            t = tuple(int(i) for i in np.argwhere(wide)[0])
            return f"{what}: integer output not exact at {t}: [{lo[t]}, {hi[t]}] around {value[t]}"
        return None
    fmt = FLOAT_FORMATS.get(np.dtype(box.dtype).name, FLOAT_FORMATS["float32"])
    v = value.astype(np.float64)
    fin = np.isfinite(v)
    if not fin.any():
        return None
    rel = 256 * 2 * fmt.eps
    scale = float(np.max(np.abs(v[fin]))) + scale_in
    with np.errstate(invalid="ignore", over="ignore"):
        allowed = rel * (np.abs(v) + scale) + _SMALLEST_NORMAL[fmt.name]
        width = hi - lo
        bad = fin & ~(width <= allowed)
    if not bad.any():
        return None
    t = tuple(int(i) for i in np.argwhere(bad)[0])
    return (f"{what}: {int(bad.sum())} of {v.size} elements imprecise for a point input, e.g. at {t}: "
            f"value {v[t]!r}, box [{lo[t]!r}, {hi[t]!r}], width {width[t]:.3g} > allowed {allowed[t]:.3g}")


def float_input_scale(values: Sequence[np.ndarray | None]) -> float:
    """Largest finite magnitude among the float inputs (0 if none)."""
    m = 0.0
    for v in values:
        if v is None:
            continue
        a = np.asarray(v)
        if is_float_dtype(a.dtype) and a.size:
            f = a.astype(np.float64)
            f = f[np.isfinite(f)]
            if f.size:
                m = max(m, float(np.max(np.abs(f))))
    return m

"""Random small but realistic ONNX graphs (opset 17) for the whole-graph soundness fuzzer.

`build_graph` draws 1-2 float inputs with random shapes (rank 1-4, dims 1-5) and ranges,
stored weights of random scale and 5-25 nodes from a broad op mix (`FLOAT_OPS`), wiring each
node to earlier values whose shapes fit. Shapes are tracked here and validated by ONNX strict
shape inference (`make_model`), which also makes every node output a graph output, so that
numsentry (``CheckResult.outputs``) and onnxruntime both report every intermediate value.

All random decisions go through a `Draw`; `SeedDraw` makes a graph a function of one integer
seed, which the test draws with hypothesis and prints on failure for replaying.

Also here: `float16_copy` (every float32 tensor in float16, the model ``--as-dtype float16``
stands for), `sample_points`, the onnxruntime runners `WholeGraph` and `PerNode`, and `cone`
and `shrink` for cutting a failing graph down by hand.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "FLOAT_OPS",
    "GenGraph",
    "PerNode",
    "SeedDraw",
    "WholeGraph",
    "ancestors",
    "build_graph",
    "cone",
    "float16_copy",
    "make_model",
    "ort_session",
    "sample_points",
    "shrink",
    "value_ancestors",
]

F, F16, D, I64, B = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.BOOL
OPSET = 17
MAX_SIZE = 240  # elements per tensor: keeps numsentry and onnxruntime fast
MAX_RANK = 5


# ---- random decisions ------------------------------------------------------------------------


class Draw:
    """The random decisions the generator takes."""

    def int(self, lo: int, hi: int) -> int:  # inclusive
        raise NotImplementedError

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[self.int(0, len(seq) - 1)]

    def bool(self) -> bool:
        return self.int(0, 1) == 1

    def chance(self, p: float) -> bool:
        return self.int(0, 999) < int(p * 1000)

    def seed(self) -> int:
        return self.int(0, 2**31 - 1)

    def weighted(self, table: Sequence[tuple[Any, int]]) -> Any:
        total = sum(w for _, w in table)
        k = self.int(0, total - 1)
        for item, w in table:
            if k < w:
                return item
            k -= w
        raise AssertionError


class SeedDraw(Draw):
    """Decisions from `random.Random(seed)`."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)


# ---- the graph being built -------------------------------------------------------------------


@dataclass
class Val:
    name: str
    shape: tuple[int, ...]
    elem: int  # ONNX element type


@dataclass
class GenGraph:
    """A generated graph: enough to rebuild the model and to replay it (see `describe`)."""

    inputs: list[Val]
    ranges: dict[str, tuple[float, float]]
    inits: dict[str, np.ndarray]
    nodes: list[onnx.NodeProto]
    values: dict[str, Val] = field(default_factory=dict)
    seed: int = 0
    model: onnx.ModelProto | None = None  # the checked, shape-inferred model

    def describe(self) -> str:
        lines = ["inputs: " + ", ".join(f"{v.name}{list(v.shape)} in {self.ranges[v.name]}" for v in self.inputs)]
        for k, a in self.inits.items():
            lines.append(f"  init {k} {a.dtype}{list(a.shape)} = {np.array2string(a.ravel()[:12], precision=4)}"
                         + (" ..." if a.size > 12 else ""))
        for n in self.nodes:
            at = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            lines.append(f"  {n.name}: {list(n.output)} = {n.op_type}({', '.join(n.input)}) {at if at else ''}")
        return "\n".join(lines)


def _size(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _bshape(*shapes: Sequence[int]) -> tuple[int, ...] | None:
    try:
        return tuple(int(s) for s in np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        return None


class Builder:
    def __init__(self, d: Draw) -> None:
        self.d = d
        self.np = np.random.default_rng(d.seed())
        self.inputs: list[Val] = []
        self.ranges: dict[str, tuple[float, float]] = {}
        self.inits: dict[str, np.ndarray] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.vals: dict[str, Val] = {}
        self.floats: list[Val] = []  # float values ops may read
        self.bools: list[Val] = []
        self.k = 0

    # -- naming and bookkeeping --
    def fresh(self, prefix: str) -> str:
        self.k += 1
        return f"{prefix}{self.k}"

    def node(self, op: str, ins: Sequence[str], out_shapes: Sequence[tuple[int, ...]], elem: int = F,
             pool: bool = True, **attrs: Any) -> list[Val]:
        name = self.fresh(f"{op.lower()}_")
        outs = [Val(f"{name}_y" if len(out_shapes) == 1 else f"{name}_y{i}", tuple(s), elem)
                for i, s in enumerate(out_shapes)]
        self.nodes.append(helper.make_node(op, list(ins), [o.name for o in outs], name=name, **attrs))
        for o in outs:
            self.vals[o.name] = o
            if pool and elem == F:
                self.floats.append(o)
            elif pool and elem == B:
                self.bools.append(o)
        return outs

    def init(self, arr: np.ndarray, prefix: str = "w") -> str:
        name = self.fresh(prefix)
        self.inits[name] = np.asarray(arr)
        return name

    def ints(self, values: Sequence[int] | int, prefix: str = "c") -> str:
        return self.init(np.asarray(values, dtype=np.int64), prefix)

    def scalar(self, v: float) -> str:
        return self.init(np.asarray(v, dtype=np.float32), "s")

    # -- random weights of random scale --
    def weights(self, shape: Sequence[int], kind: str | None = None) -> np.ndarray:
        d = self.d
        scale = d.choice([1e-3, 0.05, 0.3, 1.0, 1.0, 2.0, 5.0, 30.0, 300.0])
        kind = kind or d.weighted([("normal", 5), ("uniform", 2), ("positive", 2), ("ints", 1), ("zeros", 1)])
        shape = tuple(shape)
        if kind == "normal":
            a = self.np.normal(0.0, scale, shape)
        elif kind == "uniform":
            a = self.np.uniform(-scale, scale, shape)
        elif kind == "positive":
            a = self.np.uniform(0.05 * scale, scale, shape)
        elif kind == "ints":
            a = self.np.integers(-3, 4, shape).astype(np.float64)
        else:  # sparse, with exact zeros
            a = self.np.normal(0.0, scale, shape) * (self.np.random(shape) < 0.5)
        return a.astype(np.float32)

    def winit(self, shape: Sequence[int], kind: str | None = None) -> str:
        return self.init(self.weights(shape, kind))

    # -- picking operands --
    def pick(self, pred: Callable[[Val], bool] = lambda v: True) -> Val | None:
        cands = [v for v in self.floats if pred(v)]
        if not cands:
            return None
        if self.d.chance(0.6):  # mostly recent values: deep chains rather than wide fans
            cands = cands[-3:]
        return self.d.choice(cands)

    def bcast_shape_of(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape that broadcasts against ``shape`` without growing it."""
        d = self.d
        kind = d.weighted([("same", 3), ("ones", 3), ("suffix", 2), ("scalar", 2)])
        if kind == "same":
            return shape
        if kind == "scalar":
            return ()
        s = tuple(1 if (len(shape) and d.bool()) else x for x in shape)
        if kind == "suffix" and len(s):
            s = s[d.int(0, len(s)) :]
        return s

    def other_operand(self, a: Val, kind: str | None = None) -> str:
        """A second operand broadcastable with ``a``: another value or a weight."""
        d = self.d
        if d.chance(0.35):
            v = self.pick(lambda v: v.name != a.name and _bshape(v.shape, a.shape) is not None
                          and _size(_bshape(v.shape, a.shape) or ()) <= MAX_SIZE)
            if v is not None:
                return v.name
        return self.winit(self.bcast_shape_of(a.shape), kind)


# ---- op generators: each returns False when it does not apply --------------------------------

UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Erf", "Softplus",
         "Floor", "Sin"]


def g_unary(b: Builder) -> bool:
    a = b.pick()
    if a is None:
        return False
    op = b.d.choice(UNARY)
    b.node(op, [a.name], [a.shape])
    return True


def g_unary_attr(b: Builder) -> bool:
    a = b.pick()
    if a is None:
        return False
    d = b.d
    op = d.choice(["LeakyRelu", "Elu", "HardSigmoid"])
    if op == "LeakyRelu":
        b.node(op, [a.name], [a.shape], alpha=d.choice([0.01, 0.2, -0.5, 3.0]))
    elif op == "Elu":
        b.node(op, [a.name], [a.shape], alpha=d.choice([1.0, 0.5, 2.0]))
    else:
        b.node(op, [a.name], [a.shape], alpha=d.choice([0.2, 0.5]), beta=d.choice([0.5, 0.1]))
    return True


def g_binary(b: Builder) -> bool:
    a = b.pick()
    if a is None:
        return False
    d = b.d
    op = d.weighted([("Add", 3), ("Sub", 2), ("Mul", 3), ("Div", 3), ("Min", 1), ("Max", 1)])
    kind = None
    if op == "Div" and d.chance(0.6):
        kind = "positive"
    other = b.other_operand(a, kind)
    ins = [a.name, other]
    if d.chance(0.3) and op != "Div":
        ins.reverse()
    oshape = _bshape(a.shape, b.vals[other].shape if other in b.vals else b.inits[other].shape)
    assert oshape is not None
    b.node(op, ins, [oshape])
    return True


def g_pow(b: Builder) -> bool:
    a = b.pick()
    if a is None:
        return False
    d = b.d
    if d.chance(0.7):
        e = b.scalar(d.choice([2.0, 3.0, 0.5, -1.0, 1.5, -2.0, 4.0]))
    else:
        e = b.init((b.np.integers(-2, 4, b.bcast_shape_of(a.shape)) / d.choice([1, 2])).astype(np.float32))
    b.node("Pow", [a.name, e], [_bshape(a.shape, b.inits[e].shape) or a.shape])
    return True


def _matmul_shape(x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, ...] | None:
    if not x or not y:
        return None
    xs = (1, *x) if len(x) == 1 else x
    ys = (*y, 1) if len(y) == 1 else y
    if xs[-1] != ys[-2]:
        return None
    batch = _bshape(xs[:-2], ys[:-2])
    if batch is None:
        return None
    out = (*batch, xs[-2], ys[-1])
    if len(x) == 1:
        out = out[:-2] + out[-1:]
    if len(y) == 1:
        out = out[:-1]
    return out


def g_matmul(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) >= 1)
    if a is None:
        return False
    mode = d.weighted([("weight", 5), ("value", 2), ("weight_left", 1), ("vector", 1)])
    if mode == "value":
        c = b.pick(lambda v: (s := _matmul_shape(a.shape, v.shape)) is not None and _size(s) <= MAX_SIZE)
        if c is not None:
            b.node("MatMul", [a.name, c.name], [_matmul_shape(a.shape, c.shape)])  # type: ignore[list-item]
            return True
        mode = "weight"
    k = a.shape[-1]
    if mode == "weight_left" and len(a.shape) >= 2:
        m = d.int(1, 4)
        w = b.winit((m, a.shape[-2]))
        s = _matmul_shape((m, a.shape[-2]), a.shape)
        b.node("MatMul", [w, a.name], [s])  # type: ignore[list-item]
        return True
    wshape = (k,) if mode == "vector" else (k, d.int(1, 5))
    s = _matmul_shape(a.shape, wshape)
    if s is None or _size(s) > MAX_SIZE:
        return False
    b.node("MatMul", [a.name, b.winit(wshape)], [s])
    return True


def g_gemm(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) == 2)
    if a is None:
        a0 = b.pick(lambda v: len(v.shape) >= 2)
        if a0 is None:
            return False
        (a,) = b.node("Flatten", [a0.name], [(_size(a0.shape[:1]), _size(a0.shape[1:]))], axis=1)
    ta, tb = d.bool() and d.bool(), d.bool()
    m, k = (a.shape[1], a.shape[0]) if ta else a.shape
    n = d.int(1, 5)
    wb = b.winit((n, k) if tb else (k, n))
    ins = [a.name, wb]
    if d.chance(0.7):
        cshape = d.choice([(n,), (m, n), (1, n), (m, 1), ()])
        ins.append(b.winit(cshape))
    attrs: dict[str, Any] = {}
    if ta:
        attrs["transA"] = 1
    if tb:
        attrs["transB"] = 1
    if d.chance(0.3):
        attrs["alpha"] = d.choice([0.5, -1.0, 2.0])
    if d.chance(0.3):
        attrs["beta"] = d.choice([0.0, -1.0, 3.0])
    b.node("Gemm", ins, [(m, n)], **attrs)
    return True


def _window(d: Draw, dim: int, max_k: int = 3, allow_dil: bool = True) -> tuple[int, int, int, int, int, int] | None:
    """kernel, pad_begin, pad_end, stride, dilation, out for one spatial dim."""
    for _ in range(4):
        k = d.int(1, max_k)
        pb, pe = (d.int(0, min(1, k - 1)), d.int(0, min(1, k - 1))) if d.chance(0.5) else (0, 0)
        s = d.choice([1, 1, 2])
        dil = d.choice([1, 1, 2]) if allow_dil else 1
        eff = dil * (k - 1) + 1
        span = dim + pb + pe - eff
        if span >= 0:
            return k, pb, pe, s, dil, span // s + 1
    return None


def g_conv(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) in (3, 4))
    if a is None:
        return False
    n, c, *sp = a.shape
    gs = [g for g in range(1, c + 1) if c % g == 0]
    g = d.choice(gs) if d.chance(0.3) else 1
    m = g * d.int(1, max(1, 4 // g))
    wins = [_window(d, x) for x in sp]
    if any(w is None for w in wins):
        return False
    ks = [w[0] for w in wins]  # type: ignore[index]
    out = (n, m, *(w[5] for w in wins))  # type: ignore[index]
    if _size(out) > MAX_SIZE:
        return False
    ins = [a.name, b.winit((m, c // g, *ks))]
    if d.chance(0.6):
        ins.append(b.winit((m,)))
    b.node("Conv", ins, [out], kernel_shape=ks, pads=[w[1] for w in wins] + [w[2] for w in wins],  # type: ignore[index]
           strides=[w[3] for w in wins], dilations=[w[4] for w in wins], group=g)  # type: ignore[index]
    return True


def g_pool(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) in (3, 4))
    if a is None:
        return False
    op = d.choice(["MaxPool", "AveragePool", "GlobalAveragePool"])
    if op == "GlobalAveragePool":
        b.node(op, [a.name], [a.shape[:2] + (1,) * (len(a.shape) - 2)])
        return True
    wins = [_window(d, x, allow_dil=op == "MaxPool") for x in a.shape[2:]]
    if any(w is None for w in wins):
        return False
    # every window must see a real element (a window wholly in the padding is no real model's;
    # see test_maxpool_window_in_padding_float16)
    for x, (k, pb, _, st_, dil, n_out) in zip(a.shape[2:], wins, strict=True):  # type: ignore[misc]
        if any(not any(0 <= o * st_ - pb + j * dil < x for j in range(k)) for o in range(n_out)):
            return False
    attrs: dict[str, Any] = {"kernel_shape": [w[0] for w in wins],  # type: ignore[index]
                             "pads": [w[1] for w in wins] + [w[2] for w in wins],  # type: ignore[index]
                             "strides": [w[3] for w in wins]}  # type: ignore[index]
    if op == "MaxPool" and any(w[4] != 1 for w in wins):  # type: ignore[index]
        attrs["dilations"] = [w[4] for w in wins]  # type: ignore[index]
    if op == "AveragePool" and d.bool():
        attrs["count_include_pad"] = 1
    b.node(op, [a.name], [a.shape[:2] + tuple(w[5] for w in wins)], **attrs)  # type: ignore[index]
    return True


def g_softmax(b: Builder) -> bool:
    a = b.pick(lambda v: len(v.shape) >= 1)
    if a is None:
        return False
    r = len(a.shape)
    b.node(b.d.choice(["Softmax", "LogSoftmax"]), [a.name], [a.shape], axis=b.d.int(-r, r - 1))
    return True


def _reduced(shape: tuple[int, ...], axes: list[int] | None, keep: bool) -> tuple[int, ...]:
    r = len(shape)
    ax = set(range(r)) if axes is None else {x % r for x in axes}
    return tuple((1 if i in ax else s) for i, s in enumerate(shape) if keep or i not in ax)


def g_reduce(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) >= 1)
    if a is None:
        return False
    r = len(a.shape)
    op = d.weighted([("ReduceSum", 3), ("ReduceMean", 2), ("ReduceMax", 2), ("ReduceMin", 1),
                     ("ReduceL2", 1), ("ReduceLogSumExp", 1), ("ReduceSumSquare", 1)])
    axes: list[int] | None = None
    if d.chance(0.8):
        axes = sorted({d.int(0, r - 1) for _ in range(d.int(1, min(2, r)))})
        axes = [x - r if d.bool() else x for x in axes]
    keep = d.bool()
    out = _reduced(a.shape, axes, keep)
    if op == "ReduceSum":
        ins = [a.name] + ([b.ints(axes, "axes")] if axes is not None else [])
        b.node(op, ins, [out], keepdims=int(keep))
    else:
        attrs: dict[str, Any] = {"keepdims": int(keep)}
        if axes is not None:
            attrs["axes"] = axes
        b.node(op, [a.name], [out], **attrs)
    return True


def _factor(d: Draw, n: int, rank: int) -> list[int]:
    dims = []
    for _ in range(rank - 1):
        divs = [x for x in range(1, n + 1) if n % x == 0 and x <= 8]
        x = d.choice(divs)
        dims.append(x)
        n //= x
    dims.append(n)
    return dims


def g_reshape(b: Builder) -> bool:
    d = b.d
    a = b.pick()
    if a is None:
        return False
    dims = _factor(d, _size(a.shape), d.int(1, 4))
    spec = list(dims)
    if d.chance(0.3) and len(dims) > 1:
        spec[d.int(0, len(dims) - 1)] = -1
    spec = [0 if (i < len(a.shape) and x == a.shape[i] and d.chance(0.3)) else x for i, x in enumerate(spec)]
    out = tuple(dims)
    b.node("Reshape", [a.name, b.ints(spec, "shape")], [out])
    return True


def g_shape_reshape(b: Builder) -> bool:
    """Reshapes whose target comes from Shape/Gather/Slice/Mul/Concat: exact integer folding."""
    d = b.d
    a = b.pick(lambda v: len(v.shape) >= 2)
    if a is None:
        return False
    r = len(a.shape)
    pat = d.choice(["flatten_tail", "merge_two", "shape_start", "like_other", "const_of_shape"])
    (s,) = b.node("Shape", [a.name], [(r,)], elem=I64)
    if pat == "flatten_tail":  # Concat(Slice(Shape(x), 0, k), [-1])
        k = d.int(1, r - 1)
        (head,) = b.node("Slice", [s.name, b.ints([0]), b.ints([k])], [(k,)], elem=I64)
        (tgt,) = b.node("Concat", [head.name, b.ints([-1])], [(k + 1,)], elem=I64, axis=0)
        out = (*a.shape[:k], _size(a.shape[k:]))
    elif pat == "merge_two":  # dims i, i+1 merged by Gather * Gather
        i = d.int(0, r - 2)
        (g0,) = b.node("Gather", [s.name, b.ints([i])], [(1,)], elem=I64, axis=0)
        (g1,) = b.node("Gather", [s.name, b.ints(i + 1)], [()], elem=I64, axis=0)
        (u1,) = b.node("Unsqueeze", [g1.name, b.ints([0])], [(1,)], elem=I64)
        (mm,) = b.node("Mul", [g0.name, u1.name], [(1,)], elem=I64)
        parts, shapes = [], []
        if i > 0:
            (pre,) = b.node("Slice", [s.name, b.ints([0]), b.ints([i])], [(i,)], elem=I64)
            parts.append(pre.name)
        parts.append(mm.name)
        if i + 2 < r:
            (post,) = b.node("Slice", [s.name, b.ints([i + 2]), b.ints([2**62])], [(r - i - 2,)], elem=I64)
            parts.append(post.name)
        (tgt,) = b.node("Concat", parts, [(r - 1,)], elem=I64, axis=0)
        del shapes
        out = (*a.shape[:i], a.shape[i] * a.shape[i + 1], *a.shape[i + 2:])
    elif pat == "shape_start":  # Shape(x, start=1) -> Concat([-1], ...)
        (tail,) = b.node("Shape", [a.name], [(r - 1,)], elem=I64, start=1)
        (tgt,) = b.node("Concat", [b.ints([-1]), tail.name], [(r,)], elem=I64, axis=0)
        out = (a.shape[0], *a.shape[1:])
    elif pat == "like_other":  # Reshape(Flatten(y), Shape(x)) where sizes agree
        y = b.pick(lambda v: v.name != a.name and _size(v.shape) == _size(a.shape))
        if y is None:
            (y,) = b.node("Flatten", [a.name], [(1, _size(a.shape))], axis=0)
        b.node("Reshape", [y.name, s.name], [a.shape])
        return True
    else:  # ConstantOfShape(Shape(x)) * x
        val = float(d.choice([0.5, -2.0, 1e-3, 7.0]))
        (c,) = b.node("ConstantOfShape", [s.name], [a.shape],
                      value=numpy_helper.from_array(np.array([val], np.float32)))
        b.node("Mul", [c.name, a.name], [a.shape])
        return True
    b.node("Reshape", [a.name, tgt.name], [out])
    return True


def g_transpose(b: Builder) -> bool:
    a = b.pick(lambda v: len(v.shape) >= 2)
    if a is None:
        return False
    perm = list(range(len(a.shape)))
    b.np.shuffle(perm)
    b.node("Transpose", [a.name], [tuple(a.shape[p] for p in perm)], perm=[int(p) for p in perm])
    return True


def g_concat(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) >= 1 and _size(v.shape) <= MAX_SIZE // 2)
    if a is None:
        return False
    r = len(a.shape)
    ax = d.int(0, r - 1)
    parts, total = [a.name], a.shape[ax]
    for _ in range(d.int(1, 2)):
        same = [v for v in b.floats if len(v.shape) == r and all(v.shape[i] == a.shape[i] for i in range(r) if i != ax)]
        if same and d.chance(0.6):
            v = d.choice(same)
            parts.append(v.name)
            total += v.shape[ax]
        else:
            n = d.int(1, 3)
            parts.append(b.winit((*a.shape[:ax], n, *a.shape[ax + 1:])))
            total += n
    out = (*a.shape[:ax], total, *a.shape[ax + 1:])
    if _size(out) > MAX_SIZE:
        return False
    if d.bool():
        b.np.shuffle(parts)
    b.node("Concat", parts, [out], axis=ax - r if d.bool() else ax)
    return True


def g_slice(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) >= 1)
    if a is None:
        return False
    r = len(a.shape)
    axes = sorted({d.int(0, r - 1) for _ in range(d.int(1, min(2, r)))})
    starts, ends, steps, out = [], [], [], list(a.shape)
    for ax in axes:
        n = a.shape[ax]
        for _ in range(6):
            st = d.choice([1, 1, 2, -1]) if n > 1 else 1
            s0 = d.int(-n - 1, n)
            e0 = d.choice([d.int(-n - 1, n + 1), 2**62, -(2**62)])
            got = len(range(n)[slice(s0, e0, st)]) if abs(e0) < 2**40 else None
            if got is None:
                got = len(range(n)[slice(s0, None, st)]) if (e0 > 0) == (st > 0) else 0
            if got >= 1:
                break
        else:
            return False
        starts.append(s0)
        ends.append(e0)
        steps.append(st)
        out[ax] = got
    ins = [a.name, b.ints(starts), b.ints(ends)]
    if axes != list(range(len(axes))) or any(s != 1 for s in steps) or d.bool():
        ins.append(b.ints([x - r if d.bool() else x for x in axes]))
        if any(s != 1 for s in steps) or d.bool():
            ins.append(b.ints(steps))
    b.node("Slice", ins, [tuple(out)])
    return True


def g_gather(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) >= 1)
    if a is None:
        return False
    r = len(a.shape)
    ax = d.int(0, r - 1)
    n = a.shape[ax]
    ishape = d.choice([(), (d.int(1, 3),), (2, d.int(1, 2))])
    if r - 1 + len(ishape) > MAX_RANK:
        ishape = ()
    idx = b.np.integers(-n, n, ishape)
    out = a.shape[:ax] + tuple(ishape) + a.shape[ax + 1 :]
    if _size(out) > MAX_SIZE:
        return False
    b.node("Gather", [a.name, b.ints(idx.tolist() if ishape else int(idx), "idx")], [out], axis=ax)
    return True


def g_squeeze_unsqueeze(b: Builder) -> bool:
    d = b.d
    a = b.pick()
    if a is None:
        return False
    r = len(a.shape)
    ones = [i for i, s in enumerate(a.shape) if s == 1]
    if ones and d.bool():
        if d.chance(0.3):
            b.node("Squeeze", [a.name], [tuple(s for s in a.shape if s != 1)])
        else:
            ax = d.choice(ones)
            b.node("Squeeze", [a.name, b.ints([ax - r if d.bool() else ax])],
                   [tuple(s for i, s in enumerate(a.shape) if i != ax)])
        return True
    if r >= MAX_RANK - 1:
        return False
    ax = d.int(0, r)
    out = (*a.shape[:ax], 1, *a.shape[ax:])
    b.node("Unsqueeze", [a.name, b.ints([ax - r - 1 if d.bool() else ax])], [out])
    return True


def g_flatten(b: Builder) -> bool:
    a = b.pick()
    if a is None:
        return False
    r = len(a.shape)
    ax = b.d.int(-r, r) if r else 0
    k = ax % (r + 1) if ax < 0 else ax
    if ax < 0:
        k = ax + r
    b.node("Flatten", [a.name], [(_size(a.shape[:k]), _size(a.shape[k:]))], axis=ax)
    return True


def g_batchnorm(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) >= 2)
    if a is None:
        return False
    c = a.shape[1]
    var = np.abs(b.weights((c,), "positive"))
    if d.chance(0.2):
        var[b.np.integers(0, c)] = 0.0
    ins = [a.name, b.winit((c,)), b.winit((c,)), b.winit((c,)), b.init(var.astype(np.float32))]
    b.node("BatchNormalization", ins, [a.shape], epsilon=d.choice([1e-5, 1e-3, 0.0, 0.1]))
    return True


def g_layernorm(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: len(v.shape) >= 1)
    if a is None:
        return False
    r = len(a.shape)
    ax = d.int(-r, r - 1)
    nshape = a.shape[ax % r :]
    if d.chance(0.3):  # broadcast scale/bias along a leading normalized dim
        nshape = (1, *nshape[1:])
    ins = [a.name, b.winit(nshape)]
    if d.chance(0.7):
        ins.append(b.winit(nshape))
    b.node("LayerNormalization", ins, [a.shape], axis=ax, epsilon=d.choice([1e-5, 1e-3, 0.0]))
    return True


def g_clip(b: Builder) -> bool:
    d = b.d
    a = b.pick()
    if a is None:
        return False
    lo = d.choice([None, -1.0, 0.0, -6.0, 0.5])
    hi = d.choice([None, 1.0, 6.0, 100.0])
    ins = [a.name, b.scalar(lo) if lo is not None else "", b.scalar(hi) if hi is not None else ""]
    while ins and ins[-1] == "":
        ins.pop()
    b.node("Clip", ins, [a.shape])
    return True


def g_compare(b: Builder) -> bool:
    a = b.pick()
    if a is None:
        return False
    other = b.other_operand(a)
    oshape = _bshape(a.shape, b.vals[other].shape if other in b.vals else b.inits[other].shape)
    op = b.d.choice(["Greater", "Less", "GreaterOrEqual"])
    (c,) = b.node(op, [a.name, other], [oshape], elem=B)  # type: ignore[list-item]
    if b.d.chance(0.4):  # a 0/1 float mask
        b.node("Cast", [c.name], [c.shape], to=F)
    return True


def g_where(b: Builder) -> bool:
    d = b.d
    a = b.pick()
    if a is None:
        return False
    conds = [c for c in b.bools if _bshape(c.shape, a.shape) is not None and _size(_bshape(c.shape, a.shape) or ()) <= MAX_SIZE]
    if conds and d.chance(0.7):
        cond = d.choice(conds).name
        cshape = b.vals[cond].shape
    else:
        cshape = b.bcast_shape_of(a.shape)
        cond = b.init(b.np.random(cshape) < 0.5, "mask")
    other = b.other_operand(a)
    oshape = b.vals[other].shape if other in b.vals else b.inits[other].shape
    ins = [a.name, other] if d.bool() else [other, a.name]
    out = _bshape(cshape, a.shape, oshape)
    if out is None or _size(out) > MAX_SIZE:
        return False
    b.node("Where", [cond, *ins], [out])
    return True


def g_cast(b: Builder) -> bool:
    a = b.pick()
    if a is None:
        return False
    via = b.d.choice([F16, D, F16])
    (m,) = b.node("Cast", [a.name], [a.shape], elem=via, pool=False, to=via)
    b.node("Cast", [m.name], [a.shape], to=F)
    return True


def g_expand_tile_pad(b: Builder) -> bool:
    d = b.d
    a = b.pick(lambda v: _size(v.shape) <= MAX_SIZE // 4 and len(v.shape) >= 1)
    if a is None:
        return False
    r = len(a.shape)
    op = d.choice(["Expand", "Tile", "Pad"])
    if op == "Expand":
        tgt = tuple(d.int(2, 3) if s == 1 and d.bool() else s for s in a.shape)
        if r < 4 and d.bool():
            tgt = (2, *tgt)
        spec = list(tgt) if d.bool() else [1 if (i >= len(tgt) - r and a.shape[i - len(tgt) + r] == t) else t
                                          for i, t in enumerate(tgt)]
        b.node("Expand", [a.name, b.ints(spec)], [tgt])
    elif op == "Tile":
        reps = [d.choice([1, 1, 2]) for _ in range(r)]
        b.node("Tile", [a.name, b.ints(reps)], [tuple(s * k for s, k in zip(a.shape, reps, strict=True))])
    else:
        mode = d.choice(["constant", "reflect", "edge"])
        pads = [d.int(0, 1) for _ in range(2 * r)]
        if mode == "reflect":
            pads = [p if a.shape[i % r] > p else 0 for i, p in enumerate(pads)]
        out = tuple(s + pads[i] + pads[i + r] for i, s in enumerate(a.shape))
        ins = [a.name, b.ints(pads)]
        if mode == "constant" and d.bool():
            ins.append(b.scalar(d.choice([0.0, -3.0, 1e3])))
        b.node("Pad", ins, [out], mode=mode)
    return True


def g_variadic(b: Builder) -> bool:
    a = b.pick()
    if a is None:
        return False
    op = b.d.choice(["Sum", "Mean", "Max", "Min"])
    ins, shape = [a.name], a.shape
    for _ in range(b.d.int(1, 2)):
        o = b.other_operand(Val(a.name, shape, F))  # broadcastable with all inputs so far
        ins.append(o)
        shape = _bshape(shape, b.vals[o].shape if o in b.vals else b.inits[o].shape) or shape
    b.node(op, ins, [shape])
    return True


def g_normalize(b: Builder) -> bool:
    """x / Reduce(x) (hand-written softmax, normalisation): the checker's relational refinement."""
    d = b.d
    a = b.pick(lambda v: len(v.shape) >= 1)
    if a is None:
        return False
    if d.chance(0.7):  # usually made non-negative first, as real models do
        (a,) = b.node(d.choice(["Exp", "Relu", "Abs", "Sigmoid", "Softplus"]), [a.name], [a.shape])
    r = len(a.shape)
    axes = sorted({d.int(0, r - 1) for _ in range(d.int(1, r))})
    red = _reduced(a.shape, axes, True)
    if d.bool():
        (s,) = b.node("ReduceSum", [a.name, b.ints(axes, "axes")], [red], keepdims=1)
    else:
        (s,) = b.node("ReduceMax", [a.name], [red], axes=axes, keepdims=1)
    how = d.choice(["direct", "direct", "Expand", "Tile", "Identity"])
    if how == "Expand":
        (s,) = b.node("Expand", [s.name, b.ints(list(a.shape))], [a.shape])
    elif how == "Tile":
        (s,) = b.node("Tile", [s.name, b.ints([x // y for x, y in zip(a.shape, red, strict=True)])], [a.shape])
    elif how == "Identity":
        (s,) = b.node("Identity", [s.name], [s.shape])
    b.node("Div", [a.name, s.name], [a.shape])
    return True


def g_split(b: Builder) -> bool:
    a = b.pick(lambda v: len(v.shape) >= 1 and max(v.shape) >= 2)
    if a is None:
        return False
    axs = [i for i, s in enumerate(a.shape) if s >= 2]
    ax = b.d.choice(axs)
    n = a.shape[ax]
    k = b.d.int(1, n - 1)
    shapes = [(*a.shape[:ax], k, *a.shape[ax + 1:]), (*a.shape[:ax], n - k, *a.shape[ax + 1:])]
    b.node("Split", [a.name, b.ints([k, n - k])], shapes, axis=ax)
    return True


FLOAT_OPS: list[tuple[Callable[[Builder], bool], int]] = [
    (g_unary, 12), (g_unary_attr, 2), (g_binary, 14), (g_pow, 2), (g_matmul, 5), (g_gemm, 3), (g_conv, 4),
    (g_pool, 3), (g_softmax, 3), (g_reduce, 5), (g_reshape, 3), (g_shape_reshape, 4), (g_transpose, 3),
    (g_concat, 3), (g_slice, 3), (g_gather, 3), (g_squeeze_unsqueeze, 3), (g_flatten, 1), (g_batchnorm, 2),
    (g_layernorm, 2), (g_clip, 2), (g_compare, 2), (g_where, 3), (g_cast, 2), (g_expand_tile_pad, 2),
    (g_variadic, 2), (g_split, 1), (g_normalize, 2),
]


def _input_range(d: Draw) -> tuple[float, float]:
    s = d.choice([0.1, 1.0, 1.0, 3.0, 10.0, 100.0, 1000.0])
    kind = d.weighted([("sym", 4), ("pos", 2), ("neg", 1), ("asym", 2), ("point", 1), ("unit", 1)])
    if kind == "sym":
        return -s, s
    if kind == "pos":
        return d.choice([0.0, 0.01 * s, 0.5 * s]), s
    if kind == "neg":
        return -s, d.choice([0.0, -0.1 * s])
    if kind == "asym":
        return -s / 4, s
    if kind == "unit":
        return 0.0, 1.0
    return (d.choice([0.5, -2.0, 0.0]) * s,) * 2


def _input_shape(d: Draw) -> tuple[int, ...]:
    return tuple(d.int(1, 5) for _ in range(d.int(1, 4)))


def build_graph(d: Draw, min_nodes: int = 5, max_nodes: int = 25) -> GenGraph | None:
    """A random graph (``None`` when the generator could not place enough nodes)."""
    b = Builder(d)
    first = Val("x", _input_shape(d), F)
    b.inputs.append(first)
    if d.bool():
        kind = d.choice(["same", "bcast", "free"])
        shape = first.shape if kind == "same" else b.bcast_shape_of(first.shape) if kind == "bcast" else _input_shape(d)
        b.inputs.append(Val("x2", shape if shape else (1,), F))
    for v in b.inputs:
        b.ranges[v.name] = _input_range(d)
        b.vals[v.name] = v
        b.floats.append(v)
    target = d.int(min_nodes, max_nodes)
    tries = 0
    while len(b.nodes) < target and tries < 6 * max_nodes:
        tries += 1
        gen = d.weighted(FLOAT_OPS)
        n0 = len(b.nodes)
        if not gen(b):
            del b.nodes[n0:]  # defensive: generators add nodes only on success
    if len(b.nodes) < min_nodes:
        return None
    g = GenGraph(inputs=b.inputs, ranges=b.ranges, inits=b.inits, nodes=b.nodes, values=b.vals)
    return g


# ---- model building and validation -----------------------------------------------------------


def make_model(g: GenGraph, check_shapes: bool = True) -> onnx.ModelProto:
    """The model with every node output as a graph output (types and shapes from inference).

    Raises:
        ValueError: ONNX rejects the graph or inference disagrees with the tracked shapes.
    """
    inputs = [helper.make_tensor_value_info(v.name, v.elem, list(v.shape)) for v in g.inputs]
    outs = [o for n in g.nodes for o in n.output if o]
    graph = helper.make_graph(list(g.nodes), "fuzz", inputs,
                              [helper.make_tensor_value_info(o, g.values[o].elem, list(g.values[o].shape))
                               for o in outs],
                              [numpy_helper.from_array(a, k) for k, a in g.inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    try:
        onnx.checker.check_model(m)
        inf = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    except Exception as e:
        raise ValueError(f"onnx rejects the graph: {str(e).splitlines()[0][:300]}") from e
    types = {v.name: v for v in list(inf.graph.value_info) + list(inf.graph.output)}
    new_outs = []
    for o in outs:
        vi = types.get(o)
        tt = vi.type.tensor_type if vi is not None else None
        if tt is None or not tt.HasField("shape"):
            raise ValueError(f"no inferred shape for {o}")
        dims = [dd.dim_value if dd.HasField("dim_value") else None for dd in tt.shape.dim]
        if check_shapes and (tuple(dims) != g.values[o].shape or tt.elem_type != g.values[o].elem):
            raise ValueError(f"{o}: inferred {tt.elem_type}{dims}, tracked {g.values[o].elem}{list(g.values[o].shape)}")
        new_outs.append(helper.make_tensor_value_info(o, tt.elem_type, dims))
    del m.graph.output[:]
    m.graph.output.extend(new_outs)
    onnx.checker.check_model(m)
    return m


def float16_copy(m: onnx.ModelProto) -> onnx.ModelProto:
    """``m`` with every float32 tensor in float16: inputs, outputs, weights, Cast targets, constants."""
    h = onnx.ModelProto()
    h.CopyFrom(m)
    g = h.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == F:
            vi.type.tensor_type.elem_type = F16
    for i, t in enumerate(g.initializer):
        if t.data_type == F:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == F:
                a.i = F16
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == F:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
    return h


def ort_session(m: onnx.ModelProto, level: Any = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if level is not None:
        so.graph_optimization_level = level
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def sample_points(g: GenGraph, rng: np.random.Generator, n: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    """``n`` input points in the ranges: all-corner combinations, mixed corners, random, special."""
    names = [v.name for v in g.inputs]
    shapes = {v.name: v.shape for v in g.inputs}

    def const(name: str, which: str) -> np.ndarray:
        lo, hi = g.ranges[name]
        v = {"lo": lo, "hi": hi, "mid": (lo + hi) / 2, "zero": min(max(0.0, lo), hi)}[which]
        return np.full(shapes[name], v, dtype=np.float64)

    def rand(name: str, how: str) -> np.ndarray:
        lo, hi = g.ranges[name]
        s = shapes[name]
        if how == "mix":
            return np.where(rng.random(s) < 0.5, lo, hi)
        if how == "edge":  # corners, the middle and values right next to them
            choices = np.array([lo, hi, (lo + hi) / 2, lo + (hi - lo) * 1e-6, hi - (hi - lo) * 1e-6, min(max(0.0, lo), hi)])
            return choices[rng.integers(0, len(choices), s)]
        return rng.uniform(lo, hi, s)

    pts: list[tuple[str, dict[str, np.ndarray]]] = []
    corners = [("lo",) * len(names), ("hi",) * len(names)]
    if len(names) == 2:
        corners += [("lo", "hi"), ("hi", "lo")]
    for c in corners:
        pts.append(("corner " + "/".join(c), {nm: const(nm, w) for nm, w in zip(names, c, strict=True)}))
    pts.append(("mid", {nm: const(nm, "mid") for nm in names}))
    pts.append(("zero", {nm: const(nm, "zero") for nm in names}))
    i = 0
    while len(pts) < n:
        how = ("mix", "uniform", "edge")[i % 3]
        pts.append((f"{how} #{i}", {nm: rand(nm, how) for nm in names}))
        i += 1
    out = []
    for label, vals in pts:
        fixed = {}
        for nm, v in vals.items():
            lo, hi = g.ranges[nm]
            v32 = v.astype(np.float32)
            # float32 rounding may step outside a range whose end is not a float32: clamp inwards
            v32 = np.clip(v32, np.float32(lo) if np.float32(lo) >= lo else np.nextafter(np.float32(lo), np.float32(np.inf)),
                          np.float32(hi) if np.float32(hi) <= hi else np.nextafter(np.float32(hi), np.float32(-np.inf)))
            fixed[nm] = v32.astype(np.float32)
        out.append((label, fixed))
    return out[:n]


def ancestors(m: onnx.ModelProto) -> tuple[dict[str, set[str]], dict[str, str]]:
    """For each value: the node names it depends on (its producer included); value -> producer."""
    producer: dict[str, str] = {}
    anc: dict[str, set[str]] = {}
    for n in m.graph.node:
        deps: set[str] = {n.name}
        for i in n.input:
            if i:
                deps |= anc.get(i, set())
        for o in n.output:
            producer[o] = n.name
            anc[o] = deps
    return anc, producer


def value_ancestors(m: onnx.ModelProto) -> dict[str, set[str]]:
    """For each node name: every value (inputs, weights, node outputs) upstream of it."""
    up: dict[str, set[str]] = {}
    vals: dict[str, set[str]] = {}
    for n in m.graph.node:
        s: set[str] = set()
        for i in n.input:
            if i:
                s |= {i} | vals.get(i, set())
        up[n.name] = s
        for o in n.output:
            vals[o] = s
    return up


# ---- onnxruntime ----------------------------------------------------------------------------


class WholeGraph:
    """onnxruntime on the whole model, every graph output from one run.

    ``deployed``: only the values no node reads are outputs and all graph optimizations are on
    (as a deployment runs it: fusions apply); otherwise every value is an output and
    optimizations are off (each op's kernel sees exactly the values numsentry reasons about).
    """

    def __init__(self, m: onnx.ModelProto, deployed: bool = False, fp16: bool = False) -> None:
        import onnxruntime as ort

        if deployed:
            read = {i for n in m.graph.node for i in n.input}
            m2 = onnx.ModelProto()
            m2.CopyFrom(m)
            keep = [o for o in m2.graph.output if o.name not in read]
            del m2.graph.output[:]
            m2.graph.output.extend(keep)
            m = m2
        # float16 at ORT_ENABLE_ALL can crash onnxruntime 1.31 at session creation (seen with
        # Transpose -> MatMul -> Sqrt -> Clip -> Div), so float16 stops at the extended fusions
        level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if not deployed else
                 ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if fp16 else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        self.sess = ort_session(m, level)
        self.names = [o.name for o in m.graph.output]

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {n: np.asarray(v) for n, v in zip(self.names, self.sess.run(None, feeds), strict=True)}


class PerNode:
    """onnxruntime one node at a time, each fed the previous nodes' (rounded) outputs.

    For a float16 model this is the semantics numsentry's ``--as-dtype float16`` analyses
    (every value is a float16 value). A whole-graph float16 run differs: onnxruntime's CPU
    ``InsertCastTransformer`` runs chains of ops without float16 kernels as one float32 island,
    so their intermediates are never rounded to float16 (see the xfail regression test).
    """

    def __init__(self, m: onnx.ModelProto) -> None:
        m = onnx.shape_inference.infer_shapes(m)
        types = {v.name: v for v in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info)}
        inits = {t.name: t for t in m.graph.initializer}
        self.steps: list[tuple[Any, list[str], list[str]]] = []
        for n in m.graph.node:
            ins = [i for i in n.input if i]
            graph = helper.make_graph([n], n.name, [types[i] for i in dict.fromkeys(ins) if i not in inits],
                                      [types[o] for o in n.output if o],
                                      [inits[i] for i in dict.fromkeys(ins) if i in inits])
            sm = helper.make_model(graph, opset_imports=list(m.opset_import), ir_version=m.ir_version)
            feeds = [i for i in dict.fromkeys(ins) if i not in inits]
            self.steps.append((ort_session(sm), feeds, [o for o in n.output if o]))

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = dict(feeds)
        out: dict[str, np.ndarray] = {}
        for sess, names, outs in self.steps:
            vals = sess.run(None, {k: env[k] for k in names})
            for o, v in zip(outs, vals, strict=True):
                env[o] = out[o] = np.asarray(v)
        return out


# ---- shrinking a failing case by hand ------------------------------------------------------


def _rebuild(g: GenGraph, nodes: list[onnx.NodeProto]) -> GenGraph:
    used = {i for n in nodes for i in n.input if i}
    inputs = [v for v in g.inputs if v.name in used] or g.inputs[:1]
    return GenGraph(inputs=inputs, ranges={v.name: g.ranges[v.name] for v in inputs},
                    inits={k: a for k, a in g.inits.items() if k in used}, nodes=nodes, values=g.values, seed=g.seed)


def cone(g: GenGraph, node_name: str) -> GenGraph:
    """``g`` cut down to ``node_name`` and the nodes upstream of it."""
    keep: set[str] = set()
    need = {node_name}
    for n in reversed(g.nodes):
        if n.name in need or any(o in keep for o in n.output):
            keep |= {i for i in n.input if i}
            need.add(n.name)
    return _rebuild(g, [n for n in g.nodes if n.name in need])


def shrink(g: GenGraph, fails: Callable[[GenGraph], bool]) -> GenGraph:
    """Greedy shrinking: drop nodes whose outputs nobody reads, and bypass nodes (their readers
    read a same-shape float input instead) while ``fails`` still holds."""
    changed = True
    while changed:
        changed = False
        for n in list(g.nodes):
            readers = [m for m in g.nodes if any(i in n.output for i in m.input)]
            cands: list[list[onnx.NodeProto]] = []
            if not readers:
                cands.append([m for m in g.nodes if m is not n])
            for i in n.input:
                if len(n.output) != 1 or not i or i not in g.values or n.output[0] not in g.values:
                    continue
                src, dst = g.values[i], g.values[n.output[0]]
                if src.shape == dst.shape and src.elem == dst.elem:
                    new = []
                    for m in g.nodes:
                        if m is n:
                            continue
                        mm = onnx.NodeProto()
                        mm.CopyFrom(m)
                        for k, x in enumerate(mm.input):
                            if x == n.output[0]:
                                mm.input[k] = i
                        new.append(mm)
                    cands.append(new)
            for nodes in cands:
                h = _rebuild(g, nodes)
                try:
                    h.model = make_model(h)
                    ok = fails(h)
                except Exception:
                    ok = False
                if ok:
                    g, changed = h, True
                    break
            if changed:
                break
    return g

"""Registry-driven property tests: every registered op declaration, every interpretation.

For each declaration in ``REGISTRY.all()`` (newest and older versions), hypothesis draws cases
with the op's ``sample`` and checks:

1. soundness: numpy's and onnxruntime's outputs at corners, random and mixed points of the
   input boxes lie inside the interval result (NaN only where the box allows it; shapes equal),
   and a non-finite output from finite inputs is reported (a hazard fires, or the op's
   overflow rule applies to an unbounded output box);
2. exactness: for point inputs the interval result contains the concrete result, equals it for
   ``exact`` ops, and is only a few hundred ULPs wide otherwise;
3. conformance: the numpy concrete rule agrees with ``onnx.reference`` (and the sampled model is
   valid ONNX whose inferred output types match the concrete rule's);
4. gradients (``differentiable`` ops): torch forward equals numpy forward in float64, and torch
   gradients pass ``torch.autograd.gradcheck`` at one of three random points.

Tests are parametrized by op id (``Exp-13``), so ``-k Exp-13`` or ``-k "Softmax"`` selects.
Runtime gaps (op/opset/dtype missing in onnxruntime or onnx.reference) are skipped with the
reason recorded and listed in the pytest summary. ``NUMSENTRY_PROP_EXAMPLES`` sets the examples
per op and test (default 25); ``NUMSENTRY_PROP_SHRINK=1`` lets hypothesis shrink failures.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
import pytest
from _harness import (
    Case,
    containment_failure,
    draw_case,
    float_input_scale,
    op_id,
    ort_reason,
    ort_session,
    record,
    reference_run,
    sampler_of,
    short,
    width_failure,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from numsentry.domains.box import Box
from numsentry.dtypes import is_float_dtype
from numsentry.ops import REGISTRY
from numsentry.ops.registry import BoxSpec, OpDef

EXAMPLES = int(os.environ.get("NUMSENTRY_PROP_EXAMPLES", "25"))
_PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("NUMSENTRY_PROP_SHRINK") else [])
PROPS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=_PHASES,
                 suppress_health_check=list(HealthCheck), print_blob=False)

# Ops whose output is random: a point input does not fix it, so exactness is not asked of them
# (containment still is); outputs that differ between two runs are treated the same way.
_RANDOM_PREFIXES = ("Random", "Bernoulli", "Multinomial")

_REQUIRED_TEXT = """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
BatchNormalization Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos
Cosh CumSum DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten
Floor GRU Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalMaxPool Greater
GreaterOrEqual GroupNormalization HardSigmoid HardSwish Hardmax Identity If InstanceNormalization
IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop
LpNormalization MatMul Max MaxPool Mean Min Mish Mod Mul Neg NegativeLogLikelihoodLoss NonZero Not
OneHot Or PRelu Pad Pow QuantizeLinear RMSNormalization RNN RandomNormal RandomNormalLike
RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize Round Scan
ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax
SoftmaxCrossEntropyLoss Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Swish Tan Tanh
ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor"""
REQUIRED = _REQUIRED_TEXT.split()


def _is_random(op: OpDef) -> bool:
    return op.op_type.startswith(_RANDOM_PREFIXES)


def _params(test: str) -> list[Any]:
    """One pytest param per declaration; missing rules or samplers become skips with a reason."""
    out = []
    for op in REGISTRY.all():
        marks: list[Any] = []
        if sampler_of(op) is None:
            marks.append(pytest.mark.skip(reason=f"{op_id(op)} has no sampler"))
        elif op.concrete is None:
            marks.append(pytest.mark.skip(reason=f"{op_id(op)} has no concrete rule"))
        elif test in ("soundness", "exactness") and op.interval is None:
            marks.append(pytest.mark.skip(reason=f"{op_id(op)} has no interval rule"))
        elif test == "gradients" and not op.differentiable:
            marks.append(pytest.mark.skip(reason=f"{op_id(op)} is not differentiable"))
        out.append(pytest.param(op, id=op_id(op), marks=marks))
    return out


def _fail(case: Case, failures: list[str], where: str = "") -> None:
    if failures:
        head = case.describe() + (f"\n  at {where}" if where else "")
        pytest.fail(head + "\n  " + "\n  ".join(failures[:6]), pytrace=False)


def _point_text(case: Case, values: list[np.ndarray | None]) -> str:
    return ", ".join(f"x{i}={short(values[i])}" for i in case.box_slots())


def _interval(case: Case, boxes: list[Box | None] | None, test: str) -> tuple[Box, ...] | None:
    try:
        return case.interval(boxes)
    except NotImplementedError as e:  # a declared, sound refusal: counted, not a failure
        record(test, case.op, f"interval rule declined a sample: {e}")
        return None


def _is_nondeterministic(case: Case, values: list[np.ndarray | None], outs: tuple[np.ndarray, ...]) -> bool:
    if _is_random(case.op):
        return True
    again = case.concrete(values)
    return any(a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
               for a, b in zip(outs, again, strict=False))


# ---- 1. soundness ----------------------------------------------------------------------


@pytest.mark.parametrize("op", _params("soundness"))
@PROPS
@given(data=st.data())
def test_soundness(op: OpDef, data: st.DataObject) -> None:
    """numpy's and onnxruntime's outputs at points of the input boxes lie inside the result."""
    case = draw_case(op, data.draw)
    boxes = _interval(case, None, "soundness")
    if boxes is None:
        return
    sess: Any = None
    tried_ort = False
    for pt in case.points():
        failures: list[str] = []
        outs = case.concrete(pt.values)
        if len(outs) != len(boxes):
            _fail(case, [f"concrete rule gives {len(outs)} outputs, interval rule {len(boxes)}"])
        for j, (o, b) in enumerate(zip(outs, boxes, strict=True)):
            if (msg := containment_failure(b, o, f"numpy output {j}")) is not None:
                failures.append(msg)
        if (msg := _unreported(case, boxes, pt.values, outs, "numpy")) is not None:
            failures.append(msg)
        if not tried_ort:
            tried_ort = True
            sess, why = ort_session(case, outs)
            if why:
                record("soundness", op, why)
        if sess is not None:
            try:
                with np.errstate(all="ignore"):
                    ort_outs = sess.run(None, case.feeds(pt.values))
            except Exception as e:
                record("soundness", op, f"onnxruntime run failed: {ort_reason(str(e))}")
                sess = None
            else:
                for j, (o, b) in enumerate(zip(ort_outs, boxes, strict=False)):
                    if (msg := containment_failure(b, np.asarray(o), f"onnxruntime output {j}")) is not None:
                        failures.append(msg)
                if (msg := _unreported(case, boxes, pt.values, ort_outs, "onnxruntime")) is not None:
                    failures.append(msg)
        _fail(case, failures, f"{pt.kind} point {_point_text(case, pt.values)}")


def _unreported(case: Case, boxes: tuple[Box, ...], values: list[np.ndarray | None],
                outs: Any, who: str) -> str | None:
    """A non-finite output from finite inputs that the check would not report, or ``None``.

    As in `numsentry.analyses.check`: either one of the op's hazards fires for the input boxes,
    or the op has an overflow rule and an output box is unbounded.
    """
    bad = []
    for j, o in enumerate(outs):
        a = np.asarray(o)
        if is_float_dtype(a.dtype) and not np.all(np.isfinite(a.astype(np.float64))):
            bad.append(j)
    if not bad:
        return None
    for v in values:
        if v is not None and is_float_dtype(np.asarray(v).dtype) and not np.all(np.isfinite(np.asarray(v, np.float64))):
            return None  # non-finite inputs: not this op's finding
    if case.op.overflow_rule is not None and any(not (np.isfinite(b.min()) and np.isfinite(b.max()))
                                                 for b in boxes if is_float_dtype(b.dtype)):
        return None
    if case.hazards_fired():
        return None
    return (f"{who} output {bad[0]} is non-finite at a finite point, yet no hazard of the op fires for "
            f"the input boxes and no overflow rule applies (hazards: {[h.rule for h in case.op.hazards]})")


# ---- 2. exactness ----------------------------------------------------------------------


@pytest.mark.parametrize("op", _params("exactness"))
@PROPS
@given(data=st.data())
def test_exactness(op: OpDef, data: st.DataObject) -> None:
    """Point inputs give a box holding the concrete result: equal to it for exact ops, tight else."""
    case = draw_case(op, data.draw)
    values = case.random_point(np.random.default_rng(case.seed))
    boxes = _interval(case, [None if v is None else Box.point(v) for v in values], "exactness")
    if boxes is None:
        return
    outs = case.concrete(values)
    where = f"point {_point_text(case, values)}"
    if len(outs) != len(boxes):
        _fail(case, [f"concrete rule gives {len(outs)} outputs, interval rule {len(boxes)}"], where)
    random = _is_nondeterministic(case, values, outs)
    scale = float_input_scale(values)
    failures: list[str] = []
    for j, (o, b) in enumerate(zip(outs, boxes, strict=True)):
        if np.dtype(b.dtype) != o.dtype:
            failures.append(f"output {j}: interval dtype {b.dtype} but concrete dtype {o.dtype}")
        if (msg := containment_failure(b, o, f"numpy output {j}")) is not None:
            failures.append(msg)
            continue
        if random:
            continue
        if op.exact:
            if not b.is_point:
                failures.append(f"output {j}: exact op gave a non-point box {b!r} for point inputs")
            elif not np.array_equal(b.value, o, equal_nan=o.dtype.kind == "f"):
                failures.append(f"output {j}: exact op's point {b.value!r} differs from {o!r}")
        elif (msg := width_failure(b, o, scale, f"output {j}")) is not None:
            failures.append(msg)
    _fail(case, failures, where)
    if random:  # inherently loose: a point input does not fix a random output
        record("exactness", op, "random output: containment checked, exactness/width not")


# ---- 3. conformance --------------------------------------------------------------------

_RTOL = {"float16": 1e-3, "bfloat16": 1e-2, "float32": 1e-5, "float64": 1e-7}


@pytest.mark.parametrize("op", _params("conformance"))
@PROPS
@given(data=st.data())
def test_conformance(op: OpDef, data: st.DataObject) -> None:
    """The numpy concrete rule agrees with onnx.reference on a valid single-node model."""
    case = draw_case(op, data.draw)
    values = case.random_point(np.random.default_rng(case.seed))
    outs = case.concrete(values)
    where = f"point {_point_text(case, values)}"
    model = case.model(outs)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0][:300]
        if "deprecated" in first:  # the schema version itself is retired: still compare below
            record("conformance", op, f"onnx.checker: {first}")
        else:
            _fail(case, ["ONNX rejects the sampled model (invalid sample, or wrong concrete output "
                         f"count/dtype {[str(o.dtype) for o in outs]}): {first}"])
    shapes, _ = case.inferred_types()
    failures = [f"output {j}: concrete shape {o.shape} but ONNX infers {s}"
                for j, (o, s) in enumerate(zip(outs, shapes, strict=False)) if s is not None and o.shape != s]
    try:
        ref, why = reference_run(case, values, outs)
    except Exception as e:
        msg = f"onnx.reference raised {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
        if (ort_diff := _ort_diff(case, values, outs)) == []:  # onnxruntime runs it and agrees
            record("conformance", op, f"{msg}; onnxruntime agrees with the concrete rule")
            return
        _fail(case, [msg, *(ort_diff or ["onnxruntime cannot arbitrate"])], where)
    if why:
        record("conformance", op, why)
        pytest.skip(why)
    assert ref is not None
    random = _is_nondeterministic(case, values, outs)
    mismatch = _compare(outs, ref, random, "reference")
    if mismatch:
        # arbitration: when onnxruntime agrees with the concrete rule, the reference is wrong
        ort_diff = _ort_diff(case, values, outs, random)
        if ort_diff == []:
            record("conformance", op, f"onnx.reference disagrees, onnxruntime agrees: {mismatch[0]}")
            mismatch = []
        elif ort_diff is not None:
            mismatch += ort_diff
    _fail(case, failures + mismatch, where)


def _ort_diff(case: Case, values: list[np.ndarray | None], outs: tuple[np.ndarray, ...],
              random: bool = False) -> list[str] | None:
    """Differences between the concrete rule and onnxruntime (``None``: onnxruntime can't run it)."""
    sess, _ = ort_session(case, outs)
    if sess is None:
        return None
    try:
        with np.errstate(all="ignore"):
            ort_outs = [np.asarray(o) for o in sess.run(None, case.feeds(values))]
    except Exception:
        return None
    return _compare(outs, ort_outs, random, "onnxruntime")


def _compare(outs: tuple[np.ndarray, ...], ref: list[np.ndarray], random: bool, name: str) -> list[str]:
    """Differences between the concrete outputs and another runtime's (``name``)."""
    failures = []
    if len(ref) != len(outs):
        failures.append(f"concrete rule gives {len(outs)} outputs, {name} {len(ref)}")
    for j, (o, r) in enumerate(zip(outs, ref, strict=False)):
        if o.shape != r.shape or o.dtype != r.dtype:
            failures.append(f"output {j}: concrete {o.dtype}{list(o.shape)} vs {name} {r.dtype}{list(r.shape)}")
            continue
        if random:
            continue
        if is_float_dtype(o.dtype):
            a, b = o.astype(np.float64), r.astype(np.float64)
            rtol = _RTOL.get(o.dtype.name, 1e-5)
            fin = np.isfinite(b)
            atol = rtol * max(1.0, float(np.max(np.abs(b[fin])))) if fin.any() else 0.0
            ok = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        else:
            ok = np.asarray(o == r)
        if not ok.all():
            t = tuple(int(i) for i in np.argwhere(~ok)[0])
            failures.append(f"output {j}: {int((~ok).sum())} of {o.size} elements differ, e.g. at {t}: "
                            f"concrete {o[t]!r} vs {name} {r[t]!r}")
    return failures


# ---- 4. gradients ----------------------------------------------------------------------


def _to64(v: np.ndarray | None) -> np.ndarray | None:
    if v is None:
        return None
    a = np.asarray(v)
    return a.astype(np.float64) if is_float_dtype(a.dtype) else a


@pytest.mark.parametrize("op", _params("gradients"))
@PROPS
@given(data=st.data())
def test_gradients(op: OpDef, data: st.DataObject) -> None:
    """torch forward == numpy forward (float64); torch gradients agree with finite differences.

    Points come from the box (the first two tries), then from the box jittered by 1e-3 relative
    (degenerate boxes would repeat one point, where ties are broken arbitrarily). Points near a
    kink, a jump or the domain's edge are skipped; the test fails when gradcheck fails at 3
    smooth points.
    """
    import torch

    from numsentry.ops.apply import apply_concrete
    from numsentry.ops.kernels import torch_kernels

    case = draw_case(op, data.draw)
    slots = [i for i in case.box_slots() if is_float_dtype(np.dtype(case.specs[i].dtype)
                                                            if case.specs[i].dtype != "bfloat16" else np.float32)]
    if not slots:
        return  # nothing to differentiate in this sample
    torch.set_num_threads(1)  # tiny tensors: threads only add contention
    tk = torch_kernels()
    rng = np.random.default_rng(case.seed)
    errors: list[str] = []
    skipped: list[str] = []
    for attempt in range(_GRAD_TRIES):
        values = [_to64(v) for v in case.random_point(rng)]
        if attempt >= 2:  # jitter: degenerate boxes would repeat one (maybe tie-breaking) point
            for i in slots:
                v = values[i]
                assert v is not None
                values[i] = v + rng.uniform(-1, 1, np.shape(v)) * 1e-3 * (attempt - 1) * (1 + np.abs(v))
        where = f"attempt {attempt}, point {_point_text(case, values)}"
        np_out = case.concrete(values)
        t_in = [None if v is None else torch.from_numpy(np.array(v)) for v in values]
        try:
            t_out = list(apply_concrete(op, tk, t_in, case.attrs))
        except Exception as e:
            _fail(case, [f"concrete rule fails on the torch backend: {type(e).__name__}: {e}"], where)
        _fail(case, _forward_mismatch(np_out, [tk.to_numpy(t) for t in t_out]), where)
        outs64 = [j for j, t in enumerate(t_out) if t.dtype == torch.float64]
        if not outs64:
            return  # no float64 output (integer outputs, or a cast to a narrower float)
        if any(not np.all(np.isfinite(np_out[j])) for j in outs64):
            skipped.append(f"{where}: non-finite output")
            continue
        weights = {j: torch.as_tensor(rng.standard_normal(np_out[j].shape)) for j in outs64}

        def fn(*xs: Any, ins0: list[Any] = t_in, w: dict[int, Any] = weights, js: list[int] = outs64) -> Any:
            ins = list(ins0)
            for i, x in zip(slots, xs, strict=True):
                ins[i] = x
            outs = apply_concrete(op, tk, ins, case.attrs)
            return sum((outs[j] * w[j]).sum() for j in js)

        xs = tuple(t_in[i].clone().requires_grad_(True) for i in slots)  # type: ignore[union-attr]
        if (kink := _near_kink(fn, xs, rng)) is not None:
            skipped.append(f"{where}: {kink}")
            continue
        try:
            torch.autograd.gradcheck(fn, xs, eps=_EPS, atol=1e-4, rtol=1e-3, nondet_tol=1e-7,
                                     check_undefined_grad=False, check_batched_grad=False, fast_mode=True)
            return
        except Exception as e:  # GradcheckError, or autograd failing outright
            errors.append(f"{where}: {type(e).__name__}: {' '.join(str(e).split())[:400]}")
            if len(errors) == 3:
                _fail(case, ["gradients wrong at 3 smooth points", *errors])
    record("gradients", op, f"no conclusive point in {_GRAD_TRIES} tries (kinks, non-finite values)")


_EPS = 1e-6
_GRAD_TRIES = 6


def _near_kink(fn: Any, xs: tuple[Any, ...], rng: np.random.Generator) -> str | None:
    """Why finite differences with step ``_EPS`` are meaningless at ``xs``, or ``None``.

    Forward and backward differences along random directions (every coordinate moved by at
    least ``_EPS``) agree to O(eps * curvature) where the function is smooth; they differ when
    a step crosses a kink (Relu at 0, a tie in Max, |x| at 0) or leaves the domain (NaN).
    """
    import torch

    with torch.no_grad():
        f0 = float(fn(*xs))
        for _ in range(2):
            d = [torch.from_numpy(np.asarray(rng.choice([-1.0, 1.0], size=tuple(x.shape))
                                             * (1 + rng.uniform(size=tuple(x.shape)))))
                 for x in xs]
            fp = float(fn(*(x + _EPS * di for x, di in zip(xs, d, strict=True))))
            fm = float(fn(*(x - _EPS * di for x, di in zip(xs, d, strict=True))))
            f2 = float(fn(*(x + 2 * _EPS * di for x, di in zip(xs, d, strict=True))))
            if not np.isfinite([f0, fp, fm, f2]).all():
                return "a step of eps leaves the domain (non-finite value)"
            fwd, bwd, fwd2 = (fp - f0) / _EPS, (f0 - fm) / _EPS, (f2 - f0) / (2 * _EPS)
            if abs(fwd - bwd) > 1e-3 * (abs(fwd) + abs(bwd)) + 1e-5:
                return f"near a kink (one-sided slopes {fwd:.6g} vs {bwd:.6g})"
            if abs(fwd - fwd2) > 1e-3 * (abs(fwd) + abs(fwd2)) + 1e-5:  # a jump: slope ~ 1/step
                return f"near a discontinuity (slopes {fwd:.6g} at eps vs {fwd2:.6g} at 2 eps)"
    return None


def _forward_mismatch(np_out: tuple[np.ndarray, ...], t_out: list[np.ndarray]) -> list[str]:
    """Differences between the numpy and torch forwards (float64, rtol 1e-7)."""
    fwd = []
    if len(np_out) != len(t_out):
        fwd.append(f"numpy gives {len(np_out)} outputs, torch {len(t_out)}")
    for j, (a, b) in enumerate(zip(np_out, t_out, strict=False)):
        if a.shape != b.shape:
            fwd.append(f"output {j}: numpy shape {a.shape} vs torch {b.shape}")
            continue
        if is_float_dtype(a.dtype):
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            fin = np.isfinite(a64)
            atol = 1e-12 * (1.0 + (float(np.max(np.abs(a64[fin]))) if fin.any() else 0.0))
            ok = np.isclose(b64, a64, rtol=1e-7, atol=atol, equal_nan=True)
        else:
            ok = np.asarray(a == b)
        if not ok.all():
            t = tuple(int(i) for i in np.argwhere(~ok)[0])
            fwd.append(f"output {j}: numpy {a[t]!r} vs torch {b[t]!r} at {t} (float64 forward)")
    return fwd


# ---- the required op list --------------------------------------------------------------


def test_required_ops_registered() -> None:
    """Every op of the required list that the installed onnx defines has a declaration."""
    exempt = [o for o in REQUIRED if not onnx.defs.has(o)]
    missing = [o for o in REQUIRED if onnx.defs.has(o) and o not in REGISTRY]
    assert not missing, (f"{len(missing)} required ops are not registered: {' '.join(missing)}"
                         + (f" (exempt, unknown to onnx {onnx.__version__}: {' '.join(exempt)})" if exempt else ""))


def test_registry_declarations_are_well_formed() -> None:
    """Each declaration names an ONNX op at its version and says how its interval rule is derived."""
    problems = []
    for op in REGISTRY.all():
        if not op.domain and not onnx.defs.has(op.op_type):
            problems.append(f"{op_id(op)}: unknown to onnx")
            continue
        if op.interval is not None and op.property in ("", "custom") and not op.doc:
            problems.append(f"{op_id(op)}: no property and no doc")
        if op.ulps < 0:
            problems.append(f"{op_id(op)}: negative ulps")
    assert not problems, "; ".join(problems)


_ = BoxSpec

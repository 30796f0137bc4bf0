"""A whole ``deviate`` run: inputs, the sweep, classes, metrics, localisation and attribution.

`run_deviate` is what the CLI and the benchmark call; it returns a `DeviationResult` that
`report` renders (rich, JSON, HTML) and `store` records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from numsentry.deviation.attribution import KnobEffect, attribute, reference_of, summary_lines
from numsentry.deviation.boundary import BoundarySet, evaluator, find_boundary
from numsentry.deviation.configs import Matrix
from numsentry.deviation.localise import (
    LayerRow,
    first_divergence,
    float_format,
    graph_nodes,
    propagation,
)
from numsentry.deviation.metrics import (
    Comparison,
    class_letters,
    compare_outputs,
    label_output,
    margins,
)
from numsentry.deviation.runner import Progress, RunResult, run_configs
from numsentry.deviation.store import file_hash, inputs_hash, platform_info
from numsentry.errors import UserError

__all__ = ["REPORT_VERSION", "ConfigRow", "DeviationResult", "PairLayers", "load_inputs", "run_deviate"]

REPORT_VERSION = 1


@dataclass
class ConfigRow:
    """One configuration's line of the report.

    Attributes:
        result: What the worker produced.
        cls: Equivalence-class letter (None when it did not run).
        vs_baseline: Metrics against the baseline.
        vs_float64: Metrics against the float64 reference.
        margin_min: Smallest top-1/top-2 margin of its own label output.
        margin_min_ulp: The same in ULPs.
        labels: Its label per input (label output's argmax).
    """

    result: RunResult
    cls: str | None
    vs_baseline: Comparison | None = None
    vs_float64: Comparison | None = None
    margin_min: float | None = None
    margin_min_ulp: float | None = None
    labels: np.ndarray | None = None

    @property
    def name(self) -> str:
        """Configuration name."""
        return self.result.config.name

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see docs/deviate.md)."""
        r, c = self.result, self.result.config
        vb, vf = self.vs_baseline, self.vs_float64
        return {
            "name": c.name, "runtime": c.runtime, "knobs": c.knobs(), "dtype": c.effective_dtype(),
            "env": c.env(), "status": r.status, "class": self.cls,
            "skipped": r.reason if r.status == "skipped" else None,
            "failed": r.reason if r.status == "failed" else None,
            "seconds": r.seconds, "wall_seconds": round(r.wall, 4),
            "repeats": c.repeats, "distinct_outputs": r.distinct_repeats if r.ok else None,
            "remaining_precision_min": vb.remaining_precision_min if vb else None,
            "remaining_precision_median": vb.remaining_precision_median if vb else None,
            "max_ulp": vb.max_ulp if vb else None, "linf": vb.linf if vb else None,
            "frac_differing": vb.frac_differing if vb else None, "d_mad": vb.d_mad if vb else None,
            "top1_flips": vb.top1_flips if vb else None, "topk_changes": vb.topk_changes if vb else None,
            "margin_min": self.margin_min, "margin_min_ulp": self.margin_min_ulp,
            "vs_float64": vf.to_dict() if vf else None,
            "observed": r.observed,
        }


@dataclass
class PairLayers:
    """Per-layer comparison of two configurations.

    Attributes:
        a: First configuration (the reference side).
        b: Second configuration.
        rows: One row per node.
        first: The first node whose outputs differ (None: all identical).
        note: Caveat (e.g. onnxruntime's layer run differs from its normal run).
    """

    a: str
    b: str
    rows: list[LayerRow]
    first: LayerRow | None
    note: str | None = None


@dataclass
class DeviationResult:
    """Everything one ``deviate`` run found.

    Attributes:
        model: Model path.
        model_hash: Hash of the model file.
        input_hash: Hash of the inputs.
        inputs: The inputs used.
        input_source: ``file``, ``random`` or ``boundary``.
        baseline: Name of the baseline configuration.
        reference: Name of the float64 reference configuration (None if it did not run).
        rows: One per configuration, in order.
        knobs: Knob effects.
        summary: The one-screen summary lines.
        layers: Per-layer comparisons (with ``--layers``).
        boundary: The boundary set (with ``--boundary``).
        platform: This machine's description and fingerprint.
        seconds: Wall time of the whole run.
        label_output: Output the labels are taken from.
    """

    model: str
    model_hash: str
    input_hash: str
    inputs: dict[str, np.ndarray]
    input_source: str
    baseline: str | None
    reference: str | None
    rows: list[ConfigRow]
    knobs: list[KnobEffect]
    summary: list[str]
    layers: list[PairLayers] = field(default_factory=list)
    boundary: BoundarySet | None = None
    platform: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    label_output: str | None = None

    @property
    def classes(self) -> dict[str, list[str]]:
        """Class letter -> configuration names."""
        out: dict[str, list[str]] = {}
        for r in self.rows:
            if r.cls is not None:
                out.setdefault(r.cls, []).append(r.name)
        return out

    def row(self, name: str) -> ConfigRow:
        """The row of configuration ``name``."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


def load_inputs(model_path: str, inputs: str | None = None, random: int | None = None,
                low: float = 0.0, high: float = 1.0, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """Graph inputs from a ``.npy``/``.npz`` file, or ``random`` seeded uniform samples.

    A ``.npy`` file feeds the first graph input; an ``.npz`` file feeds inputs by name.

    Raises:
        UserError: Missing or unreadable file, names or ranks that do not match the model.
    """
    import onnx

    try:
        proto = onnx.load(model_path, load_external_data=False)
    except Exception as e:
        raise UserError(f"{model_path}: cannot read the model: {str(e).splitlines()[0][:200]}") from e
    inits = {t.name for t in proto.graph.initializer}
    gin = [i for i in proto.graph.input if i.name not in inits]
    if not gin:
        raise UserError(f"{model_path}: the model has no graph inputs")
    if inputs is not None:
        p = Path(inputs)
        if not p.exists():
            raise UserError(f"{inputs}: no such file", hint="a .npy array for the first input or an .npz by name")
        try:
            if p.suffix == ".npz":
                with np.load(p, allow_pickle=False) as z:
                    feeds = {k: z[k] for k in z.files}
            else:
                feeds = {gin[0].name: np.load(p, allow_pickle=False)}
        except Exception as e:
            raise UserError(f"{inputs}: cannot read: {str(e).splitlines()[0][:200]}",
                            hint="save with numpy.save / numpy.savez") from e
        missing = [i.name for i in gin if i.name not in feeds]
        if missing:
            raise UserError(f"{inputs}: no values for graph inputs {missing}",
                            hint=f"an .npz with arrays named {[i.name for i in gin]}")
        for i in gin:
            want = len(i.type.tensor_type.shape.dim)
            if i.type.tensor_type.HasField("shape") and feeds[i.name].ndim != want:
                raise UserError(f"{inputs}: input {i.name!r} has rank {feeds[i.name].ndim}, the model wants {want}")
        return {i.name: feeds[i.name] for i in gin}, "file"
    n = int(random or 16)
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in gin:
        tt = i.type.tensor_type
        shape = [n] + [d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim[1:]]
        dt = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.dtype(dt).kind != "f":
            raise UserError(f"--random: input {i.name!r} is {np.dtype(dt)}: give --inputs")
        feeds[i.name] = rng.uniform(low, high, size=shape).astype(dt)
    return feeds, "random"


def _formats(model_path: str) -> dict[str, str]:
    import onnx

    proto = onnx.load(model_path, load_external_data=False)
    return {o.name: float_format(o.type.tensor_type.elem_type) or "float32" for o in proto.graph.output}


def run_deviate(
    model: str,
    feeds: Mapping[str, np.ndarray],
    matrix: Matrix,
    *,
    layers: bool = False,
    boundary: int | None = None,
    label: str | None = None,
    jobs: int = 1,
    timeout: float = 300.0,
    progress: Progress | None = None,
    input_source: str = "file",
    seed: int = 0,
) -> DeviationResult:
    """Run the matrix on the model and analyse the results.

    Args:
        model: Path of the ONNX model.
        feeds: Graph inputs by name (with ``boundary``: the pool the boundary inputs are
            bisected from).
        matrix: Configurations and the baseline's name.
        layers: Compare every intermediate tensor.
        boundary: Replace the inputs by this many boundary samples.
        label: Output to take labels from (default: the first float output with a class axis).
        jobs: Configurations at once.
        timeout: Seconds per configuration.
        progress: Progress callback.
        input_source: How the inputs were made (recorded).
        seed: Seed of the boundary search.
    """
    t0 = time.perf_counter()
    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    bset: BoundarySet | None = None
    if boundary:
        name = next(iter(feeds))
        others = {k: v for k, v in feeds.items() if k != name}
        ev, who = evaluator(model, name, others, label)
        bset = find_boundary(ev, feeds[name], int(boundary), seed=seed, searcher=who)
        feeds = {name: bset.inputs, **others}
        input_source = "boundary"
    formats = _formats(model)
    results = run_configs(matrix.configs, model, feeds, layers=layers, jobs=jobs, timeout=timeout, progress=progress)
    by_name = {r.config.name: r for r in results}
    base_name = matrix.baseline if matrix.baseline in by_name and by_name[matrix.baseline].ok else None
    if base_name is None:
        base_name = next((r.config.name for r in results if r.ok), None)
    ref_name = next((r.config.name for r in results if r.ok and r.config.runtime == "float64"), None)
    order = sorted(results, key=lambda r: r.config.name != base_name)  # the baseline gets letter A
    letters = dict(zip([r.config.name for r in order],
                       class_letters([r.output_key if r.ok else None for r in order]), strict=True))
    base = by_name.get(base_name) if base_name else None
    ref = by_name.get(ref_name) if ref_name else None
    lab = label_output(base.outputs, label) if base is not None else None
    rows: list[ConfigRow] = []
    for r in results:
        row = ConfigRow(r, letters[r.config.name])
        if r.ok:
            row.vs_baseline = _compare(base, r, formats, lab)
            row.vs_float64 = _compare(ref, r, formats, lab)
            if lab is not None and lab in r.outputs:
                m_abs, m_ulp = margins(r.outputs[lab])  # bfloat16 arrive as float32: float32 ULPs
                row.margin_min, row.margin_min_ulp = float(m_abs.min()), float(m_ulp.min())
                arr = np.asarray(r.outputs[lab], np.float64)
                row.labels = arr.reshape(-1, arr.shape[-1]).argmax(axis=1)
        rows.append(row)
    effects = attribute(results, base_name, formats)
    res = DeviationResult(
        model=model, model_hash=file_hash(model), input_hash=inputs_hash(feeds), inputs=dict(feeds),
        input_source=input_source, baseline=base_name, reference=ref_name, rows=rows, knobs=effects,
        summary=summary_lines(effects), boundary=bset, platform=platform_info(), label_output=lab,
    )
    if layers:
        res.layers = _layers(model, results, base_name)
    res.seconds = time.perf_counter() - t0
    return res


def _compare(ref: RunResult | None, r: RunResult, formats: dict[str, str], lab: str | None) -> Comparison | None:
    if ref is None or not ref.ok:
        return None
    try:
        return compare_outputs(ref.outputs, r.outputs, formats=formats, label=lab)
    except ValueError:
        return None


def _layers(model: str, results: Sequence[RunResult], base_name: str | None) -> list[PairLayers]:
    """Per-layer comparisons: the baseline against every configuration that differs from it, and
    every knob effect that changes the output (the knob alone)."""
    nodes = graph_nodes(model)
    by_name = {r.config.name: r for r in results}
    pairs: list[tuple[str, str]] = []
    base = by_name.get(base_name) if base_name else None
    if base is not None:
        pairs += [(base.config.name, r.config.name) for r in results
                  if r.ok and r is not base and r.output_key != base.output_key]
    configs = [r.config for r in results]
    for r in results:
        found = reference_of(r.config, configs, base_name)
        if found is None:
            continue
        other = by_name[found[1].name]
        if r.ok and other.ok and r.output_key != other.output_key:
            p = (other.config.name, r.config.name)
            if p not in pairs:
                pairs.append(p)
    out: list[PairLayers] = []
    for a, b in pairs:
        ra, rb = by_name[a], by_name[b]
        if not ra.layers or not rb.layers:
            continue
        rows = propagation(nodes, ra.layers, rb.layers)
        notes = [f"{x.config.name}: its layer run (every intermediate an output) differs from its normal run"
                 for x in (ra, rb) if x.observed.get("layers_match_outputs") is False]
        out.append(PairLayers(a, b, rows, first_divergence(rows), "; ".join(notes) or None))
    return out

"""Execution configurations: the knobs, the declarative matrix, the ``default`` and ``all`` sets.

A `Config` is one way of running the model: a runtime plus knob settings. Knobs left ``None``
keep the library's own default (the environment variables of every knob are removed from the
inherited environment, so "default" means the library's default, not the caller's shell).

Runtimes:

- ``onnxruntime``: the ONNX file in an onnxruntime CPU session.
- ``torch``: the ONNX graph executed through numsentry's op registry with its PyTorch backend
  (PyTorch's kernels: oneDNN/MKL convolutions and GEMMs, ATen elementwise ops).
- ``numpy``: the same graph through the registry's NumPy backend (OpenBLAS matmuls).
- ``float64``: the NumPy backend with inputs and weights cast to float64: the reference that
  the others are measured against.

A matrix file (YAML or TOML) lists entries; each entry is a runtime with fixed knobs and
optionally ``vary`` (one knob changed at a time: one configuration per value, plus the entry
itself) or ``matrix`` (the cross product)::

    baseline: ort
    repeats: 3
    include: default            # start from a named set (optional)
    configs:
      - runtime: onnxruntime
      - {runtime: torch, vary: {threads: [1], isa: [AVX2, SSE41]}}
      - {runtime: torch, matrix: {dtype: [float16, bfloat16], memory_format: [channels_last]}}
"""

from __future__ import annotations

import itertools
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from numsentry.errors import UserError

__all__ = [
    "ALL_RUNTIMES",
    "ENV_KNOBS",
    "KNOBS",
    "Config",
    "Matrix",
    "availability",
    "build_set",
    "cpu_flags",
    "knob_diff",
    "load_matrix",
    "parse_entries",
    "select",
]

ALL_RUNTIMES = ("onnxruntime", "torch", "numpy", "float64")
_SHORT = {"onnxruntime": "ort", "torch": "torch", "numpy": "numpy", "float64": "float64"}
_RUNTIME_ALIASES = {"ort": "onnxruntime", "onnxruntime": "onnxruntime", "torch": "torch", "pytorch": "torch",
                    "numpy": "numpy", "np": "numpy", "float64": "float64", "fp64": "float64"}


@dataclass(frozen=True)
class Knob:
    """One execution knob.

    Attributes:
        name: Field name in `Config` and in matrix files.
        env: Environment variables it sets (before any import in the worker), or ().
        runtimes: Runtimes it applies to.
        values: Every value worth trying (the ``all`` set; filtered by `availability`).
        doc: One line for the docs and reports.
    """

    name: str
    env: tuple[str, ...]
    runtimes: tuple[str, ...]
    values: tuple[Any, ...]
    doc: str


#: ONEDNN_MAX_CPU_ISA values and the /proc/cpuinfo flags each needs.
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "SSE41": ("sse4_1",),
    "AVX": ("avx",),
    "AVX2": ("avx2", "fma"),
    "AVX2_VNNI": ("avx2", "avx_vnni"),
    "AVX512_CORE": ("avx512f", "avx512bw", "avx512vl", "avx512dq"),
    "AVX512_CORE_VNNI": ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"),
    "AVX512_CORE_BF16": ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16"),
    "AVX512_CORE_FP16": ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_fp16"),
    "AVX512_CORE_AMX": ("avx512f", "avx512bw", "avx512vl", "avx512dq", "amx_tile", "amx_bf16", "amx_int8"),
}
#: ATEN_CPU_CAPABILITY values.
ATEN_FLAGS: dict[str, tuple[str, ...]] = {
    "default": (),
    "avx2": ("avx2", "fma"),
    "avx512": ("avx512f", "avx512bw", "avx512vl", "avx512dq"),
}
#: OPENBLAS_CORETYPE values (x86-64 DYNAMIC_ARCH builds).
OPENBLAS_FLAGS: dict[str, tuple[str, ...]] = {
    "Prescott": ("pni",),
    "Nehalem": ("sse4_2",),
    "Sandybridge": ("avx",),
    "Haswell": ("avx2", "fma"),
    "SkylakeX": ("avx512f", "avx512bw", "avx512vl", "avx512dq"),
    "Cooperlake": ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"),
    "SapphireRapids": ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "amx_bf16"),
}
#: MKL_CBWR / MKL_ENABLE_INSTRUCTIONS values.
MKL_FLAGS: dict[str, tuple[str, ...]] = {
    "COMPATIBLE": (),
    "SSE4_2": ("sse4_2",),
    "AVX": ("avx",),
    "AVX2": ("avx2", "fma"),
    "AVX512": ("avx512f", "avx512bw", "avx512vl", "avx512dq"),
}
DTYPES = ("float32", "float16", "bfloat16", "float64")
ORT_LEVELS = ("disable", "basic", "extended", "all")

KNOBS: dict[str, Knob] = {k.name: k for k in (
    Knob("threads", ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), ALL_RUNTIMES, (1, 2, 4),
         "intra-op threads (OpenMP/MKL/OpenBLAS; torch.set_num_threads; onnxruntime intra_op_num_threads)"),
    Knob("isa", ("ONEDNN_MAX_CPU_ISA",), ("torch",), tuple(ISA_FLAGS),
         "ONEDNN_MAX_CPU_ISA: the widest SIMD oneDNN may use"),
    Knob("aten", ("ATEN_CPU_CAPABILITY",), ("torch",), tuple(ATEN_FLAGS),
         "ATEN_CPU_CAPABILITY: SIMD level of PyTorch's own (ATen) kernels"),
    Knob("onednn", (), ("torch",), (False,), "torch.backends.mkldnn.enabled"),
    Knob("memory_format", (), ("torch",), ("channels_last",), "4-D inputs and weights in channels_last layout"),
    Knob("batch", (), ALL_RUNTIMES, (1,), "run the inputs in batches of this size (default: all at once)"),
    Knob("mkl_cbwr", ("MKL_CBWR",), ("torch",), tuple(MKL_FLAGS), "MKL_CBWR: MKL conditional numerical reproducibility"),
    Knob("mkl_isa", ("MKL_ENABLE_INSTRUCTIONS",), ("torch",), tuple(v for v in MKL_FLAGS if v != "COMPATIBLE"),
         "MKL_ENABLE_INSTRUCTIONS: the widest SIMD MKL may use"),
    Knob("openblas_coretype", ("OPENBLAS_CORETYPE",), ("numpy", "float64"), tuple(OPENBLAS_FLAGS),
         "OPENBLAS_CORETYPE: OpenBLAS kernel family (set before NumPy is imported)"),
    Knob("ort_opt", (), ("onnxruntime",), ORT_LEVELS, "onnxruntime graph_optimization_level"),
    Knob("dtype", (), ("onnxruntime", "torch", "numpy"), DTYPES[1:],
         "inputs and weights cast to this float format (the model is float32)"),
)}
#: Every environment variable a knob may set: removed from the inherited environment.
ENV_KNOBS: tuple[str, ...] = tuple(sorted({e for k in KNOBS.values() for e in k.env}
                                          | {"DNNL_MAX_CPU_ISA", "OMP_PROC_BIND"}))


@dataclass(frozen=True)
class Config:
    """One execution configuration (None: the library default).

    Attributes:
        name: Unique name (derived from the knobs unless given).
        runtime: ``onnxruntime``, ``torch``, ``numpy`` or ``float64``.
        threads: Intra-op thread count.
        isa: ``ONEDNN_MAX_CPU_ISA``.
        aten: ``ATEN_CPU_CAPABILITY``.
        onednn: ``torch.backends.mkldnn.enabled``.
        memory_format: ``contiguous`` or ``channels_last``.
        batch: Batch size the inputs are split into.
        mkl_cbwr: ``MKL_CBWR``.
        mkl_isa: ``MKL_ENABLE_INSTRUCTIONS``.
        openblas_coretype: ``OPENBLAS_CORETYPE``.
        ort_opt: onnxruntime graph optimisation level.
        dtype: Float format of inputs and weights.
        repeats: Runs in the same process (run-to-run determinism).
    """

    name: str
    runtime: str
    threads: int | None = None
    isa: str | None = None
    aten: str | None = None
    onednn: bool | None = None
    memory_format: str | None = None
    batch: int | None = None
    mkl_cbwr: str | None = None
    mkl_isa: str | None = None
    openblas_coretype: str | None = None
    ort_opt: str | None = None
    dtype: str | None = None
    repeats: int = 3

    def knobs(self) -> dict[str, Any]:
        """The knobs that are set (not None)."""
        return {k: getattr(self, k) for k in KNOBS if getattr(self, k) is not None}

    def env(self) -> dict[str, str]:
        """Environment variables to set before the worker starts."""
        out: dict[str, str] = {}
        for k, v in self.knobs().items():
            for var in KNOBS[k].env:
                out[var] = str(v)
        if self.isa is not None:
            out["DNNL_MAX_CPU_ISA"] = self.isa  # the name of the variable before oneDNN 2.x
        return out

    def effective_dtype(self) -> str:
        """The float format the model runs in."""
        return "float64" if self.runtime == "float64" else (self.dtype or "float32")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def config_name(runtime: str, knobs: Mapping[str, Any]) -> str:
    """``ort``, ``torch/threads=1``, ``torch/dtype=float16,isa=AVX2`` ..."""
    short = _SHORT[runtime]
    if not knobs:
        return short
    parts = [f"{k}={_fmt(v)}" for k, v in sorted(knobs.items())]
    return short + "/" + ",".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def make_config(runtime: str, knobs: Mapping[str, Any] | None = None, name: str | None = None,
                repeats: int = 3, where: str = "config") -> Config:
    """Validate and build a `Config`.

    Raises:
        UserError: Unknown runtime or knob, a knob that does not apply to the runtime, a bad value.
    """
    rt = _RUNTIME_ALIASES.get(str(runtime).lower())
    if rt is None:
        raise UserError(f"{where}: unknown runtime {runtime!r}", hint=f"one of {', '.join(ALL_RUNTIMES)}")
    clean: dict[str, Any] = {}
    for k, v in (knobs or {}).items():
        if v is None:
            continue
        if k not in KNOBS:
            raise UserError(f"{where}: unknown knob {k!r}", hint=f"knobs: {', '.join(KNOBS)}")
        if rt not in KNOBS[k].runtimes:
            raise UserError(f"{where}: knob {k!r} does not apply to runtime {rt}",
                            hint=f"{k} applies to {', '.join(KNOBS[k].runtimes)}")
        clean[k] = _check_value(k, v, where)
    if clean.get("dtype") == "float32":
        del clean["dtype"]
    if not isinstance(repeats, int) or repeats < 1:
        raise UserError(f"{where}: repeats must be a positive integer, got {repeats!r}")
    return Config(name=name or config_name(rt, clean), runtime=rt, repeats=repeats, **clean)


def _check_value(k: str, v: Any, where: str) -> Any:
    if k in ("threads", "batch"):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"{where}: {k} must be a positive integer, got {v!r}")
        return v
    if k == "onednn":
        if isinstance(v, str) and v.lower() in ("on", "off", "true", "false"):
            return v.lower() in ("on", "true")
        if not isinstance(v, bool):
            raise UserError(f"{where}: onednn must be true or false, got {v!r}")
        return v
    allowed = {"isa": ISA_FLAGS, "aten": ATEN_FLAGS, "mkl_cbwr": MKL_FLAGS, "mkl_isa": MKL_FLAGS,
               "openblas_coretype": OPENBLAS_FLAGS, "ort_opt": ORT_LEVELS, "dtype": DTYPES,
               "memory_format": ("contiguous", "channels_last")}[k]
    s = str(v)
    for a in allowed:
        if s.lower() == a.lower():
            return a
    raise UserError(f"{where}: {k}={v!r} is not one of {', '.join(allowed)}")


def knob_diff(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    """Knobs (and ``runtime``) whose values differ between two configurations."""
    out = {k: (getattr(a, k), getattr(b, k)) for k in KNOBS if getattr(a, k) != getattr(b, k)}
    if a.runtime != b.runtime:
        out["runtime"] = (a.runtime, b.runtime)
    return out


# ---- the machine ---------------------------------------------------------------------------


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def _runtime_installed(rt: str) -> bool:
    import importlib.util

    mod = {"onnxruntime": "onnxruntime", "torch": "torch"}.get(rt)
    return mod is None or importlib.util.find_spec(mod) is not None


def availability(cfg: Config, flags: set[str] | None = None, machine: str | None = None) -> str | None:
    """Why ``cfg`` cannot run on this machine (None when it can).

    Args:
        cfg: The configuration.
        flags: CPU flags (default: this machine's).
        machine: ``platform.machine()`` (default: this machine's).
    """
    if not _runtime_installed(cfg.runtime):
        return f"{cfg.runtime} is not installed"
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    x86 = machine in ("x86_64", "amd64", "i686", "i386")
    tables = (("isa", ISA_FLAGS, "ONEDNN_MAX_CPU_ISA"), ("aten", ATEN_FLAGS, "ATEN_CPU_CAPABILITY"),
              ("openblas_coretype", OPENBLAS_FLAGS, "OPENBLAS_CORETYPE"), ("mkl_cbwr", MKL_FLAGS, "MKL_CBWR"),
              ("mkl_isa", MKL_FLAGS, "MKL_ENABLE_INSTRUCTIONS"))
    for knob, table, var in tables:
        v = getattr(cfg, knob)
        if v is None or (knob == "aten" and v == "default"):
            continue
        if not x86:
            return f"{var}={v} is an x86-64 setting; this CPU is {machine}"
        missing = [f for f in table[v] if f not in flags]
        if missing and flags:
            return f"{var}={v} needs CPU flags this CPU lacks: {' '.join(missing)}"
    return None


# ---- sets and files --------------------------------------------------------------------------


@dataclass
class Matrix:
    """A list of configurations and the name of the baseline.

    Attributes:
        configs: In order; names unique.
        baseline: Name of the configuration others are compared against (default: the first).
    """

    configs: list[Config]
    baseline: str | None = None

    def get(self, name: str) -> Config:
        """The configuration called ``name``."""
        for c in self.configs:
            if c.name == name:
                return c
        raise UserError(f"no configuration named {name!r}", hint="names: " + ", ".join(c.name for c in self.configs))


def _vary(runtime: str, base: Mapping[str, Any], vary: Mapping[str, Sequence[Any]], repeats: int,
          where: str) -> list[Config]:
    out = [make_config(runtime, base, repeats=repeats, where=where)]
    for k, vals in vary.items():
        for v in _as_list(vals):
            out.append(make_config(runtime, {**base, k: v}, repeats=repeats, where=where))
    return out


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _default_entries() -> list[dict[str, Any]]:
    return [
        {"runtime": "onnxruntime", "vary": {"threads": [1], "ort_opt": ["disable", "basic"], "batch": [1]}},
        {"runtime": "torch", "vary": {"threads": [1], "isa": ["AVX2", "SSE41"], "aten": ["default", "avx2"],
                                      "onednn": [False], "memory_format": ["channels_last"], "batch": [1],
                                      "mkl_cbwr": ["COMPATIBLE"], "dtype": ["float16", "bfloat16"]}},
        {"runtime": "numpy", "vary": {"threads": [1], "openblas_coretype": ["Haswell"]}},
        {"runtime": "float64"},
    ]


def _all_entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for rt in ALL_RUNTIMES:
        vary: dict[str, list[Any]] = {}
        for k in KNOBS.values():
            if rt in k.runtimes and not (rt == "float64" and k.name == "dtype"):
                vary[k.name] = list(k.values)
        entries.append({"runtime": rt, "vary": vary})
    return entries


def parse_entries(entries: Iterable[Mapping[str, Any]], repeats: int = 3, where: str = "config") -> list[Config]:
    """Configurations from matrix-file entries (see the module docstring).

    Raises:
        UserError: A malformed entry.
    """
    out: list[Config] = []
    for i, e in enumerate(entries):
        w = f"{where}: entry {i + 1}"
        if not isinstance(e, Mapping) or "runtime" not in e:
            raise UserError(f"{w}: expected a mapping with a 'runtime' key, got {e!r}")
        base = {k: v for k, v in e.items() if k not in ("runtime", "vary", "matrix", "name", "repeats")}
        rep = int(e.get("repeats", repeats))
        vary, matrix = e.get("vary"), e.get("matrix")
        if vary is not None and not isinstance(vary, Mapping):
            raise UserError(f"{w}: 'vary' must map knob names to lists of values")
        if matrix is not None and not isinstance(matrix, Mapping):
            raise UserError(f"{w}: 'matrix' must map knob names to lists of values")
        if matrix:
            keys = list(matrix)
            for combo in itertools.product(*(_as_list(matrix[k]) for k in keys)):
                out.append(make_config(e["runtime"], {**base, **dict(zip(keys, combo, strict=True))},
                                       repeats=rep, where=w))
        elif vary:
            out.extend(_vary(e["runtime"], base, vary, rep, w))
        else:
            out.append(make_config(e["runtime"], base, name=e.get("name"), repeats=rep, where=w))
    return _dedupe(out)


def _dedupe(cfgs: list[Config]) -> list[Config]:
    seen: dict[tuple[Any, ...], Config] = {}
    names: set[str] = set()
    out: list[Config] = []
    for c in cfgs:
        key = tuple(getattr(c, f.name) for f in fields(c) if f.name not in ("name", "repeats"))
        if key in seen:
            continue
        if c.name in names:
            raise UserError(f"two configurations are named {c.name!r}")
        seen[key] = c
        names.add(c.name)
        out.append(c)
    return out


def build_set(name: str, repeats: int = 3) -> Matrix:
    """The named set: ``default`` (about 20 configurations, one knob at a time, ~1 minute on a
    small model) or ``all`` (every value of every knob, one at a time)."""
    if name == "default":
        entries = _default_entries()
    elif name == "all":
        entries = _all_entries()
    else:
        raise UserError(f"unknown configuration set {name!r}", hint="default, all, or a YAML/TOML matrix file")
    return Matrix(parse_entries(entries, repeats=repeats, where=f"set {name!r}"), baseline="ort")


def load_matrix(spec: str, repeats: int | None = None) -> Matrix:
    """A named set (``default``, ``all``) or a YAML/TOML/JSON matrix file.

    Raises:
        UserError: Missing or malformed file.
    """
    if spec in ("default", "all"):
        return build_set(spec, repeats=repeats or 3)
    p = Path(spec)
    if not p.exists():
        raise UserError(f"{spec}: no such configuration file", hint="use 'default', 'all' or a YAML/TOML file")
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix.lower() == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        elif p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # yaml.YAMLError, tomllib.TOMLDecodeError, OSError, ...
        raise UserError(f"{spec}: cannot parse: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if isinstance(data, list):
        data = {"configs": data}
    if not isinstance(data, Mapping):
        raise UserError(f"{spec}: expected a mapping with 'configs' (and optional 'baseline', 'repeats', 'include')")
    unknown = set(data) - {"configs", "baseline", "repeats", "include"}
    if unknown:
        raise UserError(f"{spec}: unknown keys {sorted(unknown)}", hint="keys: configs, baseline, repeats, include")
    rep = repeats or int(data.get("repeats", 3))
    cfgs: list[Config] = []
    if data.get("include"):
        cfgs += build_set(str(data["include"]), repeats=rep).configs
    cfgs += parse_entries(_as_list(data.get("configs") or []), repeats=rep, where=spec)
    cfgs = _dedupe(cfgs)
    if not cfgs:
        raise UserError(f"{spec}: no configurations")
    m = Matrix(cfgs, baseline=data.get("baseline"))
    if m.baseline is not None:
        m.get(m.baseline)
    return m


def select(m: Matrix, only: Sequence[str] | None = None, skip: Sequence[str] | None = None,
           repeats: int | None = None) -> Matrix:
    """Keep configurations whose names match any ``only`` glob and no ``skip`` glob.

    ``only``/``skip`` items may be comma-separated. When the baseline is dropped, the first
    remaining configuration becomes the baseline.
    """
    from fnmatch import fnmatchcase

    def pats(xs: Sequence[str] | None) -> list[str]:
        return [p.strip() for x in (xs or []) for p in x.split(",") if p.strip()]

    inc, exc = pats(only), pats(skip)
    out = [c for c in m.configs
           if (not inc or any(fnmatchcase(c.name, p) for p in inc)) and not any(fnmatchcase(c.name, p) for p in exc)]
    if inc and not out:
        raise UserError(f"--only {','.join(inc)} matches no configuration",
                        hint="names: " + ", ".join(c.name for c in m.configs))
    if repeats is not None:
        out = [replace(c, repeats=repeats) for c in out]
    names = {c.name for c in out}
    base = m.baseline if m.baseline in names else (out[0].name if out else None)
    return Matrix(out, baseline=base)

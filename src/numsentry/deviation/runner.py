"""Run configurations, each in a fresh subprocess with its environment set before any import.

The child is ``python -m numsentry.deviation.worker SPEC.json``. Its environment is this
process's environment with every knob variable removed (`configs.ENV_KNOBS`: a caller's
``OMP_NUM_THREADS`` must not leak into the "library default" configurations) and the
configuration's own variables added. Inputs travel in an ``.npz`` file, results come back as
``result.json`` and ``outputs.npz`` (see `worker`). A configuration that cannot run here is
skipped with a reason without starting a process; one that crashes, times out or raises is
recorded as failed and the sweep goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from numsentry.deviation.configs import ENV_KNOBS, Config, availability

__all__ = ["Progress", "RunResult", "child_env", "run_config", "run_configs"]

#: ``progress(event, config, result)``: event is ``"start"`` (result None) or ``"done"``.
Progress = Callable[[str, Config, "RunResult | None"], None]


@dataclass
class RunResult:
    """What one configuration produced.

    Attributes:
        config: The configuration.
        status: ``ok``, ``skipped`` or ``failed``.
        reason: Why it was skipped or failed.
        seconds: Fastest repeat's inference time (no start-up, no model loading).
        wall: Wall time of the whole subprocess.
        repeat_hashes: Hash of the outputs of each repeat.
        outputs: Outputs of the first repeat by name (bfloat16 stored as float32).
        repeat_outputs: Outputs of every distinct repeat, keyed by repeat index.
        output_dtypes: The dtype each output had in the runtime.
        layers: Intermediate tensors by value name (with ``layers``).
        observed: What the worker saw of its environment (variables, torch settings, BLAS).
    """

    config: Config
    status: str
    reason: str | None = None
    seconds: float | None = None
    wall: float = 0.0
    repeat_hashes: list[str] = field(default_factory=list)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    repeat_outputs: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    output_dtypes: dict[str, str] = field(default_factory=dict)
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    observed: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The configuration ran."""
        return self.status == "ok"

    @property
    def output_key(self) -> str | None:
        """Hash of the first repeat's outputs (bit-identical outputs share it)."""
        return self.repeat_hashes[0] if self.repeat_hashes else None

    @property
    def distinct_repeats(self) -> int:
        """How many different outputs the repeats gave (1: deterministic)."""
        return len(set(self.repeat_hashes))


def child_env(cfg: Config, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ``cfg``'s worker: ``base`` (default ``os.environ``) minus every knob
    variable, plus ``cfg``'s variables, with numsentry importable."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in ENV_KNOBS}
    env.update(cfg.env())
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _load_outputs(path: Path, result: dict[str, Any]) -> tuple[dict[int, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    reps: dict[int, dict[str, np.ndarray]] = {}
    layers: dict[str, np.ndarray] = {}
    with np.load(path) as z:
        for key in z.files:
            kind, _, rest = key.partition("/")
            if kind == "out":
                r, _, name = rest.partition("/")
                reps.setdefault(int(r), {})[name] = z[key]
            elif kind == "layer":
                layers[rest] = z[key]
    return reps, layers


def run_config(cfg: Config, model: str | Path, inputs_npz: str | Path, workdir: str | Path,
               layers: bool = False, timeout: float = 300.0, flags: set[str] | None = None) -> RunResult:
    """Run one configuration in a fresh subprocess (or skip it with a reason).

    Args:
        cfg: The configuration.
        model: Path of the ONNX model.
        inputs_npz: ``.npz`` file of graph inputs by name.
        workdir: Directory for the spec and the worker's files.
        layers: Also capture every intermediate tensor.
        timeout: Seconds before the worker is killed (the configuration then counts as failed).
        flags: CPU flags for the availability check (default: this machine's).
    """
    why = availability(cfg, flags)
    if why is not None:
        return RunResult(cfg, "skipped", why)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in cfg.name)
    out_dir = Path(workdir) / safe
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {"model": str(Path(model).resolve()), "inputs": str(Path(inputs_npz).resolve()),
            "out_dir": str(out_dir.resolve()), "config": cfg.to_dict(), "layers": layers}
    spec_path = out_dir / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "numsentry.deviation.worker", str(spec_path)],
                              env=child_env(cfg), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return RunResult(cfg, "failed", f"timed out after {timeout:g} s", wall=time.perf_counter() - t0)
    wall = time.perf_counter() - t0
    res_path = out_dir / "result.json"
    if proc.returncode != 0 or not res_path.exists():
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        return RunResult(cfg, "failed", f"worker died ({how}): {tail[0][:300]}", wall=wall)
    res = json.loads(res_path.read_text(encoding="utf-8"))
    out = RunResult(cfg, res["status"], res.get("reason"), wall=wall, observed=res.get("observed") or {})
    if out.status != "ok":
        return out
    reps, lay = _load_outputs(out_dir / "outputs.npz", res)
    out.seconds = float(min(res["seconds"])) if res["seconds"] else None
    out.repeat_hashes = list(res["repeat_hashes"])
    out.repeat_outputs = reps
    out.outputs = reps.get(0, {})
    out.output_dtypes = dict(res.get("output_dtypes") or {})
    out.layers = lay
    return out


def run_configs(configs: Sequence[Config], model: str | Path, feeds: Mapping[str, np.ndarray],
                layers: bool = False, jobs: int = 1, timeout: float = 300.0,
                progress: Progress | None = None, workdir: str | Path | None = None) -> list[RunResult]:
    """Run every configuration (in order; ``jobs`` at a time) on the same inputs.

    Args:
        configs: The configurations.
        model: Path of the ONNX model.
        feeds: Graph inputs by name.
        layers: Capture intermediate tensors.
        jobs: Workers at once (1 keeps the timings comparable).
        timeout: Seconds per configuration.
        progress: Called before and after each configuration.
        workdir: Keep the workers' files here (default: a temporary directory, removed).

    Returns:
        One `RunResult` per configuration, in the order given.
    """
    tmp = tempfile.TemporaryDirectory(prefix="numsentry-deviate-") if workdir is None else None
    wd = Path(tmp.name if tmp is not None else str(workdir))
    try:
        wd.mkdir(parents=True, exist_ok=True)
        inputs = wd / "inputs.npz"
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in feeds.items()}
        np.savez(inputs, **arrays)
        flags = None

        def one(cfg: Config) -> RunResult:
            if progress is not None:
                progress("start", cfg, None)
            r = run_config(cfg, model, inputs, wd, layers=layers, timeout=timeout, flags=flags)
            if progress is not None:
                progress("done", cfg, r)
            return r

        if jobs <= 1:
            return [one(c) for c in configs]
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            return list(ex.map(one, configs))
    finally:
        if tmp is not None:
            tmp.cleanup()

"""Results store: every run in an embedded SQLite database (stdlib ``sqlite3``).

One row per (model hash, input hash, configuration, platform fingerprint); a later run of the
same key replaces it. The row holds the configuration, the platform description, status,
timing, the output hash (bit-identical outputs share it) and the outputs themselves (a
compressed ``.npz``, up to `MAX_BLOB` bytes) so that databases from several machines can be
merged and compared bit for bit, as the NeurIPS 2023 study did with 75 hosts
(``numsentry deviate report a.db b.db ...``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from numsentry.deviation.metrics import class_letters, compare_outputs, output_hash
from numsentry.errors import UserError

__all__ = ["MAX_BLOB", "CrossPlatform", "file_hash", "inputs_hash", "merge_report", "platform_info", "record"]

MAX_BLOB = 16 * 1024 * 1024
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    model_hash TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    platform TEXT NOT NULL,
    model_path TEXT,
    config_json TEXT NOT NULL,
    platform_json TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    seconds REAL,
    output_hash TEXT,
    distinct_repeats INTEGER,
    outputs BLOB,
    created REAL NOT NULL,
    numsentry_version TEXT,
    PRIMARY KEY (model_hash, input_hash, config, platform)
)
"""
_SIMD_PREFIXES = ("sse", "ssse", "avx", "fma", "amx", "f16c", "bmi", "neon", "asimd", "sve", "vnni")


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def inputs_hash(feeds: Mapping[str, np.ndarray]) -> str:
    """Hash of the inputs' names, dtypes, shapes and bytes."""
    return output_hash({k: np.asarray(v) for k, v in feeds.items()})


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def platform_info() -> dict[str, Any]:
    """This machine: CPU model and SIMD flags, core count, OS, library versions; and its fingerprint.

    The fingerprint (``fingerprint``) is a hash of everything else, so two machines share one
    only when CPU, core count and versions agree.
    """
    from numsentry.deviation.configs import cpu_flags

    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    simd = sorted(f for f in cpu_flags() if f.startswith(_SIMD_PREFIXES))
    info: dict[str, Any] = {
        "cpu": model or platform.machine(), "machine": platform.machine(), "cores": os.cpu_count(),
        "simd_flags": simd, "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": {d: _version(d) for d in ("numpy", "onnx", "onnxruntime", "torch", "numsentry")},
    }
    info["fingerprint"] = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:12]
    return info


def _blob(outputs: Mapping[str, np.ndarray]) -> bytes | None:
    buf = io.BytesIO()
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in outputs.items()}
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    return data if len(data) <= MAX_BLOB else None


def _unblob(data: bytes | None) -> dict[str, np.ndarray] | None:
    if not data:
        return None
    with np.load(io.BytesIO(data)) as z:
        return {k: z[k] for k in z.files}


@contextlib.contextmanager
def _connect(path: str | Path, create: bool) -> Iterator[sqlite3.Connection]:
    p = Path(path)
    if not create and not p.exists():
        raise UserError(f"{path}: no such results database")
    try:
        if create:
            p.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(p))
    except (sqlite3.Error, OSError) as e:
        raise UserError(f"{path}: cannot open the results database: {e}") from e
    try:
        if create:
            con.execute(_SCHEMA)
        yield con
        con.commit()
    except sqlite3.DatabaseError as e:
        raise UserError(f"{path}: not a numsentry results database ({e})") from e
    finally:
        con.close()


def record(path: str | Path, model_path: str, model_hash: str, input_hash: str, results: Sequence[Any],
           platform_desc: Mapping[str, Any] | None = None) -> int:
    """Write ``results`` (`runner.RunResult`) into the database at ``path`` (created if missing).

    Returns:
        Rows written.
    """
    from numsentry import __version__

    plat = dict(platform_desc or platform_info())
    fp = plat["fingerprint"]
    rows = []
    now = time.time()
    for r in results:
        rows.append((model_hash, input_hash, r.config.name, fp, model_path, json.dumps(r.config.to_dict()),
                     json.dumps(plat, sort_keys=True), r.status, r.reason, r.seconds, r.output_key,
                     r.distinct_repeats if r.ok else None, _blob(r.outputs) if r.ok else None, now, __version__))
    with _connect(path, create=True) as con:
        con.executemany("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    return len(rows)


@dataclass
class CrossPlatform:
    """Cross-platform classes of one (model, inputs) pair over merged databases.

    Attributes:
        model_hash: Model hash.
        input_hash: Input hash.
        model_path: A path the model was run from.
        platforms: Fingerprint -> platform description.
        configs: Configuration names in first-seen order.
        cells: ``(config, fingerprint)`` -> class letter (None: skipped or failed there).
        classes: Letter -> list of ``"config@fingerprint"`` members.
        vs_a: Letter -> remaining precision (min) and max ULP of that class against class A.
    """

    model_hash: str
    input_hash: str
    model_path: str
    platforms: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str], str | None] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)
    vs_a: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"model_hash": self.model_hash, "input_hash": self.input_hash, "model": self.model_path,
                "platforms": self.platforms, "configs": self.configs,
                "cells": [{"config": c, "platform": p, "class": v} for (c, p), v in self.cells.items()],
                "classes": self.classes, "vs_class_a": self.vs_a}


def merge_report(paths: Sequence[str | Path]) -> list[CrossPlatform]:
    """Merge databases and letter the bit-identical classes across every platform and configuration.

    Raises:
        UserError: A path is missing or not a results database.
    """
    if not paths:
        raise UserError("deviate report needs at least one database", hint="numsentry deviate report a.db b.db")
    rows: list[tuple[Any, ...]] = []
    for p in paths:
        with _connect(p, create=False) as con:
            rows += con.execute(
                "SELECT model_hash, input_hash, config, platform, model_path, platform_json, status, output_hash, "
                "outputs, created FROM runs ORDER BY created, rowid").fetchall()
    groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for r in rows:
        groups.setdefault((r[0], r[1]), []).append(r)
    out: list[CrossPlatform] = []
    for (mh, ih), rs in groups.items():
        cp = CrossPlatform(mh, ih, rs[0][4] or "")
        latest: dict[tuple[str, str], tuple[Any, ...]] = {}
        for r in rs:
            latest[(r[2], r[3])] = r  # the same key in two databases: the later run wins
            if r[2] not in cp.configs:
                cp.configs.append(r[2])
            cp.platforms.setdefault(r[3], json.loads(r[5]))
        keys = sorted(latest, key=lambda k: (list(cp.platforms).index(k[1]), cp.configs.index(k[0])))
        letters = class_letters([latest[k][7] if latest[k][6] == "ok" else None for k in keys])
        blobs: dict[str, dict[str, np.ndarray] | None] = {}
        for k, letter in zip(keys, letters, strict=True):
            cp.cells[k] = letter
            if letter is not None:
                cp.classes.setdefault(letter, []).append(f"{k[0]}@{k[1]}")
                if letter not in blobs:
                    blobs[letter] = _unblob(latest[k][8])
        a = blobs.get("A")
        for letter, outs in blobs.items():
            if a is None or outs is None:
                continue
            try:
                c = compare_outputs(a, outs, formats={n: "float32" if v.dtype == np.float32 else str(v.dtype)
                                                      for n, v in a.items()})
                cp.vs_a[letter] = {"remaining_precision_min": c.remaining_precision_min, "max_ulp": c.max_ulp,
                                   "top1_flips": c.top1_flips}
            except ValueError:
                continue
        out.append(cp)
    return out

"""Rebuild the GRIST benchmark: models, ranges files and ``truth.json``.

Usage::

    python -m bench.grist.generate            # all 79 cases
    python -m bench.grist.generate 1 2a 28b   # only some (truth.json is rewritten in full)

The output is deterministic: weights come from string-seeded numpy generators and the ONNX
files are serialised without timestamps.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import onnx

from bench.grist.cases import CASES, TRAIN_BATCH, Case, framework

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
RANGES = HERE / "ranges"
TRUTH = HERE / "truth.json"


def case_order(cid: str) -> tuple[int, str]:
    """Sort key: numeric part, then the letter (1, 2a, 2b, 3, ...)."""
    m = re.fullmatch(r"(\d+)([a-z]?)", cid)
    if not m:
        raise ValueError(cid)
    return int(m.group(1)), m.group(2)


def all_ids() -> list[str]:
    """All case ids in benchmark order."""
    return sorted(CASES, key=case_order)


def rel(path: Path) -> str:
    """Path relative to the repository root, with forward slashes."""
    return path.resolve().relative_to(ROOT).as_posix()


def truth_entry(case: Case) -> dict[str, object]:
    """The ``truth.json`` record of one case."""
    return {
        "case": case.id,
        "framework": framework(case.id),
        "train_batch": TRAIN_BATCH.get(case.id),
        "model": rel(MODELS / f"{case.id}.onnx"),
        "ranges": rel(RANGES / f"{case.id}.json"),
        "check_args": list(case.check_args),
        "defects": case.defects,
        "notes": case.notes,
        "witness": {node: {"range": rng, "effect": eff} for node, (rng, eff) in case.witness.items()},
        "extra_alarms": {key: {"verdict": verdict, "why": why}
                         for key, (verdict, why) in case.extra_alarms.items()},
    }


def write_case(case: Case) -> None:
    """Write the model and ranges file of one case."""
    MODELS.mkdir(parents=True, exist_ok=True)
    RANGES.mkdir(parents=True, exist_ok=True)
    (MODELS / f"{case.id}.onnx").write_bytes(case.model.SerializeToString(deterministic=True))
    ranges = {**case.inputs, **case.weights}
    lines = [f" {json.dumps(name)}: {json.dumps(pair)}" for name, pair in ranges.items()]
    (RANGES / f"{case.id}.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")


def main(argv: list[str] | None = None) -> int:
    """Build the requested cases (default: all) and rewrite ``truth.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="case ids to rebuild (default: all)")
    args = parser.parse_args(argv)
    wanted = set(args.ids or all_ids())
    unknown = wanted - set(CASES)
    if unknown:
        parser.error(f"unknown case ids: {sorted(unknown)}")
    entries = []
    old = {e["case"]: e for e in json.loads(TRUTH.read_text())} if TRUTH.exists() else {}
    total_defects = 0
    for cid in all_ids():
        if cid in wanted:
            case = CASES[cid]()
            onnx.checker.check_model(case.model, full_check=True)
            write_case(case)
            entry = truth_entry(case)
            print(f"built {cid:>4}: {len(case.defects)} defect(s), "
                  f"{(MODELS / f'{cid}.onnx').stat().st_size / 1e6:.2f} MB")
        elif cid in old:
            entry = old[cid]
        else:
            continue
        total_defects += len(entry["defects"])  # type: ignore[arg-type]
        entries.append(entry)
    TRUTH.write_text(json.dumps(entries, indent=1) + "\n")
    size = sum(p.stat().st_size for p in MODELS.glob("*.onnx"))
    print(f"{len(entries)} cases, {total_defects} defects; models {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

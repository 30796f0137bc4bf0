"""Ranges of graph inputs and weights: parsing, defaults, the trainable-weights rule."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from numsentry.errors import RangeError

__all__ = [
    "DEFAULT_FLOAT_RANGE",
    "DEFAULT_INT_RANGE",
    "TRAINABLE_ZERO_RANGE",
    "check_names",
    "load_ranges_file",
    "parse_range_arg",
    "trainable_range",
]

#: Range assumed for a float graph input without one (normalised data); always reported.
DEFAULT_FLOAT_RANGE = (-1.0, 1.0)
#: Range assumed for an integer graph input without one; always reported.
DEFAULT_INT_RANGE = (0.0, 1.0)
#: Range of an all-constant weight tensor under ``--weights trainable`` (as RANUM).
TRAINABLE_ZERO_RANGE = (-10.0, 10.0)


def _num(s: Any, where: str) -> float:
    if isinstance(s, bool):
        raise RangeError(f"{where}: {s!r} is not a number")
    if isinstance(s, (int, float)):
        return float(s)
    t = str(s).strip().lower()
    if t in ("inf", "+inf", "infinity"):
        return math.inf
    if t in ("-inf", "-infinity"):
        return -math.inf
    try:
        return float(t)
    except ValueError:
        raise RangeError(f"{where}: {s!r} is not a number", hint="write e.g. x=0,1 or x=-inf,inf") from None


def _pair(lo: Any, hi: Any, where: str) -> tuple[float, float]:
    a, b = _num(lo, where), _num(hi, where)
    if math.isnan(a) or math.isnan(b):
        raise RangeError(f"{where}: NaN is not a bound")
    if a > b:
        raise RangeError(f"{where}: lower bound {a:g} is above upper bound {b:g}")
    return a, b


def parse_range_arg(spec: str) -> tuple[str, tuple[float, float]]:
    """Parse ``NAME=LO,HI`` (``--range``); the name may itself contain ``=``-free text."""
    if "=" not in spec:
        raise RangeError(f"--range {spec!r}: expected NAME=LO,HI", hint="e.g. --range x=0,1")
    name, _, rest = spec.rpartition("=")
    parts = [p for p in rest.replace("[", "").replace("]", "").split(",")]
    if not name or len(parts) != 2:
        raise RangeError(f"--range {spec!r}: expected NAME=LO,HI", hint="e.g. --range x=0,1")
    return name.strip(), _pair(parts[0], parts[1], f"--range {spec!r}")


def _from_mapping(data: Any, where: str) -> dict[str, tuple[float, float]]:
    if not isinstance(data, Mapping):
        raise RangeError(f"{where}: expected a mapping {{name: [lo, hi]}}, got {type(data).__name__}")
    out: dict[str, tuple[float, float]] = {}
    for k, v in data.items():
        if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != 2:
            raise RangeError(f"{where}: {k!r}: expected [lo, hi], got {v!r}")
        out[str(k)] = _pair(v[0], v[1], f"{where}: {k!r}")
    return out


def load_ranges_file(path: str) -> dict[str, tuple[float, float]]:
    """Read a JSON or YAML ranges file ``{name: [lo, hi]}``."""
    p = Path(path)
    if not p.is_file():
        raise RangeError(f"{path}: no such ranges file")
    text = p.read_text(encoding="utf-8", errors="replace")
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RangeError(f"{path}: invalid JSON: {e}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RangeError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    return _from_mapping(data, path)


def load_pyproject_ranges(start: Path) -> dict[str, tuple[float, float]]:
    """Ranges from ``[tool.numsentry.ranges]`` of the nearest pyproject.toml, if any."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return {}
    for d in [start, *start.parents]:
        f = d / "pyproject.toml"
        if f.is_file():
            try:
                data = tomllib.loads(f.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, OSError) as e:
                raise RangeError(f"{f}: invalid TOML: {e}") from None
            section = data.get("tool", {}).get("numsentry", {})
            return _from_mapping(section.get("ranges", {}), f"{f} [tool.numsentry.ranges]")
    return {}


def check_names(ranges: Mapping[str, Any], known: Sequence[str]) -> None:
    """Raise if a range names a tensor the model does not have, suggesting close matches."""
    known_set = set(known)
    for name in ranges:
        if name not in known_set:
            close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else "list inputs with `numsentry check --list-inputs`"
            raise RangeError(f"range for {name!r}: the model has no input or initializer of that name", hint=hint)


def trainable_range(values: np.ndarray) -> tuple[float, float]:
    """RANUM's rule for weights that will still be trained: [min - span, max + span].

    A tensor whose values are all equal (e.g. zero-initialised) gets [-10, 10].
    """
    if values.size == 0:
        return 0.0, 0.0
    v = values.astype(np.float64)
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    span = hi - lo
    if span == 0:
        return TRAINABLE_ZERO_RANGE
    return lo - span, hi + span

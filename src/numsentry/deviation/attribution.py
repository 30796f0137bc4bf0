"""Attribution: which knob, changed alone, changes the output, and what pinning it costs.

Each configuration that differs from another configuration of the set in exactly one knob
(the other leaving that knob at the library default) is a *knob effect*: the knob changes the
output when the two are not bit-identical. A runtime's default configuration against the
baseline's runtime default is the effect of the ``runtime`` knob. The *slowdown* is the
configuration's inference time over its reference's, both measured in the same sweep: the
price of pinning the knob to that value (below 1: it is faster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from numsentry.deviation.configs import KNOBS, Config, knob_diff
from numsentry.deviation.metrics import compare_outputs
from numsentry.deviation.runner import RunResult

__all__ = ["KnobEffect", "attribute", "reference_of", "summary_lines"]


@dataclass
class KnobEffect:
    """The effect of one knob value.

    Attributes:
        knob: Knob name (``runtime`` for the runtime choice).
        value: The value tried.
        runtime: The runtime it was tried on.
        config: The configuration with the knob set.
        reference: The configuration it is compared with (the knob at its default).
        changes_output: Outputs not bit-identical (None when either did not run).
        slowdown: ``seconds(config) / seconds(reference)`` (None when either did not run).
        top1_flips: Labels that differ between the two.
        remaining_precision_min: Fewest shared leading significand bits between the two.
        skipped: Why the effect could not be measured.
    """

    knob: str
    value: Any
    runtime: str
    config: str
    reference: str
    changes_output: bool | None
    slowdown: float | None
    top1_flips: int | None = None
    remaining_precision_min: int | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def reference_of(cfg: Config, configs: Sequence[Config], baseline: str | None) -> tuple[str, Config] | None:
    """The knob ``cfg`` changes and the configuration it is changed from (None if there is none)."""
    if not cfg.knobs():
        base = next((c for c in configs if c.name == baseline), None)
        if base is None or base.knobs() or base.runtime == cfg.runtime:
            return None
        return "runtime", base
    for other in configs:
        if other is cfg or other.runtime != cfg.runtime:
            continue
        d = knob_diff(other, cfg)
        if len(d) == 1:
            (k, (ref_v, _)), = d.items()
            if ref_v is None:
                return k, other
    return None


def attribute(results: Sequence[RunResult], baseline: str | None,
              formats: dict[str, str] | None = None) -> list[KnobEffect]:
    """Every knob effect the set of results allows to measure (in configuration order)."""
    configs = [r.config for r in results]
    by_name = {r.config.name: r for r in results}
    out: list[KnobEffect] = []
    for r in results:
        found = reference_of(r.config, configs, baseline)
        if found is None:
            continue
        knob, ref_cfg = found
        ref = by_name[ref_cfg.name]
        value: Any = r.config.runtime if knob == "runtime" else getattr(r.config, knob)
        eff = KnobEffect(knob, value, r.config.runtime, r.config.name, ref.config.name, None, None)
        if not (r.ok and ref.ok):
            eff.skipped = (r.reason if not r.ok else ref.reason) or "did not run"
            out.append(eff)
            continue
        eff.changes_output = r.output_key != ref.output_key
        if r.seconds and ref.seconds:
            eff.slowdown = r.seconds / ref.seconds
        try:
            cmp = compare_outputs(ref.outputs, r.outputs, formats=formats)
            eff.top1_flips = cmp.top1_flips
            eff.remaining_precision_min = cmp.remaining_precision_min
        except ValueError:
            pass
        out.append(eff)
    return out


def _short(s: str | None, n: int = 80) -> str:
    s = s or "did not run"
    return s if len(s) <= n else s[: n - 1] + "…"


def _label(e: KnobEffect) -> str:
    if e.knob == "runtime":
        return f"runtime={e.value}"
    env = KNOBS[e.knob].env
    name = env[0] if env and e.knob not in ("threads",) else e.knob
    v = ("on" if e.value else "off") if isinstance(e.value, bool) else e.value
    return f"{name}={v} ({e.runtime})"


def summary_lines(effects: Sequence[KnobEffect]) -> list[str]:
    """The one-screen summary: which knobs change the output here, and what pinning costs."""
    changing = [e for e in effects if e.changes_output]
    same = [e for e in effects if e.changes_output is False]
    lines: list[str] = []
    if changing:
        parts = []
        for e in changing:
            what = "time" if e.knob == "runtime" else "pinning it costs"
            cost = f", {what} x{e.slowdown:.2f}" if e.slowdown is not None else ""
            flips = f", {e.top1_flips} label flips" if e.top1_flips else ""
            parts.append(f"{_label(e)}{flips}{cost}")
        lines.append("On this machine, these knobs change this model's output: " + "; ".join(parts) + ".")
    else:
        lines.append("On this machine, no knob tried changes this model's output.")
    if same:
        lines.append("Bit-identical when changed alone: " + ", ".join(_label(e) for e in same) + ".")
    not_measured = [e for e in effects if e.changes_output is None]
    if not_measured:
        lines.append("Not measured: " + "; ".join(f"{_label(e)}: {_short(e.skipped)}" for e in not_measured) + ".")
    return lines

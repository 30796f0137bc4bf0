"""A finding: one operator that can receive an invalid input or create a non-finite value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from numsentry.ir.graph import SourceLoc

__all__ = ["Finding"]


@dataclass
class Finding:
    """One reported hazard.

    Attributes:
        rule: Rule code, e.g. ``NUM001``.
        name: Rule name, e.g. ``log-nonpositive``.
        node: Stable node name.
        op_type: ONNX op type.
        outputs: The node's output value names.
        input_intervals: For each input: name, interval text, lo, hi, may-be-NaN.
        dtype: The float format the analysis reasoned in.
        message: What can go wrong, with the interval.
        after_earlier_finding: True when the hazard can only fire because an earlier finding
            already produced a non-finite value.
        source: Python source location (PyTorch exports), or ``None``.
        confirmed: Whether ``check --confirm`` found a witness on onnxruntime (``None``: not run).
        witness: Directory of the reproduction (witness.npz + pytest file), or ``None``.
    """

    rule: str
    name: str
    node: str
    op_type: str
    outputs: list[str]
    input_intervals: list[dict[str, Any]]
    dtype: str
    message: str
    after_earlier_finding: bool = False
    source: SourceLoc | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    confirmed: bool | None = None
    witness: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON form."""
        return {
            "rule": self.rule,
            "name": self.name,
            "node": self.node,
            "op_type": self.op_type,
            "outputs": list(self.outputs),
            "input_intervals": self.input_intervals,
            "dtype": self.dtype,
            "message": self.message,
            "after_earlier_finding": self.after_earlier_finding,
            "source": self.source.to_dict() if self.source else None,
            "confirmed": self.confirmed,
            "witness": self.witness,
        }

"""Error types: a user's mistake versus a bug of ours.

`UserError` is raised for anything the user can fix (missing file, malformed model, bad range
spec, unknown rule code, unsupported op under ``--unsupported error``). The CLI prints it as a
single ``error: ...`` line with a hint and exits 2. `InternalError` marks a broken invariant.
"""

from __future__ import annotations


class NumsentryError(Exception):
    """Base class of every error raised on purpose by numsentry."""


class UserError(NumsentryError):
    """A problem in what the user gave us, with an optional hint on how to fix it.

    Args:
        message: What is wrong, naming the file, node, op and opset where known.
        hint: How to fix it, shown on its own after the message.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class ModelError(UserError):
    """The model file or proto is missing, malformed, truncated or inconsistent."""


class RangeError(UserError):
    """A range specification is malformed or names a tensor the model does not have."""


class UnsupportedOpError(UserError):
    """The model uses operators without rules and the user asked for that to be an error."""


class InternalError(NumsentryError):
    """A broken invariant inside numsentry: a bug to report, never the user's fault."""

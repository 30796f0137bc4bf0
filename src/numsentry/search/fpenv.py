"""Keep onnxruntime's flush-to-zero setting to onnxruntime's own runs.

``session.set_denormal_as_zero`` makes onnxruntime set the FTZ/DAZ bits of the x86 MXCSR register
on its threads; with one intra-op thread the graph runs on the *calling* thread, and the bits
are set there when the session is built and stay set: from then on NumPy and PyTorch in that
Python thread flush subnormals too (``np.log10(1e-45)`` is ``-inf``, ``torch.exp(-100)`` is 0),
and so does every later session, with or without the option.

Worse, onnxruntime sets the bits only when the first such session of the thread is built: a
flushing session built after a non-flushing one runs without flushing. `Session` builds the
session with the caller's floating-point environment saved and restored, and runs it with
FTZ/DAZ set explicitly and the caller's environment restored afterwards (``fegetenv`` /
``fesetenv`` through ctypes, MXCSR bits on x86-64 Linux; elsewhere the session behaves as
onnxruntime's own does).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

__all__ = ["Session", "preserved"]

_ENV_BYTES = 512  # larger than any platform's fenv_t


@lru_cache(maxsize=1)
def _libm() -> Any:
    name = ctypes.util.find_library("m") or ctypes.util.find_library("c")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.fegetenv.argtypes = [ctypes.c_void_p]
        lib.fesetenv.argtypes = [ctypes.c_void_p]
        return lib
    except (OSError, AttributeError):
        return None


def _get() -> Any:
    lib = _libm()
    if lib is None:
        return None
    env = ctypes.create_string_buffer(_ENV_BYTES)
    return env if lib.fegetenv(env) == 0 else None


@contextmanager
def preserved(active: bool = True, inside: Any = None) -> Iterator[None]:
    """Run the block with the calling thread's floating-point environment restored on exit.

    Args:
        active: Whether to do anything.
        inside: An environment (from a `Session`) to switch to for the block.
    """
    lib = _libm() if active else None
    saved = _get() if lib is not None else None
    if lib is None or saved is None:
        yield
        return
    try:
        if inside is not None:
            lib.fesetenv(inside)
        yield
    finally:
        lib.fesetenv(saved)


# glibc's x86-64 fenv_t ends with the SSE control/status register (MXCSR); FTZ is bit 15, DAZ bit 6
_MXCSR_OFFSET = 28
_FTZ_DAZ = 0x8040


def _flushing(env: Any) -> Any:
    """A copy of ``env`` with flush-to-zero and denormals-are-zero set (x86-64 Linux), else None."""
    import platform
    import sys

    if env is None or not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return None
    raw = bytearray(env.raw)
    mxcsr = int.from_bytes(raw[_MXCSR_OFFSET:_MXCSR_OFFSET + 4], "little") | _FTZ_DAZ
    raw[_MXCSR_OFFSET:_MXCSR_OFFSET + 4] = mxcsr.to_bytes(4, "little")
    return ctypes.create_string_buffer(bytes(raw), len(raw))


class Session:
    """An onnxruntime session whose flush-to-zero setting applies to its own runs only.

    Args:
        build: Builds the ``onnxruntime.InferenceSession``.
        flush: Whether the session was asked to flush denormals (``session.set_denormal_as_zero``).
    """

    def __init__(self, build: Callable[[], Any], flush: bool) -> None:
        self.flush = flush
        with preserved(flush):
            self.sess = build()
        # onnxruntime sets FTZ/DAZ on the building thread only the first time a process asks for
        # it (a later session in the same thread inherits whatever is there): set them explicitly
        # around every run instead, where the platform allows it
        self.env = _flushing(_get()) if flush else None

    def run(self, fetch: Any, feeds: Any) -> Any:
        """``InferenceSession.run`` inside the session's floating-point environment."""
        with preserved(self.flush, self.env):
            return self.sess.run(fetch, feeds)

"""The operator registry; importing this package registers every op module in it."""

from __future__ import annotations

import importlib
import pkgutil

from numsentry.ops.registry import REGISTRY, OpDef, Registry

__all__ = ["REGISTRY", "OpDef", "Registry"]

_INFRA = {"registry", "rules", "apply", "kernels", "kernels_torch"}

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name not in _INFRA and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")

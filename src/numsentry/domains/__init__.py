"""Value domains: concrete arrays (NumPy/torch via the Array API) and interval boxes."""

from __future__ import annotations

from numsentry.domains.box import Box

__all__ = ["Box"]

"""Invisible watermarks: schemes (timm-style registry), our keyed payload, calibrated decisions.

    >>> from provenance import watermark
    >>> watermark.available()
    ['dwtDct', 'dwtDctSvd', 'learned', 'rivaGan']
    >>> scheme = watermark.get("dwtDctSvd")
"""
from __future__ import annotations

from .schemes import SCHEMES, WatermarkScheme
from .learned import scheme as _learned  # noqa: E402,F401  registers "learned" (torch loads on first use)

register = SCHEMES.register
available = SCHEMES.available


def get(name: str, **kwargs) -> WatermarkScheme:
    """A new instance of scheme ``name`` (heavy models load on its first use, not here)."""
    return SCHEMES.create(name, **kwargs)


__all__ = ["WatermarkScheme", "available", "get", "register"]

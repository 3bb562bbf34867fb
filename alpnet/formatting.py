"""Small text helpers shared by the command line and the text reports."""

from __future__ import annotations

__all__ = ["percent"]


def percent(p: float) -> str:
    """A probability as a short percentage: ``>99.9%``, ``<0.1%``, ``0%`` or ``12.3%``."""
    if p >= 0.9995:
        return ">99.9%"
    if p < 0.0005:
        return "<0.1%" if p > 0 else "0%"
    return f"{100 * p:.1f}%"

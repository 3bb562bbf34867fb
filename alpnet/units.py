"""Lab values: parsing ``"<number> <unit>"`` and converting units exactly.

Unit spelling is forgiving only where it is unambiguous (case-format.md §2):
``U/L``, ``u/l`` and ``IU/L``; ``µg/L``, ``ug/L`` and ``mcg/L``; ``mL/min/1.73m2`` and
``mL/min/1.73 m²``. The accepted units and their factors live in
``priors/reference.yaml``; this module only normalises spellings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["normalise_unit", "parse_quantity", "Quantity"]

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*(?P<qual><=|>=|≤|≥|<|>)?\s*(?P<num>{_NUMBER})\s*(?P<unit>.*?)\s*$")


def normalise_unit(unit: str) -> str:
    """A canonical spelling key for a unit: case, micro signs, spaces, superscripts.

    Examples
    --------
    >>> normalise_unit("µmol/L") == normalise_unit("umol/l") == normalise_unit("mcmol/L")
    True
    >>> normalise_unit("IU/L") == normalise_unit("U/L")
    True
    """
    u = unit.strip()
    u = u.replace("µ", "u").replace("μ", "u").replace("²", "2").replace("·", "").replace("⁻¹", "-1")
    u = re.sub(r"\s+", "", u).lower()
    u = u.replace("mcg", "ug").replace("mcmol", "umol").replace("mckat", "ukat")
    u = re.sub(r"(?<![a-z])iu/", "u/", u)
    u = u.replace("/hr", "/h").replace("mm/hour", "mm/h")
    return u


@dataclass(frozen=True)
class Quantity:
    """A parsed lab value: number, unit as written, and an optional ``<``/``>`` qualifier."""

    value: float
    unit: str
    qualifier: str | None = None  # "<", "<=", ">", ">=" or None


def parse_quantity(text: str) -> Quantity | None:
    """Parse ``"420 U/L"`` or ``"<5 ng/mL"``; None if not of that shape.

    A comma is not accepted in a number (``1,014`` could be a thousand or a decimal).

    A value with no unit returns a Quantity whose unit is ``""`` (the caller
    reports it: a number with no unit is an error).
    """
    m = _QUANTITY.match(text)
    if not m or "," in text:
        return None
    num = m.group("num")
    try:
        value = float(num)
    except ValueError:  # pragma: no cover - the regex only admits numbers
        return None
    if not math.isfinite(value):
        return None
    qual = m.group("qual")
    qual = {"≤": "<=", "≥": ">="}.get(qual, qual) if qual else None
    return Quantity(value, m.group("unit"), qual)

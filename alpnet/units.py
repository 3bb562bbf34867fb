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

__all__ = ["normalise_unit", "parse_quantity", "split_quantity", "Quantity"]

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*(?P<qual><=|>=|≤|≥|<|>)?\s*(?P<num>{_NUMBER})\s*(?P<unit>.*?)\s*$")


#: normalise_unit's answers by spelling: a batch repeats the same few units in every row.
_NORMALISED: dict[str, str] = {}
_NORMALISED_MAX = 4096


def normalise_unit(unit: str) -> str:
    """A canonical spelling key for a unit: case, micro signs, spaces, superscripts.

    Examples
    --------
    >>> normalise_unit("µmol/L") == normalise_unit("umol/l") == normalise_unit("mcmol/L")
    True
    >>> normalise_unit("IU/L") == normalise_unit("U/L")
    True
    """
    key = _NORMALISED.get(unit)
    if key is None:
        key = _normalise_unit(unit)
        if len(_NORMALISED) < _NORMALISED_MAX:
            _NORMALISED[unit] = key
    return key


def _normalise_unit(unit: str) -> str:
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
    split = split_quantity(text)
    return None if split is None else Quantity(*split)


def split_quantity(text: str) -> tuple[float, str, str | None] | None:
    """:func:`parse_quantity` as a plain ``(value, unit, qualifier)`` tuple (cheaper to make), or None."""
    if "," in text:
        return None
    num, _, unit = text.partition(" ")
    if num.isascii() and num.replace(".", "", 1).isdigit() and unit.split() == [unit]:
        # the common "108.6 U/L" without the regex, which reads it the same: ASCII digits with at
        # most one point (no sign, no exponent), one space, a unit with no white space (tests
        # compare the two on many shapes)
        qual = None
    else:
        m = _QUANTITY.match(text)
        if not m:
            return None
        qual, num, unit = m.groups()
    try:
        value = float(num)
    except ValueError:  # pragma: no cover - the regex only admits numbers
        return None
    if not math.isfinite(value):
        return None
    qual = {"≤": "<=", "≥": ">="}.get(qual, qual) if qual else None
    return value, unit, qual

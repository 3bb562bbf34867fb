"""The bundled example cases (``examples/cases``, shipped inside the wheel)."""

from __future__ import annotations

from pathlib import Path

from .errors import CaseError

__all__ = ["examples_dir", "example_path", "list_examples"]


def examples_dir() -> Path:
    """Folder of the bundled example cases."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_examples" / "cases", here.parent / "examples" / "cases"):
        if candidate.is_dir():
            return candidate
    raise CaseError("the bundled example cases are missing from the installation")  # pragma: no cover


def list_examples() -> list[str]:
    """Names (file stems) of the bundled example cases."""
    return sorted(p.stem for p in examples_dir().glob("*.yaml"))


def example_path(name: str) -> Path:
    """Path of a bundled example case by name (``"paget"``).

    Raises
    ------
    CaseError
        For an unknown name, listing the known ones.
    """
    p = examples_dir() / f"{name}.yaml"
    if not p.is_file():
        raise CaseError(f"example {name!r}: unknown; accepted: {', '.join(list_examples())}")
    return p


#: Fields of a teaching case's ``about:`` mapping, in the order they are shown.
ABOUT_FIELDS = ("title", "expected_cause", "key_findings", "teaching_point", "narrative", "expected_reasoning",
                "source")


def teaching_cases():
    """The bundled teaching cases as a table (one row per case).

    Returns
    -------
    pandas.DataFrame
        Columns ``name`` and the ``about:`` fields: ``title, expected_cause, key_findings,
        teaching_point, narrative, expected_reasoning`` (a list of steps) and ``source``.

    Examples
    --------
    >>> from alpnet.examples import teaching_cases
    >>> "paget" in set(teaching_cases()["name"])
    True
    """
    import pandas as pd

    from .evidence import read_case

    rows = []
    for name in list_examples():
        about = read_case(example_path(name)).about
        rows.append({"name": name, **{k: about.get(k) for k in ABOUT_FIELDS}})
    return pd.DataFrame(rows, columns=["name", *ABOUT_FIELDS])

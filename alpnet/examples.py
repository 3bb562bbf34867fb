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

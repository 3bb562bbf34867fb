"""The exception family of alpnet.

Every error a user can cause derives from :class:`AlpnetError`, which is a
``ValueError`` so that ``except ValueError`` keeps working. Messages follow one
shape: *where* (a case key, a prior file and key), *what came*, *what is accepted*.
"""

from __future__ import annotations

__all__ = ["AlpnetError", "CaseError", "PriorsError", "EvidenceConflictError"]


class AlpnetError(ValueError):
    """Base class of every error alpnet raises for bad input."""


class CaseError(AlpnetError):
    """A case (file, mapping, batch row or evidence) is malformed."""


class PriorsError(AlpnetError):
    """A prior set is malformed; the message names the file and the key."""


class EvidenceConflictError(AlpnetError):
    """The evidence has probability zero under the model.

    Attributes
    ----------
    findings : list of str
        The evidence variables that cannot hold together.
    """

    def __init__(self, message: str, findings: list[str]):
        super().__init__(message)
        self.findings = list(findings)

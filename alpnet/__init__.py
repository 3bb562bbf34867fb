"""alpnet: a Bayesian network that explains a raised serum alkaline phosphatase.

For research and teaching, not for clinical decisions.

>>> import alpnet
>>> model = alpnet.load_model()
>>> case = alpnet.read_case(alpnet.example_path("paget"))  # doctest: +SKIP
>>> model.diagnose(case)                                   # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import AlpnetError, CaseError, EvidenceConflictError, PriorsError  # noqa: E402
from .evidence import Case, read_case  # noqa: E402
from .model import DISCLAIMER, Model, load_model  # noqa: E402
from .examples import example_path, list_examples  # noqa: E402

__all__ = [
    "__version__",
    "DISCLAIMER",
    "load_model",
    "read_case",
    "Model",
    "Case",
    "example_path",
    "list_examples",
    "AlpnetError",
    "CaseError",
    "PriorsError",
    "EvidenceConflictError",
]

"""pgmpy's exact inference behind the engine's interface: the fallback for large cause spaces.

:class:`alpnet.engine.Engine` enumerates the cause space and refuses more than
:data:`alpnet.engine.MAX_HIDDEN` causes. A prior set with more causes (an analyst may add
some) is answered by pgmpy's ``VariableElimination`` instead, if its largest table fits in
memory, with a warning; otherwise alpnet stops with an error naming the limit.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np

from .errors import AlpnetError, CaseError, EvidenceConflictError
from .priors import PriorSet

__all__ = ["PgmpyEngine", "MEMORY_LIMIT_BYTES", "largest_table_bytes", "choose_engine"]

#: The most memory the fallback may need (largest table x 8 bytes x 4 for intermediates).
MEMORY_LIMIT_BYTES = 4 * 1024**3


def largest_table_bytes(pset: PriorSet) -> int:
    """Bytes of the largest conditional probability table of the network (float64)."""
    sizes = []
    for var in pset.variables.values():
        cells = len(var.states) * math.prod(len(pset.variables[p].states) for p in var.parents)
        sizes.append(cells * 8)
    return max(sizes) if sizes else 0


class PgmpyEngine:
    """The same questions as :class:`alpnet.engine.Engine`, answered by pgmpy (slower)."""

    def __init__(self, pset: PriorSet, cpts: Mapping[str, np.ndarray]):
        from pgmpy.inference import VariableElimination

        from .network import to_pgmpy

        self.pset = pset
        self.variables = pset.variables
        self.hidden = pset.hidden
        self.context = pset.context
        self.cpts = dict(cpts)
        self._infer = VariableElimination(to_pgmpy(pset, cpts))

    def normalise(self, evidence: Mapping[str, Any]) -> dict[str, str]:
        out = {}
        for var, value in evidence.items():
            if var not in self.variables:
                raise CaseError(f"evidence: unknown variable {var!r}")
            if isinstance(value, (list, tuple, set, frozenset, Mapping)):
                raise CaseError(f"evidence {var}: a set of states needs the exact engine (at most "
                                "its limit of causes); give one state")
            s = ("true" if value else "false") if isinstance(value, bool) else str(value)
            if s not in self.variables[var].states:
                raise CaseError(f"evidence {var}: unknown state {s!r}; accepted: {', '.join(self.variables[var].states)}")
            out[var] = s
        return out

    def _marginals(self, ev: Mapping[str, str]) -> dict[str, float]:
        out = {}
        for h in self.hidden:
            try:
                q = self._infer.query(variables=[h], evidence=dict(ev), show_progress=False)
            except (ValueError, ZeroDivisionError) as exc:  # pragma: no cover - pgmpy's own message
                raise EvidenceConflictError(f"the evidence is impossible under the model ({exc})", list(ev)) from None
            values = q.values / q.values.sum()
            if not np.all(np.isfinite(values)):
                raise EvidenceConflictError("the evidence is impossible under the model", list(ev))
            out[h] = float(values[q.state_names[h].index("present")])
        return out

    def posterior(self, evidence: Mapping[str, Any]) -> dict[str, float]:
        return self._marginals(self.normalise(evidence))

    def prior(self, evidence: Mapping[str, Any]) -> dict[str, float]:
        ev = self.normalise(evidence)
        return self._marginals({k: v for k, v in ev.items() if k in self.context})

    def predictive(self, evidence: Mapping[str, Any], variable: str) -> dict[str, float]:
        ev = self.normalise(evidence)
        q = self._infer.query(variables=[variable], evidence=dict(ev), show_progress=False)
        values = q.values / q.values.sum()
        return {s: float(v) for s, v in zip(q.state_names[variable], values)}


def choose_engine(pset: PriorSet, cpts_builder):
    """The exact enumeration engine, or pgmpy's with a warning, or a clear error.

    Parameters
    ----------
    pset : PriorSet
    cpts_builder : callable
        Builds the tables (called only when an engine will be built).
    """
    from . import engine as engine_module

    k = len(pset.hidden)
    if k <= engine_module.MAX_HIDDEN:
        cpts = cpts_builder(pset)
        return cpts, engine_module.Engine(pset, cpts)
    need = largest_table_bytes(pset) * 4
    if need > MEMORY_LIMIT_BYTES:
        raise AlpnetError(
            f"the prior set has {k} causes and leaks: above alpnet's exact engine limit of "
            f"{engine_module.MAX_HIDDEN}, and pgmpy's exact inference would need about {need / 1024**3:.1f} GB "
            f"(limit {MEMORY_LIMIT_BYTES / 1024**3:.1f} GB); remove causes or give findings fewer parents")
    warnings.warn(
        f"the prior set has {k} causes and leaks, above the exact engine's limit of {engine_module.MAX_HIDDEN}; "
        "answering with pgmpy's VariableElimination instead (exact but much slower; next-test is not available)",
        RuntimeWarning, stacklevel=3)
    cpts = cpts_builder(pset)
    return cpts, PgmpyEngine(pset, cpts)

"""Where every number came from: the prior-set report."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .priors import PriorSet

__all__ = ["priors_report", "parameter_table"]


def parameter_table(pset: PriorSet) -> list[dict[str, Any]]:
    """One record per parameter: id, value, range, source, where, note, file."""
    rows = []
    for p in pset.parameters.values():
        rows.append({
            "id": p.id,
            "value": p.value,
            "range": [p.low, p.high],
            "kind": p.kind,
            "source": p.source,
            "where": p.where,
            "note": p.note,
            "file": p.file,
            "literature": p.literature,
        })
    return rows


def priors_report(pset: PriorSet) -> dict[str, Any]:
    """Every parameter with its provenance, and the totals.

    Returns
    -------
    dict
        ``parameters`` (count), ``literature`` (count of literature-sourced
        numbers), ``expert_judgment`` and ``by_definition`` (counts), ``sources``
        (count of bibliography entries), ``table`` (one record per parameter),
        ``bibliography`` (one record per source with how many numbers use it),
        ``priors_sha256``.
    """
    table = parameter_table(pset)
    uses = Counter(r["source"] for r in table)
    bibliography = [{"id": sid, "uses": uses.get(sid, 0), **entry} for sid, entry in sorted(pset.sources.items())]
    return {
        "parameters": len(table),
        "literature": sum(1 for r in table if r["literature"]),
        "expert_judgment": uses.get("expert-judgment", 0),
        "by_definition": uses.get("by-definition", 0),
        "sources": len(pset.sources),
        "priors_sha256": pset.sha256,
        "disclaimer": "alpnet is for research and teaching, not for clinical decisions.",
        "table": table,
        "bibliography": bibliography,
    }

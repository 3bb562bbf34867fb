"""Compare two prior sets: the parameters that differ and what that does to the example cases."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import AlpnetError
from .priors import PriorSet, load_priors

__all__ = ["PriorsDiff", "diff_priors", "diff_parameters", "format_diff"]


@dataclass
class PriorsDiff:
    """What :func:`diff_priors` returns.

    Attributes
    ----------
    a, b : dict
        ``path`` and ``sha256`` of each set.
    parameters : pandas.DataFrame
        ``id, status, old, new, change, source_a, source_b`` for every parameter whose
        value or source differs, that is only in A (``removed``) or only in B (``added``).
    cases : pandas.DataFrame
        Per bundled example case: ``case_id, leading_a, posterior_a, leading_b,
        posterior_b, leading_changed, posterior_a_of_b_leader`` (empty when not computed).
    """

    a: dict[str, Any]
    b: dict[str, Any]
    parameters: pd.DataFrame
    cases: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"a", "b", "parameters": [...], "cases": [...]}``."""
        def clean(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                    for r in records]

        return {"a": self.a, "b": self.b, "parameters": clean(self.parameters.to_dict("records")),
                "cases": clean(self.cases.to_dict("records"))}


def _load(x: str | Path | PriorSet | None) -> PriorSet:
    if isinstance(x, PriorSet):
        return x
    if x is None or str(x) == "bundled":
        return load_priors(None)
    return load_priors(x)


def diff_parameters(a: PriorSet, b: PriorSet, *, tol: float = 1e-12) -> pd.DataFrame:
    """Parameters whose value or source differs between two sets (overrides included)."""
    rows = []
    for pid, pa in a.parameters.items():
        pb = b.parameters.get(pid)
        if pb is None:
            rows.append({"id": pid, "status": "removed", "old": pa.value, "new": math.nan, "change": math.nan,
                         "source_a": pa.source, "source_b": None})
        elif abs(pa.value - pb.value) > tol or pa.source != pb.source:
            rows.append({"id": pid, "status": "changed", "old": pa.value, "new": pb.value,
                         "change": pb.value - pa.value, "source_a": pa.source, "source_b": pb.source})
    for pid, pb in b.parameters.items():
        if pid not in a.parameters:
            rows.append({"id": pid, "status": "added", "old": math.nan, "new": pb.value, "change": math.nan,
                         "source_a": None, "source_b": pb.source})
    return pd.DataFrame(rows, columns=["id", "status", "old", "new", "change", "source_a", "source_b"])


def diff_priors(a: str | Path | PriorSet | None, b: str | Path | PriorSet | None, *,
                examples: bool = True, overrides_b: dict[str, float] | None = None) -> PriorsDiff:
    """Compare two prior sets.

    Parameters
    ----------
    a, b : str, Path or PriorSet
        Prior-set folders (``"bundled"`` or None for the bundled set) or loaded sets.
    examples : bool, default True
        Also diagnose every bundled example case under both sets: the leading cause and
        its posterior under A and under B.
    overrides_b : dict, optional
        Parameter id -> value applied on top of B (``--param``), so that
        ``diff_priors(None, None, overrides_b={...})`` shows what an override does.

    Returns
    -------
    PriorsDiff

    Raises
    ------
    PriorsError
        If either set does not load (names file and key).
    """
    from .evidence import read_case
    from .examples import example_path, list_examples
    from .model import Model

    pa, pb = _load(a), _load(b)
    if overrides_b:
        pb = pb.with_overrides(overrides_b)
    params = diff_parameters(pa, pb)
    info = {"a": {"path": str(pa.path), "sha256": pa.sha256, "overrides": dict(pa.overrides)},
            "b": {"path": str(pb.path), "sha256": pb.sha256, "overrides": dict(pb.overrides)}}
    cases = pd.DataFrame(columns=["case_id", "leading_a", "posterior_a", "leading_b", "posterior_b",
                                  "leading_changed", "posterior_a_of_b_leader"])
    if examples:
        if pa.causes != pb.causes:
            raise AlpnetError("the two prior sets have different causes; only parameters can be compared "
                              "(use --no-examples)")
        ma = Model(pa)
        mb = ma if params.empty and pa.sha256 == pb.sha256 and not pb.overrides else Model(pb)
        rows = []
        for name in list_examples():
            case = read_case(example_path(name))
            da, db = ma.diagnose(case), mb.diagnose(case)
            la, lb = da.attrs["leading_cause"], db.attrs["leading_cause"]
            post_a = dict(zip(da["cause"], da["posterior"]))
            post_b = dict(zip(db["cause"], db["posterior"]))
            rows.append({"case_id": case.id, "leading_a": la, "posterior_a": float(post_a[la]),
                         "leading_b": lb, "posterior_b": float(post_b[lb]), "leading_changed": la != lb,
                         "posterior_a_of_b_leader": float(post_a[lb])})
        cases = pd.DataFrame(rows, columns=cases.columns)
    return PriorsDiff(a=info["a"], b=info["b"], parameters=params, cases=cases)


def format_diff(d: PriorsDiff, *, limit: int = 50) -> str:
    """The diff as text: changed parameters, then the example cases."""
    lines = [f"A: {d.a['path']} (sha256 {d.a['sha256'][:12]})",
             f"B: {d.b['path']} (sha256 {d.b['sha256'][:12]})"
             + (f", overrides {d.b['overrides']}" if d.b.get("overrides") else ""), ""]
    p = d.parameters
    if p.empty:
        lines.append("no parameter differs")
    else:
        lines.append(f"{len(p)} parameter(s) differ:")
        order = p.reindex(p["change"].abs().sort_values(ascending=False, na_position="last").index)
        for r in order.head(limit).itertuples(index=False):
            old = "-" if math.isnan(r.old) else f"{r.old:.4g}"
            new = "-" if math.isnan(r.new) else f"{r.new:.4g}"
            src = r.source_a if r.source_a == r.source_b else f"{r.source_a} -> {r.source_b}"
            lines.append(f"  {r.id:60s} {old:>10s} -> {new:<10s} {r.status:8s} {src}")
        if len(p) > limit:
            lines.append(f"  ... and {len(p) - limit} more (--format json lists all)")
    if len(d.cases):
        lines += ["", "bundled example cases (leading cause and its posterior):"]
        for r in d.cases.itertuples(index=False):
            mark = "  CHANGED" if r.leading_changed else ""
            lines.append(f"  {r.case_id:40s} A: {r.leading_a} {100 * r.posterior_a:5.1f}%   "
                         f"B: {r.leading_b} {100 * r.posterior_b:5.1f}%{mark}")
        n = int(d.cases["leading_changed"].sum())
        lines.append(f"the leading cause changes in {n} of {len(d.cases)} case(s)")
    return "\n".join(lines)

"""One-way sensitivity of a posterior to every parameter, computed exactly.

Every table of the network is affine in any one of its parameters ``x`` when the
other entries of that parameter's distribution column are scaled to keep the column
summing to one (noisy-OR and noisy-MAX links enter each configuration once, a
relative risk multiplies a base rate once, a table entry is itself). Each variable
has its own table, so the joint ``P(h, e)`` and the normaliser ``P(e)`` are affine
in ``x`` as well, and

    P(h | e)(x) = (a_h x + b_h) / (c x + d)

for every hidden variable ``h`` with one shared denominator (Castillo, Gutierrez
and Hadi 1997; Coupe and van der Gaag 2002). alpnet evaluates the model at the two
ends of the parameter's literature range, which gives ``a, b, c, d`` exactly, and
checks the fit against the value at the current ``x``: a base rate times relative
risks that reaches its cap is only piecewise affine, and is reported as such
(``exact_form`` false) with the tornado ends still computed by direct evaluation.

From the coefficients follow the sensitivity value (the derivative at the current
value), the tornado bar (the posterior at the range ends) and the admissible
deviation: the interval of ``x`` in which the leading cause stays the leading
cause. Because the denominator is shared and positive, cause ``h`` overtakes the
leader where ``a_h x + b_h > a_L x + b_L`` — a linear inequality per cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .engine import marginals
from .errors import CaseError
from .parameters import parameter_owners, tables_for, temporary_values

__all__ = ["sensitivity", "SensitivityResult", "sensitivity_function"]

#: Relative tolerance of the affine check at the parameter's current value.
AFFINE_TOLERANCE = 1e-9


@dataclass
class SensitivityResult:
    """Sensitivity of one posterior to every parameter.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per parameter, most influential first (largest tornado swing).
    cause : str
        The cause whose posterior is analysed.
    leading_cause : str
        The leading cause under the current values.
    posterior : float
        P(cause | evidence) under the current values.
    """

    table: pd.DataFrame
    cause: str
    leading_cause: str
    posterior: float

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """JSON-ready form (``top`` rows, all when None)."""
        rows = self.table if top is None else self.table.head(top)
        records = []
        for r in rows.to_dict(orient="records"):
            records.append({k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()})
        return {"cause": self.cause, "leading_cause": self.leading_cause, "posterior": self.posterior,
                "parameters": records}


def _domain(kind: str) -> tuple[float, float]:
    return (0.0, 1.0) if kind == "probability" else (0.0, np.inf)


def _evaluation_points(value: float, low: float, high: float, kind: str) -> tuple[float, float]:
    lo_dom, hi_dom = _domain(kind)
    x1, x2 = float(low), float(high)
    if not x2 - x1 > 1e-12 * max(1.0, abs(value)):
        step = 0.01 * max(abs(value), 1e-3)
        x1, x2 = max(lo_dom, value - step), value + step
        if kind == "probability" and x2 > 1.0:
            x2 = 1.0
    return x1, x2


def sensitivity_function(model: Any, evidence: Mapping[str, Any], parameter: str,
                         xs: Sequence[float]) -> np.ndarray:
    """Brute-force posteriors of every hidden variable at each value of one parameter.

    Returns
    -------
    ndarray, shape (len(xs), n_hidden)
        Columns in the prior set's order of hidden variables (``model.priors.hidden``).
    """
    pset = model.priors
    owners = parameter_owners(pset).get(parameter, [])
    ev = model.engine.normalise(evidence)
    out = []
    for x in xs:
        with temporary_values(pset, {parameter: x}):
            tables = tables_for(pset, owners)
        w = model.engine._joint_with_tables(ev, tables)
        out.append(marginals(w) / w.sum())
    columns = [model.engine.hidx[h] for h in pset.hidden]
    return np.array(out)[:, columns]


def sensitivity(model: Any, evidence: Mapping[str, Any], *, cause: str | None = None,
                parameters: Sequence[str] | None = None) -> SensitivityResult:
    """Exact one-way sensitivity of P(cause | evidence) to each parameter.

    Parameters
    ----------
    model : alpnet.Model
    evidence : mapping
        Model evidence (``Model.evidence_of(case)[0]``).
    cause : str, optional
        The cause whose posterior is analysed; the leading cause by default.
    parameters : sequence of str, optional
        Parameter ids to analyse; every parameter that enters a table by default.

    Returns
    -------
    SensitivityResult
        ``table`` columns: ``parameter, variables, source, value, low, high, posterior_low,
        posterior_high, swing, sensitivity_value, a, b, c, d, exact_form, effect,
        admissible_low, admissible_high``. ``effect`` is ``none`` when the parameter feeds
        only findings that are not observed (they cannot move a posterior).
    """
    engine = model.engine
    pset = model.priors
    ev = engine.normalise(evidence)
    n0, z0 = engine._marginal_weights(ev)
    hidden = engine.hidden
    causes = pset.causes
    post0 = n0 / z0
    cause_idx = [hidden.index(c) for c in causes]
    lead = causes[int(np.argmax(post0[cause_idx]))]
    if cause is None:
        cause = lead
    if cause not in causes:
        raise CaseError(f"--cause {cause!r}: not a cause; accepted: {', '.join(causes)}")
    ci, li = hidden.index(cause), hidden.index(lead)
    owners = parameter_owners(pset)
    if parameters is None:
        parameters = [pid for pid in pset.parameters if pid in owners]
    observed_relevant = set(pset.context) | set(hidden) | set(engine.with_context) | {
        f for f in engine.cause_only if f in ev}
    rows = []
    for pid in parameters:
        if pid not in pset.parameters:
            raise CaseError(f"parameter {pid!r}: unknown id")
        p = pset.parameters[pid]
        vars_ = owners.get(pid, [])
        base = {"parameter": pid, "variables": ",".join(vars_), "source": p.source, "value": p.value,
                "low": p.low, "high": p.high, "posterior": post0[ci]}
        if not any(v in observed_relevant for v in vars_):
            rows.append({**base, "posterior_low": post0[ci], "posterior_high": post0[ci], "swing": 0.0,
                         "sensitivity_value": 0.0, "a": 0.0, "b": post0[ci], "c": 0.0, "d": 1.0,
                         "exact_form": True, "effect": "none",
                         "admissible_low": _domain(p.kind)[0], "admissible_high": _domain(p.kind)[1]})
            continue
        x0 = p.value
        x1, x2 = _evaluation_points(x0, p.low, p.high, p.kind)
        N, Z = [], []
        for x in (x1, x2):
            with temporary_values(pset, {pid: x}):
                tables = tables_for(pset, vars_)
            w = engine._joint_with_tables(ev, tables)
            N.append(marginals(w))
            Z.append(float(w.sum()))
        a_vec = (N[1] - N[0]) / (x2 - x1)
        b_vec = N[0] - a_vec * x1
        c = (Z[1] - Z[0]) / (x2 - x1)
        d = Z[0] - c * x1
        pred_n = a_vec * x0 + b_vec
        pred_z = c * x0 + d
        exact = bool(abs(pred_z - z0) <= AFFINE_TOLERANCE * z0 + 1e-300
                     and np.all(np.abs(pred_n - n0) <= AFFINE_TOLERANCE * z0 + 1e-300))
        # normalise so that the denominator is 1 at the current value
        scale = z0
        a, b, cc, dd = a_vec[ci] / scale, b_vec[ci] / scale, c / scale, d / scale
        p_lo, p_hi = N[0][ci] / Z[0], N[1][ci] / Z[1]
        if exact:
            slope = (a * dd - b * cc) / (cc * x0 + dd) ** 2
            adm_lo, adm_hi = _admissible(a_vec, b_vec, li, cause_idx, x0, p.kind)
        else:  # piecewise: derivative from the side of the current value inside the range
            slope = float("nan")
            adm_lo = adm_hi = float("nan")
        rows.append({**base, "posterior_low": p_lo, "posterior_high": p_hi, "swing": abs(p_hi - p_lo),
                     "sensitivity_value": slope, "a": a, "b": b, "c": cc, "d": dd, "exact_form": exact,
                     "effect": "yes", "admissible_low": adm_lo, "admissible_high": adm_hi})
    cols = ["parameter", "variables", "source", "value", "low", "high", "posterior", "posterior_low",
            "posterior_high", "swing", "sensitivity_value", "a", "b", "c", "d", "exact_form", "effect",
            "admissible_low", "admissible_high"]
    df = pd.DataFrame(rows, columns=cols)
    order = df["swing"].to_numpy()
    df = df.iloc[np.argsort(-order, kind="mergesort")].reset_index(drop=True)
    df.attrs.update(cause=cause, leading_cause=lead, posterior=float(post0[ci]), model=model.version_info)
    return SensitivityResult(df, cause, lead, float(post0[ci]))


def _admissible(a: np.ndarray, b: np.ndarray, li: int, cause_idx: list[int], x0: float,
                kind: str) -> tuple[float, float]:
    """Interval of x around x0 (within the domain) where cause ``li`` keeps the lead."""
    lo, hi = _domain(kind)
    for h in cause_idx:
        if h == li:
            continue
        # lead keeps the lead while (a_L - a_h) x + (b_L - b_h) >= 0
        slope = a[li] - a[h]
        inter = b[li] - b[h]
        if slope > 0:
            lo = max(lo, -inter / slope)
        elif slope < 0:
            hi = min(hi, -inter / slope)
    lo, hi = min(lo, x0), max(hi, x0)
    return float(lo), float(hi)

"""How uncertain is an answer, given how well the literature pins down each number?

Every parameter has a value and a plausible range. alpnet reads the range as a
central 95% interval and draws the parameter from a distribution matched to both:

* a probability on its own: Beta with mean ``value`` and standard deviation
  ``(high - low) / 3.92`` (method of moments; the concentration is kept >= 2);
* a distribution column (a prior over age bands, the link distribution of a
  noisy-MAX cause): Dirichlet with mean ``value`` and the median concentration the
  entries' ranges imply, entries that are zero stay zero;
* a ratio (relative risk): log-normal with median ``value`` and log-scale standard
  deviation ``(ln high - ln low) / 3.92``;
* numbers marked ``by-definition`` and numbers whose range is a single point are
  not drawn.

Each draw rebuilds only the tables the case's posterior depends on (context, causes,
context-dependent findings and the observed findings) and runs the exact engine on
them; information gains are recomputed for the best tests under the current values.
The same seed gives the same draws, and every parameter is drawn whatever the case
needs, so the draws do not depend on the case. :func:`posterior_intervals` uses that
for many cases at once (``alpnet score --uncertainty``): each draw compiles the whole
network with the drawn tables (:meth:`alpnet.engine.Engine.with_tables`) and scores
the cases as a batch, giving each case the interval it gets alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .engine import marginals
from .errors import AlpnetError, CaseError
from .parameters import assigned_values, parameter_owners, tables_for
from .priors import PriorSet

__all__ = ["draw_parameters", "posterior_intervals", "posterior_uncertainty", "UncertaintyResult", "Z95"]

#: A range is read as a central 95% interval: half-width / 1.96 is one standard deviation.
Z95 = 1.959963984540054
MIN_CONCENTRATION = 2.0
#: Bound on the posterior draws :func:`posterior_intervals` keeps at once (bytes).
INTERVAL_BYTES = 256 * 1024**2


def _beta_concentration(v: float, low: float, high: float) -> float | None:
    sd = (high - low) / (2 * Z95)
    if not sd > 0 or not 0 < v < 1:
        return None
    return max(v * (1 - v) / sd**2 - 1.0, MIN_CONCENTRATION)


def draw_parameters(pset: PriorSet, n: int, seed: int | None = None,
                    parameters: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Draw ``n`` sets of parameter values.

    Parameters
    ----------
    pset : PriorSet
    n : int
        Number of draws.
    seed : int, optional
        Seed of numpy's default generator; the same seed gives the same draws.
    parameters : list of str, optional
        Ids to draw (default: every parameter that enters a table).

    Returns
    -------
    ids : list of str
    values : ndarray, shape (n, len(ids))
    """
    rng = np.random.default_rng(seed)
    owners = parameter_owners(pset)
    wanted = [pid for pid in (parameters or list(pset.parameters)) if pid in owners]
    wanted_set = set(wanted)
    done: set[str] = set()
    ids: list[str] = []
    cols: list[np.ndarray] = []
    for pid in wanted:
        if pid in done:
            continue
        p = pset.parameters[pid]
        column = pset.columns.get(pid)
        if column:
            group = [q for q in column]
            done.update(group)
            values = np.array([pset.parameters[q].value for q in group])
            fixed = all(pset.parameters[q].source == "by-definition" for q in group)
            kappas = [k for q in group if (k := _beta_concentration(pset.parameters[q].value, pset.parameters[q].low,
                                                                     pset.parameters[q].high)) is not None]
            pos = values > 0
            if fixed or not kappas or pos.sum() < 2:
                draws = np.repeat(values[None, :], n, axis=0)
            else:
                kappa = float(np.median(kappas))
                draws = np.zeros((n, len(group)))
                draws[:, pos] = rng.dirichlet(kappa * values[pos] / values[pos].sum(), size=n)
            for j, q in enumerate(group):
                if q in wanted_set:
                    ids.append(q)
                    cols.append(draws[:, j])
            continue
        done.add(pid)
        if p.source == "by-definition" or not p.high > p.low:
            draw = np.full(n, p.value)
        elif p.kind == "ratio":
            if not p.low > 0:
                draw = np.full(n, p.value)
            else:
                sd = (np.log(p.high) - np.log(p.low)) / (2 * Z95)
                draw = np.exp(rng.normal(np.log(p.value), sd, size=n))
        else:
            kappa = _beta_concentration(p.value, p.low, p.high)
            draw = np.full(n, p.value) if kappa is None else rng.beta(kappa * p.value, kappa * (1 - p.value), size=n)
        ids.append(pid)
        cols.append(draw)
    values = np.column_stack(cols) if cols else np.zeros((n, 0))
    return ids, values


def _case_draws(pset: PriorSet, draws: int, seed: int | None,
                wanted: set[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Draws of every parameter, then the columns of the ``wanted`` ones.

    Every parameter is drawn whatever the case needs, so a parameter's draws do not
    depend on the case: with the same seed, one case alone and the same case in a batch
    see the same numbers.
    """
    ids, values = draw_parameters(pset, draws, seed)
    if wanted is None:
        return ids, values
    keep = [j for j, pid in enumerate(ids) if pid in wanted]
    return [ids[j] for j in keep], values[:, keep]


def _leading(P: np.ndarray, causes: list[str]) -> np.ndarray:
    """Index of the leading cause along the last axis; ties go to the first name in sorted
    order, as :meth:`Model.diagnose` breaks them."""
    order = np.array(sorted(range(len(causes)), key=lambda k: causes[k]))
    return order[np.argmax(P[..., order], axis=-1)]


def _check_draws(draws: Any, level: Any, seed: Any = None) -> None:
    """The settings of a draw, checked once for every entry point; messages name the flags."""
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 2:
        raise CaseError(f"--draws {draws}: must be a whole number >= 2")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise CaseError(f"--level {level}: must lie strictly between 0 and 1 (0.95 for 95%)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise CaseError(f"--seed {seed!r}: must be a whole number >= 0, or None")


def posterior_intervals(model: Any, evidences: Sequence[Mapping[str, Any]], *, draws: int = 200,
                        seed: int | None = 0, level: float = 0.95,
                        block: int = 1024,
                        progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Credible intervals of every cause's posterior for many cases at once.

    The same draws as :func:`posterior_uncertainty` with the same seed, so each case's
    interval is the one it gets alone (to rounding: here every draw compiles a whole
    engine and scores the cases as a batch).

    Parameters
    ----------
    model : alpnet.Model
    evidences : sequence of mappings
        Model evidence, one per case; every case must be possible under the model.
    draws, seed, level :
        As for :func:`posterior_uncertainty`.
    block : int
        At most this many cases are scored together per draw; fewer when their draws
        would pass :data:`INTERVAL_BYTES` (``cases * draws * n_causes`` floats are kept).
    progress : callable, optional
        Called after every draw with the cases it stands for (cases scored / draws).

    Returns
    -------
    low, high : ndarray, shape (n_cases, n_causes)
        Bounds of the central credible intervals, causes in ``model.causes`` order.
    leading_stays : ndarray, shape (n_cases,)
        Share of draws in which the case's leading cause (under the prior set's values)
        stays the leading cause.
    """
    from .cpt import build_cpts

    _check_draws(draws, level, seed)
    if block < 1:
        raise CaseError(f"block {block}: must be >= 1")
    engine = model.engine
    if not hasattr(engine, "with_tables"):
        raise AlpnetError("credible intervals need alpnet's exact enumeration engine; this prior set has more "
                          "causes than its limit (see alpnet.engine.MAX_HIDDEN)")
    pset = model.priors
    causes = list(pset.causes)
    n = len(evidences)
    low = np.full((n, len(causes)), np.nan)
    high = np.full((n, len(causes)), np.nan)
    stays = np.full(n, np.nan)
    if n == 0:
        return low, high, stays
    ids, values = _case_draws(pset, draws, seed)
    alpha = (1 - level) / 2
    block = max(1, min(block, INTERVAL_BYTES // (8 * draws * max(len(causes), 1))))
    for start in range(0, n, block):
        part = list(evidences[start:start + block])
        P = np.empty((len(part), draws, len(causes)))
        for d in range(draws):
            with assigned_values(pset, ids, values[d]):
                cpts = build_cpts(pset)
            drawn = engine.with_tables(cpts)
            raw = np.asarray(drawn.posterior_many(part), dtype=float)
            P[:, d] = raw[:, [drawn.hidden.index(c) for c in causes]]
            if progress is not None:
                progress(len(part) / draws)
        low[start:start + len(part)], high[start:start + len(part)] = np.quantile(P, [alpha, 1 - alpha], axis=1)
        base = np.asarray(engine.posterior_many(part), dtype=float)[:, [engine.hidden.index(c) for c in causes]]
        lead0 = _leading(base, causes)
        stays[start:start + len(part)] = (_leading(P, causes) == lead0[:, None]).mean(axis=1)
    return low, high, stays


@dataclass
class UncertaintyResult:
    """Credible intervals of the posteriors (and of the best tests' gains) under parameter draws.

    Attributes
    ----------
    posteriors : pandas.DataFrame
        One row per cause: ``cause, label, posterior`` (current values), ``mean``,
        ``low``, ``high`` (central interval), ``p_leading`` (share of draws in which
        the cause leads).
    gains : pandas.DataFrame
        One row per test analysed: ``test, expected_information_gain_bits``, ``low``,
        ``high``, ``p_best`` (share of draws in which it is the best of those tests).
    draws : int
    seed : int or None
    level : float
    """

    posteriors: pd.DataFrame
    gains: pd.DataFrame
    draws: int
    seed: int | None
    level: float
    leading_cause: str
    leading_stays: float
    best_test: str | None
    best_test_stays: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "draws": self.draws, "seed": self.seed, "level": self.level,
            "leading_cause": self.leading_cause, "p_leading_cause_stays": self.leading_stays,
            "best_test": self.best_test, "p_best_test_stays": self.best_test_stays,
            "posteriors": self.posteriors.to_dict(orient="records"),
            "information_gain": self.gains.to_dict(orient="records"),
        }


def posterior_uncertainty(model: Any, evidence: Mapping[str, Any], *, draws: int = 200, seed: int | None = 0,
                          level: float = 0.95, tests: int = 5) -> UncertaintyResult:
    """Credible intervals for every posterior and for the best tests' information gain.

    Parameters
    ----------
    model : alpnet.Model
    evidence : mapping
        Model evidence (``Model.evidence_of(case)[0]``).
    draws : int
        Parameter draws (each a full set of redrawn parameters).
    seed : int, optional
        Seed; the same seed gives identical intervals.
    level : float
        Credible level of the central intervals.
    tests : int
        How many of the best tests (by current gain) get intervals and a share of draws
        in which they stay best; 0 for none.

    Returns
    -------
    UncertaintyResult
    """
    _check_draws(draws, level, seed)
    engine = model.engine
    pset = model.priors
    ev = engine.normalise(evidence)
    n0, z0 = engine._marginal_weights(ev)
    hidden = engine.hidden
    causes = pset.causes
    ci = [hidden.index(c) for c in causes]
    post0 = n0[ci] / z0
    lead0 = int(_leading(post0, causes))
    owners = parameter_owners(pset)
    relevant = set(pset.context) | set(hidden) | {f for f in engine.with_context if f in ev} | {
        f for f in engine.cause_only if f in ev}
    ranking = model.ranker.rank(evidence) if tests > 0 else None
    test_names: list[str] = []
    if ranking is not None:
        test_names = list(ranking[ranking["kind"] == "test"]["test"].head(tests))
    needed = sorted(relevant | set(test_names), key=list(pset.variables).index)
    params = {pid for pid, vs in owners.items() if any(v in needed for v in vs)}
    ids, values = _case_draws(pset, draws, seed, params)
    P = np.empty((draws, len(causes)))
    G = np.empty((draws, len(test_names)))
    for d in range(draws):
        with assigned_values(pset, ids, values[d]):
            tables = tables_for(pset, needed)
        structural = {v: t for v, t in tables.items() if v in relevant}
        w = engine._joint_with_tables(ev, structural)
        z = w.sum()
        P[d] = marginals(w)[ci] / z
        if test_names:
            p = w / z
            for j, t in enumerate(test_names):
                G[d, j] = _gain(engine, ev, t, tables.get(t), p, structural)
    alpha = (1 - level) / 2
    lo_q, hi_q = np.quantile(P, [alpha, 1 - alpha], axis=0)
    leads = _leading(P, causes)
    rows = [{"cause": c, "label": pset.variables[c].label, "posterior": float(post0[i]), "mean": float(P[:, i].mean()),
             "low": float(lo_q[i]), "high": float(hi_q[i]), "p_leading": float((leads == i).mean())}
            for i, c in enumerate(causes)]
    post_df = pd.DataFrame(rows).sort_values(["posterior", "cause"], ascending=[False, True], kind="mergesort")
    post_df = post_df.reset_index(drop=True)
    gain_rows = []
    best_test, best_stays = None, None
    if test_names:
        g_lo, g_hi = np.quantile(G, [alpha, 1 - alpha], axis=0)
        best = np.argmax(G, axis=1)
        gains0 = ranking.set_index("test")["expected_information_gain_bits"]
        for j, t in enumerate(test_names):
            gain_rows.append({"test": t, "expected_information_gain_bits": float(gains0[t]), "mean": float(G[:, j].mean()),
                              "low": float(g_lo[j]), "high": float(g_hi[j]), "p_best": float((best == j).mean())})
        best_test = test_names[0]
        best_stays = float((best == 0).mean())
    gains_df = pd.DataFrame(gain_rows, columns=["test", "expected_information_gain_bits", "mean", "low", "high",
                                                "p_best"])
    return UncertaintyResult(post_df, gains_df, int(draws), seed, float(level), causes[lead0],
                             float((leads == lead0).mean()), best_test, best_stays)


def _gain(engine: Any, ev: Mapping[str, Any], test: str, table: np.ndarray | None, p: np.ndarray,
          structural: Mapping[str, np.ndarray]) -> float:
    """I(C; T | e) in bits under redrawn tables."""
    if test in engine.cause_only:  # depends on the test's parents only: sum p onto their configurations
        K = table.reshape(table.shape[0], -1)
        weights = np.bincount(engine._parent_columns(test), weights=p, minlength=K.shape[1])
    else:
        cpts = {**engine.cpts, **structural}
        if table is not None:
            cpts[test] = table
        kept = engine._contract_block(ev, test, cpts)
        total = kept.sum(axis=0)
        K = np.divide(kept, total[None, :], out=np.zeros_like(kept), where=total[None, :] > 0)
        weights = p
    P = K @ weights
    with np.errstate(divide="ignore", invalid="ignore"):
        logK = np.where(K > 0, np.log2(np.where(K > 0, K, 1.0)), 0.0)
        HT = -(P[P > 0] * np.log2(P[P > 0])).sum()
    HTC = -((K * logK).sum(axis=0) @ weights)
    return float(max(HT - HTC, 0.0))

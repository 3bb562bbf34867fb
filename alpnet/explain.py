"""Why the model believes what it believes: weights of evidence in bits.

Definitions (all logarithms base 2, so every number is in bits)
----------------------------------------------------------------
Let ``ctx`` be the patient's context (patient and history keys), ``e`` the findings
(labs, symptoms, tests) and ``X`` a cause. The *prior* is P(X | ctx), the *posterior*
P(X | ctx, e), and the **total shift** is the change of log-odds::

    shift(X) = log2 O(X | ctx, e) - log2 O(X | ctx),   O(X | .) = P(X | .) / P(not X | .)

* **Weight of evidence of a finding f given the others** (leave-one-out)::

      woe(f) = log2 P(f | X, ctx, e\\f) / P(f | not X, ctx, e\\f)
             = log2 O(X | ctx, e) - log2 O(X | ctx, e\\f)          (Bayes' rule)

  It says how much f moves the odds of X once every other finding is known. These do
  *not* add up to the shift in general (findings share causes), so they are not
  called a decomposition.

* **Contribution** (what adds up): the chain-rule (sequential) decomposition in a fixed
  order f_1, ..., f_n::

      contribution(f_k) = log2 P(f_k | X, ctx, f_<k) / P(f_k | not X, ctx, f_<k)
                        = log2 O(X | ctx, f_1..f_k) - log2 O(X | ctx, f_1..f_k-1)

  The sum telescopes: the contributions add up *exactly* to ``shift(X)``. The order is
  the prior set's order of findings — the ALP first, then the other labs, then the
  symptoms, then the tests (``model.priors.findings``) — unless ``order`` is given.
  ``share`` is ``contribution / shift``.

* **Shapley values** (``method="shapley"``): the chain-rule contributions averaged over
  every order of the findings — the Shapley value of each finding in the game whose value
  of a set S of findings is log2 O(X | ctx, S). They add up exactly to the shift too and do
  not depend on an order; exact up to :data:`SHAPLEY_EXACT_MAX` findings (every subset),
  averaged over seeded random orders above that.

* **Versus** (a differential, X against Y). Causes can co-occur, so the two hypotheses
  compared are "X without Y" (X present, Y absent) and "Y without X"::

      llr(f) = log2 P(f | X, not Y, ctx, e\\f) / P(f | Y, not X, ctx, e\\f)
             = log2 [P(X, not Y | ctx, e) / P(Y, not X | ctx, e)]
               - log2 [P(X, not Y | ctx, e\\f) / P(Y, not X | ctx, e\\f)]

  positive when f favours X over Y; the sequential contributions add up to the change
  of ``log2 P(X, not Y | .) / P(Y, not X | .)`` from context to all the evidence.

* **Conflict** (Jensen's conflict measure, given the context)::

      conflict = log2 [prod_i P(f_i | ctx)] / P(e | ctx)

  positive when the findings are less likely together than apart (they pull against each
  other, or the case is unusual for the model). Per finding,
  ``log2 P(f | ctx) / P(f | ctx, e\\f)`` is positive when the rest of the findings make f
  *less* expected than it was on its own; above :data:`CONFLICT_THRESHOLD_BITS` the
  finding is flagged as pulling against the rest.

Every number is a ratio of probabilities the exact engine gives (P(X, evidence) and
P(evidence) for subsets of the evidence), so each can be checked by hand from
posteriors; the tests recompute them with pgmpy's ``VariableElimination``.

References
----------
.. [1] Good IJ. Weight of evidence: a brief survey. Bayesian Statistics 2, 1985:249-270.
.. [2] Jensen FV, Chamberlain B, Nordahl T, Jensen F. Analysis in HUGIN of data conflict.
   UAI 1990:519-528.
.. [3] Madigan D, Mosurski K, Almond RG. Graphical explanation in belief networks.
   J Comput Graph Stat 1997;6:160-181.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .formatting import percent as _p
from .errors import AlpnetError, CaseError
from .evidence import Case, case_from_mapping
from .checks import check_number

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["Explanation", "explain", "explain_record", "CONFLICT_THRESHOLD_BITS", "SHAPLEY_EXACT_MAX"]

#: A finding "pulls against the rest" when the rest of the findings make it less expected
#: than it was on its own by more than this many bits (a tenth of a bit: about 7%).
CONFLICT_THRESHOLD_BITS = 0.1


@dataclass
class Explanation:
    """The answer of :func:`explain`.

    Attributes
    ----------
    case_id : str
    summary : pandas.DataFrame
        One row per explained cause: ``cause, label, prior, posterior,
        prior_log_odds_bits, posterior_log_odds_bits, shift_bits, sum_contributions_bits``.
    findings : pandas.DataFrame
        One row per (cause, finding), in the decomposition order: ``cause, order, key,
        variable, finding, state, woe_bits, p_given_cause, p_given_not, contribution_bits,
        share, direction`` (``"for"`` or ``"against"`` the cause, by ``woe_bits``).
    conflict : pandas.DataFrame
        One row per finding: ``key, variable, finding, state, p_alone, p_given_rest,
        conflict_bits, pulls_against``.
    conflict_bits : float
        Jensen's conflict of all the findings given the context.
    versus : pandas.DataFrame or None
        With ``versus``: one row per finding, ``order, key, variable, finding, state,
        llr_bits, p_given_cause, p_given_versus, contribution_bits, share, favours``;
        ``p_given_cause`` is P(f | X, not Y, e\\f) and ``p_given_versus`` P(f | Y, not X, e\\f).
    versus_summary : dict or None
        ``cause, versus, prior_ratio_bits, posterior_ratio_bits, shift_bits,
        sum_contributions_bits`` (ratios are log2 P(X, not Y | .) / P(Y, not X | .)).
    order : list of str
        Case keys of the findings in the decomposition order.
    method : str
        How the contributions were computed (chain rule, exact or sampled Shapley values).
    context : list of str
        Case keys of the context (patient and history) the prior is conditioned on.
    model : dict
        Version information of the model.
    """

    case_id: str
    summary: pd.DataFrame
    findings: pd.DataFrame
    conflict: pd.DataFrame
    conflict_bits: float
    versus: pd.DataFrame | None = None
    versus_summary: dict[str, Any] | None = None
    order: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    method: str = "chain rule in a fixed order"

    def for_cause(self, cause: str) -> pd.DataFrame:
        """The findings table of one cause."""
        out = self.findings[self.findings["cause"] == cause]
        if not len(out):
            raise CaseError(f"cause {cause!r} was not explained; explained: {', '.join(self.summary['cause'])}")
        return out.reset_index(drop=True)

    def to_record(self) -> dict[str, Any]:
        """JSON-serialisable form (the ``--format json`` answer without the disclaimer)."""
        rec: dict[str, Any] = {
            "case_id": self.case_id,
            "method": self.method,
            "order": list(self.order),
            "context": list(self.context),
            "causes": [],
            "conflict": {"bits": _num(self.conflict_bits),
                         "findings": _records(self.conflict)},
            "model": self.model,
        }
        for row in _records(self.summary):
            rows = _records(self.findings[self.findings["cause"] == row["cause"]].drop(columns=["cause"]))
            rec["causes"].append(dict(row, findings=rows))
        if self.versus is not None:
            rec["versus"] = dict(self.versus_summary or {}, findings=_records(self.versus))
        return rec


def _num(x: Any) -> Any:
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _num(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def _log2(x: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore"):
        return np.log2(x)


def _diff(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray | float:
    """a - b where inf - inf (same sign) is 0: a cause fixed by the context does not move."""
    with np.errstate(invalid="ignore"):
        d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    same = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    d = np.where(same, 0.0, d)
    return d if d.ndim else float(d)


class _Joint:
    """P(X present, E), P(X absent, E) and P(E) for subsets E of a case's evidence."""

    def __init__(self, model: "Model"):
        engine = model.engine
        if not hasattr(engine, "joint"):
            raise AlpnetError("explanations need alpnet's exact enumeration engine; this prior set has more "
                              "causes than its limit (see alpnet.engine.MAX_HIDDEN)")
        self.engine = engine
        self.k = len(engine.hidx)
        self.hidx = engine.hidx
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray, float]] = {}
        self._w: dict[tuple, np.ndarray] = {}

    def weights(self, ev: Mapping[str, Any]) -> np.ndarray:
        """P(C = c, E) for every cause configuration c, shaped ``(2,) * k`` (one axis per cause)."""
        key = tuple(sorted((k, _freeze(v)) for k, v in ev.items()))
        w = self._w.get(key)
        if w is None:
            w, _ = self.engine.joint(dict(ev))
            w = w.reshape((2,) * self.k)
            self._w[key] = w
            if len(self._w) > 64:  # a few MB each: keep only the recent ones
                self._w.pop(next(iter(self._w)))
        return w

    def __call__(self, ev: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
        """P(X present, E) and P(X absent, E) for every hidden X, and P(E)."""
        key = tuple(sorted((k, _freeze(v)) for k, v in ev.items()))
        hit = self._cache.get(key)
        if hit is None:
            w = self.weights(ev)
            present = np.empty(self.k)
            absent = np.empty(self.k)
            flat = w.reshape(-1)
            for i in range(self.k):  # axis i of the cause space; summing both halves keeps tiny ones exact
                m = np.einsum("abc->b", flat.reshape(2**i, 2, -1))
                absent[i], present[i] = m[0], m[1]
            hit = (present, absent, float(w.sum()))
            self._cache[key] = hit
        return hit

    def log_pair(self, ev: Mapping[str, Any], i: int, j: int) -> float:
        """log2 P(cause i present, cause j absent, E)."""
        w = self.weights(ev)
        idx: list[Any] = [slice(None)] * self.k
        idx[i], idx[j] = 1, 0
        return float(_log2(w[tuple(idx)].sum()))

    def log_odds(self, ev: Mapping[str, Any]) -> np.ndarray:
        present, absent, _ = self(ev)
        return _log2(present) - _log2(absent)

    def log_present(self, ev: Mapping[str, Any]) -> np.ndarray:
        return _log2(self(ev)[0])

    def log_absent(self, ev: Mapping[str, Any]) -> np.ndarray:
        return _log2(self(ev)[1])

    def z(self, ev: Mapping[str, Any]) -> float:
        return self(ev)[2]

    def require_possible(self, ev: Mapping[str, Any]) -> None:
        """Raise the engine's :class:`~alpnet.errors.EvidenceConflictError` when P(E) is zero.

        The same check as :meth:`alpnet.engine.Engine.posterior` (and so ``diagnose``):
        the message names the smallest group of items that cannot hold together.
        """
        if not self.z(ev) > 0:
            raise self.engine._conflict_error(self.engine.normalise(dict(ev)))


def _freeze(v: Any) -> Any:
    if isinstance(v, (list, tuple, set, frozenset)):
        return tuple(sorted(str(s) for s in v))
    if isinstance(v, Mapping):
        return tuple(sorted((str(k), float(w)) for k, w in v.items()))
    return str(v)


def _state_text(v: Any) -> str:
    if isinstance(v, (list, tuple, set, frozenset)):
        return " | ".join(str(s) for s in v)
    if isinstance(v, Mapping):
        return " | ".join(f"{s}:{w:g}" for s, w in v.items())
    return str(v)


def explain(model: "Model", case: Case | Mapping[str, Any], *, cause: str | None = None,
            versus: str | None = None, top: int = 3, order: Sequence[str] | None = None,
            method: str = "chain", permutations: int = 100, seed: int = 0) -> Explanation:
    """Weights of evidence of every finding for the leading causes.

    Parameters
    ----------
    model : Model
    case : Case or mapping
    cause : str, optional
        Explain this cause only; by default the ``top`` causes with the highest posterior.
    versus : str, optional
        A second cause: per finding, which of ``cause`` (default: the leading cause) and
        ``versus`` it favours, in bits.
    top : int, default 3
        How many leading causes to explain when ``cause`` is not given.
    order : sequence of str, optional
        Decomposition order of the findings (case keys such as ``labs.ggt`` or variable
        names); findings not listed follow in the prior set's order.
    method : {"chain", "shapley"}, default "chain"
        How ``contribution_bits`` splits the shift: the chain rule in the fixed order, or
        Shapley values over the findings (the chain-rule contributions averaged over every
        order; exact up to :data:`SHAPLEY_EXACT_MAX` findings, else averaged over
        ``permutations`` random orders drawn with ``seed``). Both add up exactly to the shift.
        Shapley values cost one posterior per subset (or per step of each order): seconds
        to a minute, where the chain rule costs one per finding.
    permutations, seed : int
        For sampled Shapley values.

    Returns
    -------
    Explanation
        See the module docstring for the definitions.

    Raises
    ------
    CaseError
        For an unknown cause (naming the accepted ones), a bad case, or ``top``,
        ``permutations`` or ``seed`` that is not a whole number in range (``top`` and
        ``permutations`` >= 1, ``seed`` >= 0).
    EvidenceConflictError
        When the evidence is impossible under the model (names the findings that cannot
        hold together), as :meth:`alpnet.Model.diagnose` does.

    Examples
    --------
    >>> import alpnet
    >>> from alpnet.explain import explain
    >>> model = alpnet.load_model()
    >>> ex = explain(model, alpnet.read_case(alpnet.example_path("paget")), cause="paget")
    >>> row = ex.summary.iloc[0]
    >>> bool(abs(ex.findings["contribution_bits"].sum() - row["shift_bits"]) < 1e-9)
    True
    """
    if not isinstance(case, Case):
        case = case_from_mapping(case)
    causes = model.causes
    for name, flag in ((cause, "cause"), (versus, "versus")):
        if name is not None and name not in causes:
            import difflib

            close = difflib.get_close_matches(str(name), causes, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CaseError(f"{flag} {name!r}: unknown cause{hint}; accepted: {', '.join(causes)}")
    if method not in ("chain", "shapley"):
        raise CaseError(f"method {method!r}: unknown; accepted: chain, shapley")
    top = int(check_number("top", top, low=1, whole=True))
    permutations = int(check_number("permutations", permutations, low=1, whole=True))
    seed = int(check_number("seed", seed, low=0, whole=True))
    evidence, _ = model.evidence_of(case)
    pset = model.priors
    ctx = {k: v for k, v in evidence.items() if k in pset.context}
    found = {k: v for k, v in evidence.items() if k not in pset.context}
    seq = _order(model, list(found), order)
    J = _Joint(model)
    full = {**ctx, **found}
    hi = J.hidx
    J.require_possible(full)  # impossible evidence: every ratio below would be 0 / 0

    lo_prior = J.log_odds(ctx)
    lo_post = J.log_odds(full)
    p_prior = J(ctx)[0] / J.z(ctx)
    p_post = J(full)[0] / J.z(full)
    if cause is not None:
        chosen = [cause]
    else:
        ranked = sorted(causes, key=lambda c: (-p_post[hi[c]], c))
        chosen = ranked[:top]
    if versus is not None:
        lead = cause if cause is not None else chosen[0]
        if versus == lead:
            raise CaseError(f"versus {versus!r}: the same cause as the one explained; choose another")

    # prefixes for the chain rule, and leave-one-out sets
    prefixes = [dict(ctx)]
    for var in seq:
        prefixes.append({**prefixes[-1], var: found[var]})
    loo = {var: {k: v for k, v in full.items() if k != var} for var in seq}

    shapley, how = None, "chain rule in a fixed order"
    if method == "shapley":
        shapley, how = _shapley(J, ctx, found, seq, lambda ev: J.log_odds(ev), permutations, seed)
    summary_rows, rows = [], []
    for c in chosen:
        i = hi[c]
        shift = _diff(lo_post[i], lo_prior[i])
        if method == "shapley":
            contribs = list(shapley[:, i])
        else:
            contribs = [_diff(J.log_odds(prefixes[k + 1])[i], J.log_odds(prefixes[k])[i]) for k in range(len(seq))]
        total = float(np.sum(contribs)) if contribs else 0.0
        summary_rows.append({"cause": c, "label": model.label(c), "prior": float(p_prior[i]),
                             "posterior": float(p_post[i]), "prior_log_odds_bits": float(lo_prior[i]),
                             "posterior_log_odds_bits": float(lo_post[i]), "shift_bits": float(shift),
                             "sum_contributions_bits": total})
        for k, var in enumerate(seq):
            rest = loo[var]
            pres_full, abs_full, _ = J(full)
            pres_rest, abs_rest, _ = J(rest)
            with np.errstate(divide="ignore", invalid="ignore"):
                p_c = float(pres_full[i] / pres_rest[i]) if pres_rest[i] > 0 else float("nan")
                p_n = float(abs_full[i] / abs_rest[i]) if abs_rest[i] > 0 else float("nan")
            # log2 O(X | e) - log2 O(X | e\f); 0 when the rest (or the context) already decides X
            woe = _diff(J.log_odds(full)[i], J.log_odds(rest)[i])
            contrib = float(contribs[k])
            rows.append({"cause": c, "order": k + 1, "key": _key(model, var), "variable": var,
                         "finding": model.label(var), "state": _state_text(found[var]), "woe_bits": float(woe),
                         "p_given_cause": p_c, "p_given_not": p_n, "contribution_bits": contrib,
                         "share": (contrib / total) if total and math.isfinite(total) else float("nan"),
                         "direction": "for" if woe > 0 else ("against" if woe < 0 else "neutral")})
    summary = pd.DataFrame(summary_rows)
    findings = pd.DataFrame(rows, columns=["cause", "order", "key", "variable", "finding", "state", "woe_bits",
                                           "p_given_cause", "p_given_not", "contribution_bits", "share",
                                           "direction"])

    # Jensen's conflict, given the context
    z_ctx = J.z(ctx)
    z_full = J.z(full)
    conf_rows = []
    log_alone_sum = 0.0
    for var in seq:
        p_alone = J.z({**ctx, var: found[var]}) / z_ctx
        p_rest = z_full / J.z(loo[var])
        log_alone_sum += math.log2(p_alone)
        bits = math.log2(p_alone) - math.log2(p_rest)
        conf_rows.append({"key": _key(model, var), "variable": var, "finding": model.label(var),
                          "state": _state_text(found[var]), "p_alone": p_alone, "p_given_rest": p_rest,
                          "conflict_bits": bits, "pulls_against": bool(bits > CONFLICT_THRESHOLD_BITS)})
    conflict = pd.DataFrame(conf_rows, columns=["key", "variable", "finding", "state", "p_alone", "p_given_rest",
                                                "conflict_bits", "pulls_against"])
    conflict_bits = log_alone_sum - math.log2(z_full / z_ctx) if seq else 0.0

    vs_df, vs_summary = None, None
    if versus is not None:
        x = cause if cause is not None else chosen[0]
        vs_df, vs_summary = _versus(model, J, x, versus, ctx, found, full, seq, prefixes, loo,
                                    method=method, permutations=permutations, seed=seed)

    return Explanation(case_id=case.id, summary=summary, findings=findings, conflict=conflict,
                       conflict_bits=float(conflict_bits), versus=vs_df, versus_summary=vs_summary,
                       order=[_key(model, v) for v in seq], context=[_key(model, v) for v in ctx],
                       model=model.version_info, method=how)


def _versus(model, J: _Joint, x: str, y: str, ctx, found, full, seq, prefixes, loo, *, method: str = "chain",
            permutations: int = 200, seed: int = 0):
    ix, iy = J.hidx[x], J.hidx[y]

    def ratio(ev):
        return _diff(J.log_pair(ev, ix, iy), J.log_pair(ev, iy, ix))

    prior_r, post_r = ratio(ctx), ratio(full)
    if method == "shapley":
        values, _ = _shapley(J, ctx, found, seq, lambda ev: np.array([ratio(ev)]), permutations, seed)
        contribs = list(values[:, 0])
    else:
        contribs = [_diff(ratio(prefixes[k + 1]), ratio(prefixes[k])) for k in range(len(seq))]
    total = float(np.sum(contribs)) if contribs else 0.0
    rows = []
    for k, var in enumerate(seq):
        rest = loo[var]
        llr = _diff(ratio(full), ratio(rest))
        p_x = 2.0 ** (J.log_pair(full, ix, iy) - J.log_pair(rest, ix, iy))
        p_y = 2.0 ** (J.log_pair(full, iy, ix) - J.log_pair(rest, iy, ix))
        c = float(contribs[k])
        rows.append({"order": k + 1, "key": _key(model, var), "variable": var, "finding": model.label(var),
                     "state": _state_text(found[var]), "llr_bits": float(llr), "p_given_cause": float(p_x),
                     "p_given_versus": float(p_y), "contribution_bits": c,
                     "share": (c / total) if total and math.isfinite(total) else float("nan"),
                     "favours": x if llr > 0 else (y if llr < 0 else "neither")})
    df = pd.DataFrame(rows, columns=["order", "key", "variable", "finding", "state", "llr_bits", "p_given_cause",
                                     "p_given_versus", "contribution_bits", "share", "favours"])
    summary = {"cause": x, "versus": y, "prior_ratio_bits": float(prior_r), "posterior_ratio_bits": float(post_r),
               "shift_bits": float(_diff(post_r, prior_r)), "sum_contributions_bits": total}
    return df, summary


#: Up to this many findings, Shapley values are computed exactly (2^n evidence subsets).
SHAPLEY_EXACT_MAX = 10


def _shapley(J: _Joint, ctx, found, seq, value, permutations: int, seed: int):
    """Shapley values of the findings for the value function ``value(evidence) -> array``.

    Exact (every subset, weighted by |S|! (n-|S|-1)! / n!) up to SHAPLEY_EXACT_MAX findings;
    above, the chain-rule contributions averaged over random orders (each order's
    contributions add up to the total, so their average does too).
    """
    n = len(seq)
    if n == 0:
        return np.zeros((0, len(value(ctx)))), "Shapley values (no findings)"

    def ev_of(mask: int) -> dict[str, Any]:
        return {**ctx, **{seq[k]: found[seq[k]] for k in range(n) if mask >> k & 1}}

    if n <= SHAPLEY_EXACT_MAX:
        vals = np.array([value(ev_of(m)) for m in range(2**n)], dtype=float)
        fact = [math.factorial(k) for k in range(n + 1)]
        out = np.zeros((n, vals.shape[1]))
        sizes = [bin(m).count("1") for m in range(2**n)]
        for k in range(n):
            bit = 1 << k
            for m in range(2**n):
                if m & bit:
                    continue
                weight = fact[sizes[m]] * fact[n - sizes[m] - 1] / fact[n]
                out[k] += weight * _diff(vals[m | bit], vals[m])
        return out, f"Shapley values over the findings (exact, {2**n} subsets)"
    rng = np.random.default_rng(seed)
    cache: dict[int, np.ndarray] = {}

    def v(mask: int) -> np.ndarray:
        if mask not in cache:
            cache[mask] = np.asarray(value(ev_of(mask)), dtype=float)
        return cache[mask]

    out = np.zeros((n, len(v(0))))
    for _ in range(int(permutations)):
        mask = 0
        for k in rng.permutation(n):
            new = mask | (1 << int(k))
            out[k] += _diff(v(new), v(mask))
            mask = new
    out /= int(permutations)
    return out, f"Shapley values over the findings (sampled: {int(permutations)} random orders, seed {seed})"


def _key(model: "Model", var: str) -> str:
    return str(model.priors.variables[var].case_key or var)


def _order(model: "Model", present: list[str], order: Sequence[str] | None) -> list[str]:
    base = [f for f in model.priors.findings if f in present]
    if not order:
        return base
    by_key = {_key(model, v): v for v in present}
    first: list[str] = []
    for item in order:
        var = by_key.get(item, item)
        if var not in present:
            raise CaseError(f"order: {item!r} is not a finding of this case; the case has: "
                            f"{', '.join(_key(model, v) for v in base)}")
        if var not in first:
            first.append(var)
    return first + [v for v in base if v not in first]


def explain_record(model: "Model", case: Case | Mapping[str, Any], *, cause: str | None = None,
                   versus: str | None = None, method: str = "chain") -> dict[str, Any]:
    """The JSON answer of ``alpnet explain CASE --format json`` (JSON-serialisable).

    Returns
    -------
    dict
        ``case_id``, ``method``, ``order`` (case keys in the decomposition order),
        ``context``, ``causes`` (per cause: ``cause, label, prior, posterior,
        prior_log_odds_bits, posterior_log_odds_bits, shift_bits, sum_contributions_bits``
        and ``findings``: ``order, key, variable, finding, state, woe_bits, p_given_cause,
        p_given_not, contribution_bits, share, direction``), ``conflict`` (``bits`` and
        per-finding ``findings``), ``versus`` (with ``versus``), ``model`` and
        ``disclaimer``. Infinite values (a finding that makes a cause certain or
        impossible) are ``null``.
    """
    from .model import DISCLAIMER

    rec = explain(model, case, cause=cause, versus=versus, method=method).to_record()
    rec["disclaimer"] = DISCLAIMER
    return rec


def _b(x: float) -> str:
    return f"{x:+.2f}" if math.isfinite(x) else ("+inf" if x > 0 else ("-inf" if x < 0 else "n/a"))


def _share(x: float, shift: float) -> str:
    # a share of a shift below half a bit says little (and can run into thousands of percent)
    return f"{100 * x:.0f}%" if math.isfinite(x) and abs(shift) >= 0.5 else "-"




def format_explanation(ex: Explanation) -> str:
    """The text ``alpnet explain`` prints."""
    lines = [f"case {ex.case_id}: weights of evidence in bits (log base 2); the prior is given "
             f"{', '.join(ex.context) or 'nothing'}"]
    for s in ex.summary.itertuples():
        lines.append("")
        lines.append(f"{s.label} ({s.cause}): prior {_p(s.prior)} -> posterior {_p(s.posterior)}")
        lines.append(f"  log-odds {_b(s.prior_log_odds_bits)} -> {_b(s.posterior_log_odds_bits)} bits: shift "
                     f"{_b(s.shift_bits)} = the sum of the contributions ({_b(s.sum_contributions_bits)})")
        rows = ex.for_cause(s.cause)
        kw = max([len("finding")] + [len(k) for k in rows["key"]])
        sw = max([len("state")] + [len(str(x)) for x in rows["state"]])
        lines.append(f"  {'#':>2s} {'finding':{kw}s} {'state':{sw}s} {'woe|rest':>9s} {'contrib.':>9s} {'share':>6s}")
        for r in rows.itertuples():
            lines.append(f"  {r.order:2d} {r.key:{kw}s} {r.state:{sw}s} {_b(r.woe_bits):>9s} "
                         f"{_b(r.contribution_bits):>9s} {_share(r.share, s.shift_bits):>6s}")
    if ex.versus is not None and ex.versus_summary is not None:
        v = ex.versus_summary
        lines.append("")
        lines.append(f"{v['cause']} versus {v['versus']}: log2 P({v['cause']} without {v['versus']}) / "
                     f"P({v['versus']} without {v['cause']}) "
                     f"{_b(v['prior_ratio_bits'])} -> {_b(v['posterior_ratio_bits'])} (shift {_b(v['shift_bits'])})")
        kw = max([len("finding")] + [len(k) for k in ex.versus["key"]])
        lines.append(f"  {'#':>2s} {'finding':{kw}s} {'llr|rest':>9s} {'contrib.':>9s}  favours")
        for r in ex.versus.itertuples():
            lines.append(f"  {r.order:2d} {r.key:{kw}s} {_b(r.llr_bits):>9s} {_b(r.contribution_bits):>9s}  {r.favours}")
    lines.append("")
    against = ex.conflict[ex.conflict["pulls_against"]]
    lines.append(f"conflict (Jensen): {_b(ex.conflict_bits)} bits "
                 + ("(> 0: the findings are less likely together than apart)" if ex.conflict_bits > 0
                    else "(<= 0: the findings fit together)"))
    if len(against):
        lines.append("  pulling against the rest: " + ", ".join(
            f"{r.key}={r.state} ({_b(r.conflict_bits)} bits)" for r in against.itertuples()))
    else:
        lines.append("  no finding pulls against the rest")
    how = ("chain-rule contribution in the order shown" if ex.method.startswith("chain") else ex.method)
    lines.append("  (woe|rest: log2 P(f | cause, other findings) / P(f | no cause, other findings); contrib.: "
                 f"{how}, which adds up to the shift; share shown when the shift is at least half a bit)")
    return "\n".join(lines)

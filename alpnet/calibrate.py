"""Calibrate a prior set on local labelled data: a Bayesian (MAP) update, EM for the latent.

Model
-----
Each row of a labelled table gives the causes (``cause.<name>`` 0/1 columns), the
context and the findings it shows. With the causes labelled, the likelihood of the
data factorises over the variables: ``sum_rows sum_v log P(v | parents(v))``. Every
variable's free parameters are fitted by maximising

    sum over its parent configurations and states of  N[state, config] * log P(state | config)
    + sum over its parameter columns of  K * sum_s p0_s * log p_s

where ``p0`` is the value in the input prior set (the literature) and ``K`` the
equivalent sample size (``--strength``): a Dirichlet (Beta for one probability and its
complement) with ``K * p0 + 1`` as parameters, whose mode is ``p0``. For a directly
observed multinomial the maximum is ``(N_s + K p0_s) / (N + K)``; for the canonical
models (a cause's baseline under its noisy-OR links, a noisy-MAX finding's links and
leak) it is found numerically by bounded L-BFGS-B (:func:`scipy.optimize.minimize`)
over logits in [-20, 20], through the same table code as the model
(:mod:`alpnet.cpt`).

Latent variables and missing values (EM)
----------------------------------------
The leak ("other / unexplained") is never labelled, and a row may lack context values
(history not asked) or findings. The E-step computes, for every row, the exact posterior
over its latent variables — the leak and each missing or soft (``alp: high``) context
value — given its labelled causes, its context and its findings, by enumerating their
joint states under the current parameters; a missing finding is a leaf and drops out,
a finding given as a set of states (``alp: high``) contributes its expected counts.
``N`` above are the expected counts; the M-step refits every variable whose counts
changed; the two alternate until no parameter moves by more than ``tol`` or
``max_iter`` iterations.

What is updated and what is not
-------------------------------
Updated: context distributions, cause and leak baselines and noisy-OR cause links
(mechanisms), finding leak and link distributions (noisy-MAX and set-union), noisy-MAX
conflict distributions, and the rows of table findings. **Not** updated: relative risks
(ratios, for which a Beta/Dirichlet pseudo-count is not defined; they stay at their
literature values and the baseline absorbs the rest), parameters whose source is
``by-definition`` (logical certainties), distributions with a single state, the
``cap`` of a cause, reference ranges, cut-offs and costs. A parameter no row informs
(expected count 0) keeps its value exactly.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .cpt import active_state, build_cpt, columns_at
from .errors import AlpnetError, PriorsError
from .priors import Parameter, PriorSet, Variable

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["CalibrationResult", "calibrate", "calibrate_evidence", "write_prior_set", "parameter_locations",
           "check_output_folder", "check_variables"]

_MAX_COMPLETIONS = 1 << 14
_LOGIT_BOUND = 20.0
_TINY = 1e-300


# --------------------------------------------------------------------------- parameter groups


@dataclass
class _Group:
    """One column of parameters that sums to one (or one probability and its implicit complement)."""

    params: list[Parameter]
    implicit: bool
    p0: np.ndarray  # prior centre, with the implicit complement last

    @property
    def size(self) -> int:
        return 1 if self.implicit else len(self.params)

    def logits(self) -> np.ndarray:
        v = np.array([p.value for p in self.params], dtype=float)
        if self.implicit:
            q = float(np.clip(v[0], 1e-9, 1 - 1e-9))
            return np.array([math.log(q / (1 - q))])
        return np.log(np.clip(v, 1e-9, None))



def _groups(var: Variable, pset: PriorSet, p0: Mapping[str, float]) -> list[_Group]:
    """The free parameter columns of one variable (see the module docstring for what is free)."""
    spec = var.spec
    found: list[list[Parameter]] = []

    def add(obj: Any) -> None:
        if obj is None:
            return
        if isinstance(obj, Parameter):
            found.append([obj])
        elif isinstance(obj, Mapping):
            found.append(list(obj.values()))

    if var.kind == "context" or var.model == "table":
        for row in spec.get("rows", []):
            add(row.value)
    elif var.is_hidden:
        for row in spec.get("baseline", []) + spec.get("links", []):
            add(row.value)
    else:
        add(spec.get("leak"))
        for dist in (spec.get("links") or {}).values():
            add(dist)
        add(spec.get("conflict"))
    out = []
    for params in found:
        if any(p.source == "by-definition" or p.kind != "probability" for p in params):
            continue
        implicit = len(params) == 1 and params[0].id not in pset.columns
        if not implicit and len(params) < 2:
            continue
        if implicit:
            c = p0[params[0].id]
            centre = np.array([c, 1.0 - c])
        else:
            centre = np.array([p0[p.id] for p in params])
        out.append(_Group(params, implicit, centre))
    return out


# --------------------------------------------------------------------------- E-step


def _likelihood(value: Any, states: list[str]) -> np.ndarray:
    """Evidence on one variable as a likelihood vector over its states."""
    if isinstance(value, str):
        v = np.zeros(len(states))
        v[states.index(value)] = 1.0
        return v
    if isinstance(value, Mapping):
        return np.array([float(value.get(s, 0.0)) for s in states])
    v = np.zeros(len(states))
    for s in value:
        v[states.index(s)] = 1.0
    return v


@dataclass
class _Rows:
    """The data, one likelihood vector per (row, observed variable), causes fixed by their labels."""

    known: np.ndarray               # (n, n_vars) state index or -1
    lik: dict[str, np.ndarray]      # variable -> (n, k) likelihood (rows without evidence: NaN)
    n: int


def _prepare(pset: PriorSet, evidences: Sequence[Mapping[str, Any]], labels: np.ndarray) -> _Rows:
    names = list(pset.variables)
    n = len(evidences)
    known = np.full((n, len(names)), -1, dtype=np.int64)
    lik: dict[str, np.ndarray] = {}
    causes = pset.causes
    for j, c in enumerate(causes):
        known[:, names.index(c)] = labels[:, j].astype(np.int64)  # absent = 0, present = 1
    for name, var in pset.variables.items():
        if var.is_hidden:
            continue
        L = np.full((n, len(var.states)), np.nan)
        col = names.index(name)
        for i, ev in enumerate(evidences):
            if name not in ev:
                continue
            L[i] = _likelihood(ev[name], var.states)
            nz = np.flatnonzero(L[i] > 0)
            if len(nz) == 1 and var.kind == "context":
                known[i, col] = nz[0]
        lik[name] = L
    return _Rows(known=known, lik=lik, n=n)


def _completions(pset: PriorSet, rows: _Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every joint state of each row's latent variables: (states, row index, log lik of context)."""
    names = list(pset.variables)
    latent_cols = [i for i, nm in enumerate(names) if pset.variables[nm].kind in ("context", "leak")]
    blocks, owners, extras = [], [], []
    for r in range(rows.n):
        base = rows.known[r]
        todo = [c for c in latent_cols if base[c] < 0]
        cands, weights = [], []
        for c in todo:
            var = pset.variables[names[c]]
            L = rows.lik.get(names[c])
            w = np.ones(len(var.states)) if L is None or np.isnan(L[r]).all() else L[r]
            idx = np.flatnonzero(w > 0)
            cands.append(idx)
            weights.append(np.log(w[idx]))
        total = int(np.prod([len(c) for c in cands])) if cands else 1
        if total > _MAX_COMPLETIONS:
            raise AlpnetError(f"row {r + 1}: {len(todo)} unknown context values; too many joint states "
                              f"({total} > {_MAX_COMPLETIONS}) to compute their posterior exactly")
        block = np.repeat(base[None, :], total, axis=0)
        extra = np.zeros(total)
        if cands:
            grid = np.array(list(itertools.product(*[range(len(c)) for c in cands])), dtype=np.int64)
            for k, c in enumerate(todo):
                block[:, c] = cands[k][grid[:, k]]
                extra += weights[k][grid[:, k]]
        blocks.append(block)
        owners.append(np.full(total, r))
        extras.append(extra)
    return np.concatenate(blocks), np.concatenate(owners), np.concatenate(extras)


def _e_step(pset: PriorSet, cpts: Mapping[str, np.ndarray], rows: _Rows, S: np.ndarray, owner: np.ndarray,
            extra: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Posterior weight of every completion, the log likelihood, and rows with probability 0."""
    names = list(pset.variables)
    col = {nm: i for i, nm in enumerate(names)}
    lp = extra.copy()
    with np.errstate(divide="ignore"):
        for name, var in pset.variables.items():
            T = cpts[name]
            pidx = tuple(S[:, col[p]] for p in var.parents)
            if var.kind == "finding":
                L = rows.lik[name][owner]
                m = ~np.isnan(L).any(axis=1)
                if not m.any():
                    continue
                colp = T[(slice(None),) + tuple(a[m] for a in pidx)].T  # (m, k)
                lp[m] += np.log((L[m] * colp).sum(axis=1))
            else:
                lp += np.log(T[(S[:, col[name]],) + pidx])
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    mx = np.maximum.reduceat(lp, starts)
    bad = ~np.isfinite(mx)
    mx_full = np.repeat(np.where(bad, 0.0, mx), np.diff(np.r_[starts, len(owner)]))
    e = np.exp(lp - mx_full)
    z = np.add.reduceat(e, starts)
    w = e / np.repeat(np.where(z > 0, z, 1.0), np.diff(np.r_[starts, len(owner)]))
    loglik = float(np.sum(np.log(z[~bad]) + mx[~bad]))
    return w, loglik, np.flatnonzero(bad)


def _counts(pset: PriorSet, cpts: Mapping[str, np.ndarray], rows: _Rows, S: np.ndarray, owner: np.ndarray,
            w: np.ndarray) -> dict[str, np.ndarray]:
    """Expected counts N[state, *parents] of every variable."""
    names = list(pset.variables)
    col = {nm: i for i, nm in enumerate(names)}
    out: dict[str, np.ndarray] = {}
    for name, var in pset.variables.items():
        T = cpts[name]
        N = np.zeros(T.shape)
        pidx = tuple(S[:, col[p]] for p in var.parents)
        if var.kind == "finding":
            L = rows.lik[name][owner]
            m = ~np.isnan(L).any(axis=1)
            if m.any():
                sub = tuple(a[m] for a in pidx)
                post = L[m] * T[(slice(None),) + sub].T
                post = post / np.where(post.sum(axis=1, keepdims=True) > 0, post.sum(axis=1, keepdims=True), 1.0)
                post *= w[m, None]
                for s in range(T.shape[0]):
                    np.add.at(N, (np.full(int(m.sum()), s),) + sub, post[:, s])
        else:
            np.add.at(N, (S[:, col[name]],) + pidx, w)
        out[name] = N
    return out


# --------------------------------------------------------------------------- M-step


class _Objective:
    """Negative log posterior of one variable's parameters given its expected counts."""

    def __init__(self, var: Variable, pset: PriorSet, groups: list[_Group], N: np.ndarray, strength: float):
        self.var, self.pset, self.groups, self.strength = var, pset, groups, strength
        self.columns = var.kind == "finding" and var.model in ("noisy_max", "set_union")
        self.rows_mode = var.kind == "context" or var.model == "table"
        self.cause_mode = var.is_hidden
        k = N.shape[0]
        flat = N.reshape(k, -1)
        used = np.flatnonzero(flat.sum(axis=0) > 0)
        cards = [len(pset.variables[p].states) for p in var.parents]
        states = np.array(np.unravel_index(used, cards)).T if var.parents else np.zeros((len(used), 0), int)
        configs = [{p: pset.variables[p].states[i] for p, i in zip(var.parents, row)} for row in states]
        if self.columns:
            act = np.array([pset.variables[p].states.index(active_state(pset.variables[p])) for p in var.parents],
                           dtype=np.int64)
            self.bits = states == act[None, :]
            self.N = flat[:, used].T  # (configs, k)
        else:
            self.used = used
            self.N = flat[:, used]  # (k, configs)
        if self.rows_mode:  # which `when:` row gives each configuration its distribution (the first that matches)
            self.row_of = np.array([next(i for i, r in enumerate(var.spec["rows"]) if r.matches(c)) for c in configs],
                                   dtype=np.int64)
        if self.cause_mode:  # P(present) = 1 - (1 - min(cap, baseline * RR)) * prod(1 - link), as in cpt.py
            spec = var.spec
            self.base_params = [r.value for r in spec["baseline"]]
            self.base_of = np.array([next(i for i, r in enumerate(spec["baseline"]) if r.matches(c)) for c in configs],
                                    dtype=np.int64)
            self.rr = np.array([math.prod(r.value.value for r in spec["relative_risks"] if r.matches(c))
                                for c in configs])
            self.link_params = [r.value for r in spec["links"]]
            self.link_on = np.array([[r.matches(c) for r in spec["links"]] for c in configs],
                                    dtype=bool).reshape(len(configs), len(spec["links"]))
            self.cap = spec["cap"]
        self.sizes = [g.size for g in groups]
        # every group as a softmax over its slots; an implicit complement is a slot with logit 0
        self.params = [p for g in groups for p in g.params]
        slots, free, starts = 0, [], []
        p0 = []
        for g in groups:
            starts.append(slots)
            free.extend(range(slots, slots + g.size))
            p0.extend(g.p0)
            slots += len(g.p0)
        self.n_slots = slots
        self.free = np.array(free, dtype=np.int64)
        self.starts = np.array(starts, dtype=np.int64)
        self.seg_len = np.diff(np.r_[self.starts, slots])
        self.p0 = np.array(p0)
        self.param_slots = np.array([st + i for g, st in zip(groups, starts) for i in range(len(g.params))],
                                    dtype=np.int64)

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of every slot from the free logits (a softmax per group)."""
        z = np.zeros(self.n_slots)
        z[self.free] = x
        zmax = np.repeat(np.maximum.reduceat(z, self.starts), self.seg_len)
        e = np.exp(z - zmax)
        return e / np.repeat(np.add.reduceat(e, self.starts), self.seg_len)

    def closed_form(self) -> list[float]:
        """Rows models (context, table findings): the exact MAP ``(N_s + K p0_s) / (N + K)`` per row.

        Returns the expected count of each group.
        """
        spec_rows = self.var.spec["rows"]
        k = self.N.shape[0]
        per_row = np.zeros((len(spec_rows), k))
        for j, r in enumerate(self.row_of):
            per_row[r] += self.N[:, j]
        out = []
        for g in self.groups:
            r = next(i for i, row in enumerate(spec_rows) if g.params[0] in row.value.values())
            idx = [self.var.states.index(next(s for s, q in spec_rows[r].value.items() if q is p)) for p in g.params]
            n = per_row[r, idx]
            post = (n + self.strength * g.p0) / (n.sum() + self.strength)
            for p, v in zip(g.params, post):
                p.value = float(v)
            out.append(float(per_row[r].sum()))
        return out

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        return np.split(x, np.cumsum(self.sizes)[:-1])

    def table(self) -> np.ndarray:
        if self.columns:
            cols = columns_at(self.var, self.bits)
            s = cols.sum(axis=1, keepdims=True)
            return cols / np.where(s > 0, s, 1.0)
        if self.cause_mode:
            b = np.array([p.value for p in self.base_params])[self.base_of] * self.rr
            q_absent = np.where(b > 0, 1.0 - np.minimum(self.cap, b), 1.0)
            if self.link_params:
                l = np.array([p.value for p in self.link_params])
                q_absent = q_absent * np.prod(np.where(self.link_on, 1.0 - l[None, :], 1.0), axis=1)
            return np.vstack([q_absent, 1.0 - q_absent])
        T = build_cpt(self.var, self.pset.variables)
        return T.reshape(T.shape[0], -1)[:, self.used]

    def __call__(self, x: np.ndarray) -> float:
        q = self.probs(x)
        for p, v in zip(self.params, q[self.param_slots]):
            p.value = float(v)
        prior = self.strength * float(np.sum(self.p0 * np.log(np.clip(q, _TINY, None))))
        T = self.table()
        ll = float(np.sum(self.N * np.log(np.clip(T, _TINY, None))))
        return -(ll + prior)

    def participation(self, x: np.ndarray) -> list[float]:
        """Expected number of rows whose probability depends on each group."""
        self(x)
        base = self.table()
        total = self.N.sum(axis=1) if self.columns else self.N.sum(axis=0)
        out = []
        for gi, xi in enumerate(self.split(x)):
            y = [p.copy() for p in self.split(x)]
            y[gi] = xi + np.linspace(0.3, -0.3, len(xi)) if len(xi) > 1 else xi + 0.3
            self(np.concatenate(y))
            moved = np.abs(self.table() - base)
            changed = moved.max(axis=1) > 1e-12 if self.columns else moved.max(axis=0) > 1e-12
            out.append(float(total[changed].sum()))
        self(x)
        return out


def _fit(obj: _Objective, max_fun: int = 20_000) -> np.ndarray:
    from scipy.optimize import minimize

    x0 = np.concatenate([g.logits() for g in obj.groups])
    x0 = np.clip(x0, -_LOGIT_BOUND, _LOGIT_BOUND)
    res = minimize(obj, x0, method="L-BFGS-B", bounds=[(-_LOGIT_BOUND, _LOGIT_BOUND)] * len(x0),
                   options={"maxiter": 500, "maxfun": max_fun})
    x = res.x if np.isfinite(res.fun) else x0
    obj(x)
    return x


# --------------------------------------------------------------------------- driver


@dataclass
class CalibrationResult:
    """What :func:`calibrate` returns.

    Attributes
    ----------
    parameters : pandas.DataFrame
        One row per free parameter: ``id, variable, old, new, change, expected_count, source,
        changed`` (``expected_count``: the expected number of rows whose probability depends
        on the parameter's column).
    priors : PriorSet
        The calibrated set (in memory; :func:`write_prior_set` writes it).
    n_rows, iterations : int
    converged : bool
    strength : float
    log_likelihood : list of float
        The data's log likelihood after every iteration (non-decreasing up to the prior's pull).
    """

    parameters: pd.DataFrame
    priors: PriorSet
    n_rows: int
    iterations: int
    converged: bool
    strength: float
    log_likelihood: list[float] = field(default_factory=list)

    @property
    def changed(self) -> pd.DataFrame:
        """The parameters whose value moved."""
        return self.parameters[self.parameters["changed"]].reset_index(drop=True)


def check_variables(pset: PriorSet, names: Sequence[str], *, flag: str = "--only") -> None:
    """Refuse a name that is not a variable of the prior set, listing the accepted ones.

    Parameters
    ----------
    pset : PriorSet
    names : sequence of str
        The variables asked for.
    flag : str, default "--only"
        How the message names the option.

    Raises
    ------
    AlpnetError
        For the first unknown name, with the closest names and every accepted one.
    """
    import difflib

    for v in names:
        if v not in pset.variables:
            close = difflib.get_close_matches(str(v), list(pset.variables), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise AlpnetError(f"{flag} {v!r}: unknown variable{hint}; accepted (the prior set's "
                              f"{len(pset.variables)} variables): {', '.join(pset.variables)}")


def calibrate_evidence(model: "Model", evidences: Sequence[Mapping[str, Any]], labels: np.ndarray, *,
                       strength: float, max_iter: int = 20, tol: float = 1e-5,
                       variables: Sequence[str] | None = None) -> CalibrationResult:
    """Calibrate from rows given as model evidence and cause labels (see :func:`calibrate`).

    Parameters
    ----------
    model : Model
    evidences : sequence of dict
        Per row, variable -> state (or list of states, or likelihoods) for context and
        findings, as :meth:`alpnet.Model.evidence_of` gives.
    labels : ndarray
        ``(n_rows, n_causes)`` 0/1 in ``model.causes`` order.
    strength : float
        K, the equivalent sample size of the prior set's values (> 0).
    max_iter : int
        EM iterations at most.
    tol : float
        Stop when no parameter moves by more than this in an iteration.
    variables : sequence of str, optional
        Update only these variables (default: every variable).
    """
    import copy

    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not strength > 0 \
            or not math.isfinite(strength):
        raise AlpnetError(f"strength must be a number > 0; got {strength!r} instead")
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        raise AlpnetError(f"max_iter must be a whole number >= 1; got {max_iter!r} instead")
    labels = np.asarray(labels)
    if labels.shape != (len(evidences), len(model.causes)):
        raise AlpnetError(f"labels must have shape ({len(evidences)}, {len(model.causes)}); got {labels.shape}")
    if len(evidences) == 0:
        raise AlpnetError("no rows to calibrate on")
    pset = copy.deepcopy(model.priors)
    pset.overrides = {}
    p0 = {pid: p.value for pid, p in pset.parameters.items()}
    chosen = list(pset.variables) if variables is None else list(variables)
    check_variables(pset, chosen, flag="variables")
    groups = {v: _groups(pset.variables[v], pset, p0) for v in chosen}
    groups = {v: g for v, g in groups.items() if g}
    rows = _prepare(pset, evidences, labels)
    S, owner, extra = _completions(pset, rows)
    cpts = {n: build_cpt(v, pset.variables) for n, v in pset.variables.items()}
    last_counts: dict[str, np.ndarray] = {}
    xs: dict[str, np.ndarray] = {}
    objs: dict[str, _Objective] = {}
    closed: dict[str, list[float]] = {}
    trace: list[float] = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        w, loglik, bad = _e_step(pset, cpts, rows, S, owner, extra)
        if len(bad):
            shown = ", ".join(str(b + 1) for b in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise AlpnetError(f"row(s) {shown}: the labelled causes and the findings have probability 0 under the "
                              "prior set (a by-definition zero, e.g. pregnancy in a man); fix or drop these rows")
        trace.append(loglik)
        counts = _counts(pset, cpts, rows, S, owner, w)
        moved = 0.0
        for v, gs in groups.items():
            N = counts[v]
            if v in last_counts and np.allclose(N, last_counts[v], rtol=0, atol=1e-4):
                continue
            last_counts[v] = N
            if N.sum() <= 0:
                continue
            before = np.array([p.value for g in gs for p in g.params])
            obj = _Objective(pset.variables[v], pset, gs, N, float(strength))
            if obj.rows_mode:
                closed[v] = obj.closed_form()
            else:
                xs[v] = _fit(obj)
                objs[v] = obj
            after = np.array([p.value for g in gs for p in g.params])
            moved = max(moved, float(np.max(np.abs(after - before))))
            cpts[v] = build_cpt(pset.variables[v], pset.variables)
        if moved <= tol:
            converged = True
            break
    # report: every free parameter, its old and new value and how many rows inform it
    records = []
    for v, gs in groups.items():
        part = closed[v] if v in closed else objs[v].participation(xs[v]) if v in objs else [0.0] * len(gs)
        for g, n_eff in zip(gs, part):
            if n_eff <= 0:  # no row informs it: keep the literature value exactly
                for p in g.params:
                    p.value = p0[p.id]
            for p in g.params:
                records.append({"id": p.id, "variable": v, "old": p0[p.id], "new": p.value,
                                "change": p.value - p0[p.id], "expected_count": n_eff, "source": p.source})
    table = pd.DataFrame(records, columns=["id", "variable", "old", "new", "change", "expected_count", "source"])
    table["changed"] = (table["new"] - table["old"]).abs() > 5e-11
    return CalibrationResult(parameters=table, priors=pset, n_rows=len(evidences), iterations=it,
                             converged=converged, strength=float(strength), log_likelihood=trace)


def calibrate(model: "Model", data: pd.DataFrame | str | Path, *, strength: float, max_iter: int = 20,
              tol: float = 1e-5, variables: Sequence[str] | None = None) -> CalibrationResult:
    """Bayesian (MAP) update of the prior set's parameters from labelled cases.

    Parameters
    ----------
    model : Model
        Its prior set supplies the starting values and the prior centres ``p0``.
    data : DataFrame, str or Path
        A labelled table in the batch layout (``cause.<name>`` 0/1 columns for every cause),
        or its path (CSV or Parquet).
    strength : float
        K: the literature values count as K pseudo-observations per parameter column.
    max_iter : int, default 20
        EM iterations at most.
    tol : float, default 1e-5
        Convergence: the largest change of any parameter in one iteration.
    variables : sequence of str, optional
        Update only these variables.

    Returns
    -------
    CalibrationResult

    Raises
    ------
    LabelError
        Every bad row (case value or label), before anything is fitted.
    AlpnetError
        Rows impossible under the prior set, a bad ``strength`` or ``max_iter``.

    Examples
    --------
    >>> import alpnet
    >>> from alpnet.simulate import simulate
    >>> model = alpnet.load_model()                                        # doctest: +SKIP
    >>> result = calibrate(model, simulate(model, 500, seed=1), strength=100)  # doctest: +SKIP
    >>> result.changed[["id", "old", "new", "expected_count"]]             # doctest: +SKIP
    """
    from .evaluate import labelled_evidence, read_labelled

    if isinstance(data, (str, Path)):
        data = read_labelled(data)
    evidences, labels, _ = labelled_evidence(model, data)
    return calibrate_evidence(model, evidences, labels, strength=strength, max_iter=max_iter, tol=tol,
                              variables=variables)


# --------------------------------------------------------------------------- writing a new prior set


def parameter_locations(folder: str | Path) -> dict[str, tuple[str, str]]:
    """Parameter id -> (file relative to the set, dotted key of its YAML entry)."""
    from .priors import _Collector, _Loader

    class _Locator(_Loader):
        def __init__(self, f: Path, errors: _Collector):
            super().__init__(f, errors)
            self.where: dict[str, tuple[str, str]] = {}

        def _register(self, param: Parameter, file: str, key: str) -> None:
            super()._register(param, file, key)
            self.where[param.id] = (file[len("priors/"):] if file.startswith("priors/") else file, key)

    errors = _Collector()
    loc = _Locator(Path(folder), errors)
    loc.load()
    errors.raise_if_any()
    return loc.where


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _node_at(root: Any, key: str) -> Any:
    import yaml

    node = root
    for name, index in _TOKEN.findall(key):
        if index:
            node = node.value[int(index)]
            continue
        if not isinstance(node, yaml.MappingNode):
            raise KeyError(key)
        for k, v in node.value:
            if k.value == name:
                node = v
                break
        else:
            raise KeyError(key)
    return node


def _child(node: Any, name: str) -> Any:
    for k, v in node.value:
        if k.value == name:
            return v
    raise KeyError(name)


def _number(v: float) -> str:
    s = f"{v:.10f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def _edit_files(folder: Path, changes: pd.DataFrame, locations: Mapping[str, tuple[str, str]],
                ranges: Mapping[str, tuple[float, float]], note: str) -> list[str]:
    """Rewrite the changed numbers (and widened ranges, and notes) in place; returns ids whose range widened."""
    import yaml

    by_file: dict[str, list[tuple[str, str, float]]] = {}
    for r in changes.itertuples(index=False):
        file, key = locations[r.id]
        by_file.setdefault(file, []).append((r.id, key, float(r.new)))
    widened: list[str] = []
    for file, items in by_file.items():
        path = folder / file
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text)
        edits: list[tuple[int, int, str]] = []
        noted: set[str] = set()
        for pid, key, new in items:
            entry = _node_at(root, key)
            lo, hi = ranges[pid]
            names = [k.value for k, _ in entry.value]
            if "value" in names:  # a scalar entry
                value_node, range_node = _child(entry, "value"), _child(entry, "range")
            else:  # one state of a distribution
                p_node, r_node = _child(entry, "p"), _child(entry, "range")
                state = next(k.value for k, _ in p_node.value if pid.endswith("." + k.value))
                value_node, range_node = _child(p_node, state), _child(r_node, state)
            edits.append((value_node.start_mark.index, value_node.end_mark.index, _number(new)))
            if not lo <= new <= hi:
                lo2, hi2 = min(lo, new), max(hi, new)
                edits.append((range_node.start_mark.index, range_node.end_mark.index,
                              f"[{_number(lo2)}, {_number(hi2)}]"))
                widened.append(pid)
            if key not in noted:
                noted.add(key)
                note_node = _child(entry, "note")
                old_note = str(note_node.value).rstrip()
                edits.append((note_node.start_mark.index, note_node.end_mark.index,
                              json.dumps(f"{old_note} {note}", ensure_ascii=False)))
        for start, end, new_text in sorted(edits, reverse=True):
            orig = text[start:end]
            trail = orig[len(orig.rstrip()):]
            text = text[:start] + new_text + trail + text[end:]
        path.write_text(text, encoding="utf-8")
    return widened


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: What :func:`write_prior_set` leaves in a folder, and :func:`check_output_folder` looks for before it
#: lets ``force`` replace one: the prior set's ``model.yaml`` and the ``manifest.json`` it writes.
_MANIFEST = "manifest.json"
_MANIFEST_KEYS = ("created_by", "parent", "strength_K", "parameters")


def _written_by_calibrate(folder: Path) -> bool:
    """Whether ``folder`` is a prior set that :func:`write_prior_set` wrote (model.yaml and its manifest)."""
    if not (folder / "model.yaml").is_file() or not (folder / _MANIFEST).is_file():
        return False
    try:
        doc = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and all(k in doc for k in _MANIFEST_KEYS) \
        and str(doc["created_by"]).startswith("alpnet ")


def _forms(path: str | Path) -> set[Path]:
    """A path as written (absolute, normalised) and with every symlink resolved."""
    return {Path(os.path.abspath(path)), Path(path).resolve()}


def _within(inner: str | Path, outer: str | Path) -> bool:
    """Whether ``inner`` is ``outer`` or lies inside it, comparing both forms of each path."""
    return any(a == b or b in a.parents for a in _forms(inner) for b in _forms(outer))


def check_output_folder(out: str | Path, *, force: bool, labelled: str | Path | None = None,
                        priors: str | Path | None = None, flag: str = "--out") -> Path:
    """Check the folder a calibrated prior set is to be written to, before any work.

    ``out`` may not be, contain or lie inside the labelled input file or the input
    prior set (replacing it would delete them). An existing ``out`` is replaced only
    with ``force``, and only when it is a prior set written by :func:`write_prior_set`
    (its ``model.yaml`` and ``manifest.json``): any other folder is refused whatever
    ``force`` says. The folder that is to hold ``out`` must exist and be writable.

    Parameters
    ----------
    out : str or Path
        The new prior-set folder.
    force : bool
        Replace an existing prior set written by ``alpnet calibrate``.
    labelled : str or Path, optional
        The labelled input file.
    priors : str or Path, optional
        The input prior set's folder.
    flag : str, default "--out"
        How the messages name the option.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    AlpnetError
        Naming ``out`` and what to do instead.
    """
    out = Path(out)
    where = f"{flag} {out}"
    for name, given in (("the labelled input file", labelled), ("the input prior set", priors)):
        if given is None:
            continue
        if _within(given, out) and _within(out, given):
            raise AlpnetError(f"{where}: is {name}; calibrate never modifies its inputs and writes a NEW folder: "
                              "choose another folder")
        if _within(given, out):
            raise AlpnetError(f"{where}: contains {name} {given}; calibrate never modifies its inputs: "
                              "choose a folder that does not hold it")
        if _within(out, given):
            raise AlpnetError(f"{where}: is inside {name} {given}; calibrate never modifies its inputs: "
                              "choose a folder outside it")
    if _within(Path.cwd(), out):
        raise AlpnetError(f"{where}: is or contains the working folder; choose a new folder beside it")
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise AlpnetError(f"{where}: exists and is not a folder; choose another {flag}")
        if not _written_by_calibrate(out):
            raise AlpnetError(f"{where}: exists and is not a prior set written by alpnet calibrate (no model.yaml "
                              f"with its {_MANIFEST}); choose another {flag} or remove it yourself")
        if not force:
            raise AlpnetError(f"{out}: already exists; use --force to replace it")
    from .tableio import check_parent_folder

    check_parent_folder(out, where)
    return out


def write_prior_set(result: CalibrationResult, parent: PriorSet, out: str | Path, *, force: bool = False,
                    data_path: str | Path | None = None, command: str | None = None) -> Path:
    """Write the calibrated set as a complete new prior-set folder, atomically.

    The parent set's files are copied, the numbers that changed are rewritten in place
    (sources, ranges and notes kept; each changed entry's note says it was calibrated; a
    range that no longer contains its value is widened to include it), and
    ``manifest.json`` records the parent set's hash, the data file's hash, the command,
    the date, K, the number of rows, and per parameter the old and new value and the
    expected count. Built in a temporary folder beside ``out``, validated by loading it,
    then renamed to ``out``. The parent folder is only read.

    Raises
    ------
    AlpnetError
        What :func:`check_output_folder` refuses: an ``out`` that is, holds or lies in
        ``data_path`` or the parent set's folder; an existing ``out`` without ``force``,
        or one that is not a prior set written by this function; a missing or
        unwritable folder to hold it.
    """
    from . import __version__
    from .priors import load_priors

    out = Path(out)
    src = Path(parent.path).resolve()
    check_output_folder(out, force=force, labelled=data_path, priors=parent.path, flag="out")
    parent_dir = out.parent if str(out.parent) else Path(".")
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    data_sha = sha256_file(data_path) if data_path is not None else None
    note = (f"[Calibrated {now.date().isoformat()} by alpnet calibrate, K={result.strength:g}, "
            f"n={result.n_rows}" + (f", data sha256 {data_sha[:12]}" if data_sha else "") + "; see manifest.json.]")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent_dir))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        for stale in ("manifest.json",):
            if (tmp / stale).exists():
                (tmp / stale).unlink()
        changes = result.changed
        locations = parameter_locations(src)
        ranges = {pid: (p.low, p.high) for pid, p in parent.parameters.items()}
        widened = _edit_files(tmp, changes, locations, ranges, note)
        try:
            new = load_priors(tmp)
        except PriorsError as exc:  # pragma: no cover - a bug in the rewriting
            raise AlpnetError(f"the calibrated set does not validate: {exc}") from None
        manifest = {
            "created_by": f"alpnet {__version__}",
            "date": now.isoformat(),
            "command": command,
            "parent": {"path": str(src), "sha256": parent.sha256},
            "data": {"path": str(data_path) if data_path is not None else None, "sha256": data_sha,
                     "rows": result.n_rows},
            "strength_K": result.strength,
            "iterations": result.iterations,
            "converged": result.converged,
            "log_likelihood": result.log_likelihood,
            "sha256": new.sha256,
            "method": ("MAP with Beta/Dirichlet(K * p0 + 1) priors centred on the parent set's values; EM over the "
                       "leak and missing context; relative risks and by-definition values are not updated"),
            "parameters": [
                {"id": r.id, "variable": r.variable, "old": r.old, "new": float(f"{r.new:.10f}"),
                 "expected_count": r.expected_count, "source": r.source, "changed": bool(r.changed),
                 **({"range_widened": True} if r.id in widened else {})}
                for r in result.parameters.itertuples(index=False) if r.expected_count > 0
            ],
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent_dir))
            os.rename(out, old / out.name)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

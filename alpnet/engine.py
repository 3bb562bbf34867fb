"""Exact inference by enumerating the cause space.

Design
------
The network has three layers: context (patient and history) -> causes (binary,
multi-fault, plus the latent leak) -> findings. Every finding shares the cause
layer, so the moral graph joins all causes and the largest clique of any
junction tree is the whole cause space (2^k configurations). Exact inference
cannot do better than touching each of them once, so the engine does exactly
that, and nothing more:

* the cause space is enumerated once: ``bits`` is a ``(2^k, k)`` 0/1 matrix,
  the first cause varying slowest (numpy C order over one axis per cause);
* a finding whose parents are all causes becomes a likelihood table
  ``(n_states, 2^k)`` gathered once from its CPT; evidence on it is a row
  (hard evidence) or a weighted sum of rows (a set of states, "ALP high");
* everything that involves context variables — their priors, the causes'
  CPTs, and findings with a context parent (PSA depends on sex and known
  cancer) — is contracted with one ``numpy.einsum`` over the context axes into
  a vector over the cause space: the *context block*. It depends only on the
  evidence about those variables, so it is cached per context pattern, with
  the contraction compiled once per pattern of observed variables (``opt_einsum``),
  with each variable observed as one state sliced out of every table first;
* the posterior joint is ``block * prod(likelihood rows)``; its normaliser is
  P(evidence). The cause marginals are folded out of it (:func:`marginals`): sum
  the upper half for the first cause, add the halves, repeat — about 2 * 2^k
  additions in all, with no BLAS call whose threads would fight over two cores;
* for ranking tests, :meth:`Engine.conditional_table` gives P(variable | C, e) for
  a question or a test with a context parent. The findings' likelihoods cancel
  in it, so it depends on the context evidence only and is cached with the block.

Zero probabilities stay exact zeros (a man is never pregnant), which is how
impossible evidence is detected and named (:meth:`Engine.conflicting`).
pgmpy's ``VariableElimination`` on :func:`alpnet.network.to_pgmpy` is the
reference the test suite compares this engine with.

Limits
------
The cause space costs ``2^k * 8`` bytes per vector and the likelihood tables
``2^k * 8`` bytes per finding state. :data:`MAX_HIDDEN` bounds ``k``. A prior set
with more causes is answered by pgmpy's exact inference, with a warning, when its
largest table fits in memory, and refused with an error naming the limit otherwise
(:func:`alpnet.reference_engine.choose_engine`).
"""

from __future__ import annotations

import string
from collections import OrderedDict
from typing import Mapping, Sequence

import numpy as np
import opt_einsum

from .errors import AlpnetError, CaseError, EvidenceConflictError
from .priors import PriorSet

__all__ = ["Engine", "Evidence", "MAX_HIDDEN", "marginals", "row_marginals"]

#: Largest number of hidden binary variables (causes + leak) the engine enumerates.
#: 2^20 configurations: 8 MB per vector; likelihood tables for ~90 finding states
#: then take ~0.8 GB, the most this workplace's 24 GB machines should spend.
MAX_HIDDEN = 20

#: Evidence: variable -> state, or variable -> {state: likelihood weight}.
Evidence = Mapping[str, "str | Mapping[str, float]"]


class Engine:
    """Exact posterior of every cause for any evidence on context and findings.

    Parameters
    ----------
    pset : PriorSet
        The validated prior set.
    cpts : mapping
        Variable -> table ``(n_states, *parent_cards)`` from :mod:`alpnet.cpt`.

    Raises
    ------
    AlpnetError
        When the prior set has more hidden variables than :data:`MAX_HIDDEN`.
    """

    def __init__(self, pset: PriorSet, cpts: Mapping[str, np.ndarray]):
        self.pset = pset
        self.cpts = dict(cpts)
        self.variables = pset.variables
        self.hidden = pset.hidden
        self.k = len(self.hidden)
        if self.k > MAX_HIDDEN:
            raise AlpnetError(
                f"the prior set has {self.k} causes and leaks; alpnet's exact engine enumerates at most "
                f"{MAX_HIDDEN} (2^{MAX_HIDDEN} cause configurations). Merge causes or split the model."
            )
        self.hidx = {h: i for i, h in enumerate(self.hidden)}
        self.context = pset.context
        self.bits = np.indices((2,) * self.k).reshape(self.k, -1).T.astype(np.float64) if self.k else np.zeros((1, 0))
        self._bits_int = self.bits.astype(np.int64)
        # findings whose parents are all hidden: precomputed likelihood tables
        self.cause_only = [f for f in pset.findings if all(p in self.hidx for p in self.variables[f].parents)]
        self.with_context = [f for f in pset.findings if f not in self.cause_only]
        self._lik: dict[str, np.ndarray] = {}
        letters = string.ascii_letters
        names = self.context + self.hidden
        if len(names) > len(letters):  # pragma: no cover - bounded by MAX_HIDDEN + context size
            raise AlpnetError("too many context variables and causes for the einsum contraction")
        self._letter = {n: letters[i] for i, n in enumerate(names)}
        self._block_cache: OrderedDict = OrderedDict()
        self._path_cache: dict = {}
        self._cond_cache: OrderedDict = OrderedDict()
        self._columns: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ tables
    def likelihood_table(self, finding: str) -> np.ndarray:
        """``(n_states, 2^k)``: P(finding = state | cause configuration)."""
        tab = self._lik.get(finding)
        if tab is None:
            var = self.variables[finding]
            cpt = self.cpts[finding]
            parents = var.parents
            col = np.zeros(2**self.k, dtype=np.int64)
            for p in parents:
                col = col * 2 + self._bits_int[:, self.hidx[p]]
            tab = np.ascontiguousarray(cpt.reshape(cpt.shape[0], -1)[:, col])
            self._lik[finding] = tab
        return tab

    def _gather(self, finding: str, cpt: np.ndarray, e: np.ndarray | int) -> np.ndarray:
        """Likelihood of evidence ``e`` on a cause-only finding, over the cause space, from ``cpt``."""
        col = self._columns.get(finding)
        if col is None:
            col = np.zeros(2**self.k, dtype=np.int64)
            for p in self.variables[finding].parents:
                col = col * 2 + self._bits_int[:, self.hidx[p]]
            self._columns[finding] = col
        flat = cpt.reshape(cpt.shape[0], -1)
        row = flat[e] if isinstance(e, (int, np.integer)) else np.asarray(e) @ flat
        return row[col]

    # ---------------------------------------------------------------- evidence
    def normalise(self, evidence: Evidence) -> dict[str, np.ndarray | int]:
        """Check evidence and turn it into state indices or likelihood vectors.

        Raises
        ------
        CaseError
            For an unknown variable or state, naming what is accepted.
        """
        out: dict[str, np.ndarray | int] = {}
        for var, value in evidence.items():
            if var not in self.variables:
                import difflib

                close = difflib.get_close_matches(str(var), list(self.variables), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise CaseError(f"evidence: unknown variable {var!r}{hint}")
            states = self.variables[var].states
            if isinstance(value, Mapping):
                vec = np.zeros(len(states))
                for s, w in value.items():
                    s = _state(s)
                    if s not in states:
                        raise CaseError(f"evidence {var}: unknown state {s!r}; accepted: {', '.join(states)}")
                    if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
                        raise CaseError(f"evidence {var}: weight of {s!r} must be a number >= 0; got {w!r}")
                    vec[states.index(s)] = float(w)
                if vec.sum() <= 0:
                    raise CaseError(f"evidence {var}: at least one state needs a positive weight")
                nz = np.flatnonzero(vec)
                out[var] = int(nz[0]) if len(nz) == 1 else vec
            elif isinstance(value, (list, tuple, set, frozenset)):
                vec = np.zeros(len(states))
                for s in value:
                    s = _state(s)
                    if s not in states:
                        raise CaseError(f"evidence {var}: unknown state {s!r}; accepted: {', '.join(states)}")
                    vec[states.index(s)] = 1.0
                if vec.sum() == 0:
                    raise CaseError(f"evidence {var}: an empty set of states")
                nz = np.flatnonzero(vec)
                out[var] = int(nz[0]) if len(nz) == 1 else vec
            else:
                s = _state(value)
                if s not in states:
                    raise CaseError(f"evidence {var}: unknown state {s!r}; accepted: {', '.join(states)}")
                out[var] = states.index(s)
        return out

    # ------------------------------------------------------------------ block
    def _block(self, ev: Mapping[str, np.ndarray | int], keep: str | None = None) -> np.ndarray:
        """Unnormalised P(context evidence, context-finding evidence, C) over the cause space.

        With ``keep`` (a context variable or a finding with a context parent, not in the
        evidence), its axis stays in the result: shape ``(n_states, 2^k)``.

        A context variable observed as one state is *sliced*: its axis is removed from
        every table that has it, so the contraction never sums over states the evidence
        rules out (age alone has eight). Soft evidence on a context variable is a
        likelihood vector; a finding with a context parent that is not observed sums to
        one and is left out. The contraction path is compiled once per pattern of which
        variables are sliced, weighted or left open, and cached.
        """
        keys = [v for v in self.context if v in ev] + [f for f in self.with_context if f in ev]
        cache_key = (keep,) + tuple((v, _freeze(ev[v])) for v in keys)
        hit = self._block_cache.get(cache_key)
        if hit is not None:
            self._block_cache.move_to_end(cache_key)
            return hit
        block = self._contract_block(ev, keep, self.cpts)
        self._block_cache[cache_key] = block
        if len(self._block_cache) > 512:
            self._block_cache.popitem(last=False)
        return block

    def _contract_block(self, ev: Mapping[str, np.ndarray | int], keep: str | None,
                        cpts: Mapping[str, np.ndarray]) -> np.ndarray:
        """The context block for ``ev`` with the given tables (no caching)."""
        L = self._letter
        hard = {v: int(ev[v]) for v in self.context if v in ev and isinstance(ev[v], (int, np.integer))}

        def axes_of(names: Sequence[str]) -> tuple[tuple, str]:
            index = tuple(hard[a] if a in hard else slice(None) for a in names)
            return index, "".join(L[a] for a in names if a not in hard)

        operands: list[np.ndarray] = []
        subs: list[str] = []
        scale = 1.0

        def add(array: np.ndarray, names: Sequence[str], head: str = "") -> None:
            nonlocal scale
            index, sub = axes_of(names)
            sliced = array[(slice(None),) + index] if head else array[index]
            sub = head + sub
            if sub:
                operands.append(np.asarray(sliced))
                subs.append(sub)
            else:
                scale *= float(sliced)

        for name in self.context + self.hidden:
            add(cpts[name], [name] + list(self.variables[name].parents))
        for v in self.context:
            if v in ev and v not in hard:
                operands.append(np.asarray(ev[v], dtype=float))
                subs.append(L[v])
        extra = ""
        if keep is not None and keep not in L:
            used = set(L.values())
            extra = next(ch for ch in string.ascii_letters[::-1] if ch not in used)
        for f in self.with_context:
            var = self.variables[f]
            cpt = cpts[f]
            if f == keep:
                add(cpt, list(var.parents), head=extra)
            elif f in ev:
                e = ev[f]
                add(cpt[e] if isinstance(e, int) else np.tensordot(e, cpt, axes=(0, 0)), list(var.parents))
        head = (L[keep] if keep in L else extra) if keep is not None else ""
        out = head + "".join(L[h] for h in self.hidden)
        expr = ",".join(subs) + "->" + out
        shapes = tuple(o.shape for o in operands)
        contract = self._path_cache.get((expr, shapes))
        if contract is None:
            contract = opt_einsum.contract_expression(expr, *shapes, optimize="auto")
            self._path_cache[(expr, shapes)] = contract
            if len(self._path_cache) > 4096:
                self._path_cache.pop(next(iter(self._path_cache)))
        block = contract(*operands)
        if scale != 1.0:
            block = block * scale
        return block.reshape(len(self.variables[keep].states), -1) if keep is not None else block.reshape(-1)

    def outcome_joints(self, evidence: Evidence, variable: str) -> np.ndarray:
        """``(n_states, 2^k)``: P(C = c, variable = state, evidence) for an unobserved variable.

        One einsum for a context variable or a finding with a context parent; one
        product with the likelihood table for a finding whose parents are all causes.
        """
        ev = self.normalise(evidence)
        return self._outcome_joints(ev, variable)

    def _outcome_joints(self, ev: Mapping[str, np.ndarray | int], variable: str) -> np.ndarray:
        if variable in ev:
            raise CaseError(f"{variable} is already in the evidence")
        if variable in self.cause_only:
            w, _ = self._joint(ev)
            return w[None, :] * self.likelihood_table(variable)
        if variable not in self.context and variable not in self.with_context:
            raise CaseError(f"{variable!r} is not an observable variable")
        J = self._block(ev, keep=variable).copy()
        J *= self._cause_factor(ev)[None, :]
        return J

    def joint_with_tables(self, evidence: Evidence, tables: Mapping[str, np.ndarray]) -> np.ndarray:
        """P(C = c, evidence) with some variables' tables replaced (nothing cached).

        Used by sensitivity analysis and parameter redraws: only the context block (when a
        context, cause or context-dependent table changes) and the likelihood rows of
        replaced observed findings are recomputed.

        Parameters
        ----------
        evidence : mapping
            Evidence, as for :meth:`posterior`.
        tables : mapping
            Variable -> replacement table, shaped like ``self.cpts[variable]``.
        """
        ev = self.normalise(evidence)
        return self._joint_with_tables(ev, tables)

    def _joint_with_tables(self, ev: Mapping[str, np.ndarray | int], tables: Mapping[str, np.ndarray]) -> np.ndarray:
        structural = [v for v in tables if v not in self.cause_only]
        if structural:
            cpts = {**self.cpts, **{v: tables[v] for v in structural}}
            block = self._contract_block(ev, None, cpts)
        else:
            block = self._block(ev)
        w = block * self._cause_factor(ev, tables)
        return w

    def _cause_factor(self, ev: Mapping[str, np.ndarray | int],
                      tables: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Product of the likelihoods of cause-only findings and evidence on hidden variables."""
        w = np.ones(2**self.k)
        for f in self.cause_only:
            if f in ev:
                e = ev[f]
                if tables and f in tables:
                    tab = self._gather(f, tables[f], e)
                    w *= tab
                    continue
                tab = self.likelihood_table(f)
                w *= tab[e] if isinstance(e, int) else e @ tab
        for h in self.hidden:
            if h in ev:
                vec = _indicator(ev[h], 2)
                w *= vec[self._bits_int[:, self.hidx[h]]]
        return w

    def conditional_table(self, evidence: Evidence, variable: str) -> tuple[np.ndarray, np.ndarray]:
        """P(variable = state | C = c, e) and its entropy in bits, for every cause configuration.

        For a finding whose parents are all causes this is its likelihood table. For a
        context variable or a finding with a context parent, P(variable, C, e) is the
        kept-axis context block times the cause-only likelihoods, and the latter cancel
        in the ratio: the table depends on the context evidence alone and is cached
        with it. Configurations the context rules out get a row of zeros.

        Returns
        -------
        table : ndarray, shape (n_states, 2^k)
        entropy_bits : ndarray, shape (2^k,)
            H(variable | C = c, e) in bits.
        """
        ev = self.normalise(evidence)
        return self._conditional_table(ev, variable)

    def _conditional_table(self, ev: Mapping[str, np.ndarray | int], variable: str) -> tuple[np.ndarray, np.ndarray]:
        if variable in self.cause_only:
            key = ("cond", variable)
        else:
            if variable in ev:
                raise CaseError(f"{variable} is already in the evidence")
            keys = [v for v in self.context if v in ev] + [f for f in self.with_context if f in ev]
            key = ("cond", variable) + tuple((v, _freeze(ev[v])) for v in keys)
        hit = self._cond_cache.get(key)
        if hit is not None:
            self._cond_cache.move_to_end(key)
            return hit
        if variable in self.cause_only:
            table = self.likelihood_table(variable)
        else:
            kept = self._block(ev, keep=variable)
            total = kept.sum(axis=0)
            table = np.divide(kept, total[None, :], out=np.zeros_like(kept), where=total[None, :] > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(table > 0, np.log2(np.where(table > 0, table, 1.0)), 0.0)
        entropy = -(table * logs).sum(axis=0)
        hit = (table, np.maximum(entropy, 0.0))
        self._cond_cache[key] = hit
        if len(self._cond_cache) > 256:
            self._cond_cache.popitem(last=False)
        return hit

    def stack_likelihoods(self, findings: Sequence[str]) -> np.ndarray:
        """One contiguous ``(sum of states, 2^k)`` array of the findings' likelihood tables.

        The engine's own tables become views into it, so that ranking tests (one matrix
        product over every outcome of every test) keeps a single copy in memory.
        """
        tables = [self.likelihood_table(f) for f in findings]
        if not tables:
            return np.zeros((0, 2**self.k))
        stacked = np.vstack(tables)
        start = 0
        for f, t in zip(findings, tables):
            self._lik[f] = stacked[start:start + t.shape[0]]
            start += t.shape[0]
        return stacked

    # --------------------------------------------------------------- queries
    def joint(self, evidence: Evidence) -> tuple[np.ndarray, float]:
        """Unnormalised posterior over the cause space and P(evidence).

        Returns
        -------
        weights : ndarray, shape (2^k,)
            P(C = c, evidence) for every cause configuration c.
        p_evidence : float
            Their sum.
        """
        ev = self.normalise(evidence)
        return self._joint(ev)

    def _joint(self, ev: Mapping[str, np.ndarray | int]) -> tuple[np.ndarray, float]:
        w = self._block(ev) * self._cause_factor(ev)
        return w, float(w.sum())

    def posterior(self, evidence: Evidence) -> dict[str, float]:
        """P(hidden variable present | evidence) for every cause and leak.

        Raises
        ------
        EvidenceConflictError
            When the evidence has probability zero; names the conflicting items.
        """
        ev = self.normalise(evidence)
        w, z = self._joint(ev)
        if not z > 0:
            raise self._conflict_error(ev)
        marg = marginals(w) / z
        return {h: float(np.clip(marg[i], 0.0, 1.0)) for i, h in enumerate(self.hidden)}

    def posterior_many(self, evidences: list[Evidence]) -> np.ndarray:
        """Posteriors for many evidence sets at once, shape ``(n, n_hidden)``.

        Cases that share a context pattern share its cached context block; an impossible
        evidence set gives a row of NaN instead of stopping the batch.
        """
        out = np.full((len(evidences), self.k), np.nan)
        for i, evidence in enumerate(evidences):
            ev = self.normalise(evidence)
            w, z = self._joint(ev)
            if z > 0:
                out[i] = marginals(w) / z
        return out

    def prior(self, evidence: Evidence) -> dict[str, float]:
        """P(hidden variable present | the context part of the evidence only)."""
        ev = self.normalise(evidence)
        ctx = {v: e for v, e in ev.items() if v in self.context}
        w, z = self._joint(ctx)
        if not z > 0:
            raise self._conflict_error(ctx)
        marg = marginals(w) / z
        return {h: float(np.clip(marg[i], 0.0, 1.0)) for i, h in enumerate(self.hidden)}

    def predictive(self, evidence: Evidence, variable: str) -> dict[str, float]:
        """P(variable = state | evidence) for an unobserved context or finding variable."""
        ev = self.normalise(evidence)
        if variable not in self.variables:
            raise CaseError(f"unknown variable {variable!r}")
        w, z = self._joint(ev)
        if not z > 0:
            raise self._conflict_error(ev)
        states = self.variables[variable].states
        if variable in ev:
            p = _indicator(ev[variable], len(states)).astype(float)
        elif variable in self.cause_only:
            p = self.likelihood_table(variable) @ (w / z)
        else:
            p = self._outcome_joints(ev, variable).sum(axis=1) / z
        p = np.clip(p, 0.0, None)
        p = p / p.sum()
        return {s: float(x) for s, x in zip(states, p)}

    # ------------------------------------------------------------- conflicts
    def conflicting(self, evidence: Evidence) -> list[str]:
        """The smallest group of evidence items found that cannot hold together.

        Adds the items one at a time in the order given; the first that makes the
        evidence impossible is paired with each earlier item in turn. Returns
        ``[]`` when the evidence is possible.
        """
        ev = self.normalise(evidence)
        return self._conflicting(ev)

    def _conflicting(self, ev: Mapping[str, np.ndarray | int]) -> list[str]:
        items = list(ev)
        seen: dict[str, np.ndarray | int] = {}
        for name in items:
            seen[name] = ev[name]
            if self._joint(seen)[1] > 0:
                continue
            if self._joint({name: ev[name]})[1] <= 0:
                return [name]
            for other in items:
                if other == name:
                    break
                if self._joint({other: ev[other], name: ev[name]})[1] <= 0:
                    return [other, name]
            return [o for o in items[: items.index(name) + 1]]
        return []

    def _conflict_error(self, ev: Mapping[str, np.ndarray | int]) -> EvidenceConflictError:
        names = self._conflicting(ev) or list(ev)
        described = []
        for n in names:
            e = ev[n]
            states = self.variables[n].states
            if isinstance(e, int):
                described.append(f"{n}={states[e]}")
            else:
                described.append(f"{n} in {{{', '.join(s for s, w in zip(states, e) if w > 0)}}}")
        return EvidenceConflictError(
            "the evidence is impossible under the model: " + " and ".join(described)
            + " cannot hold together; check these findings", names)


def _state(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _indicator(e: np.ndarray | int, n: int) -> np.ndarray:
    if isinstance(e, (int, np.integer)):
        v = np.zeros(n)
        v[int(e)] = 1.0
        return v
    return np.asarray(e, dtype=float)


def _freeze(e: np.ndarray | int) -> object:
    if isinstance(e, (int, np.integer)):
        return int(e)
    return tuple(float(x) for x in e)



def marginals(w: np.ndarray) -> np.ndarray:
    """P(hidden variable i present, ...) for every i, from weights over the cause space.

    ``w`` has length 2^k with the first hidden variable varying slowest; the result
    has length k and is unnormalised like ``w``. Folding halves the array k times.
    """
    return row_marginals(w[None, :])[0]


def row_marginals(W: np.ndarray) -> np.ndarray:
    """:func:`marginals` of every row of ``W``, shape ``(n, 2^k) -> (n, k)``."""
    n, size = W.shape
    k = size.bit_length() - 1
    out = np.empty((n, k))
    x = W
    for i in range(k):
        x = x.reshape(n, 2, -1)
        out[:, i] = x[:, 1].sum(axis=1)
        x = x[:, 0] + x[:, 1]
    return out

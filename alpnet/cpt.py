"""Expand the canonical models of a prior set into conditional probability tables.

This is the one place that knows how a prior set's numbers become tables.
Every table is a numpy array of shape ``(n_states, *parent_cardinalities)``:
axis 0 is the variable itself, the following axes its parents in the order of
``Variable.parents``. (:mod:`alpnet.network` flattens it into pgmpy's column
order; :mod:`alpnet.engine` uses it as it is.)

Canonical models
----------------
* **Causes** — ``P(present) = 1 - (1 - min(cap, baseline * prod RR)) * prod(1 - link)``:
  a baseline prevalence (by age band, sex, ...), relative risks of risk factors,
  and noisy-OR causal links (mechanisms such as vitamin D deficiency -> osteomalacia).
* **noisy_max** — every active parent pushes the finding to a state drawn from
  its link distribution; the most extreme push is observed. With states on both
  sides of the normal one (low / normal / high) an upward and a downward push
  together are resolved by the finding's ``conflict`` distribution. With two
  states this is the noisy-OR. The table is computed exactly from the joint
  distribution of (lowest push, highest push): ``P(D >= b, U <= a)`` is a product
  over parents, and the point masses follow by differencing.
* **set_union** — every active parent releases one fraction, none, or several
  at once (``mixed_state``); the observed state is ``none_state``, the single
  fraction released, or ``mixed_state`` when two or more are. Exact via
  the Moebius inversion of ``P(released set within T) = prod_i P_i(none or in T)``.
* **table** — rows of distributions matched by ``when:`` clauses.
"""

from __future__ import annotations

import itertools
from typing import Mapping

import numpy as np

from .priors import Parameter, PriorSet, Row, Variable

__all__ = ["build_cpts", "build_cpt", "active_state", "columns_at"]


def active_state(var: Variable) -> str:
    """The state in which a parent 'acts' in a canonical model."""
    return "present" if var.is_hidden else "true"


def _vector(dist: Mapping[str, Parameter], states: list[str]) -> np.ndarray:
    v = np.zeros(len(states))
    for s, p in dist.items():
        v[states.index(s)] = p.value
    total = v.sum()
    if len(states) == 2 and len(dist) == 1 and abs(total - 1.0) > 1e-12:
        # binary finding given as P(true) alone
        other = 1 - states.index(next(iter(dist)))
        v[other] = 1.0 - total
    return v


def _configs(variables: Mapping[str, Variable], parents: list[str]):
    return itertools.product(*[variables[p].states for p in parents])


def _matching(var: Variable, key: str, rows: list[Row], variables: Mapping[str, Variable],
              first: bool) -> list:
    """Per parent configuration (C order), the index of the first matching row or all matching rows.

    The structure of a prior set never changes while its numbers do (overrides, sensitivity,
    redraws), so the matching is computed once per variable and kept on it as indices.
    """
    cache = var.__dict__.setdefault("_matching_cache", {})
    hit = cache.get(key)
    if hit is None:
        hit = []
        for combo in _configs(variables, var.parents):
            config = dict(zip(var.parents, combo))
            found = [i for i, r in enumerate(rows) if r.matches(config)]
            hit.append(found[0] if first else found)
        cache[key] = hit
    return hit


def _rows_table(var: Variable, rows: list[Row], variables: Mapping[str, Variable]) -> np.ndarray:
    shape = [len(var.states)] + [len(variables[p].states) for p in var.parents]
    vectors = [_vector(r.value, var.states) for r in rows]
    which = _matching(var, "rows", rows, variables, first=True)
    table = np.stack([vectors[i] for i in which], axis=1) if which else np.zeros((shape[0], 0))
    return table.reshape(shape)


def _cause_table(var: Variable, variables: Mapping[str, Variable]) -> np.ndarray:
    spec = var.spec
    shape = [2] + [len(variables[p].states) for p in var.parents]
    base_of = _matching(var, "baseline", spec["baseline"], variables, first=True)
    rr_of = _matching(var, "relative_risks", spec["relative_risks"], variables, first=False)
    link_of = _matching(var, "links", spec["links"], variables, first=False)
    base_v = [r.value.value for r in spec["baseline"]]
    rr_v = [r.value.value for r in spec["relative_risks"]]
    link_v = [r.value.value for r in spec["links"]]
    cap = spec["cap"]
    present = np.empty(len(base_of))
    for j, (b, rrs, links) in enumerate(zip(base_of, rr_of, link_of)):
        base = base_v[b]
        rr = 1.0
        for i in rrs:
            rr *= rr_v[i]
        q_absent = 1.0 - min(cap, base * rr) if base * rr > 0 else 1.0
        for i in links:
            q_absent *= 1.0 - link_v[i]
        present[j] = 1.0 - q_absent
    table = np.stack([1.0 - present, present]).reshape(shape)
    return table


def _parent_bits(n: int) -> np.ndarray:
    """All 2^n parent configurations as a (2^n, n) 0/1 array, first parent slowest."""
    if n == 0:
        return np.zeros((1, 0), dtype=bool)
    grid = np.indices((2,) * n).reshape(n, -1).T
    return grid.astype(bool)


def _over_configurations(base: np.ndarray, factors: list[np.ndarray], bits: np.ndarray | None) -> np.ndarray:
    """``base * prod(factors[i] for every active parent i)``, one column per parent configuration.

    Shape ``base.shape + (configs,)``: the configurations last, so that every step runs
    over long contiguous rows. With ``bits`` None, all 2^n configurations (the first
    parent slowest, as in :func:`_parent_bits`), grown one parent at a time, each step
    doubling the columns; otherwise the configurations ``bits`` (configs, n) lists.
    """
    if bits is None:
        out = np.empty(base.shape + (2 ** len(factors),))
        out[..., 0] = base
        width = 1
        for f in reversed(factors):  # the new parent varies slowest: absent, then present
            np.multiply(out[..., :width], f[..., None], out=out[..., width:2 * width])
            width *= 2
        return out
    out = np.broadcast_to(base[..., None], base.shape + (bits.shape[0],)).copy()
    for i, f in enumerate(factors):
        out = np.where(bits[:, i], out * f[..., None], out)
    return out


def _check_binary_parents(var: Variable, variables: Mapping[str, Variable]) -> list[int]:
    """Index of the active state of each (binary) parent."""
    out = []
    for p in var.parents:
        pv = variables[p]
        out.append(pv.states.index(active_state(pv)))
    return out


def _noisy_max_table(var: Variable, variables: Mapping[str, Variable]) -> np.ndarray:
    return _reshape(_noisy_max_columns(var, None), var, variables)


def _noisy_max_columns(var: Variable, bits: np.ndarray | None) -> np.ndarray:
    """(configs, k) distributions of a noisy-MAX finding at the given active-parent patterns."""
    spec = var.spec
    states = var.states
    k = len(states)
    z = states.index(spec["normal"])
    leak = _vector(spec["leak"], states)
    links = [_vector(spec["links"][p], states) for p in var.parents]

    # G_i[a, b] = P(b <= s_i <= a), a in z..k-1 (upper), b in 0..z (lower)
    def window(q: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(q)])
        a = np.arange(z, k)[:, None]
        b = np.arange(0, z + 1)[None, :]
        return c[a + 1] - c[b]

    # G[a, b, cfg]: the configurations last, so that every step below runs over long
    # contiguous rows (the first parent varies slowest, as in _parent_bits)
    G = _over_configurations(window(leak), [window(q) for q in links], bits)
    n_cfg = G.shape[-1]
    # point masses of (U = a, D = b): difference the 'window' probabilities
    Gp = np.zeros((k - z + 1, z + 2, n_cfg))
    Gp[1:, : z + 1] = G  # Gp[a-z+1, b] = G(a, b); Gp[0, :] = G(z-1, .) = 0; Gp[:, z+1] = G(., z+1) = 0
    pmf = Gp[1:, :-1] - Gp[:-1, :-1] - Gp[1:, 1:] + Gp[:-1, 1:]
    pmf = np.clip(pmf, 0.0, None, out=pmf)  # (a, b, cfg) with a = z..k-1, b = 0..z
    out = np.zeros((k, n_cfg))
    out[z] += pmf[0, z]
    for ai in range(1, k - z):  # up only
        out[z + ai] += pmf[ai, z]
    for b in range(z):  # down only
        out[b] += pmf[0, b]
    if z > 0 and z < k - 1:
        conflict = _vector(spec["conflict"], ["down", "normal", "up"])
        for ai in range(1, k - z):
            for b in range(z):
                m = pmf[ai, b]
                out[b] += conflict[0] * m
                out[z] += conflict[1] * m
                out[z + ai] += conflict[2] * m
    return out.T


def _set_union_table(var: Variable, variables: Mapping[str, Variable]) -> np.ndarray:
    return _reshape(_set_union_columns(var, None), var, variables)


def _set_union_columns(var: Variable, bits: np.ndarray | None) -> np.ndarray:
    """(configs, k) distributions of a set-union finding at the given active-parent patterns."""
    spec = var.spec
    states = var.states
    none, mixed = spec["none"], spec["mixed"]
    emit_states = list(states)  # a cause may release several fractions at once: `mixed`
    comps = [s for s in emit_states if s != none]
    m = len(comps)
    subsets = _parent_bits(m)  # (2^m, m): T as indicator over comps

    def H(q: np.ndarray) -> np.ndarray:
        # P(released in T or none) for every subset T
        qn = q[emit_states.index(none)]
        qc = np.array([q[emit_states.index(c)] for c in comps])
        return qn + subsets.astype(float) @ qc

    leak = _vector(spec["leak"], emit_states)
    links = [_vector(spec["links"][p], emit_states) for p in var.parents]
    # H per subset T (rows) and parent configuration (columns, the first parent slowest)
    Hprod = _over_configurations(H(leak), [H(q) for q in links], bits)
    n_cfg = Hprod.shape[-1]
    # Moebius inversion, P(set == S) = sum over T subset of S of (-1)^{|S|-|T|} H(T), done
    # one component at a time: m passes of differences between contiguous halves
    pset = Hprod.reshape((2,) * m + (n_cfg,))  # a fresh array: changed in place
    for axis in range(m):
        high = [slice(None)] * (m + 1)
        low = list(high)
        high[axis], low[axis] = 1, 0
        pset[tuple(high)] -= pset[tuple(low)]
    pset = np.clip(pset.reshape(-1, n_cfg), 0.0, None, out=pset.reshape(-1, n_cfg))  # (S, cfg)
    # each released set S is one state: none, a single fraction, or mixed
    to_state = np.zeros((subsets.shape[0], len(states)))
    for si, S in enumerate(subsets):
        size = int(S.sum())
        if size == 0:
            to_state[si, states.index(none)] = 1.0
        elif size == 1 and comps[int(np.flatnonzero(S)[0])] != mixed:
            to_state[si, states.index(comps[int(np.flatnonzero(S)[0])])] = 1.0
        else:
            to_state[si, states.index(mixed)] = 1.0
    return (to_state.T @ pset).T


def _reshape(out: np.ndarray, var: Variable, variables: Mapping[str, Variable]) -> np.ndarray:
    """(2^n configs over *active* bits, k) -> (k, *parent cards) with real state order."""
    n = len(var.parents)
    act = _check_binary_parents(var, variables)
    table = out.T.reshape((len(var.states),) + (2,) * n)
    # bit 1 means "active"; move it to the parent's active-state index
    for axis, a in enumerate(act):
        if a == 0:
            table = np.flip(table, axis=axis + 1)
    return np.ascontiguousarray(table)


def build_cpt(var: Variable, variables: Mapping[str, Variable]) -> np.ndarray:
    """The table of one variable, shape ``(n_states, *parent cardinalities)``."""
    if var.kind == "context":
        table = _rows_table(var, var.spec["rows"], variables)
    elif var.is_hidden:
        table = _cause_table(var, variables)
    elif var.model == "noisy_max":
        table = _noisy_max_table(var, variables)
    elif var.model == "set_union":
        table = _set_union_table(var, variables)
    elif var.model == "table":
        table = _rows_table(var, var.spec["rows"], variables)
    else:  # pragma: no cover - rejected by the loader
        raise ValueError(f"unknown model {var.model!r}")
    # re-normalise away rounding (columns are validated to sum to 1 within 1e-6)
    sums = table.sum(axis=0, keepdims=True)
    return table / np.where(sums > 0, sums, 1.0)


def columns_at(var: Variable, active: np.ndarray) -> np.ndarray:
    """Distributions of a noisy-MAX or set-union finding at some parent configurations only.

    Parameters
    ----------
    var : Variable
        A finding with ``model`` ``noisy_max`` or ``set_union``.
    active : ndarray of bool, shape (configs, n_parents)
        Which parents are in their active state, parents in ``var.parents`` order.

    Returns
    -------
    ndarray, shape (configs, n_states)
        Each row the same as the matching column of :func:`build_cpt` (before its
        re-normalisation), at a cost that grows with ``configs`` instead of 2^n_parents.
    """
    active = np.asarray(active, dtype=bool).reshape(-1, len(var.parents))
    if var.model == "noisy_max":
        return _noisy_max_columns(var, active)
    if var.model == "set_union":
        return _set_union_columns(var, active)
    raise ValueError(f"{var.name}: columns_at needs a noisy_max or set_union finding; got {var.model!r}")


def build_cpts(pset: PriorSet) -> dict[str, np.ndarray]:
    """Tables of every variable of a prior set, keyed by variable name."""
    return {name: build_cpt(var, pset.variables) for name, var in pset.variables.items()}

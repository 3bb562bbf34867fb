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
  the first hidden variable varying slowest (numpy C order over one axis per
  cause). The order is chosen by :func:`enumeration_order`: first the causes the
  context can rule out (no pregnancy in a man), then the causes that appear in
  the fewest tables;
* a finding whose parents are all causes becomes a likelihood table
  ``(n_states, 2^k)`` gathered once from its CPT; evidence on it is a row
  (hard evidence) or a weighted sum of rows (a set of states, "ALP high");
* everything that involves context variables (their priors, the causes' CPTs,
  findings with a context parent) gives the *context block*, a vector over the
  cause space. The tables are sliced at the observed context states; a context
  variable that is not sliced is weighted by its evidence (one-hot, a likelihood
  vector or ones) and summed out together with the few tables that mention it (one
  small einsum per such group), so what is left is a set of small factors over the
  causes. Which variables are sliced (:meth:`Engine._sliced_for`): all of them when
  the whole context is known, and then the block repeats across a population and is
  cached per context pattern; otherwise only the root context variables (age, sex),
  so that rows with different partial patterns take the same steps and share a
  batch. The block is grown from the factors one cause at a time, from the last to
  the first, each factor multiplied in (broadcast over the causes it does not have)
  once all its causes have joined (:meth:`Engine._grown_blocks`);
* when the context rules out the first causes in the order, their configurations
  carry no weight and the live ones are a prefix of the cause space: only that
  prefix is computed (:meth:`Engine._dead_prefix`); a man's joint is half as long;
* a finding whose first cause is ``hidden[d]`` is a function of ``hidden[d:]``,
  whose values are the first ``2^(k-d)`` entries of its table rows, so most findings
  cost a short vector and only the few that involve the first causes touch the whole
  space. The findings are grouped in bands by that level: each wide level is a band,
  the narrow ones share one. A row's findings in a wide band are multiplied into one
  vector that depends only on the states they take and is cached (most rows of a
  population repeat a few combinations: most labs are normal); the narrow band is
  multiplied for all rows of a batch at once. The running product is widened band by
  band (:meth:`Engine._findings_product`). A finding with a context parent that is
  sliced acts like one of these, with a table per context state;
* the posterior joint is ``block * product``; its normaliser is P(evidence). The
  cause marginals are two sums over the joint viewed as a ``2^a x 2^b`` matrix and
  two small products with the halves' bits (:func:`row_marginals`);
* batches (``posterior_many``) run the same steps for 16 evidence sets at a time.
  Rows share a pass only when they take the same steps (the same variables sliced,
  the same findings with a context parent carried by the block), contraction paths
  do not depend on the batch size, and every other step is elementwise, so a row's
  numbers are the same, to the last bit, alone (``diagnose``) or in any batch;
* with numba installed (the ``fast`` extra), posteriors (:meth:`Engine.posterior`,
  :meth:`Engine.posterior_many`) take a compiled path instead (:mod:`alpnet.kernel`):
  the context factors of up to 512 rows that share a path are computed together as
  above, every observed finding becomes a factor over its own hidden parents (a row of
  its table, :meth:`Engine._finding_tables`) or, when that row is one number per cause
  (a normal result or an absent symptom in a noisy-max table, :func:`_product_form`),
  joins the row's per-cause multipliers at no cost; a finding with a context parent
  whose observed state splits into a context part and such a cause part
  (:meth:`Engine._separable`) leaves only the context part to the context factors.
  Each row's cause space is then grown,
  multiplied out and summed into marginals in one compiled pass that stays in the
  processor's cache, with no Python between the steps. Rows are still computed one at
  a time, so a row's numbers are the same alone or in any batch; they agree with the
  numpy path to about 1e-15 (a test holds them to 1e-12). ``ALPNET_COMPILED=0`` or
  :attr:`Engine.compiled` turns it off;
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
(:func:`alpnet.reference_engine.choose_engine`). The caches are bounded in bytes
(:attr:`Engine.BLOCK_CACHE_BYTES`, :attr:`Engine.BAND_CACHE_BYTES`), least recently
used first out, so memory stays flat however many cases are scored.
"""

from __future__ import annotations

import math
import string
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from itertools import chain

import numpy as np
import opt_einsum
from threadpoolctl import ThreadpoolController

from .errors import AlpnetError, CaseError, EvidenceConflictError
from .priors import PriorSet

__all__ = ["Engine", "Evidence", "MAX_HIDDEN", "enumeration_order", "marginals", "row_marginals"]

#: Largest number of hidden binary variables (causes + leak) the engine enumerates.
#: 2^20 configurations: 8 MB per vector; likelihood tables for ~90 finding states
#: then take ~0.8 GB, the most this workplace's 24 GB machines should spend.
MAX_HIDDEN = 20

#: Evidence: variable -> state, or variable -> {state: likelihood weight}.
Evidence = Mapping[str, "str | Mapping[str, float]"]


class _BytesLRU:
    """A cache bounded in bytes: the least recently used entries go first, the newest always stays.

    ``size`` gives an entry's bytes.
    """

    def __init__(self, limit: int, size=lambda value: value.nbytes):
        self.limit = limit
        self.size = size
        self.entries: OrderedDict = OrderedDict()
        self.bytes = 0

    def get(self, key):
        """The entry under ``key`` (now the most recently used), or None."""
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
        return hit

    def put(self, key, value) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used beyond the limit."""
        self.entries[key] = value
        self.bytes += self.size(value)
        while self.bytes > self.limit and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            self.bytes -= self.size(old)


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

    #: Bytes of context blocks kept (least recently used dropped): up to 0.5 MB each.
    BLOCK_CACHE_BYTES = 64 * 2**20
    #: Conditional tables of questions and context-dependent tests kept: up to a few MB each.
    TABLE_CACHE = 48

    def __init__(self, pset: PriorSet, cpts: Mapping[str, np.ndarray]):
        self.pset = pset
        self.cpts = dict(cpts)
        self.variables = pset.variables
        self.hidden = enumeration_order(pset, cpts)
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
        names = self.context + self.hidden + self.with_context
        if len(names) + 2 > len(letters):  # pragma: no cover - bounded by MAX_HIDDEN + context size
            raise AlpnetError("too many context variables and causes for the einsum contraction")
        self._letter = {n: letters[i] for i, n in enumerate(names)}
        self._batch_letter = letters[len(names)]
        self._block_cache = _BytesLRU(self.BLOCK_CACHE_BYTES, _block_size)
        self._path_cache: dict = {}
        self._paths: dict = {}
        self._cond_cache: OrderedDict = OrderedDict()
        self._columns: dict[str, np.ndarray] = {}
        self._context_set = set(self.context)
        self._context_roots = [v for v in self.context if not self.variables[v].parents]
        self._root_positions = [self.context.index(v) for v in self._context_roots]
        self._runs: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._cause_only_set = set(self.cause_only)
        self._live_level: dict[tuple[str, int], int] = {}
        self._context_parents = {f: [p for p in self.variables[f].parents if p in self._context_set]
                                 for f in self.with_context}
        # per finding with a context parent: (position in the context, whether a root) of each
        self._signature_parents = [(f, [(self.context.index(p), p in self._context_roots)
                                        for p in self._context_parents[f]]) for f in self.with_context]
        self._ctx_lik: dict[str, np.ndarray] = {}
        self._band_infos: dict[int, dict[str, tuple[int, int, int]]] = {}
        self._state_index = {name: {s: i for i, s in enumerate(var.states)} for name, var in self.variables.items()}
        self._band_cache = _BytesLRU(self.BAND_CACHE_BYTES)
        # the compiled path's (:meth:`_kernel_posteriors`): summed context groups per pattern,
        # one-row context factors, the findings' tables and the factor scopes seen
        self._group_cache = _BytesLRU(self.GROUP_CACHE_BYTES)
        self._group_tags: dict[tuple[str, tuple[str, ...]], int] = {}
        self._kernel_context_cache = _BytesLRU(self.KERNEL_CONTEXT_BYTES,
                                               lambda hit: sum(t.nbytes for _, t in hit[0]))
        self._kernel_tables: tuple | None = None
        self._separable_cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._code_column = {name: i for i, name in enumerate(self.variables)}
        self._code_of = {(name, state): i for name, states in self._state_index.items() for state, i in states.items()}
        self._scopes: dict[tuple[int, ...], int] = {}
        self._scope_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._scope_stack: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def with_tables(self, cpts: Mapping[str, np.ndarray]) -> "Engine":
        """An engine for the same network with other numbers in its tables.

        What depends only on the network's shape (parent columns, runs, bands and
        contraction paths) is shared with this engine when the enumeration order is the
        same, so a parameter draw compiles in milliseconds and its first batch does not
        search contraction paths again. Caches of numbers start empty.

        Parameters
        ----------
        cpts : mapping
            A table for every variable, shaped like :attr:`cpts`.
        """
        other = Engine(self.pset, cpts)
        other.compiled = self.compiled
        if other.hidden == self.hidden:
            for name in ("_columns", "_runs", "_live_level", "_band_infos", "_paths", "_path_cache"):
                setattr(other, name, getattr(self, name))
        return other

    # ------------------------------------------------------------------ tables
    def likelihood_table(self, finding: str) -> np.ndarray:
        """``(n_states, 2^k)``: P(finding = state | cause configuration)."""
        tab = self._lik.get(finding)
        if tab is None:
            cpt = self.cpts[finding]
            tab = np.ascontiguousarray(cpt.reshape(cpt.shape[0], -1)[:, self._parent_columns(finding)])
            self._lik[finding] = tab
        return tab

    def _gather(self, finding: str, cpt: np.ndarray, e: np.ndarray | int) -> np.ndarray:
        """Likelihood of evidence ``e`` on a cause-only finding, over the cause space, from ``cpt``."""
        flat = cpt.reshape(cpt.shape[0], -1)
        row = flat[e] if isinstance(e, (int, np.integer)) else np.asarray(e) @ flat
        return row[self._parent_columns(finding)]

    def _parent_columns(self, finding: str) -> np.ndarray:
        """For every cause configuration, the flat index of its finding's hidden parents' states."""
        col = self._columns.get(finding)
        if col is None:
            col = np.zeros(2**self.k, dtype=np.int64)
            for p in self.variables[finding].parents:
                if p in self.hidx:
                    col = col * 2 + self._bits_int[:, self.hidx[p]]
            self._columns[finding] = col
        return col

    # ---------------------------------------------------------------- evidence
    def normalise(self, evidence: Evidence) -> dict[str, np.ndarray | int]:
        """Check evidence and turn it into state indices or likelihood vectors.

        Raises
        ------
        CaseError
            For an unknown variable or state, naming what is accepted.
        """
        index_of = self._state_index
        try:  # the common case: every item one state by name
            return {var: index_of[var][value] for var, value in evidence.items()}
        except (KeyError, TypeError):  # anything else takes the checks below
            pass
        out: dict[str, np.ndarray | int] = {}
        for var, value in evidence.items():
            if type(value) is str and var in self._state_index:  # the common case: one state by name
                index = self._state_index[var].get(value)
                if index is not None:
                    out[var] = index
                    continue
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
                index = self._state_index[var].get(value if type(value) is str else _state(value))
                if index is None:
                    raise CaseError(f"evidence {var}: unknown state {_state(value)!r}; accepted: {', '.join(states)}")
                out[var] = index
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
        cache_key = self._block_key(ev, keep)
        hit = self._block_cache.get(cache_key)
        if hit is not None:
            return hit
        if keep is None:  # (live block, m): see _grown_blocks
            factors, scale = self._context_factors([ev], self._sliced_for([ev]), self.cpts)
            m = int(self._dead_prefix(factors, 1)[0])
            block = (self._grown_blocks(factors, scale, m)[0], m)
        else:
            block = self._contract_block(ev, keep, self.cpts)
        self._remember_block(cache_key, block)
        return block

    def _block_key(self, ev: Mapping[str, np.ndarray | int], keep: str | None = None) -> tuple:
        """What a context block depends on: the evidence on context variables, on findings with
        a context parent that the block carries (not those :meth:`_moved_findings` moves out
        of it) and, for the live block, on hidden variables."""
        if keep is None:
            moved = set(self._moved_single(ev))
            keys = [v for v in self.context if v in ev] + [f for f in self.with_context if f in ev and f not in moved]
            keys += [h for h in self.hidden if h in ev]
        else:
            keys = [v for v in self.context if v in ev] + [f for f in self.with_context if f in ev]
        return (keep,) + tuple((v, _freeze(ev[v])) for v in keys)

    def _remember_block(self, key: tuple, block: object) -> None:
        """Keep a block in the cache, dropping the least recently used beyond :data:`BLOCK_CACHE_BYTES`."""
        self._block_cache.put(key, block)

    def _contract(self, expr: str, operands: Sequence[np.ndarray]) -> np.ndarray:
        """``einsum(expr, *operands)``, along a contraction path found once per expression.

        The path is searched with the batch axis (:attr:`_batch_letter`) at a nominal
        size, so that a row is contracted in the same order whatever the size of its
        batch (its numbers then do not depend on it), and the search is not repeated for
        every batch size. The compiled expression is cached per actual shapes.
        """
        shapes = tuple(o.shape for o in operands)
        contract = self._path_cache.get((expr, shapes))
        if contract is None:
            inputs = expr.split("->")[0].split(",")
            nominal = tuple(tuple(16 if letter == self._batch_letter else size for letter, size in zip(sub, shape))
                            for sub, shape in zip(inputs, shapes))
            path = self._paths.get((expr, nominal))
            if path is None:
                path = opt_einsum.contract_path(expr, *nominal, shapes=True,
                                                optimize="auto" if len(operands) <= 8 else "greedy")[0]
                self._paths[(expr, nominal)] = path
            contract = opt_einsum.contract_expression(expr, *shapes, optimize=path)
            self._path_cache[(expr, shapes)] = contract
            if len(self._path_cache) > 4096:
                self._path_cache.pop(next(iter(self._path_cache)))
        return contract(*operands)

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
        for f in self.with_context:
            var = self.variables[f]
            cpt = cpts[f]
            if f == keep:
                add(cpt, list(var.parents), head=L[f])
            elif f in ev:
                e = ev[f]
                add(cpt[e] if isinstance(e, int) else np.tensordot(e, cpt, axes=(0, 0)), list(var.parents))
        head = L[keep] if keep is not None else ""
        out = head + "".join(L[h] for h in self.hidden)
        expr = ",".join(subs) + "->" + out
        block = self._contract(expr, operands)
        if scale != 1.0:
            block = block * scale
        return block.reshape(len(self.variables[keep].states), -1) if keep is not None else block.reshape(-1)

    # --------------------------------------------------------- factored joint
    def _weights(self, evs: Sequence[Mapping[str, np.ndarray | int]], var: str) -> np.ndarray:
        """(rows, n_states) evidence weights on ``var``: one-hot, a likelihood vector, or ones if absent."""
        n = len(self.variables[var].states)
        codes = self._codes(evs, var)
        out = np.ones((len(evs), n))
        hard = np.flatnonzero(codes >= 0)
        if hard.size:
            out[hard] = 0.0
            out[hard, codes[hard]] = 1.0
        for r in np.flatnonzero(codes == -2).tolist():
            out[r] = evs[r][var]
        return out

    def _codes(self, evs: Sequence[Mapping[str, np.ndarray | int]], var: str) -> np.ndarray:
        """Each row's evidence on ``var`` as a code (:func:`_state_code`): its state, -1 when
        absent, -2 for weights; read from the matrix of :class:`_EvidenceRows` when it has one."""
        if type(evs) is _EvidenceRows:
            return evs.codes(var)
        return _state_codes([ev.get(var) for ev in evs])

    def _observed(self, evs: Sequence[Mapping[str, np.ndarray | int]], var: str) -> bool:
        """Whether any row has evidence on ``var``."""
        if type(evs) is _EvidenceRows:
            return bool((evs.codes(var) != -1).any())
        return any(var in ev for ev in evs)

    def _context_factors(self, evs: Sequence[Mapping[str, np.ndarray | int]], sliced: Sequence[str],
                         cpts: Mapping[str, np.ndarray], *, every_finding: bool = False
                         ) -> tuple[list[tuple[tuple[int, ...], np.ndarray]], np.ndarray]:
        """The context part of P(C, e) for a batch of evidence sets, as small factors over hidden variables.

        The tables that involve context variables or the causes' priors (context CPTs,
        cause CPTs, findings with a context parent, evidence on hidden variables) are
        taken per row. A context variable in ``sliced`` (observed as one state in every
        row) is sliced out of every table at each row's state. Every other context
        variable, and every finding with a context parent, is weighted by its evidence
        (one-hot, a likelihood vector, or ones where it is not known) and summed out
        together with the tables that share it: one small einsum per group. What is left
        mentions hidden variables only.

        With ``every_finding`` (the compiled path), a finding with a context parent that is not
        sliced is always summed in, observed or not, so that rows share a pass whichever such
        findings they observe (:meth:`_coarse_signatures`).

        Returns
        -------
        factors : list of (indices, table)
            Ascending hidden indices, and a table of shape ``(rows, 2, ..., 2)`` with one
            axis per index in that order.
        scale : ndarray, shape (rows,)
            The product of the factors left with no hidden variable.
        """
        B = len(evs)
        sliced_set = set(sliced)
        at = {v: self._codes(evs, v).astype(np.intp) for v in sliced}
        rows = np.arange(B)
        raw: list[tuple[list[str], np.ndarray]] = []  # every table has a leading row axis
        scale = np.ones(B)

        keyvars: list[list[str]] = []  # per raw table, the variables whose evidence sets its rows

        def add(names: Sequence[str], table: np.ndarray, batched: bool, decided: Sequence[str] | None = None) -> None:
            nonlocal scale
            hard = [i for i, n in enumerate(names) if n in sliced_set]
            decided_by = list(decided if decided is not None else names) if batched else [names[i] for i in hard]
            if hard:
                offset = 1 if batched else 0
                table = np.moveaxis(table, [i + offset for i in hard], list(range(offset, offset + len(hard))))
                index = ((rows,) if batched else ()) + tuple(at[names[i]] for i in hard)
                table = table[index]
                names = [n for n in names if n not in sliced_set]
            elif not batched:
                table = np.broadcast_to(table, (B,) + table.shape)
            if names:
                raw.append((list(names), table))
                keyvars.append(decided_by)
            else:
                scale = scale * table

        for v in self.context:
            add([v] + list(self.variables[v].parents), cpts[v], False)
            if v not in sliced_set:  # weights (ones where not known), so every row takes one path
                add([v], self._weights(evs, v), True)
        for h in self.hidden:
            add([h] + list(self.variables[h].parents), cpts[h], False)
            if self._observed(evs, h):
                add([h], self._weights(evs, h), True)
        moved = self._moved_findings(evs, sliced_set, cpts)
        separated = set(self._separated_findings(evs, sliced_set, moved)) if every_finding else set()
        for f in self.with_context:
            if f in moved:
                continue
            if f in separated:  # its part over the causes goes to the kernel's per-cause factors
                add(self._context_parents[f], self._separated_weights(evs, f), True, decided=[f])
                continue
            # with ``every_finding``, a finding whose context parents are not all sliced is
            # summed in whether or not it is observed (weights of one where it is not), so that
            # rows take the same steps whichever of them they observe
            if self._observed(evs, f) or (
                    every_finding and not all(p in sliced_set for p in self._context_parents[f])):
                add([f] + list(self.variables[f].parents), cpts[f], False)
                add([f], self._weights(evs, f), True)
        # tables that share a summed variable (a context variable not sliced, or a
        # finding with a context parent) form one group
        summed = lambda n: n not in self.hidx  # noqa: E731
        groups: list[list[int]] = []
        owner: dict[str, int] = {}
        for i, (names, _) in enumerate(raw):
            keys = [n for n in names if summed(n)]
            hit = sorted({owner[n] for n in keys if n in owner})
            if not hit:
                gid = len(groups)
                groups.append([i])
            else:
                gid = hit[0]
                groups[gid].append(i)
                for other in hit[1:]:
                    groups[gid].extend(groups[other])
                    groups[other] = []
                    for n, g in list(owner.items()):
                        if g == other:
                            owner[n] = gid
            for n in keys:
                owner[n] = gid
        L = self._letter
        batch = self._batch_letter
        factors: list[tuple[tuple[int, ...], np.ndarray]] = []
        for members in groups:
            if not members:
                continue
            out_idx = tuple(sorted({self.hidx[n] for i in members for n in raw[i][0] if n in self.hidx}))
            if len(members) == 1 and not any(summed(n) for n in raw[members[0]][0]):
                names, table = raw[members[0]]
                order = np.argsort([self.hidx[n] for n in names])
                factors.append((out_idx, np.transpose(table, (0,) + tuple(int(j) + 1 for j in order))))
                continue
            expr = ",".join(batch + "".join(L[n] for n in raw[i][0]) for i in members) + "->" + batch \
                + "".join(L[self.hidden[j]] for j in out_idx)
            table = self._contract_group(expr, out_idx, [raw[i][1] for i in members],
                                         sorted({v for i in members for v in keyvars[i]}), evs, at,
                                         cache=cpts is self.cpts)
            if out_idx:
                factors.append((out_idx, table))
            else:
                scale = scale * table
        return factors, scale

    #: Bytes of summed context groups kept per row pattern (:meth:`_contract_group`).
    GROUP_CACHE_BYTES = 32 * 2**20

    def _contract_group(self, expr: str, out_idx: tuple[int, ...], operands: list[np.ndarray],
                        keyvars: list[str], evs: Sequence[Mapping[str, np.ndarray | int]],
                        at: Mapping[str, np.ndarray], *, cache: bool) -> np.ndarray:
        """One group of :meth:`_context_factors` summed out, for every row: ``(rows, 2, ..., 2)``.

        A row's result depends only on the evidence on ``keyvars`` (the variables the group's
        tables are sliced at or weighted by), and in a population few patterns of them repeat
        (the tables around chronic kidney disease, say, summed over it when it is not known):
        each distinct pattern is contracted once, and, with ``cache``, kept for later batches
        (:attr:`GROUP_CACHE_BYTES`, least recently used dropped). Every row is still contracted
        alone in its own slice of the batch axis, so its numbers do not depend on the others.
        """
        B = operands[0].shape[0]
        # a cached table is known by its group (a small number for the expression and the
        # variables whose evidence sets it, cheap to hash) and its evidence pattern
        tag = self._group_tags.setdefault((expr, tuple(keyvars)), len(self._group_tags))
        distinct, inverse, first = self._evidence_patterns(evs, keyvars, at, B)
        values = [self._group_cache.get((tag, key)) if cache else None for key in distinct]
        todo = [i for i, hit in enumerate(values) if hit is None]
        if todo:
            rows = first[todo]
            # padded to a power of two (repeating a row), so that few batch shapes, and so
            # few compiled contractions, occur
            padded = 1 << (len(rows) - 1).bit_length()
            if padded == B and len(rows) == B and (rows == np.arange(B)).all():
                part = operands
            else:
                rows = np.concatenate([rows, np.full(padded - len(rows), rows[0], dtype=np.intp)])
                part = [op[rows] for op in operands]
            done = np.asarray(self._contract(expr, part))
            for t, i in enumerate(todo):
                values[i] = value = np.array(done[t])
                if cache:
                    self._group_cache.put((tag, distinct[i]), value)
        return np.stack(values)[inverse]

    def _evidence_patterns(self, evs: Sequence[Mapping[str, np.ndarray | int]], keyvars: list[str],
                           at: Mapping[str, np.ndarray], B: int) -> tuple[list, np.ndarray, np.ndarray]:
        """The distinct patterns of evidence on ``keyvars`` among the rows.

        Returns ``(distinct, inverse, first)``: a hashable key per pattern, each row's
        pattern, and each pattern's first row. When every row's evidence on them is a
        state or nothing, a pattern is one integer (the codes in mixed radix) and numpy
        finds them; otherwise (weights, or the numpy path's list of dicts) a tuple per row.
        """
        if type(evs) is _EvidenceRows and keyvars:
            codes = [at[v] if v in at else evs.codes(v) for v in keyvars]
            radix = [len(self.variables[v].states) + 1 for v in keyvars]
            if math.prod(radix) < 2 ** 62 and all(c.min() >= -1 for c in codes):
                key = np.zeros(B, dtype=np.int64)
                for c, r in zip(codes, radix):
                    key = key * r + (c + 1)
                distinct, first, inverse = np.unique(key, return_index=True, return_inverse=True)
                return distinct.tolist(), inverse.reshape(B), first
        columns = [at[v].tolist() if v in at else self._key_column(evs, v) for v in keyvars]
        keys = list(zip(*columns)) if columns else [()] * B
        position: dict[tuple, int] = {}
        inverse = np.fromiter((position.setdefault(key, len(position)) for key in keys), dtype=np.intp, count=B)
        first = np.unique(inverse, return_index=True)[1]
        return list(position), inverse, first

    def _key_column(self, evs: Sequence[Mapping[str, np.ndarray | int]], var: str) -> list:
        """Each row's evidence on ``var`` as a hashable key: its code, or its weights frozen."""
        if type(evs) is not _EvidenceRows:  # a list of dicts (the numpy path, often one row)
            values = [ev.get(var) for ev in evs]
            return [-1 if e is None else e if e.__class__ is int else _freeze(e) for e in values]
        codes = self._codes(evs, var)
        if (codes == -2).any():
            return [_freeze(evs[r][var]) if c == -2 else c for r, c in enumerate(codes.tolist())]
        return codes.tolist()

    def _moved_findings(self, evs: Sequence[Mapping[str, np.ndarray | int]], sliced: set[str],
                        cpts: Mapping[str, np.ndarray]) -> list[str]:
        """Findings with a context parent that act like cause-only findings in this batch.

        When no row gives the finding as weights and all its context parents are sliced,
        its likelihood is a row of :meth:`context_likelihood_table` picked by the row's
        context states: :meth:`_findings_product` multiplies it in like a cause-only
        finding (rows that do not observe it multiply by nothing) instead of the context
        block carrying it.
        """
        candidates = [f for f in self.with_context
                      if cpts[f] is self.cpts[f] and all(p in sliced for p in self._context_parents[f])]
        if type(evs) is not _EvidenceRows:  # a list of dicts (the numpy path, often one row): walk them
            return [f for f in candidates if any(f in ev for ev in evs)
                    and all(isinstance(ev.get(f), (int, np.integer)) or f not in ev for ev in evs)]
        out = []
        for f in candidates:
            codes = evs.codes(f)
            if (codes != -1).any() and not (codes == -2).any():
                out.append(f)
        return out

    def _moved_single(self, ev: Mapping[str, np.ndarray | int]) -> list[str]:
        """:meth:`_moved_findings` for one evidence set, with its cached context block."""
        return self._moved_findings([ev], set(self._sliced_for([ev])), self.cpts)

    def _separated_findings(self, evs: Sequence[Mapping[str, np.ndarray | int]], sliced: set[str],
                            moved: Sequence[str]) -> list[str]:
        """Findings with a context parent whose table the compiled path splits in two.

        A finding that the context factors carry (not moved, not every context parent
        sliced) and that has a state whose probability is one number per context
        configuration times one per cause (:meth:`_separable`: a normal result in a
        noisy-max table) is *separated* when every row either does not observe it or
        observes it in such a state. Its part over
        the causes then joins the kernel's per-cause factors and only its part over its
        context parents stays in the context factors, so the causes it shares with a summed
        context variable (chronic kidney disease, say) no longer widen that group. Which
        rows separate a finding is part of :meth:`_coarse_signatures`, so a row takes the same
        steps alone or in a batch.
        """
        out = []
        for f in self.with_context:
            if f in moved or all(p in sliced for p in self._context_parents[f]):
                continue
            ok = self._separable(f)[0]
            if not ok.any():  # none of its states splits: always whole, observed or not
                continue
            codes = self._codes(evs, f)
            if ((codes == -1) | ((codes >= 0) & ok[np.maximum(codes, 0)])).all():
                out.append(f)
        return out

    def _separable(self, finding: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which states of a finding with a context parent factor into context times causes.

        Returns ``(ok, factors, context)``: ``ok[s]`` when, for every configuration ``g`` of
        the finding's context parents, P(finding = s | g, causes) is
        ``context[s, g] * prod over present causes of factors[s, cause]`` (:func:`_product_form`,
        with the same per-cause factors for every ``g``; ``g`` in C order over the context
        parents). Built once per finding, from its rows in :meth:`_finding_tables`.
        """
        hit = self._separable_cache.get(finding)
        if hit is None:
            static, base, sizes, _, product = self._finding_tables()
            n_states = len(self.variables[finding].states)
            ctx = self._context_parents[finding]
            configs = int(np.prod([len(self.variables[p].states) for p in ctx]))
            table = static[base[finding]: base[finding] + configs * n_states * sizes[finding]].reshape(
                configs, n_states, sizes[finding])
            is_product, factors, constant = product[finding]
            is_product = is_product.reshape(configs, n_states)
            factors = factors.reshape(configs, n_states, self.k)
            constant = constant.reshape(configs, n_states)
            empty = ~table.any(axis=2)  # a state impossible in a configuration: zero whatever the causes
            ok = np.zeros(n_states, dtype=bool)
            shared = np.ones((n_states, self.k))
            for st in range(n_states):
                live = ~empty[:, st]
                if not live.any() or not is_product[live, st].all():
                    continue
                first = factors[live, st][0]
                if np.all(np.abs(factors[live, st] - first) <= PRODUCT_FORM_TOLERANCE * np.abs(first)):
                    ok[st] = True
                    shared[st] = first
            context = np.where(empty, 0.0, constant).T.reshape((n_states,) + tuple(
                len(self.variables[p].states) for p in ctx))
            hit = self._separable_cache[finding] = (ok, shared, np.ascontiguousarray(context))
        return hit

    def _separated_weights(self, evs: Sequence[Mapping[str, np.ndarray | int]], finding: str) -> np.ndarray:
        """``(rows, *context parents' states)``: a separated finding's part over its context parents
        (:meth:`_separable`), ones where a row does not observe it."""
        context = self._separable(finding)[2]
        codes = self._codes(evs, finding)
        out = np.ones((len(evs),) + context.shape[1:])
        seen = codes >= 0
        out[seen] = context[codes[seen]]
        return out

    def _sliced_for(self, evs: Sequence[Mapping[str, np.ndarray | int]]) -> list[str]:
        """The context variables sliced out of the tables for these evidence sets.

        When every context variable is known as one state in every row, all of them
        are: the block is then a product of table entries, and it repeats across a
        population (a few hundred patterns), so it is cached. Otherwise only the root
        context variables (no parents: every cause's table has them, so summing them is
        dear) are sliced where known, and every other context variable is weighted: one-hot
        when known, its weights when soft, ones when not known. A row with partial context
        then takes the same steps whichever of those variables it knows, so rows with
        different patterns share a pass (:meth:`_posterior_many`), and a row's numbers are
        the same alone or in a batch.
        """
        if type(evs) is _EvidenceRows:
            known = evs.matrix[:, [self._code_column[v] for v in self.context]].min(axis=0, initial=0) >= 0
            if known.all():
                return list(self.context)
            return [v for v in self._context_roots if known[self.context.index(v)]]
        ints = (int, np.integer)
        if all(isinstance(ev.get(v), ints) for ev in evs for v in self.context):
            return list(self.context)
        return [v for v in self._context_roots if all(isinstance(ev.get(v), ints) for ev in evs)]

    def context_likelihood_table(self, finding: str) -> np.ndarray:
        """``(n_context_configs * n_states, 2^k)`` for a finding with a context parent.

        Row ``config * n_states + state`` is P(finding = state | cause configuration)
        with its context parents at ``config`` (their states in C order). Built once.
        """
        tab = self._ctx_lik.get(finding)
        if tab is None:
            var = self.variables[finding]
            ctx = self._context_parents[finding]
            hid = [p for p in var.parents if p in self.hidx]
            axes = [1 + var.parents.index(p) for p in ctx] + [0] + [1 + var.parents.index(p) for p in hid]
            cpt = np.transpose(self.cpts[finding], axes)
            n_states = len(var.states)
            flat = cpt.reshape(-1, n_states, 2 ** len(hid))
            tab = np.ascontiguousarray(flat[:, :, self._parent_columns(finding)].reshape(-1, 2**self.k))
            self._ctx_lik[finding] = tab
        return tab

    def _dead_prefix(self, factors: list[tuple[tuple[int, ...], np.ndarray]], B: int) -> np.ndarray:
        """Per row, how many leading hidden variables are ruled out (some factor is 0 when present).

        :func:`enumeration_order` puts first the variables that the context can rule
        out (no pregnancy when not pregnant); their configurations with the variable
        present carry no weight, and the live ones are a prefix of the cause space.
        Returns an integer array, one entry per row.
        """
        m = np.zeros(B, dtype=np.intp)
        alive = np.ones(B, dtype=bool)
        for j in range(self.k):
            dead = np.zeros(B, dtype=bool)
            for idx, table in factors:
                if j in idx:
                    dead |= ~np.take(table, 1, axis=idx.index(j) + 1).reshape(B, -1).any(axis=1)
            alive &= dead
            if not alive.any():
                break
            m += alive
        return m

    def _grown_blocks(self, factors: list[tuple[tuple[int, ...], np.ndarray]], scale: np.ndarray,
                      m: int) -> np.ndarray:
        """Context blocks ``(rows, 2^(k-m))`` grown from :meth:`_context_factors`.

        The first ``m`` hidden variables are ruled out in every row
        (:meth:`_dead_prefix`), so only the first 2^(k-m) configurations (those variables
        absent) are computed. Each row's vector starts over no causes and doubles as
        each hidden variable joins it, from the last (fastest-varying) to the first, so
        doubling is two contiguous products; a factor is multiplied in as soon as all
        its variables have joined. Every step is elementwise, so a row's numbers do not
        depend on the other rows of the batch.
        """
        k = self.k
        B = scale.shape[0]
        singles: list[np.ndarray | None] = [None] * k
        at_level: list[list[np.ndarray]] = [[] for _ in range(k)]
        for idx, table in factors:
            if idx[0] < m:  # keep the entries with the ruled-out variables absent
                table = table[(slice(None),) + tuple(0 if p < m else slice(None) for p in idx)]
                idx = tuple(p for p in idx if p >= m)
                if not idx:
                    scale = scale * table
                    continue
            if len(idx) == 1:
                singles[idx[0]] = table if singles[idx[0]] is None else singles[idx[0]] * table
            else:
                w_shape, f_shape = self._run_shapes(idx)
                at_level[idx[0]].append((w_shape, table.reshape((B,) + f_shape)))
        w = scale.reshape(B, 1).astype(float)
        for d in range(k - 1, m - 1, -1):
            n = w.shape[1]
            grown = np.empty((B, 2 * n))
            s = singles[d]
            if s is None:
                grown[:, :n] = w
                grown[:, n:] = w
            else:
                np.multiply(w, s[:, 0:1], out=grown[:, :n])
                np.multiply(w, s[:, 1:2], out=grown[:, n:])
            w = grown
            for w_shape, factor in at_level[d]:  # broadcast over the variables it does not have
                w.reshape((B,) + w_shape)[...] *= factor
        return w

    def _run_shapes(self, idx: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes that line a factor over ``idx`` up with a vector over hidden[idx[0]:].

        The variables from idx[0] on fall in runs, alternately in the factor and not; each
        run is one axis, of size 2^length in the vector, and in the factor 2^length or 1
        (broadcast). Multiplying in place with these shapes is the same product, entry by
        entry, as gathering the factor over the whole vector, without the gather.
        """
        hit = self._runs.get(idx)
        if hit is None:
            inside = set(idx)
            w_shape: list[int] = []
            f_shape: list[int] = []
            prev = None
            for v in range(idx[0], self.k):
                flag = v in inside
                if flag == prev:
                    w_shape[-1] *= 2
                    f_shape[-1] *= 2 if flag else 1
                else:
                    w_shape.append(2)
                    f_shape.append(2 if flag else 1)
                prev = flag
            hit = (tuple(w_shape), tuple(f_shape))
            self._runs[idx] = hit
        return hit

    def _findings_product(self, evs: Sequence[Mapping[str, np.ndarray | int]], m: int = 0,
                          tables: Mapping[str, np.ndarray] | None = None,
                          moved: Sequence[str] = ()) -> np.ndarray | None:
        """(rows, 2^(k-d)): the product of the cause-only findings' likelihoods, or None.

        A finding whose first parent is hidden[d] is a function of hidden[d:] only, whose
        values are the first 2^(k-d) entries of its likelihood table rows; with the first
        ``m`` variables ruled out, those of hidden[max(d, m):]. Findings are grouped in
        *bands* by that level (:meth:`_band_of`): each wide level is a band, the narrow
        levels share one. A row's findings in one band are multiplied together into one
        vector (:meth:`_band_row`), which depends only on which states they take and is
        cached: in a population most rows repeat a few combinations (most labs normal),
        so a row costs about one product per band. The running product is then widened
        band by band, from the narrowest to the widest.

        Every step is the same for a row alone and within a batch (a band a row has no
        finding in multiplies by nothing), so a row's numbers never depend on its
        neighbours.
        """
        k = self.k
        B = len(evs)
        info = self._band_info(m)
        per_row: list[dict[int, list[tuple]]] = []
        for ev in evs:
            bands: dict[int, list[tuple]] = {}
            for f, e in ev.items():
                where = info.get(f)
                if where is None:
                    continue
                band, rank, level = where
                if tables and f in tables:  # redrawn table: over the whole live space
                    band, level = self._band_of(m, m), m
                key = int(e) if isinstance(e, (int, np.integer)) else np.asarray(e, dtype=float).tobytes()
                bands.setdefault(band, []).append((-level, rank, f, key, False))
            for f in moved:  # findings with a context parent, all of it sliced (:meth:`_moved_findings`)
                e = ev.get(f)
                if e is None:
                    continue
                index = 0
                for p in self._context_parents[f]:
                    index = index * len(self.variables[p].states) + int(ev[p])
                level = self._first_live_parent(f, m)
                key = index * len(self.variables[f].states) + int(e)
                bands.setdefault(self._band_of(level, m), []).append(
                    (-level, len(info) + self.with_context.index(f), f, key, True))
            per_row.append(bands)
        levels = sorted({b for bands in per_row for b in bands}, reverse=True)
        cache = not tables
        product: np.ndarray | None = None
        narrow = self._band_of(k - 1, m)
        for band in levels:
            width = 2 ** (k - band)
            if band == narrow:  # always the first: the narrow findings of every row, finding by finding
                product = self._band_products([bands.get(band, []) for bands in per_row], band, tables)
                continue
            if product is None:
                product = np.ones((B, width))
                for r, bands in enumerate(per_row):
                    items = bands.get(band)
                    if items:
                        product[r] = self._band_row(m, band, items, tables, cache)
                continue
            P = product.shape[1]
            wide = np.empty((B, width))
            for r, bands in enumerate(per_row):
                items = bands.get(band)
                out = wide[r].reshape(-1, P)
                if items:
                    np.multiply(self._band_row(m, band, items, tables, cache).reshape(-1, P), product[r], out=out)
                else:
                    out[:] = product[r]
            product = wide
        return product

    def _band_products(self, items_per_row: list[list[tuple]], band: int,
                       tables: Mapping[str, np.ndarray] | None) -> np.ndarray:
        """``(rows, 2^(k - band))``: every row's findings in one band, multiplied.

        ``items_per_row`` holds each row's ``(-level, rank, finding, state key, moved)``.
        Findings are multiplied in a fixed order (narrowest level first, then the prior
        set's order), each narrower vector repeated across the wider one; each finding is
        gathered for all rows at once, with ones for a row that does not observe it (a
        product with 1 is exact), so a row's result is the same alone or in a batch. The
        narrow band goes through here directly (cheap, and its combinations rarely
        repeat); a wide band one row at a time, cached (:meth:`_band_row`).
        """
        k = self.k
        B = len(items_per_row)
        found: dict[tuple, dict[int, object]] = {}
        for r, items in enumerate(items_per_row):
            for neg_level, rank, f, e, is_moved in items:
                found.setdefault((neg_level, rank, f, is_moved), {})[r] = e
        prod: np.ndarray | None = None
        for (neg_level, _, f, is_moved), states in sorted(found.items()):
            size = 2 ** (k + neg_level)
            if tables and f in tables:
                tab = None
            else:
                tab = (self.context_likelihood_table(f) if is_moved else self.likelihood_table(f))[:, :size]
            index = np.full(B, -1, dtype=np.intp)
            soft: dict[int, bytes] = {}
            for r, e in states.items():
                if isinstance(e, int) and tab is not None:
                    index[r] = e
                else:
                    soft[r] = e  # type: ignore[assignment]
            rows = tab[np.maximum(index, 0)] if tab is not None else np.ones((B, size))
            rows[index < 0] = 1.0
            for r, e in soft.items():
                if tab is None:
                    rows[r] = self._gather(f, tables[f], e if isinstance(e, int) else np.frombuffer(e))[:size]  # type: ignore[index]
                else:
                    rows[r] = _weighted_rows(np.frombuffer(e)[None, :], tab)[0]
            if prod is None:
                prod = rows
            elif size > prod.shape[1]:
                prod = (rows.reshape(B, -1, prod.shape[1]) * prod[:, None, :]).reshape(B, -1)
            else:
                prod *= rows
        width = 2 ** (k - band)
        if prod is None:
            return np.ones((B, width))
        if prod.shape[1] < width:
            prod = np.tile(prod, (1, width // prod.shape[1]))
        return prod

    #: Levels at least this wide (2^(k-d) configurations) are bands of their own.
    WIDE_BAND = 4096
    #: Bytes of combined band vectors kept (least recently used dropped).
    BAND_CACHE_BYTES = 48 * 2**20

    def _band_of(self, level: int, m: int) -> int:
        """The band of a finding level: the level itself when wide, else the first narrow level."""
        narrow = max(self.k - (self.WIDE_BAND.bit_length() - 1) + 1, 0)
        return level if level < narrow else max(narrow, m)

    def _band_info(self, m: int) -> dict[str, tuple[int, int, int]]:
        """Cause-only finding -> (band, rank in the fixed multiplication order, level) when
        the first ``m`` hidden variables are ruled out."""
        hit = self._band_infos.get(m)
        if hit is None:
            hit = {}
            for rank, f in enumerate(self.cause_only):
                level = self._first_live_parent(f, m)
                hit[f] = (self._band_of(level, m), rank, level)
            self._band_infos[m] = hit
        return hit

    def _band_row(self, m: int, band: int, items: list[tuple], tables: Mapping[str, np.ndarray] | None,
                  cache: bool) -> np.ndarray:
        """The product of one row's findings in one band (:meth:`_band_products`), cached by
        the states they take when ``cache``."""
        items.sort()
        key = (m, band) + tuple((f, e) for _, _, f, e, _ in items)
        if cache:
            hit = self._band_cache.get(key)
            if hit is not None:
                return hit
        prod = self._band_products([items], band, tables)[0]
        if cache:
            self._band_cache.put(key, prod)
        return prod

    def _first_live_parent(self, finding: str, m: int) -> int:
        """Position of the finding's first hidden parent at or after ``m`` (``k - 1`` if none)."""
        key = (finding, m)
        hit = self._live_level.get(key)
        if hit is None:
            hit = min((self.hidx[p] for p in self.variables[finding].parents if self.hidx.get(p, -1) >= m),
                      default=self.k - 1)
            hit = max(hit, m) if hit < self.k else self.k - 1
            self._live_level[key] = hit
        return hit

    def _joints(self, evs: Sequence[Mapping[str, np.ndarray | int]],
                cpts: Mapping[str, np.ndarray] | None = None,
                tables: Mapping[str, np.ndarray] | None = None) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """P(C = c, evidence) for a batch of normalised evidence sets.

        Returns a list of ``(rows, W, m)``: the positions of some of the evidence sets,
        their joints over the first 2^(k-m) configurations (the first ``m`` hidden
        variables being ruled out in each of them; the rest of the cause space is zero),
        one entry per value of ``m`` in the batch. Context variables observed as one state
        in every row are sliced; the rest are weighted and summed out
        (:meth:`_context_factors`). Nothing is cached.
        """
        cpts = self.cpts if cpts is None else cpts
        B = len(evs)
        sliced = self._sliced_for(evs)
        moved = self._moved_findings(evs, set(sliced), cpts)
        blocks: list[tuple[np.ndarray, int] | None] = [None] * B
        keys: list[tuple] = []
        full = len(sliced) == len(self.context)
        if cpts is self.cpts and full:  # then blocks depend on the context pattern only: a population repeats a few
            keys = [self._block_key(ev) for ev in evs]
            for r, key in enumerate(keys):
                hit = self._block_cache.get(key)
                if hit is not None:
                    blocks[r] = hit
        todo = [r for r in range(B) if blocks[r] is None]
        grown: dict[int, tuple[np.ndarray, list[int]]] = {}  # m -> (blocks, their rows), to use in place
        if todo:
            part_evs = [evs[r] for r in todo] if len(todo) < B else evs
            factors, scale = self._context_factors(part_evs, sliced, cpts)
            dead = self._dead_prefix(factors, len(todo))
            for m in np.unique(dead).tolist():
                rows = np.flatnonzero(dead == m)
                part = factors if len(rows) == len(todo) else [(idx, t[rows]) for idx, t in factors]
                W = self._grown_blocks(part, scale[rows], m)
                grown[m] = (W, [todo[j] for j in rows.tolist()])
                for i, j in enumerate(rows.tolist()):
                    blocks[todo[j]] = (W[i], m)
                    if keys:
                        self._remember_block(keys[todo[j]], (W[i].copy(), m))
        out = []
        live = np.fromiter((b[1] for b in blocks), dtype=np.intp, count=B)  # type: ignore[index]
        for m in np.unique(live).tolist():
            rows = np.flatnonzero(live == m)
            product = self._findings_product([evs[r] for r in rows], m, tables, moved)
            if m in grown and grown[m][1] == rows.tolist():
                W = grown[m][0]  # computed here for exactly these rows: multiplied in place
                if product is not None:
                    W.reshape(len(rows), -1, product.shape[1])[...] *= product[:, None, :]
            elif product is None:
                W = np.stack([blocks[r][0] for r in rows.tolist()])  # type: ignore[index]
            else:  # cached blocks: one pass writes block times product (no stacked copy first)
                W = np.empty((len(rows), 2 ** (self.k - m)))
                P = product.shape[1]
                for i, r in enumerate(rows.tolist()):
                    np.multiply(blocks[r][0].reshape(-1, P), product[i], out=W[i].reshape(-1, P))  # type: ignore[index]
            out.append((rows, W, m))
        return out

    def _live_joint(self, ev: Mapping[str, np.ndarray | int]) -> tuple[np.ndarray, int]:
        """One evidence set's joint over its live configurations (see :meth:`_joints`), with the
        context block from the cache."""
        block, m = self._block(ev)
        product = self._findings_product([ev], m, moved=self._moved_single(ev))
        if product is None:
            return block.copy(), m
        return (block.reshape(-1, product.shape[1]) * product).reshape(-1), m

    def _factored_joint(self, ev: Mapping[str, np.ndarray | int],
                        cpts: Mapping[str, np.ndarray] | None = None,
                        tables: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """P(C = c, evidence) over the whole cause space for one evidence set."""
        if cpts is None or cpts is self.cpts:
            if not tables:
                live, m = self._live_joint(ev)
            else:
                block, m = self._block(ev)
                product = self._findings_product([ev], m, tables, self._moved_single(ev))
                live = block * product[0]
        else:
            (_, W, m), = self._joints([ev], cpts, tables)
            live = W[0]
        if m == 0:
            return live
        w = np.zeros(2**self.k)
        w[: live.size] = live
        return w

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
        cpts = {**self.cpts, **{v: tables[v] for v in structural}} if structural else self.cpts
        return self._factored_joint(ev, cpts, {v: t for v, t in tables.items() if v in self.cause_only})

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
        if len(self._cond_cache) > self.TABLE_CACHE:
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
        w = self._factored_joint(ev)
        return w, float(w.sum())

    def _marginal_weights(self, ev: Mapping[str, np.ndarray | int]) -> tuple[np.ndarray, float]:
        """P(h present, e) for every hidden h (engine order) and P(e), for normalised evidence.

        Raises
        ------
        EvidenceConflictError
            When the evidence has probability zero.
        """
        w, z = self._joint(ev)
        if not z > 0:
            raise self._conflict_error(ev)
        return marginals(w), z

    def posterior(self, evidence: Evidence) -> dict[str, float]:
        """P(hidden variable present | evidence) for every cause and leak.

        Raises
        ------
        EvidenceConflictError
            When the evidence has probability zero; names the conflicting items.
        """
        ev = self.normalise(evidence)
        if self._kernel() is not None:
            out = self._kernel_posteriors([ev])
            if not out[0, self.k] > 0:
                raise self._conflict_error(ev)
            return dict(zip(self.hidden, out[0, : self.k].tolist()))
        w, m = self._live_joint(ev)
        marg, z = row_marginals(w[None, :], with_total=True)
        if not z[0] > 0:
            raise self._conflict_error(ev)
        post = np.zeros(self.k)
        post[m:] = np.clip(marg[0] / z[0], 0.0, 1.0)
        return dict(zip(self.hidden, post.tolist()))

    def posterior_many(self, evidences: list[Evidence], *, rows_per_pass: int | None = None) -> np.ndarray:
        """Posteriors for many evidence sets at once, shape ``(n, n_hidden)``.

        Rows are sorted by which context variables they observe as one state, so that
        neighbours share the variables sliced out of the tables, and computed
        ``rows_per_pass`` at a time: with the compiled kernel (:mod:`alpnet.kernel`), their
        context factors together (512 rows by default) and their cause spaces one row at a
        time; without it, 16 rows at a time in numpy (:meth:`_joints`). A row's numbers are
        the same alone (:meth:`posterior`) or in any batch. An impossible evidence set gives
        a row of NaN instead of stopping the batch.
        """
        with one_blas_thread():
            if self._kernel() is not None:
                return self._kernel_posteriors(self._evidence_rows(evidences), rows_per_pass or 512)[:, : self.k]
            evs = [self.normalise(evidence) for evidence in evidences]
            return self._posterior_many(evs, rows_per_pass or 16)

    def _evidence_rows(self, evidences: Sequence[Evidence]) -> "_EvidenceRows":
        """Evidence sets as :class:`_EvidenceRows`, checked as :meth:`normalise` checks them.

        When every item names one state of a variable (the common case), the codes are
        looked up straight from the (variable, state) pairs, column by column when the
        sets come as an :class:`alpnet.evidence_columns.EvidenceTable`; otherwise every set
        goes through :meth:`normalise`, which gives its errors and its weights.
        """
        state_codes = getattr(evidences, "state_codes", None)  # an EvidenceTable: codes column by column
        if state_codes is not None:
            matrix = state_codes(self._state_index, self._code_column)
            if matrix is not None:
                return _EvidenceRows(None, matrix, self._code_column)
        names = list(chain.from_iterable(evidences))
        try:
            values = list(chain.from_iterable(map(dict.values, evidences)))
            codes = list(map(self._code_of.get, zip(names, values)))
        except TypeError:  # not dicts, or an unhashable value (a list of states, weights)
            codes = [None]
        if None in codes:
            evs = [self.normalise(evidence) for evidence in evidences]
            return _EvidenceRows.build(evs, self._code_column)
        return _EvidenceRows(None, _code_matrix(evidences, names, codes, self._code_column), self._code_column)

    #: Whether posteriors use the compiled kernel (:mod:`alpnet.kernel`, needs numba: the
    #: ``fast`` extra): None uses it when numba is installed and the environment variable
    #: ``ALPNET_COMPILED`` is not ``0``; True or False decides for this engine.
    compiled: bool | None = None

    def _kernel(self):
        """The compiled kernel's entry point, or None when posteriors are computed in numpy."""
        if self.compiled is False:
            return None
        return _compiled_kernel(required=self.compiled is True)

    def _posterior_many(self, evs: list[Mapping[str, np.ndarray | int]], rows_per_pass: int) -> np.ndarray:
        out = np.full((len(evs), self.k), np.nan)
        signature = [self._path_signature(ev) for ev in evs]
        order = sorted(range(len(evs)), key=lambda i: signature[i])
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and stop - start < rows_per_pass and signature[order[stop]] == signature[order[start]]:
                stop += 1
            idx = np.asarray(order[start:stop])
            for rows, W, m in self._joints([evs[i] for i in idx]):
                marg, z = row_marginals(W, with_total=True)
                ok = z > 0
                target = idx[rows][ok]
                out[target, :m] = 0.0
                out[target, m:] = np.clip(marg[ok] / z[ok, None], 0.0, 1.0)
            start = stop
        return out

    def _path_signature(self, ev: Mapping[str, np.ndarray | int]) -> tuple:
        """What decides the steps a row takes: rows with the same signature share a pass.

        Rows computed together must take the same path, so that a row's numbers never
        depend on its neighbours: the same context variables sliced (:meth:`_sliced_for`)
        and the same findings with a context parent carried by the context factors. A
        weighted variable takes one path whatever its evidence; evidence on a hidden
        variable multiplies by exactly 1 where it is absent.
        """
        get = ev.get
        # as :meth:`_sliced_for` decides for this row alone (normalised evidence: a state is an int)
        known = [get(v).__class__ is int for v in self.context]
        full = all(known)
        roots = [known[i] for i in self._root_positions]
        key: list[object] = [full] + roots
        for f, parents in self._signature_parents:
            e = get(f)
            if e is not None and e.__class__ is not int:
                key.append(2)  # soft: carried by the context factors
            elif full or all(is_root and known[i] for i, is_root in parents):
                key.append(0)  # moved out of the block when observed (:meth:`_moved_findings`)
            else:  # in the block when observed
                key.append(1 if e is not None else 0)
        return tuple(key)

    def _kernel_posteriors(self, evs: list[Mapping[str, np.ndarray | int]], rows_per_pass: int = 512) -> np.ndarray:
        """``(n, k + 1)``: every row's posteriors and, last, its P(evidence) (0 when impossible).

        Rows with the same :meth:`_coarse_signatures` get their context factors together
        (:meth:`_context_factors`, up to ``rows_per_pass`` rows; 16 when a root context
        variable is not known, whose factors span the whole cause space); each row's
        findings become factors taken from :meth:`_finding_tables`; the compiled kernel
        multiplies them out and sums the marginals.
        """
        posterior_rows = self._kernel()
        k = self.k
        out = np.empty((len(evs), k + 1))
        rows = evs if isinstance(evs, _EvidenceRows) else _EvidenceRows.build(evs, self._code_column)
        signature = self._coarse_signatures(rows)
        order = np.lexsort(signature.T[::-1])
        ordered = signature[order]
        starts = np.flatnonzero(np.r_[True, (ordered[1:] != ordered[:-1]).any(axis=1)]).tolist() + [len(evs)]
        all_roots = 1 + len(self._context_roots)
        for start, end in zip(starts[:-1], starts[1:]):
            limit = rows_per_pass if ordered[start, 1:all_roots].all() else min(rows_per_pass, 16)
            for lo in range(start, end, limit):
                idx = order[lo:min(lo + limit, end)]
                res = np.empty((len(idx), k + 1))
                posterior_rows(k, *self._kernel_arguments(rows.take(idx)), res)
                out[idx] = res
        return out

    def _coarse_signatures(self, rows: "_EvidenceRows") -> np.ndarray:
        """The compiled path's signature of every row, as the rows of an int8 matrix.

        As :meth:`_path_signature` (the same context variables sliced, the same findings
        moved or weighted), except that a finding with a context parent that is not moved is
        in the context factors whether or not the row observes it
        (:meth:`_context_factors` with ``every_finding``): whole (3), or split (1) when the
        row does not observe it or observes a state :meth:`_separable` splits (a finding
        none of whose states splits is always whole: 1).
        """
        known = rows.matrix[:, [self._code_column[v] for v in self.context]] >= 0
        full = known.all(axis=1)
        columns = [full] + [known[:, i] for i in self._root_positions]
        for f, parents in self._signature_parents:
            e = rows.codes(f)
            if all(is_root for _, is_root in parents):
                moved = full | known[:, [i for i, _ in parents]].all(axis=1)
            else:
                moved = full
            ok = self._separable(f)[0]
            whole = (e >= 0) & ~ok[np.maximum(e, 0)] if ok.any() else np.zeros(len(e), dtype=bool)
            columns.append(np.where(e == -2, 2, np.where(moved, 0, np.where(whole, 3, 1))))
        return np.column_stack(columns).astype(np.int8)

    def _kernel_arguments(self, evs: Sequence[Mapping[str, np.ndarray | int]]) -> tuple:
        """The arguments of :func:`alpnet.kernel.posterior_rows` (but ``k`` and ``out``) for rows
        that share a path."""
        B = len(evs)
        sliced = self._sliced_for(evs)
        factors, scale, m = self._kernel_context(evs, sliced)
        moved = self._moved_findings(evs, set(sliced), self.cpts)
        static, base, sizes, finding_scope, product = self._finding_tables()
        slot_of = {f: len(factors) + i for i, f in enumerate(self.cause_only)}
        for i, f in enumerate(moved):
            slot_of[f] = len(factors) + len(self.cause_only) + i
        moved_set = set(moved)
        slots = len(factors) + len(self.cause_only) + len(moved)
        source = np.full((B, slots), -1, dtype=np.int64)
        offset = np.zeros((B, slots), dtype=np.int64)
        scope = np.zeros((B, slots), dtype=np.int64)
        dynamic: list[np.ndarray] = []
        used = 0
        for j, (idx, table) in enumerate(factors):
            flat = np.ascontiguousarray(table).reshape(B, -1)
            dynamic.append(flat.ravel())
            source[:, j] = 1
            offset[:, j] = used + np.arange(B) * flat.shape[1]
            scope[:, j] = self._scope_id(idx)
            used += flat.size
        # finding by finding, over all rows: the state each row observes (-1: none, -2: weights);
        # a table row that is a product of one factor per cause (:func:`_product_form`: a
        # normal result, an absent symptom) joins the per-cause multipliers instead of a slot
        rows_of = np.arange(B)
        unary = np.ones((B, self.k))
        constant = np.ones(B)
        for f, j in slot_of.items():
            codes = self._codes(evs, f)
            seen = codes != -1
            if not seen.any():
                continue
            size, start, n_states = sizes[f], base[f], len(self.variables[f].states)
            first = np.zeros(B, dtype=np.int64)
            if f in moved_set:  # its rows of the table are those of each row's context states
                config = np.zeros(B, dtype=np.int64)
                for p in self._context_parents[f]:
                    config = config * len(self.variables[p].states) + self._codes(evs, p)
                first = config * n_states
            hard = codes >= 0
            at_row = first + codes
            is_product, factor_of, constant_of = product[f]
            split = hard.copy()
            split[hard] = is_product[at_row[hard]]
            if split.any():
                unary[split] *= factor_of[at_row[split]]
                constant[split] *= constant_of[at_row[split]]
                hard &= ~split
            scope[hard | (codes == -2), j] = finding_scope[f]
            source[hard, j] = 0
            offset[hard, j] = start + at_row[hard] * size
            for r in rows_of[codes == -2].tolist():  # weights over its states: a row of their own
                e = np.asarray(evs[r][f], dtype=float)
                rows = static[start + first[r] * size: start + (first[r] + len(e)) * size].reshape(len(e), size)
                dynamic.append(_weighted_rows(e[None, :], rows)[0])
                source[r, j] = 1
                offset[r, j] = used
                used += size
        for f in self._separated_findings(evs, set(sliced), moved):
            codes = self._codes(evs, f)
            seen = codes >= 0
            if seen.any():
                unary[seen] *= self._separable(f)[1][codes[seen]]
        dyn = np.concatenate(dynamic) if dynamic else np.zeros(1)
        highs, lows, levels = self._scope_arrays()
        return m, scale * constant, unary, source, offset, scope, static, dyn, highs, lows, levels

    #: Bytes of one-row context factors kept for :meth:`posterior` (least recently used dropped).
    KERNEL_CONTEXT_BYTES = 16 * 2**20

    def _kernel_context(self, evs: Sequence[Mapping[str, np.ndarray | int]], sliced: list[str]
                        ) -> tuple[list[tuple[tuple[int, ...], np.ndarray]], np.ndarray, np.ndarray]:
        """Context factors, scale and ruled-out prefix of rows that share a path.

        For one row (:meth:`posterior`) they are kept per context evidence (as the context
        blocks of the numpy engine are), so asking about the same patient again, or about
        another with the same context, skips the contraction; batches compute them afresh.
        """
        key = self._block_key(evs[0]) if len(evs) == 1 else None
        if key is not None:
            hit = self._kernel_context_cache.get(key)
            if hit is not None:
                return hit
        factors, scale = self._context_factors(evs, sliced, self.cpts, every_finding=True)
        factors = [(idx, np.ascontiguousarray(table)) for idx, table in factors]
        m = self._dead_prefix(factors, len(evs)).astype(np.int64)
        result = (factors, np.asarray(scale, dtype=float), m)
        if key is not None:
            self._kernel_context_cache.put(key, result)
        return result

    def _finding_tables(self) -> tuple[np.ndarray, dict[str, int], dict[str, int], dict[str, int],
                                       dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Every finding's table over its hidden parents, flat, for the kernel (built once).

        Returns ``(static, base, size, scope, product)``: a finding's row for state ``s`` (and,
        for a finding with a context parent, context configuration ``g``, C order over its
        context parents) is row ``g * n_states + s`` of its table; it starts at
        ``base[f] + (g * n_states + s) * size[f]`` in ``static`` and is in C order over its
        hidden parents in engine order (scope ``scope[f]``). ``product[f]`` is
        :func:`_product_form` of its table: which rows are a product of one factor per cause.
        """
        if self._kernel_tables is not None:
            return self._kernel_tables
        chunks, base, sizes, scopes, product = [], {}, {}, {}, {}
        used = 0
        for f in self.cause_only + self.with_context:
            var = self.variables[f]
            hid = sorted((p for p in var.parents if p in self.hidx), key=self.hidx.__getitem__)
            ctx = self._context_parents.get(f, []) if f in self.with_context else []
            axes = [1 + var.parents.index(p) for p in ctx] + [0] + [1 + var.parents.index(p) for p in hid]
            table = np.ascontiguousarray(np.transpose(self.cpts[f], axes), dtype=float).reshape(-1, 2 ** len(hid))
            chunks.append(table.ravel())
            product[f] = _product_form(table, [self.hidx[p] for p in hid], self.k)
            base[f] = used
            sizes[f] = 2 ** len(hid)
            scopes[f] = self._scope_id(tuple(self.hidx[p] for p in hid))
            used += table.size
        self._kernel_tables = (np.concatenate(chunks) if chunks else np.zeros(1), base, sizes, scopes, product)
        return self._kernel_tables

    def _scope_id(self, positions: tuple[int, ...]) -> int:
        """The kernel's number for a factor scope (ascending hidden positions)."""
        hit = self._scopes.get(positions)
        if hit is None:
            from .kernel import scope_tables

            hit = self._scopes[positions] = len(self._scopes)
            self._scope_parts.append(scope_tables(positions, self.k))
            self._scope_stack = None
        return hit

    def _scope_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`alpnet.kernel.scope_tables` of every scope seen, stacked."""
        if self._scope_stack is None:
            if not self._scope_parts:
                self._scope_id(())
            self._scope_stack = tuple(np.ascontiguousarray(np.stack([p[i] for p in self._scope_parts]))
                                      for i in range(3))  # type: ignore[assignment]
        return self._scope_stack  # type: ignore[return-value]

    def prior(self, evidence: Evidence) -> dict[str, float]:
        """P(hidden variable present | the context part of the evidence only)."""
        ev = self.normalise(evidence)
        ctx = {v: e for v, e in ev.items() if v in self.context}
        w, z = self._joint(ctx)
        if not z > 0:
            raise self._conflict_error(ctx)
        marg = np.clip(marginals(w) / z, 0.0, 1.0)
        return dict(zip(self.hidden, marg.tolist()))

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


_KERNEL: list = []


def _compiled_kernel(*, required: bool = False):
    """:func:`alpnet.kernel.posterior_rows`, or None when numba is not installed or the
    environment variable ``ALPNET_COMPILED`` is ``0``; with ``required``, the kernel or an
    error."""
    if required:
        try:
            from .kernel import posterior_rows
        except ImportError as exc:
            raise AlpnetError("the compiled engine needs numba: pip install 'alpnet[fast]'") from exc
        return posterior_rows
    if not _KERNEL:
        import os

        fn = None
        if os.environ.get("ALPNET_COMPILED", "1").strip() != "0":
            try:
                from .kernel import posterior_rows as fn
            except ImportError:  # numba is the optional extra 'fast'
                fn = None
        _KERNEL.append(fn)
    return _KERNEL[0]


_THREADPOOLS: ThreadpoolController | None = None


def one_blas_thread():
    """Context manager: BLAS runs on one thread inside it.

    The engine's matrix products are narrow (a few columns) and memory-bound; on a
    small machine whose other core is busy, a second BLAS thread waiting for it turns
    a 60 µs dot product into milliseconds. Heavy entry points (ranking, plans,
    batches) run inside this.
    """
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


def enumeration_order(pset: PriorSet, cpts: Mapping[str, np.ndarray]) -> list[str]:
    """The engine's order of the hidden variables (the first varies slowest).

    First come the variables that the context can rule out (a zero probability of
    being present for some parent configuration: no pregnancy in a man), those in
    more tables first: when a batch of cases rules them out, the rest of the cause
    space is a prefix and is all that is computed (:meth:`Engine._dead_prefix`).
    The joint is grown from the last variable to the first, and a factor is
    multiplied in once its first variable has joined, at a cost of 2^(k - its
    position), so then come the variables in the fewest tables: chosen greedily,
    the next place goes to the variable in the fewest remaining tables, whose tables
    are then set aside. Ties keep the prior set's order.
    """
    hidden = list(pset.hidden)
    inside = set(hidden)
    factors = []
    for name, var in pset.variables.items():
        scope = {p for p in var.parents if p in inside}
        if name in inside:
            scope.add(name)
        if scope:
            factors.append(scope)

    def tables_with(h: str) -> int:
        return sum(1 for f in factors if h in f)

    can_be_ruled_out = [h for h in hidden if np.asarray(cpts[h])[1].min() == 0.0]
    order = sorted(can_be_ruled_out, key=lambda h: (-tables_with(h), hidden.index(h)))
    factors = [f - set(order) for f in factors if f - set(order)]  # as when they are ruled out
    remaining = [h for h in hidden if h not in order]
    while remaining:
        first = min(reversed(remaining), key=tables_with)
        factors = [f for f in factors if first not in f]
        remaining.remove(first)
        order.append(first)
    return order


#: Largest relative difference between a table row and its product form for the row to be
#: taken as one (:func:`_product_form`): rounding only.
PRODUCT_FORM_TOLERANCE = 1e-14


def _product_form(table: np.ndarray, positions: Sequence[int], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which rows of a finding's table are a product of one factor per hidden parent.

    In a noisy-OR or noisy-max table the lowest state (a normal result, an absent symptom)
    is reached only when no present cause pushes the finding up, so its row is
    ``P(lowest | no cause) * prod over present causes of P(cause does not push)``: one
    number per cause. The compiled kernel folds such a row into its per-cause multipliers
    at no cost, instead of multiplying the cause space by a wide factor. The test is
    numerical: the row rebuilt from its entries at no cause and at each single cause must
    match every entry to :data:`PRODUCT_FORM_TOLERANCE` (relative), and its entry at no
    cause must be positive.

    Parameters
    ----------
    table : ndarray, shape (rows, 2 ** len(positions))
        Rows in C order over the hidden parents (the first slowest).
    positions : sequence of int
        The parents' engine positions, ascending.
    k : int
        Number of hidden variables.

    Returns
    -------
    is_product : ndarray of bool, shape (rows,)
    factors : ndarray, shape (rows, k)
        Per row, the factor of each hidden variable when present (1 for a non-parent).
    constant : ndarray, shape (rows,)
        The row's entry with no cause present.
    """
    rows, n = table.shape[0], len(positions)
    constant = table[:, 0].copy()
    factors = np.ones((rows, k))
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, p in enumerate(positions):
            factors[:, p] = table[:, 1 << (n - 1 - i)] / constant
        rebuilt = constant[:, None]
        for p in reversed(positions):  # the last parent varies fastest
            rebuilt = np.concatenate([rebuilt, rebuilt * factors[:, p, None]], axis=1)
        close = np.abs(rebuilt - table) <= PRODUCT_FORM_TOLERANCE * np.abs(table)
    is_product = (constant > 0) & np.isfinite(factors).all(axis=1) & close.all(axis=1)
    factors[~is_product] = 1.0
    return is_product, factors, np.where(is_product, constant, 1.0)


def _state(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _state_code(e: np.ndarray | int | None) -> int:
    """A normalised evidence value as a code: its state, -1 when absent, -2 for weights."""
    if e is None:
        return -1
    if isinstance(e, (int, np.integer)):
        return int(e)
    return -2


def _state_codes(values: Sequence[np.ndarray | int | None]) -> np.ndarray:
    """:func:`_state_code` of every value, as an int64 array."""
    return np.fromiter((v if v.__class__ is int else _state_code(v) for v in values), dtype=np.int64,
                       count=len(values))


def _code_matrix(evs: Sequence[Mapping], names: list[str], codes: Sequence[int] | np.ndarray,
                 column: Mapping[str, int]) -> np.ndarray:
    """``(rows, variables)`` state codes, -1 where a row has none: ``names`` and ``codes`` are
    every row's items in turn (``evs`` gives how many each row has)."""
    at = np.fromiter(map(column.__getitem__, names), dtype=np.int64, count=len(names))
    rows = np.repeat(np.arange(len(evs)), np.fromiter(map(len, evs), dtype=np.int64, count=len(evs)))
    matrix = np.full((len(evs), len(column)), -1, dtype=np.int64)
    matrix[rows, at] = codes
    return matrix


class _EvidenceRows(Sequence):
    """Normalised evidence sets with every variable's state codes worked out once, as a
    matrix: row ``i``, column ``column[var]`` holds :func:`_state_code` of ``self[i].get(var)``.

    :meth:`Engine._codes` reads a variable's codes from it instead of from the dicts. Made
    from the codes alone (:meth:`Engine._evidence_rows`), a row's dict is made from its codes
    when it is asked for.
    """

    def __init__(self, evs: Sequence[Mapping[str, np.ndarray | int]] | None, matrix: np.ndarray,
                 column: Mapping[str, int]):
        self.evs = evs
        self.matrix = matrix
        self.column = column

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def __getitem__(self, i):  # type: ignore[override]
        if self.evs is not None:
            return self.evs[i]
        return {var: int(c) for var, c in zip(self.column, self.matrix[i].tolist()) if c >= 0}

    @classmethod
    def build(cls, evs: Sequence[Mapping[str, np.ndarray | int]], column: Mapping[str, int]) -> "_EvidenceRows":
        names = list(chain.from_iterable(evs))
        values = list(chain.from_iterable(map(dict.values, evs))) if all(type(ev) is dict for ev in evs) \
            else [ev[name] for ev in evs for name in ev]
        codes = values if set(map(type, values)) <= {int} else _state_codes(values)  # else weights among them
        return cls(evs, _code_matrix(evs, names, codes, column), column)

    def take(self, idx: np.ndarray) -> "_EvidenceRows":
        """The rows at ``idx``, with their codes."""
        evs = None if self.evs is None else [self.evs[i] for i in idx.tolist()]
        return _EvidenceRows(evs, self.matrix[idx], self.column)

    def codes(self, var: str) -> np.ndarray:
        return self.matrix[:, self.column[var]]


def _block_size(block: object) -> int:
    """Bytes of a cached context block: an array, or a (live block, prefix) pair."""
    return (block[0] if isinstance(block, tuple) else block).nbytes  # type: ignore[index,union-attr]


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
    has length k and is unnormalised like ``w``.
    """
    return row_marginals(w[None, :])[0]


def row_marginals(W: np.ndarray, *, with_total: bool = False):
    """:func:`marginals` of every row of ``W``, shape ``(n, 2^k) -> (n, k)``.

    Each row is viewed as a 2^a x 2^b matrix (a = k // 2): its row sums are the
    weights of the configurations of the first a variables, its column sums those
    of the last b, and a product with a small 0/1 matrix of each half's bits gives
    the marginals. Two passes over the data. The short products and the totals are
    taken row by row, so that a row's result never depends on the other rows of the
    batch (numpy may order a reduction differently for different batch sizes). With
    ``with_total``, also each row's total, ``(n,)``.
    """
    n, size = W.shape
    k = size.bit_length() - 1
    a = k // 2
    b = k - a
    M = W.reshape(n, 2**a, 2**b)
    first, second = M.sum(axis=2), M.sum(axis=1)
    bits_a, bits_b = _bit_matrix(a), _bit_matrix(b)
    out = np.empty((n, k))
    total = np.empty(n)
    for r in range(n):
        out[r, :a] = first[r] @ bits_a
        out[r, a:] = second[r] @ bits_b
        total[r] = first[r].sum()
    return (out, total) if with_total else out


_BIT_MATRICES: dict[int, np.ndarray] = {}


def _bit_matrix(m: int) -> np.ndarray:
    """(2^m, m) 0/1 matrix: row c holds the bits of configuration c, the first bit slowest."""
    hit = _BIT_MATRICES.get(m)
    if hit is None:
        hit = np.indices((2,) * m).reshape(m, -1).T.astype(np.float64) if m else np.zeros((1, 0))
        _BIT_MATRICES[m] = hit
    return hit


def _weighted_rows(weights: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``weights @ table`` as a fixed sequence of elementwise products (no BLAS blocking)."""
    out = weights[:, 0:1] * table[0]
    for s in range(1, table.shape[0]):
        out += weights[:, s:s + 1] * table[s]
    return out

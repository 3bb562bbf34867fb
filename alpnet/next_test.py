"""Which test is worth doing next: exact expected information gain, costs, plans.

For evidence ``e`` and a candidate test ``T`` with outcomes ``t``, the expected
information gain about the joint ``C`` of all causes (and the leak) is

    I(C; T | e) = H(C | e) - sum_t P(t | e) H(C | e, T = t)      (bits)

With the cause space enumerated (:mod:`alpnet.engine`), every quantity is a
matrix product. For a finding whose parents are causes only, the joint of the
causes with each outcome is ``p * L[t]`` (``L`` the finding's likelihood table,
``p = P(C | e)``), so for all such tests at once

    P(t | e)                = L @ p
    sum_c q log q (unnorm.) = (L * log L) @ p + L @ (p * log p)

and the posterior of every cause after every outcome is ``L @ (p[:, None] * bits)``.
A finding that depends only on the last causes in the engine's order needs ``p`` summed
over the first ones, so most of these products are short. Findings with a context parent the evidence leaves open (PSA by sex and known
cancer) and history questions get their outcome joints from the engine, exactly.

Two-step lookahead is exact: ``I(C; T1, T2 | e) = I(C; T1 | e) + E_t1 I(C; T2 | e, t1)``,
with the second test chosen for each outcome of the first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .checks import check_number
from .errors import AlpnetError, CaseError
from .engine import marginals, one_blas_thread
from .priors import is_question, is_test

__all__ = ["TestRanker", "LN2"]

LN2 = float(np.log(2.0))


def _live_length(w: np.ndarray) -> int:
    """The shortest power-of-two prefix of ``w`` outside which every entry is zero.

    When the context rules out the first hidden variables, the weight sits in a prefix
    of the cause space (see :func:`alpnet.engine.enumeration_order`); products over the
    cause space need only that prefix.
    """
    n = w.shape[-1]
    while n > 1 and not w[..., n // 2: n].any():
        n //= 2
    return n


def _one_blas_thread(method):
    """Run a ranking entry point with BLAS on one thread (see :func:`alpnet.engine.one_blas_thread`)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return method(*args, **kwargs)

    return wrapper


class _Folds:
    """A matrix over the cause space summed over its first causes, for every needed length.

    ``to(size)`` sums the rows of ``X`` (length L, the first cause slowest) over all but
    the last log2(size) causes: the halves are added, repeatedly, and each length is kept.
    """

    def __init__(self, X: np.ndarray):
        self._by_size = {X.shape[0]: X}
        self._smallest = X

    def to(self, size: int) -> np.ndarray:
        hit = self._by_size.get(size)
        while hit is None:
            x = self._smallest
            half = x.shape[0] // 2
            self._smallest = x[:half] + x[half:]
            self._by_size[half] = self._smallest
            hit = self._by_size.get(size)
        return hit


def _xlogx(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = x[pos] * np.log(x[pos])
    return out


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, 1.0)
    return -(_xlogx(p) + _xlogx(1.0 - p)) / LN2


@dataclass
class _Scored:
    name: str
    kind: str
    states: list[str]
    p: np.ndarray  # P(outcome | e)
    gain_joint: float  # I(C; T | e) in bits
    post: np.ndarray  # (n_states, n_hidden): P(h present | e, outcome); NaN where not computed
    rows: np.ndarray  # (n_states, 2^k): P(outcome | C = c, e)


class TestRanker:
    """Ranks tests and questions for a compiled model.

    Parameters
    ----------
    model : alpnet.Model
    """

    #: Causes whose posterior after every outcome is computed up front; any other cause
    #: that could still enter an outcome's top list (its bound P(h | e) / P(t | e) says
    #: so) is computed as well, so the reported leading causes are exact.
    TOP_COLUMNS = 9

    def __init__(self, model: Any):
        self.model = model
        self.engine = model.engine
        self.pset = model.priors
        variables = self.pset.variables
        self.tests = [n for n, v in variables.items() if is_test(v)]
        self.questions = [n for n, v in variables.items() if is_question(v)]
        fast = [n for n in self.tests + self.questions if n in self.engine.cause_only]
        self._fast = fast
        self._K = self.engine.stack_likelihoods(fast)
        self._hcol = np.vstack([self.engine._conditional_table({}, n)[1] for n in fast]) if fast \
            else np.zeros((0, 2**self.engine.k))
        self._slices: dict[str, slice] = {}
        self._fast_row: dict[str, int] = {n: i for i, n in enumerate(fast)}
        self._level = {n: self.engine._first_live_parent(n, 0) for n in fast}
        start = 0
        for n in fast:
            size = len(variables[n].states)
            self._slices[n] = slice(start, start + size)
            start += size

    # ---------------------------------------------------------------- costs
    def cost_of(self, test: str, drawn: frozenset[str] = frozenset()) -> tuple[float, float]:
        """(cost, burden) of a test; a draw already made is not paid again."""
        costs = self.pset.costs
        if not costs:
            return float("nan"), float("nan")
        entry = costs["tests"].get(test)
        if entry is None:
            return 0.0, 0.0
        cost = entry["cost"].value
        burden = entry["burden"].value if entry["burden"] is not None else 0.0
        draw = entry["draw"]
        if draw is not None:
            d = costs["draws"][draw]
            if draw not in drawn:
                cost += d["cost"].value
            burden = max(burden, d["burden"].value)
        return float(cost), float(burden)

    # -------------------------------------------------------------- scoring
    def _table(self, ev: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray | float]:
        """(P(T | C, e), H(T | C = c) row or None) for a candidate."""
        if name in self._slices:
            return self._K[self._slices[name]], self._hcol[self._fast_row[name]]
        return self.engine._conditional_table(ev, name)

    def _score_candidates(self, w: np.ndarray, z: float, ev: Mapping[str, Any], names: list[str],
                          columns: list[int]) -> dict[str, _Scored]:
        """Outcome probabilities, the exact gain about C, and posteriors of ``columns`` after each outcome.

        ``I(C; T | e) = H(T | e) - sum_c P(c | e) H(T | C = c)``: per candidate, a product of its
        likelihood table with the matrix ``X = p * [1, bits of the columns]`` and one with its
        conditional entropies, no inference call and no logarithm of a 2^k-long array. A finding
        whose first cause parent is hidden[d] depends on hidden[d:] only, so ``X`` is first summed
        over the first d causes (:class:`_Folds`) and the products run on 2^(k-d) entries; only
        the live prefix of the cause space is used (:func:`_live_length`).
        """
        L = _live_length(w)  # configurations past L have weight zero (ruled out by the context)
        p = w[:L] / z
        bits = self.engine.bits[:L]
        X = np.empty((L, 1 + len(columns)))
        X[:, 0] = p
        if columns:
            np.multiply(p[:, None], bits[:, columns], out=X[:, 1:])
        out: dict[str, _Scored] = {}
        folded = _Folds(X)
        n_hidden = bits.shape[1]
        for n in names:
            if n in self._slices:
                # a finding whose first cause is hidden[d] depends on hidden[d:] only: its
                # table needs X summed over the first d causes, 2^(k-d) entries long
                sl = self._slices[n]
                size = min(L, 2 ** (self.engine.k - self._level[n]))
                Xf = folded.to(size)
                rows = self._K[sl]
                px = rows[:, :size] @ Xf
                hc = float(self._hcol[self._fast_row[n], :size] @ Xf[:, 0])
            else:
                rows, hcol = self.engine._conditional_table(ev, n)
                px, hc = rows[:, :L] @ X, float(hcol[:L] @ p)
            P = np.clip(px[:, 0], 0.0, None)
            post = np.full((len(P), n_hidden), np.nan)
            ok = P > 0
            post[np.ix_(ok, columns)] = px[ok, 1:] / P[ok, None]
            H_T = float(-_xlogx(P).sum() / LN2)
            out[n] = _Scored(n, self._kind(n), self.pset.variables[n].states, P, max(H_T - hc, 0.0), post, rows)
        return out

    def _complete_top(self, s: _Scored, p: np.ndarray, marg: np.ndarray, cause_idx: list[int], top: int) -> None:
        """Fill in any cause that could be among the ``top`` after some outcome (exact bound)."""
        bits = self.engine.bits
        ok = s.p > 0
        if not ok.any():
            return
        known = ~np.isnan(s.post[ok][:, cause_idx])
        vals = np.where(known, s.post[ok][:, cause_idx], -np.inf)
        kth = np.sort(vals, axis=1)[:, -min(top, len(cause_idx))]
        bound = marg[cause_idx][None, :] / s.p[ok][:, None]
        need = [cause_idx[j] for j in range(len(cause_idx)) if (~known[:, j] & (bound[:, j] >= kth)).any()]
        if need:
            L = _live_length(p)
            extra = s.rows[:, :L] @ (p[:L, None] * bits[:L, need])
            s.post[np.ix_(ok, need)] = extra[ok] / s.p[ok, None]

    def _kind(self, name: str) -> str:
        return "test" if name in self.tests else "question"

    # -------------------------------------------------------------- ranking
    def candidates(self, ev: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Tests and questions not yet in the evidence."""
        tests = [t for t in self.tests if t not in ev]
        questions = [q for q in self.questions if q not in ev]
        return tests, questions

    def _columns(self, marg: np.ndarray, cause_idx: list[int], extra: list[int]) -> list[int]:
        order = sorted(cause_idx, key=lambda i: -marg[i])[: self.TOP_COLUMNS]
        return sorted(set(order) | set(extra))

    @_one_blas_thread
    def rank(self, evidence: Mapping[str, Any], *, target: str | None = None, cost_weight: float = 0.0,
             lookahead: int = 1, drawn: frozenset[str] = frozenset(), top_causes: int = 3) -> pd.DataFrame:
        """Rank every test (and question) not yet observed; see :meth:`alpnet.Model.rank_tests`."""
        if target is not None and target not in self.pset.causes:
            raise CaseError(f"target: {target!r} is not a cause; accepted: {', '.join(self.pset.causes)}")
        lookahead = int(check_number("lookahead", lookahead, low=1, high=2, whole=True))
        cost_weight = check_number("cost_weight", cost_weight, low=0)
        if cost_weight > 0 and not self.pset.costs:
            raise AlpnetError("the prior set has no costs.yaml, so a cost weight cannot be applied")
        ev = self.engine.normalise(evidence)
        w, z = self.engine._joint(ev)
        if not z > 0:
            raise self.engine._conflict_error(ev)
        p = w / z
        marg = marginals(w) / z
        hidden = self.engine.hidden
        causes = self.pset.causes
        cause_idx = [hidden.index(c) for c in causes]
        H0 = float(-_xlogx(p).sum() / LN2)
        lead = causes[int(np.argmax(marg[cause_idx]))]
        li = hidden.index(lead)
        ti = hidden.index(target) if target is not None else None
        if ti is not None and marg[ti] in (0.0, 1.0):  # no outcome can move it: every gain would be 0
            raise CaseError(f"target: {target} is {'ruled out' if marg[ti] == 0 else 'certain'} by the case "
                            f"(posterior {marg[ti]:g}), so no test can tell anything more about it; accepted: a "
                            "cause whose posterior is between 0 and 1")
        tests, questions = self.candidates(ev)
        columns = self._columns(marg, cause_idx, [li] + ([ti] if ti is not None else []))
        scored = self._score_candidates(w, z, ev, tests + questions, columns)
        rows = []
        for name in tests + questions:
            s = scored[name]
            self._complete_top(s, p, marg, cause_idx, top_causes)
            post = s.post
            if ti is not None:
                after = np.where(s.p > 0, np.nan_to_num(post[:, ti]), 0.0)
                gain = max(float(_binary_entropy(np.array([marg[ti]]))[0] - s.p @ _binary_entropy(after)), 0.0) + 0.0
            else:
                gain = s.gain_joint
            change = float(s.p @ np.abs(np.nan_to_num(post[:, li], nan=marg[li]) - marg[li]))
            kind = s.kind
            cost, burden = self.cost_of(name, drawn) if kind == "test" else (0.0, 0.0)
            outcomes = {}
            for r, state in enumerate(s.states):
                if s.p[r] <= 0:
                    continue
                known = [i for i in cause_idx if not np.isnan(post[r, i])]
                order = sorted(known, key=lambda i: -post[r, i])[:top_causes]
                outcomes[state] = {"p": float(s.p[r]), "leading": {hidden[i]: float(post[r, i]) for i in order}}
            score = gain - cost_weight * (cost if np.isfinite(cost) else 0.0)
            rows.append({
                "test": name, "kind": kind, "label": self.pset.variables[name].label,
                "expected_information_gain_bits": gain, "cost": cost, "burden": burden, "score": score,
                "gain_per_cost": gain / cost if kind == "test" and cost and np.isfinite(cost) and cost > 0 else np.nan,
                "expected_change_leading": change, "outcomes": outcomes,
            })
        df = pd.DataFrame(rows, columns=["test", "kind", "label", "expected_information_gain_bits", "cost", "burden",
                                         "score", "gain_per_cost", "expected_change_leading", "outcomes"])
        if lookahead == 2:
            df = self._lookahead(df, ev, w, z, scored, target, cost_weight, drawn)
        is_q = df["kind"] == "question"
        tests_df = df[~is_q].sort_values(["score", "test"], ascending=[False, True], kind="mergesort")
        q_df = df[is_q].sort_values(["expected_information_gain_bits", "test"], ascending=[False, True], kind="mergesort")
        out = pd.concat([tests_df, q_df], ignore_index=True)
        out.attrs.update(entropy_bits=H0, leading_cause=lead, leading_probability=float(marg[li]), target=target,
                         cost_weight=cost_weight, lookahead=lookahead,
                         currency=(self.pset.costs or {}).get("currency"))
        return out

    def _lookahead(self, df: pd.DataFrame, ev, w, z, scored, target, cost_weight, drawn) -> pd.DataFrame:
        """Exact best two-test policy for each first test (tests only; questions are free and asked first).

        ``I(C; T1, T2 | e) = I(C; T1 | e) + sum_t1 P(t1 | e) I(C; T2 | e, t1)``. Every first
        outcome t1 gives an unnormalised vector ``u(C) = P(C, t1 | e)``; stacking them as the
        rows of U, for every second test T2 whose table P(T2 | C, e) does not depend on t1
        (every pair but two tests that share a context parent), ``K2 @ U.T`` gives the
        outcome masses and ``H(T2 | C) @ U.T`` the expected conditional entropy: two matrix
        products for all pairs. The remaining pairs get their tables from the engine under
        the evidence extended by t1, exactly.
        """
        L = _live_length(w)  # weight outside the first L configurations is zero
        p = w[:L] / z
        bits = self.engine.bits[:L]
        hidden = self.engine.hidden
        tests = list(self.candidates(ev)[0])
        fast = [t for t in tests if t in self._slices]
        slow = [t for t in tests if t not in self._slices]
        ti = hidden.index(target) if target is not None else None
        first_owner, first_state, U_rows = [], [], []
        for t in tests:
            rows = scored[t].rows
            for i in range(rows.shape[0]):
                first_owner.append(t)
                first_state.append(i)
            U_rows.append(rows[:, :L] * p[None, :])
        U = np.vstack(U_rows) if U_rows else np.zeros((0, len(p)))
        m1 = U.sum(axis=1)
        # second tests whose table does not change with the first outcome
        second: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for t in tests:
            rows, hcol = self._table(ev, t)
            second[t] = (rows[:, :L], hcol[:L])
        K_all = np.vstack([second[t][0] for t in tests]) if tests else np.zeros((0, len(p)))
        H_all = np.vstack([second[t][1] for t in tests]) if tests else np.zeros((0, len(p)))
        owner2 = [t for t in tests for _ in range(second[t][0].shape[0])]
        M2 = K_all @ U.T  # (rows2, rows1): P(t2, t1 | e)
        HC2 = H_all @ U.T  # (tests, rows1)
        MT2 = K_all @ (U * bits[:, ti][None, :]).T if ti is not None else None
        before = (U @ bits[:, ti]) / np.where(m1 > 0, m1, 1) if ti is not None else None
        pos2: dict[str, list[int]] = {}
        for r, t in enumerate(owner2):
            pos2.setdefault(t, []).append(r)
        slow_set = set(slow)

        def gain_of(m: np.ndarray, hc: float, mt: np.ndarray | None, mass: float, prior_t: float | None) -> float:
            q = m / mass
            if ti is None:
                return max(float(-_xlogx(q).sum() / LN2) - hc / mass, 0.0)
            post = np.where(m > 0, mt / np.where(m > 0, m, 1), 0.0)
            return max(float(_binary_entropy(np.array([prior_t]))[0] - q @ _binary_entropy(post)), 0.0)

        best_after: dict[int, tuple[str, float, float]] = {}
        for j in range(len(U)):
            if not m1[j] > 0:
                continue
            first = first_owner[j]
            d1 = drawn | self._draw_of(first)
            best = (None, 0.0, -np.inf)
            ev1 = None
            for ji, t in enumerate(tests):
                if t == first:
                    continue
                if first in slow_set and t in slow_set:
                    if ev1 is None:
                        ev1 = {**ev, first: first_state[j]}
                    rows, hcol = self.engine._conditional_table(ev1, t)
                    rows, hcol = rows[:, :L], hcol[:L]
                    u = U[j]
                    m = rows @ u
                    hc = float(hcol @ u)
                    mt = rows @ (u * bits[:, ti]) if ti is not None else None
                else:
                    idx = pos2[t]
                    m = M2[idx, j]
                    hc = float(HC2[ji, j])
                    mt = MT2[idx, j] if ti is not None else None
                gain = gain_of(np.clip(m, 0.0, None), hc, mt, m1[j], None if before is None else before[j])
                cost = self.cost_of(t, d1)[0]
                score = gain - cost_weight * (cost if np.isfinite(cost) else 0.0)
                if score > best[2] + 1e-15:
                    best = (t, gain, score)
            if best[0] is not None:
                best_after[j] = best
        rows_of: dict[str, list[int]] = {}
        for j, t in enumerate(first_owner):
            rows_of.setdefault(t, []).append(j)
        two_gain, two_score, second_choice = [], [], []
        for row in df.itertuples():
            first = row.test
            exp_gain, exp_score, choice = 0.0, 0.0, {}
            if row.kind == "test":
                states = self.pset.variables[first].states
                for j in rows_of.get(first, []):
                    if j not in best_after:
                        continue
                    name, gain, score = best_after[j]
                    if score > 0 or cost_weight == 0:
                        exp_gain += m1[j] * gain
                        exp_score += m1[j] * score
                        choice[states[first_state[j]]] = name
            two_gain.append(row.expected_information_gain_bits + exp_gain)
            two_score.append(row.score + exp_score)
            second_choice.append(choice)
        df = df.copy()
        df["one_step_gain_bits"] = df["expected_information_gain_bits"]
        df["expected_information_gain_bits"] = two_gain
        df["score"] = two_score
        df["second_test"] = second_choice
        return df

    def _draw_of(self, test: str) -> frozenset[str]:
        entry = (self.pset.costs or {}).get("tests", {}).get(test)
        return frozenset([entry["draw"]]) if entry and entry["draw"] else frozenset()

    @_one_blas_thread
    def rank_normalised(self, ev, names, target, cost_weight, drawn) -> tuple[str, float, float] | None:
        """Best (name, gain, score) among ``names`` for normalised evidence; None if impossible."""
        w, z = self.engine._joint(ev)
        if not z > 0 or not names:
            return None
        hidden = self.engine.hidden
        marg = marginals(w) / z
        ti = hidden.index(target) if target is not None else None
        scored = self._score_candidates(w, z, ev, names, [ti] if ti is not None else [])
        best = None
        for n in names:
            s = scored[n]
            if ti is not None:
                after = np.where(s.p > 0, np.nan_to_num(s.post[:, ti]), 0.0)
                gain = max(float(_binary_entropy(np.array([marg[ti]]))[0] - s.p @ _binary_entropy(after)), 0.0)
            else:
                gain = s.gain_joint
            cost = self.cost_of(n, drawn)[0] if s.kind == "test" else 0.0
            score = gain - cost_weight * (cost if np.isfinite(cost) else 0.0)
            if best is None or score > best[2] + 1e-15:
                best = (n, gain, score)
        return best

    # ----------------------------------------------------------------- plans
    @_one_blas_thread
    def plan(self, evidence: Mapping[str, Any], *, max_depth: int = 3, stop_probability: float = 0.9,
             min_gain: float = 0.05, budget: float | None = None, cost_weight: float = 0.0,
             max_questions: int = 2, min_branch_probability: float = 1e-3) -> dict[str, Any]:
        """A work-up plan: a decision tree test -> outcome -> next test; see :meth:`alpnet.Model.plan`."""
        max_depth = int(check_number("max_depth", max_depth, low=0, whole=True))
        stop_probability = check_number("stop_probability", stop_probability, low=0, high=1, low_open=True)
        min_gain = check_number("min_gain", min_gain, low=0)
        budget = None if budget is None else check_number("budget", budget, low=0)
        cost_weight = check_number("cost_weight", cost_weight, low=0)
        max_questions = int(check_number("max_questions", max_questions, low=0, whole=True))
        min_branch_probability = check_number("min_branch_probability", min_branch_probability, low=0, high=1)
        ev0 = self.engine.normalise(evidence)
        if not self.engine._joint(ev0)[1] > 0:
            raise self.engine._conflict_error(ev0)
        self._max_questions = max_questions
        tree = self._plan_node(ev0, 0, 0.0, frozenset(), max_depth, stop_probability, min_gain, budget, cost_weight,
                               min_branch_probability, 0)
        leaves = list(_leaves(tree, 1.0))
        return {
            "tree": tree,
            "expected_cost": float(sum(p * leaf["cost_so_far"] for p, leaf in leaves)),
            "expected_final_leading_probability": float(sum(p * leaf["leading_probability"] for p, leaf in leaves)),
            "currency": (self.pset.costs or {}).get("currency"),
            "settings": {"max_depth": max_depth, "stop_probability": stop_probability, "min_gain": min_gain,
                         "budget": budget, "cost_weight": cost_weight, "max_questions": max_questions},
        }

    def _plan_node(self, ev, depth, spent, drawn, max_depth, stop_p, min_gain, budget, cost_weight, min_branch,
                   asked):
        w, z = self.engine._joint(ev)
        p = w / z
        marg = marginals(w) / z
        hidden = self.engine.hidden
        causes = self.pset.causes
        ci = [hidden.index(c) for c in causes]
        li = ci[int(np.argmax(marg[ci]))]
        node: dict[str, Any] = {"leading_cause": hidden[li], "leading_probability": float(marg[li]),
                                "cost_so_far": spent}
        if marg[li] >= stop_p:
            node["stop"] = f"the leading cause reached {stop_p:.0%}"
            return node
        if depth >= max_depth:
            node["stop"] = f"the depth limit ({max_depth}) was reached"
            return node
        tests, questions = self.candidates(ev)
        choice = None
        q = self.rank_normalised(ev, questions, None, 0.0, drawn) if questions and asked < self._max_questions else None
        if q is not None and q[1] >= min_gain:
            choice = (q[0], "question", q[1], 0.0)
        else:
            affordable = [t for t in tests if budget is None or spent + self.cost_of(t, drawn)[0] <= budget + 1e-9]
            best = self.rank_normalised(ev, affordable, None, cost_weight, drawn) if affordable else None
            if best is None:
                node["stop"] = "the budget is spent" if tests else "no test is left"
                return node
            if best[1] < min_gain:
                node["stop"] = f"no test's gain reaches {min_gain:g} bits"
                return node
            if cost_weight > 0 and best[2] <= 0:
                node["stop"] = "no test is worth its cost"
                return node
            choice = (best[0], "test", best[1], self.cost_of(best[0], drawn)[0])
        name, kind, gain, cost = choice
        node.update({"ask" if kind == "question" else "test": name, "kind": kind,
                     "expected_information_gain_bits": gain, "cost": cost, "outcomes": {}})
        states = self.pset.variables[name].states
        new_drawn = drawn | (self._draw_of(name) if kind == "test" else frozenset())
        for i, state in enumerate(states):
            ev2 = {**ev, name: i}
            z2 = self.engine._joint(ev2)[1]
            pr = z2 / z
            if pr <= 0:
                continue
            if pr < min_branch:
                child = {"leading_cause": None, "leading_probability": float("nan"), "cost_so_far": spent + cost,
                         "stop": "outcome too unlikely to plan for"}
                w2, _ = self.engine._joint(ev2)
                m2 = marginals(w2) / z2
                l2 = ci[int(np.argmax(m2[ci]))]
                child.update(leading_cause=hidden[l2], leading_probability=float(m2[l2]))
            else:
                is_q = kind == "question"
                child = self._plan_node(ev2, depth + (0 if is_q else 1), spent + cost, new_drawn, max_depth, stop_p,
                                        min_gain, budget, cost_weight, min_branch, asked + (1 if is_q else 0))
            node["outcomes"][state] = {"p": float(pr), "next": child}
        return node


def _leaves(node: Mapping[str, Any], prob: float):
    if not node.get("outcomes"):
        yield prob, node
        return
    for branch in node["outcomes"].values():
        yield from _leaves(branch["next"], prob * branch["p"])


def render_plan(plan: Mapping[str, Any], label=lambda v: v) -> str:
    """The plan as an indented tree of text."""
    lines: list[str] = []
    currency = plan.get("currency") or ""

    def walk(node: Mapping[str, Any], indent: str) -> None:
        lead = f"{label(node['leading_cause'])} {node['leading_probability']:.0%}"
        if "stop" in node:
            lines.append(f"{indent}stop: {node['stop']} (leading: {lead})")
            return
        name = node.get("ask") or node.get("test")
        what = "ask" if node["kind"] == "question" else "test"
        cost = f", cost {node['cost']:.2f} {currency}" if node["kind"] == "test" and np.isfinite(node["cost"]) else ""
        lines.append(f"{indent}{what} {name} (gain {node['expected_information_gain_bits']:.3f} bits{cost}; "
                     f"now leading: {lead})")
        for state, branch in node["outcomes"].items():
            lines.append(f"{indent}  {name} = {state} (p {branch['p']:.2f}):")
            walk(branch["next"], indent + "    ")

    walk(plan["tree"], "")
    lines.append(f"expected cost {plan['expected_cost']:.2f} {currency}; expected final probability of the "
                 f"leading cause {plan['expected_final_leading_probability']:.1%}")
    return "\n".join(lines)

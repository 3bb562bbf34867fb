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
Findings with a context parent the evidence leaves open (PSA by sex and known
cancer) and history questions get their outcome joints from the engine, exactly.

Two-step lookahead is exact: ``I(C; T1, T2 | e) = I(C; T1 | e) + E_t1 I(C; T2 | e, t1)``,
with the second test chosen for each outcome of the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .errors import AlpnetError, CaseError
from .priors import is_question, is_test

__all__ = ["TestRanker", "LN2"]

LN2 = float(np.log(2.0))


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
    joint_marginals: np.ndarray  # (n_states, n_hidden): P(outcome, h present | e)
    entropy_after: np.ndarray  # H(C | e, outcome) in bits


class TestRanker:
    """Ranks tests and questions for a compiled model.

    Parameters
    ----------
    model : alpnet.Model
    """

    def __init__(self, model: Any):
        self.model = model
        self.engine = model.engine
        self.pset = model.priors
        variables = self.pset.variables
        self.tests = [n for n, v in variables.items() if is_test(v)]
        self.questions = [n for n, v in variables.items() if is_question(v)]
        fast = [n for n in self.tests + self.questions if n in self.engine.cause_only]
        self._fast = fast
        rows, owners = [], []
        for n in fast:
            tab = self.engine.likelihood_table(n)
            rows.append(tab)
            owners.extend([n] * tab.shape[0])
        self._L = np.vstack(rows) if rows else np.zeros((0, 2**self.engine.k))
        self._LlogL = _xlogx(self._L)
        self._owner = np.array(owners)
        self._slices: dict[str, slice] = {}
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
    def _score_candidates(self, w: np.ndarray, z: float, ev: Mapping[str, Any], names: list[str]) -> dict[str, _Scored]:
        """Outcome probabilities, cause marginals and entropies after each outcome."""
        bits = self.engine.bits
        p = w / z
        out: dict[str, _Scored] = {}
        fast = [n for n in names if n in self._slices]
        if fast:
            idx = np.concatenate([np.arange(self._slices[n].start, self._slices[n].stop) for n in fast])
            L = self._L[idx]
            P = L @ p
            S = self._LlogL[idx] @ p + L @ _xlogx(p)
            M = L @ (p[:, None] * bits)
            with np.errstate(divide="ignore", invalid="ignore"):
                H = np.where(P > 0, (np.log(np.where(P > 0, P, 1.0)) - S / np.where(P > 0, P, 1.0)) / LN2, 0.0)
            pos = 0
            for n in fast:
                k = self._slices[n].stop - self._slices[n].start
                out[n] = _Scored(n, self._kind(n), self.pset.variables[n].states, P[pos:pos + k], M[pos:pos + k],
                                 np.maximum(H[pos:pos + k], 0.0))
                pos += k
        for n in names:
            if n in out:
                continue
            out[n] = self._from_joints(n, self.engine._outcome_joints(ev, n), z)
        return out

    def _from_joints(self, name: str, J: np.ndarray, z: float) -> _Scored:
        bits = self.engine.bits
        mass = J.sum(axis=1)
        P = mass / z
        M = (J @ bits) / z
        H = np.zeros(len(P))
        for r in range(len(P)):
            if mass[r] > 0:
                q = J[r] / mass[r]
                H[r] = max(-_xlogx(q).sum() / LN2, 0.0)
        return _Scored(name, self._kind(name), self.pset.variables[name].states, P, M, H)

    def _kind(self, name: str) -> str:
        return "test" if name in self.tests else "question"

    # -------------------------------------------------------------- ranking
    def candidates(self, ev: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Tests and questions not yet in the evidence."""
        tests = [t for t in self.tests if t not in ev]
        questions = [q for q in self.questions if q not in ev]
        return tests, questions

    def rank(self, evidence: Mapping[str, Any], *, target: str | None = None, cost_weight: float = 0.0,
             lookahead: int = 1, drawn: frozenset[str] = frozenset(), top_causes: int = 3) -> pd.DataFrame:
        """Rank every test (and question) not yet observed; see :meth:`alpnet.Model.rank_tests`."""
        if target is not None and target not in self.pset.causes:
            raise CaseError(f"--target {target!r}: not a cause; accepted: {', '.join(self.pset.causes)}")
        if lookahead not in (1, 2):
            raise CaseError(f"--lookahead {lookahead}: accepted: 1 or 2")
        if not np.isfinite(cost_weight) or cost_weight < 0:
            raise CaseError(f"--cost-weight {cost_weight}: must be a number >= 0")
        if cost_weight > 0 and not self.pset.costs:
            raise AlpnetError("the prior set has no costs.yaml, so a cost weight cannot be applied")
        ev = self.engine.normalise(evidence)
        w, z = self.engine._joint(ev)
        if not z > 0:
            raise self.engine._conflict_error(ev)
        p = w / z
        marg = p @ self.engine.bits
        hidden = self.engine.hidden
        causes = self.pset.causes
        cause_idx = [hidden.index(c) for c in causes]
        H0 = float(-_xlogx(p).sum() / LN2)
        lead = causes[int(np.argmax(marg[cause_idx]))]
        li = hidden.index(lead)
        tests, questions = self.candidates(ev)
        scored = self._score_candidates(w, z, ev, tests + questions)
        rows = []
        for name in tests + questions:
            s = scored[name]
            gain_joint = max(H0 - float(s.p @ s.entropy_after), 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                post = np.where(s.p[:, None] > 0, s.joint_marginals / np.where(s.p[:, None] > 0, s.p[:, None], 1), 0.0)
            if target is not None:
                ti = hidden.index(target)
                gain = max(float(_binary_entropy(np.array([marg[ti]]))[0] - s.p @ _binary_entropy(post[:, ti])), 0.0)
            else:
                gain = gain_joint
            change = float(s.p @ np.abs(post[:, li] - marg[li]))
            kind = s.kind
            cost, burden = self.cost_of(name, drawn) if kind == "test" else (0.0, 0.0)
            outcomes = {}
            for r, state in enumerate(s.states):
                if s.p[r] <= 0:
                    continue
                order = sorted(cause_idx, key=lambda i: -post[r, i])[:top_causes]
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

        Every first test's outcome t1 gives an unnormalised vector u(C) = P(C, t1 | e); stacking
        them as the rows of U, the probabilities and entropies after every (t1, t2) pair are a
        handful of matrix products: ``L @ U.T`` and ``(L log L) @ U.T + L @ (U log U).T``. Tests
        with a context parent use their outcome joints J (one einsum each, at the root); two such
        tests together are combined by the engine, exactly.
        """
        bits = self.engine.bits
        p = w / z
        hidden = self.engine.hidden
        tests = list(self.candidates(ev)[0])
        fast = [t for t in tests if t in self._slices]
        slow = [t for t in tests if t not in self._slices]
        f_idx = np.concatenate([np.arange(self._slices[t].start, self._slices[t].stop) for t in fast]) \
            if fast else np.zeros(0, int)
        A, B = self._L[f_idx], self._LlogL[f_idx]
        f_owner = list(self._owner[f_idx])
        J = {t: self.engine._outcome_joints(ev, t) / z for t in slow}
        s_rows = np.vstack([J[t] for t in slow]) if slow else np.zeros((0, len(p)))
        s_owner = [t for t in slow for _ in range(J[t].shape[0])]
        s_state = [i for t in slow for i in range(J[t].shape[0])]
        f_state = [i for t in fast for i in range(len(self.pset.variables[t].states))]
        # first-outcome vectors
        U = np.vstack([A * p[None, :], s_rows])
        first_owner = f_owner + s_owner
        first_state = f_state + s_state
        aU = _xlogx(U)
        m1 = U.sum(axis=1)
        H1 = np.zeros(len(m1))
        pos = m1 > 0
        H1[pos] = (np.log(m1[pos]) - aU[pos].sum(axis=1) / m1[pos]) / LN2
        # second outcomes: fast second tests after any first outcome
        mF = A @ U.T
        SF = B @ U.T + A @ aU.T
        ti = hidden.index(target) if target is not None else None
        MF = A @ (U * bits[:, ti][None, :]).T if ti is not None else None
        nf = len(f_idx)
        # slow second tests after a fast first outcome: u2 = J2 * L1
        if len(s_rows) and nf:
            mS = s_rows @ A.T
            SS = _xlogx(s_rows) @ A.T + s_rows @ B.T
            MS = (s_rows * bits[:, ti][None, :]) @ A.T if ti is not None else None
        before = (U @ bits[:, ti]) / np.where(m1 > 0, m1, 1) if ti is not None else None

        def second_rows(j: int):
            """(name, masses, S, M) of every second test after first-outcome row j."""
            first = first_owner[j]
            groups: dict[str, list] = {}
            for r, t in enumerate(f_owner):
                if t != first:
                    groups.setdefault(t, []).append((mF[r, j], SF[r, j], None if MF is None else MF[r, j]))
            for r, t in enumerate(s_owner):
                if t == first:
                    continue
                if j < nf:
                    groups.setdefault(t, []).append((mS[r, j], SS[r, j], None if ti is None else MS[r, j]))
            if j >= nf:  # a slow first test: slow second tests need the engine
                for t in slow:
                    if t == first:
                        continue
                    Jt = self.engine._outcome_joints({**ev, first: first_state[j]}, t) / z
                    for row in Jt:
                        groups.setdefault(t, []).append((row.sum(), _xlogx(row).sum(),
                                                         None if ti is None else row @ bits[:, ti]))
            return groups

        best_after: dict[int, tuple[str, float, float]] = {}
        for j in range(len(U)):
            if not m1[j] > 0:
                continue
            first = first_owner[j]
            d1 = drawn | self._draw_of(first)
            best = (None, 0.0, -np.inf)
            for t, rows in second_rows(j).items():
                m = np.array([r[0] for r in rows])
                S = np.array([r[1] for r in rows])
                ok = m > 0
                if ti is None:
                    H = np.zeros(len(m))
                    H[ok] = (np.log(m[ok]) - S[ok] / m[ok]) / LN2
                    gain = max(H1[j] - float((m / m1[j]) @ H), 0.0)
                else:
                    M = np.array([r[2] for r in rows])
                    post = np.zeros(len(m))
                    post[ok] = M[ok] / m[ok]
                    gain = max(float(_binary_entropy(np.array([before[j]]))[0]
                                     - (m / m1[j]) @ _binary_entropy(post)), 0.0)
                cost = self.cost_of(t, d1)[0]
                score = gain - cost_weight * (cost if np.isfinite(cost) else 0.0)
                if score > best[2] + 1e-15:
                    best = (t, gain, score)
            if best[0] is not None:
                best_after[j] = best
        rows_of = {}
        for j, t in enumerate(first_owner):
            rows_of.setdefault(t, []).append(j)
        two_gain, two_score, second = [], [], []
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
            second.append(choice)
        df = df.copy()
        df["one_step_gain_bits"] = df["expected_information_gain_bits"]
        df["expected_information_gain_bits"] = two_gain
        df["score"] = two_score
        df["second_test"] = second
        return df

    def _draw_of(self, test: str) -> frozenset[str]:
        entry = (self.pset.costs or {}).get("tests", {}).get(test)
        return frozenset([entry["draw"]]) if entry and entry["draw"] else frozenset()

    def rank_normalised(self, ev, names, target, cost_weight, drawn) -> tuple[str, float, float] | None:
        """Best (name, gain, score) among ``names`` for normalised evidence; None if impossible."""
        w, z = self.engine._joint(ev)
        if not z > 0 or not names:
            return None
        p = w / z
        hidden = self.engine.hidden
        scored = self._score_candidates(w, z, ev, names)
        H0 = float(-_xlogx(p).sum() / LN2)
        marg = p @ self.engine.bits
        best = None
        for n in names:
            s = scored[n]
            if target is not None:
                ti = hidden.index(target)
                with np.errstate(divide="ignore", invalid="ignore"):
                    post = np.where(s.p > 0, s.joint_marginals[:, ti] / np.where(s.p > 0, s.p, 1), 0.0)
                gain = max(float(_binary_entropy(np.array([marg[ti]]))[0] - s.p @ _binary_entropy(post)), 0.0)
            else:
                gain = max(H0 - float(s.p @ s.entropy_after), 0.0)
            cost = self.cost_of(n, drawn)[0] if s.kind == "test" else 0.0
            score = gain - cost_weight * (cost if np.isfinite(cost) else 0.0)
            if best is None or score > best[2] + 1e-15:
                best = (n, gain, score)
        return best

    # ----------------------------------------------------------------- plans
    def plan(self, evidence: Mapping[str, Any], *, max_depth: int = 3, stop_probability: float = 0.9,
             min_gain: float = 0.05, budget: float | None = None, cost_weight: float = 0.0,
             max_questions: int = 2, min_branch_probability: float = 1e-3) -> dict[str, Any]:
        """A work-up plan: a decision tree test -> outcome -> next test; see :meth:`alpnet.Model.plan`."""
        if max_depth < 0 or not 0 < stop_probability <= 1 or min_gain < 0 or (budget is not None and budget < 0):
            raise CaseError("plan: max depth >= 0, stop probability in (0, 1], min gain >= 0 and budget >= 0")
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
        marg = p @ self.engine.bits
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
                m2 = (w2 / z2) @ self.engine.bits
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

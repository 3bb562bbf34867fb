"""Exact inference: the engine agrees with brute force and with pgmpy.

* On the tiny hand-built prior set, against a brute-force sum over the full
  joint distribution (every variable enumerated with itertools.product).
* On the bundled model, against pgmpy's own VariableElimination on
  ``Model.to_pgmpy()``, to 1e-9, over hundreds of random evidence sets with
  partial context.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from alpnet.errors import CaseError, EvidenceConflictError


def brute_posterior(model, evidence):
    """P(cause present | evidence) by summing the full joint of every variable."""
    pset = model.priors
    names = list(pset.variables)
    cards = [len(pset.variables[n].states) for n in names]
    index = {n: i for i, n in enumerate(names)}
    num = dict.fromkeys(pset.hidden, 0.0)
    total = 0.0
    for combo in itertools.product(*[range(c) for c in cards]):
        p = 1.0
        for n in names:
            var = pset.variables[n]
            idx = (combo[index[n]],) + tuple(combo[index[q]] for q in var.parents)
            p *= model.cpts[n][idx]
            if p == 0:
                break
        if p == 0:
            continue
        for var_name, value in evidence.items():
            states = pset.variables[var_name].states
            s = states[combo[index[var_name]]]
            if isinstance(value, dict):
                p *= value.get(s, 0.0)
            elif isinstance(value, list):
                p *= 1.0 if s in value else 0.0
            else:
                p *= 1.0 if s == value else 0.0
        total += p
        for h in pset.hidden:
            if combo[index[h]] == 1:
                num[h] += p
    return {h: num[h] / total for h in pset.hidden}


def random_evidence(model, rng, *, p_observe=0.5, soft=True):
    ev = {}
    for name, states in model.observables.items():
        if rng.random() < p_observe:
            r = rng.random()
            if soft and r < 0.1 and len(states) > 2:
                k = int(rng.integers(2, len(states)))
                ev[name] = [str(s) for s in rng.choice(states, size=k, replace=False)]
            elif soft and r < 0.15:
                ev[name] = {s: float(w) for s, w in zip(states, rng.random(len(states)) + 0.01)}
            else:
                ev[name] = str(rng.choice(states))
    return ev


def assert_equals_full_joint_enumeration(model, engine, rng):
    """``engine`` gives the brute-force posteriors of ``model`` on 60 random evidence sets
    (at least 40 of them possible)."""
    checked = 0
    for _ in range(60):
        ev = random_evidence(model, rng, p_observe=0.6)
        try:
            got = engine.posterior(ev)
        except EvidenceConflictError:
            continue
        want = brute_posterior(model, ev)
        for h in want:
            assert got[h] == pytest.approx(want[h], abs=1e-12)
        checked += 1
    assert checked >= 40


def test_engine_equals_full_joint_enumeration(mini, rng):
    assert_equals_full_joint_enumeration(mini, mini.engine, rng)


def test_prior_is_posterior_given_context_only(mini):
    ev = {"age": "old", "sex": "male", "level": "high"}
    prior = mini.engine.prior(ev)
    want = brute_posterior(mini, {"age": "old", "sex": "male"})
    for h in want:
        assert prior[h] == pytest.approx(want[h], abs=1e-12)


def test_predictive_matches_enumeration(mini):
    ev = {"age": "middle", "ache": "true"}
    pred = mini.engine.predictive(ev, "marker")  # a finding with a context parent
    # P(marker=raised | e) = P(e, raised) / P(e), each by brute force over the joint
    w_raised = mini.engine.joint({**ev, "marker": "raised"})[1]
    w_all = mini.engine.joint(ev)[1]
    assert pred["raised"] == pytest.approx(w_raised / w_all, abs=1e-12)
    pred2 = mini.engine.predictive(ev, "level")  # cause-only finding: one matrix product
    total = sum(mini.engine.joint({**ev, "level": s})[1] for s in mini.observables["level"])
    for s, p in pred2.items():
        assert p == pytest.approx(mini.engine.joint({**ev, "level": s})[1] / total, abs=1e-12)


def _pgmpy_marginals(infer, hidden, evidence):
    q = infer.query(variables=list(hidden), evidence=evidence, joint=True, show_progress=False)
    order = list(q.variables)
    values = q.values / q.values.sum()
    out = {}
    for h in hidden:
        axis = order.index(h)
        idx = q.state_names[h].index("present")
        out[h] = float(np.take(values, idx, axis=axis).sum())
    return out


def test_engine_agrees_with_pgmpy_variable_elimination(model, rng):
    """Every cause posterior and every unobserved test's predictive distribution equal pgmpy's
    exact inference to 1e-9, over 500 random evidence sets with partial context."""
    from pgmpy.inference import VariableElimination

    infer = VariableElimination(model.to_pgmpy())
    hidden = model.priors.hidden
    tests = [n for n, v in model.priors.variables.items() if v.kind == "finding"]
    checked = 0
    attempts = 0
    while checked < 500 and attempts < 1500:
        attempts += 1
        ev = random_evidence(model, rng, p_observe=float(rng.uniform(0.05, 0.5)), soft=False)
        try:
            got = model.engine.posterior(ev)
        except EvidenceConflictError:
            continue
        want = _pgmpy_marginals(infer, hidden, ev)
        for h in hidden:
            assert abs(got[h] - want[h]) < 1e-9, (h, ev)
        for t in [t for t in tests if t not in ev]:
            q = infer.query(variables=[t], evidence=ev, show_progress=False)
            ref = dict(zip(q.state_names[t], q.values / q.values.sum()))
            pred = model.engine.predictive(ev, t)
            for state, pr in pred.items():
                assert abs(pr - ref[state]) < 1e-9, (t, state, ev)
        checked += 1
    assert checked >= 500


def test_engine_agrees_with_pgmpy_on_set_evidence(model, rng):
    """A value known to lie in several states ('ALP high') = pgmpy with virtual evidence."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.inference import VariableElimination

    infer = VariableElimination(model.to_pgmpy())
    hidden = model.priors.hidden
    for _ in range(15):
        ev = random_evidence(model, rng, p_observe=0.15, soft=False)
        ev["alp"] = ["mild", "moderate", "marked", "extreme"]
        try:
            got = model.engine.posterior(ev)
        except EvidenceConflictError:
            continue
        hard = {k: v for k, v in ev.items() if not isinstance(v, list)}
        states = model.observables["alp"]
        weights = [[1.0 if s in ev["alp"] else 0.0] for s in states]
        virtual = [TabularCPD("alp", len(states), weights, state_names={"alp": states})]
        q = infer.query(variables=list(hidden), evidence=hard, virtual_evidence=virtual, joint=True,
                        show_progress=False)
        values = q.values / q.values.sum()
        for h in hidden:
            axis = list(q.variables).index(h)
            want = float(np.take(values, q.state_names[h].index("present"), axis=axis).sum())
            assert abs(got[h] - want) < 1e-9


def test_unknown_variable_and_state_are_named(mini):
    with pytest.raises(CaseError, match="unknown variable 'levle'.*did you mean level"):
        mini.engine.posterior({"levle": "high"})
    with pytest.raises(CaseError, match="level: unknown state 'up'; accepted: low, normal, high, very_high"):
        mini.engine.posterior({"level": "up"})


def test_impossible_evidence_names_the_conflicting_findings(mini):
    # a woman's marker is normal by definition
    with pytest.raises(EvidenceConflictError) as info:
        mini.engine.posterior({"ache": "true", "sex": "female", "marker": "raised"})
    assert info.value.findings == ["sex", "marker"]
    assert "sex=female and marker=raised" in str(info.value)


def test_block_cache_does_not_change_answers(mini):
    ev1 = {"sex": "male", "marker": "raised", "level": "low"}
    ev2 = {"sex": "male", "marker": "normal", "level": "low"}
    a = mini.engine.posterior(ev1)
    b = mini.engine.posterior(ev2)
    a2 = mini.engine.posterior(ev1)
    assert a == a2 and a != b


def test_above_the_cause_limit_pgmpy_answers_with_a_warning(monkeypatch, mini):
    import alpnet
    import alpnet.engine as engine_module
    from alpnet.reference_engine import PgmpyEngine

    from .conftest import MINI

    monkeypatch.setattr(engine_module, "MAX_HIDDEN", 2)  # the tiny set has 3 hidden variables
    with pytest.warns(RuntimeWarning, match="above the exact engine's limit of 2"):
        fallback = alpnet.load_model(MINI)
    assert isinstance(fallback.engine, PgmpyEngine)
    ev = {"level": "high", "ache": "true", "sex": "male"}
    a = fallback.diagnose(evidence=ev).set_index("cause")
    b = mini.diagnose(evidence=ev).set_index("cause")
    for cause in mini.causes:
        assert a.loc[cause, "posterior"] == pytest.approx(b.loc[cause, "posterior"], abs=1e-9)
        assert a.loc[cause, "prior"] == pytest.approx(b.loc[cause, "prior"], abs=1e-9)
    with pytest.raises(alpnet.AlpnetError, match="needs alpnet's exact enumeration engine"):
        fallback.rank_tests(evidence=ev)
    from alpnet.uncertainty import posterior_intervals

    with pytest.raises(alpnet.AlpnetError, match="need alpnet's exact enumeration engine"):
        posterior_intervals(fallback, [ev], draws=4)


def test_above_the_memory_limit_alpnet_stops_with_the_limit_named(monkeypatch):
    import alpnet
    import alpnet.engine as engine_module
    import alpnet.reference_engine as ref

    from .conftest import MINI

    monkeypatch.setattr(engine_module, "MAX_HIDDEN", 2)
    monkeypatch.setattr(ref, "MEMORY_LIMIT_BYTES", 100)
    with pytest.raises(alpnet.AlpnetError, match=r"above alpnet's exact engine limit of 2.*limit 0.0 GB"):
        alpnet.load_model(MINI)


def test_batches_equal_one_case_at_a_time_exactly(model, rng):
    """Scoring cases together gives every case the same numbers, to the last bit, as scoring
    it alone (what `alpnet diagnose` does), whatever its neighbours, batch size or order, and
    whatever the engine has cached before; soft evidence, missing context and impossible
    evidence included."""
    evidences = [random_evidence(model, rng, p_observe=float(rng.uniform(0.1, 0.8))) for _ in range(120)]
    evidences += [{**ev, "sex": "male", "age": "40_to_54"} for ev in evidences[:20] if "pregnant" not in ev]
    evidences.append({"sex": "male", "pregnant": "trimester_2"})  # impossible: a row of NaN
    engine = model.engine
    together = engine.posterior_many(evidences)
    one_by_one = engine.posterior_many(evidences, rows_per_pass=1)
    order = rng.permutation(len(evidences))
    shuffled = engine.posterior_many([evidences[i] for i in order], rows_per_pass=7)
    assert np.array_equal(together, one_by_one, equal_nan=True)
    assert np.array_equal(together[order], shuffled, equal_nan=True)
    assert np.isnan(together[-1]).all()
    cold = type(engine)(engine.pset, engine.cpts)  # nothing cached: alone, in reverse order
    for ev, row in reversed(list(zip(evidences, together))):
        try:
            alone = cold.posterior(ev)
        except EvidenceConflictError:
            assert np.isnan(row).all()
            continue
        assert row.tolist() == [alone[h] for h in engine.hidden]
        assert engine.posterior(ev) == alone  # and with what the batches cached


def test_engine_with_other_tables_equals_a_fresh_engine_and_leaves_the_original(model, rng):
    """A parameter draw's engine (what batch intervals use) shares only the network's shape:
    it answers as an engine built from scratch on the drawn tables, and the model's own
    engine answers as before, whichever ran first."""
    from alpnet.cpt import build_cpts
    from alpnet.parameters import assigned_values
    from alpnet.uncertainty import draw_parameters

    engine = model.engine
    evidences = [random_evidence(model, rng, p_observe=float(rng.uniform(0.1, 0.6))) for _ in range(40)]
    before = engine.posterior_many(evidences)
    ids, values = draw_parameters(model.priors, 1, seed=7)
    with assigned_values(model.priors, ids, values[0]):
        drawn = build_cpts(model.priors)
    sibling = engine.with_tables(drawn)
    fresh = type(engine)(engine.pset, drawn)
    got, want = sibling.posterior_many(evidences), fresh.posterior_many(evidences)
    assert np.array_equal(got, want, equal_nan=True)
    assert not np.allclose(got, before, equal_nan=True)  # the draw really changed the numbers
    assert np.array_equal(engine.posterior_many(evidences), before, equal_nan=True)

"""The canonical models expand into the tables their definition says.

Expected tables come from an independent method: enumerate every combination of
the parents' individual pushes (itertools.product) and apply the combination
rule directly, as written in priors/README.md.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from alpnet.cpt import build_cpt


def _dist(var, dist):
    out = {s: 0.0 for s in var.states}
    for s, p in dist.items():
        out[s] = p.value
    if len(var.states) == 2 and len(dist) == 1 and abs(sum(out.values()) - 1) > 1e-12:
        other = [s for s in var.states if s not in dist][0]
        out[other] = 1 - sum(out.values())
    return out


def _active(variables, parent):
    v = variables[parent]
    return "present" if v.is_hidden else "true"


def brute_noisy_max(var, variables, config):
    states = var.states
    z = states.index(var.spec["normal"])
    pushers = [_dist(var, var.spec["leak"])] + [
        _dist(var, var.spec["links"][p]) for p in var.parents if config[p] == _active(variables, p)
    ]
    out = dict.fromkeys(states, 0.0)
    conflict = _dist_conflict(var)
    for combo in itertools.product(states, repeat=len(pushers)):
        prob = np.prod([d[s] for d, s in zip(pushers, combo)])
        if prob == 0:
            continue
        idx = [states.index(s) for s in combo]
        up = max(idx + [z])
        down = min(idx + [z])
        if up == z:
            out[states[down]] += prob
        elif down == z:
            out[states[up]] += prob
        else:
            out[states[down]] += conflict["down"] * prob
            out[states[z]] += conflict["normal"] * prob
            out[states[up]] += conflict["up"] * prob
    return out


def _dist_conflict(var):
    c = var.spec.get("conflict")
    if not c:
        return {"down": 0.0, "normal": 0.0, "up": 0.0}
    return {k: c[k].value if k in c else 0.0 for k in ("down", "normal", "up")}


def brute_set_union(var, variables, config):
    spec = var.spec
    emit = list(var.states)
    pushers = [_dist_emit(spec["leak"], emit)] + [
        _dist_emit(spec["links"][p], emit) for p in var.parents if config[p] == _active(variables, p)
    ]
    out = dict.fromkeys(var.states, 0.0)
    for combo in itertools.product(emit, repeat=len(pushers)):
        prob = np.prod([d[s] for d, s in zip(pushers, combo)])
        released = {s for s in combo if s != spec["none"]}
        if not released:
            out[spec["none"]] += prob
        elif len(released) == 1 and spec["mixed"] not in released:
            out[released.pop()] += prob
        else:
            out[spec["mixed"]] += prob
    return out


def _dist_emit(dist, emit):
    out = dict.fromkeys(emit, 0.0)
    for s, p in dist.items():
        out[s] = p.value
    return out


def _check_table(var, variables, brute):
    table = build_cpt(var, variables)
    for idx in itertools.product(*[range(len(variables[p].states)) for p in var.parents]):
        config = {p: variables[p].states[i] for p, i in zip(var.parents, idx)}
        expected = brute(var, variables, config)
        got = table[(slice(None),) + idx]
        np.testing.assert_allclose(got, [expected[s] for s in var.states], atol=1e-12, err_msg=str(config))


def test_noisy_max_with_conflict_matches_enumeration(mini):
    variables = mini.priors.variables
    _check_table(variables["level"], variables, brute_noisy_max)


def test_binary_noisy_or_matches_enumeration(mini):
    variables = mini.priors.variables
    _check_table(variables["ache"], variables, brute_noisy_max)


def test_set_union_matches_enumeration(mini):
    variables = mini.priors.variables
    _check_table(variables["fraction"], variables, brute_set_union)


def test_cause_model_formula(mini):
    variables = mini.priors.variables
    table = build_cpt(variables["alpha"], variables)
    # parents in order of first appearance: age (baseline), ckd (relative risk)
    assert variables["alpha"].parents == ["age", "ckd"]
    young, old = 0, 2
    assert table[1, young, 0] == pytest.approx(0.01)
    assert table[1, old, 1] == pytest.approx(0.05 * 3.0)
    beta = build_cpt(variables["beta"], variables)
    # noisy-OR link from alpha on top of the sex baseline: 1 - (1 - 0.02)(1 - 0.3)
    assert variables["beta"].parents == ["sex", "alpha"]
    assert beta[1, 1, 1] == pytest.approx(1 - 0.98 * 0.7)
    assert beta[1, 0, 0] == pytest.approx(0.04)


def test_every_bundled_table_is_a_distribution(model):
    for name, table in model.cpts.items():
        assert np.all(table >= 0), name
        np.testing.assert_allclose(table.sum(axis=0), 1.0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", ["alp", "calcium", "alp_isoenzymes", "xray", "bone_pain"])
def test_bundled_canonical_tables_match_enumeration(model, name):
    variables = model.priors.variables
    var = variables[name]
    brute = brute_set_union if var.model == "set_union" else brute_noisy_max
    table = build_cpt(var, variables)
    rng = np.random.default_rng(7)
    # 40 random parent configurations with up to 4 active parents (the full ALP table has 2^16 columns)
    for _ in range(40):
        active = set(rng.choice(len(var.parents), size=int(rng.integers(0, 5)), replace=False).tolist())
        config = {}
        for i, p in enumerate(var.parents):
            states = variables[p].states
            on = _active(variables, p)
            config[p] = on if i in active else next(s for s in states if s != on)
        idx = tuple(variables[p].states.index(config[p]) for p in var.parents)
        expected = brute(var, variables, config)
        np.testing.assert_allclose(table[(slice(None),) + idx], [expected[s] for s in var.states], atol=1e-12)

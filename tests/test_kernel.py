"""The compiled kernel (numba, the ``fast`` extra) gives the numpy engine's posteriors.

The numpy engine is checked against brute force and pgmpy in test_engine.py; here the
compiled one is checked against it, to 1e-12, on random evidence (soft evidence, partial
context and impossible evidence included), and its lookup tables against a bit-by-bit
reading of the cause space.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import alpnet
import alpnet.engine as engine_module
from alpnet.errors import EvidenceConflictError

from .test_engine import assert_equals_full_joint_enumeration, random_evidence

pytest.importorskip("numba", reason="the compiled kernel is the optional extra 'fast'")

from alpnet.kernel import scope_tables  # noqa: E402


def _engines(model):
    """The model's engine twice, compiled and in numpy, nothing cached."""
    compiled = type(model.engine)(model.engine.pset, model.engine.cpts)
    plain = type(model.engine)(model.engine.pset, model.engine.cpts)
    compiled.compiled, plain.compiled = True, False
    return compiled, plain


@pytest.mark.parametrize("k", [3, 9, 16])
def test_lookup_tables_find_each_configurations_entry(k, rng):
    """For every configuration of the cause space, the two lookups give the index of the
    factor's entry: its variables' bits, in the factor's order, read one by one."""
    for _ in range(12):
        size = int(rng.integers(1, k + 1))
        positions = tuple(sorted(rng.choice(k, size=size, replace=False).tolist()))
        high, low, levels = scope_tables(positions, k)
        low_bits = min(8, k)
        for c in range(2**k):
            want = 0
            for p in positions:
                want = want * 2 + ((c >> (k - 1 - p)) & 1)
            assert high[c >> low_bits] + low[c & (2**low_bits - 1)] == want
        for m in range(k + 1):
            live = [p for p in positions if p >= m]
            assert levels[m] == (live[0] if live else k)
            assert levels[k + 1 + m] == len(live)


def test_compiled_posteriors_equal_numpy_ones(model, rng):
    """Over random evidence on the bundled model, the compiled engine's posteriors (alone and
    in batches) are the numpy engine's to 1e-12, an impossible case is refused by both, and
    on either engine a row is the same alone or in any batch, to the last bit."""
    compiled, plain = _engines(model)
    evidences = [random_evidence(model, rng, p_observe=float(rng.uniform(0.05, 0.9))) for _ in range(150)]
    evidences += [{**ev, "sex": "female", "age": "20_to_39", "pregnant": "trimester_3"} for ev in evidences[:15]
                  if "growth" not in ev]
    evidences.append({"sex": "male", "pregnant": "trimester_2"})
    got = compiled.posterior_many(evidences)
    want = plain.posterior_many(evidences)
    assert np.isnan(got[-1]).all() and np.isnan(want[-1]).all()
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)
    assert np.array_equal(got, compiled.posterior_many(evidences, rows_per_pass=3), equal_nan=True)
    for ev, row in list(zip(evidences, got))[::10]:
        try:
            alone = compiled.posterior(ev)
        except EvidenceConflictError:
            assert np.isnan(row).all()
            with pytest.raises(EvidenceConflictError):
                plain.posterior(ev)
            continue
        assert row.tolist() == [alone[h] for h in compiled.hidden]
        plain_alone = plain.posterior(ev)  # and the numpy engine, alone and in its batch, to the last bit
        assert want[evidences.index(ev)].tolist() == [plain_alone[h] for h in plain.hidden]


def test_compiled_engine_equals_full_joint_enumeration(mini, rng):
    """On the small hand-built prior set (fewer causes than the kernel's low byte), the
    compiled engine gives the brute-force sum over every variable."""
    compiled, _ = _engines(mini)
    assert_equals_full_joint_enumeration(mini, compiled, rng)


def test_asking_for_the_compiled_engine_without_numba_names_the_extra(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "alpnet.kernel", None)  # as if numba were not installed
    engine = type(model.engine)(model.engine.pset, model.engine.cpts)
    engine.compiled = True
    with pytest.raises(alpnet.AlpnetError, match=r"alpnet\[fast\]"):
        engine.posterior({"alp": "marked"})


def test_alpnet_compiled_0_chooses_numpy(model, monkeypatch):
    """The environment variable turns the kernel off (a comparison, or a machine where numba
    misbehaves); the numbers stay those of the compiled engine to 1e-12."""
    monkeypatch.setenv("ALPNET_COMPILED", "0")
    monkeypatch.setattr(engine_module, "_KERNEL", [])
    engine = type(model.engine)(model.engine.pset, model.engine.cpts)
    assert engine._kernel() is None
    monkeypatch.setattr(engine_module, "_KERNEL", [])
    monkeypatch.delenv("ALPNET_COMPILED")
    compiled = type(model.engine)(model.engine.pset, model.engine.cpts)
    assert compiled._kernel() is not None
    ev = {"alp": "marked", "ggt": "normal", "age": "55_to_69", "bone_pain": "true"}
    a, b = engine.posterior(ev), compiled.posterior(ev)
    assert all(a[h] == pytest.approx(b[h], abs=1e-12) for h in a)


def _rebuilt(constant: float, factors: np.ndarray, positions: list[int]) -> np.ndarray:
    """constant * prod of the factors of the present parents, over the parents' configurations
    (C order, the first parent slowest), bit by bit."""
    n = len(positions)
    out = np.empty(2**n)
    for c in range(2**n):
        value = constant
        for i, p in enumerate(positions):
            if (c >> (n - 1 - i)) & 1:
                value *= factors[p]
        out[c] = value
    return out


def test_rows_taken_as_one_factor_per_cause_rebuild_their_table(model):
    """A finding's row that the compiled path folds into per-cause factors is its table row
    (to rounding); normal and absent results of noisy-max findings are such rows, raised ones
    are not."""
    engine = type(model.engine)(model.engine.pset, model.engine.cpts)
    static, base, sizes, _, product = engine._finding_tables()
    checked = 0
    for f, (is_product, factors, constant) in product.items():
        var = engine.variables[f]
        hid = sorted((p for p in var.parents if p in engine.hidx), key=engine.hidx.__getitem__)
        positions = [engine.hidx[p] for p in hid]
        for r in np.flatnonzero(is_product).tolist():
            row = static[base[f] + r * sizes[f]: base[f] + (r + 1) * sizes[f]]
            np.testing.assert_allclose(_rebuilt(constant[r], factors[r], positions), row, rtol=1e-13, atol=0)
            checked += 1
    assert checked > 30
    for f, normal, raised in [("alp", "normal", "marked"), ("bone_pain", "false", "true"), ("ggt", "normal", "high")]:
        states = engine.variables[f].states
        assert product[f][0][states.index(normal)] and not product[f][0][states.index(raised)]


def test_separated_findings_rebuild_their_table(model):
    """A finding with a context parent that the compiled path splits (a normal CTX beside an
    unknown CKD) is its table: the part over the context parents times one factor per cause."""
    engine = type(model.engine)(model.engine.pset, model.engine.cpts)
    split = 0
    for f in engine.with_context:
        ok, factors, context = engine._separable(f)
        var = engine.variables[f]
        hid = sorted((p for p in var.parents if p in engine.hidx), key=engine.hidx.__getitem__)
        ctx = engine._context_parents[f]
        axes = [1 + var.parents.index(p) for p in ctx] + [0] + [1 + var.parents.index(p) for p in hid]
        table = np.transpose(engine.cpts[f], axes).reshape(-1, len(var.states), 2 ** len(hid))
        for s in np.flatnonzero(ok).tolist():
            for g, weight in enumerate(context[s].reshape(-1).tolist()):
                rebuilt = _rebuilt(weight, factors[s], [engine.hidx[p] for p in hid])
                np.testing.assert_allclose(rebuilt, table[g, s], rtol=1e-13, atol=0)
                split += 1
    assert split > 0
    assert engine._separable("ctx")[0][engine.variables["ctx"].states.index("normal")]


def test_compiled_equals_numpy_on_mostly_normal_patients(model, rng):
    """Patients as a lab extract has them: most results normal and symptoms absent (the rows
    the compiled path folds into per-cause factors), context partly unknown (chronic kidney
    disease, say, which the separated findings sit beside). Compiled and numpy agree to 1e-12,
    and a row is the same alone or in a batch."""
    compiled, plain = _engines(model)
    normal = {name: "normal" if "normal" in states else states[0] for name, states in model.observables.items()
              if name in compiled.cause_only or name in compiled.with_context}
    evidences = []
    for _ in range(120):
        ev = {name: state for name, state in normal.items() if rng.random() < 0.7}
        for name in rng.choice(list(normal), size=4, replace=False).tolist():
            ev[name] = str(rng.choice(model.observables[name]))
        for v in compiled.context:
            if rng.random() < 0.5:
                ev[v] = str(rng.choice(model.observables[v]))
        ev["alp"] = str(rng.choice(["mild", "moderate", "marked"]))
        evidences.append(ev)
    got = compiled.posterior_many(evidences)
    want = plain.posterior_many(evidences)
    assert np.isfinite(got).all(axis=1).sum() >= 60
    np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)
    for ev, row in list(zip(evidences, got))[::7]:
        if np.isfinite(row).all():
            alone = compiled.posterior(ev)
            assert row.tolist() == [alone[h] for h in compiled.hidden]


def test_state_codes_read_straight_from_names_equal_the_normalised_ones(model, rng):
    """Batches of plain state names skip ``normalise``: their codes, and the evidence dicts made
    back from them, are those of the normalised sets; anything else (weights, a bad name)
    takes ``normalise``, with its errors."""
    from alpnet.engine import _EvidenceRows

    engine = type(model.engine)(model.engine.pset, model.engine.cpts)
    evidences = [random_evidence(model, rng, p_observe=float(rng.uniform(0.1, 0.9)), soft=False) for _ in range(60)]
    fast = engine._evidence_rows(evidences)
    normalised = [engine.normalise(ev) for ev in evidences]
    assert fast.evs is None  # the shortcut was taken
    np.testing.assert_array_equal(fast.matrix, _EvidenceRows.build(normalised, engine._code_column).matrix)
    assert [fast[i] for i in range(len(fast))] == normalised
    soft = evidences[:3] + [{"alp": ["mild", "moderate"]}]
    assert engine._evidence_rows(soft).evs is not None
    with pytest.raises(alpnet.CaseError, match="unknown state 'sky-high'"):
        engine.posterior_many(evidences[:3] + [{"alp": "sky-high"}])
    with pytest.raises(alpnet.CaseError, match="unknown variable 'alpp'"):
        engine.posterior_many([{"alpp": "mild"}])

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

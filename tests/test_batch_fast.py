"""The column-wise conversion of a batch (chunk_evidence) against the row-by-row reference.

The reference is ``alpnet.batch.row_evidence``: ``row_to_case`` then ``Model.evidence_of``
for one row, exactly what ``score_chunk`` did row by row before. The column-wise path must
give the same evidence (values, list values, key order) for every row, the same case ids,
and the same error records (row, case_id, column, value, reason) for the same rows.
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pandas as pd
import pytest

from alpnet import batch
from alpnet.batch import chunk_evidence, plan_columns, row_evidence
from alpnet.evidence import _band_index, _band_index_many
from alpnet.simulate import simulate
from alpnet.units import _QUANTITY, split_quantity


def reference(model, df: pd.DataFrame, first_row: int = 1):
    """Evidence, case ids and error records of every row, one row at a time (the reference path)."""
    plan = plan_columns(df.columns, model.priors)
    arrays = {c: df[c].to_numpy(dtype=object) for c in df.columns}
    evidences, ids, errors = [], [], []
    for i in range(len(df)):
        cid, ev, err = row_evidence(model, {c: arrays[c][i] for c in df.columns}, plan, first_row + i)
        evidences.append(ev)
        ids.append(cid)
        if err is not None:
            errors.append(err)
    return evidences, ids, errors


def assert_same_as_reference(model, df: pd.DataFrame, first_row: int = 1):
    """chunk_evidence == the reference, row by row; returns the reference's errors."""
    plan = plan_columns(df.columns, model.priors)
    fast_ev, fast_ids, fast_errors = chunk_evidence(model, df, plan, first_row=first_row)
    ref_ev, ref_ids, ref_errors = reference(model, df, first_row)
    assert fast_errors == ref_errors
    assert fast_ids == ref_ids
    assert len(fast_ev) == len(ref_ev) == len(df)
    for i, (a, b) in enumerate(zip(fast_ev, ref_ev)):
        assert a == b, f"row {first_row + i}: {a} != {b}"
        if a is not None:
            assert list(a) == list(b), f"row {first_row + i}: key order"
            assert [type(v) for v in a.values()] == [type(v) for v in b.values()]
    # every row has its own list objects, as the reference gives them
    lists = [id(v) for ev in fast_ev if ev for v in ev.values() if isinstance(v, list)]
    assert len(lists) == len(set(lists))
    return ref_errors


@pytest.fixture(scope="module")
def cohort(model) -> pd.DataFrame:
    """A simulated cohort with missing values, read back as ``alpnet score`` reads a CSV (strings)."""
    buf = io.StringIO()
    simulate(model, 300, seed=7, missing=0.3).to_csv(buf, index=False)
    buf.seek(0)
    return pd.read_csv(buf, dtype=str, keep_default_na=False, na_values=[""])


# ------------------------------------------------------------------ the proof


BAD_ROWS = [
    ("bad unit", {"labs.alp": "420 U/dl"}),
    ("unknown state", {"tests.xray": "broken"}),
    ("non-numeric lab", {"labs.ggt": "abc U/L"}),
    ("number without unit", {"labs.ast": "12"}),
    ("comma", {"labs.alt": "1,5 U/L"}),
    ("negative", {"labs.crp": "-3 mg/L"}),
    ("impossible", {"labs.alp": "60000 U/L"}),
    ("impossible bound", {"labs.vitamin_d_25oh": "<0 nmol/L"}),
    ("zero creatinine", {"labs.creatinine": "0 umol/L"}),
    ("pregnant male", {"patient.sex": "male", "patient.pregnant": "true"}),
    ("pregnant at 80", {"patient.sex": "female", "patient.age": "80", "patient.pregnant": "true"}),
    ("pregnant at 3", {"patient.sex": "female", "patient.age": "3", "patient.pregnant": "yes", "patient.trimester": "2"}),
    ("trimester without pregnancy", {"patient.pregnant": "false", "patient.trimester": "2"}),
    ("trimester alone", {"patient.pregnant": "", "patient.trimester": "1"}),
    ("bad trimester", {"patient.sex": "female", "patient.pregnant": "true", "patient.trimester": "4"}),
    ("bad boolean", {"symptoms.bone_pain": "maybe"}),
    ("missing ALP", {"labs.alp": ""}),
    ("blank ALP", {"labs.alp": "   "}),
    ("non-numeric age", {"patient.age": "seventy"}),
    ("age too high", {"patient.age": "130"}),
    ("bad sex", {"patient.sex": "other"}),
    ("bad history word", {"history.known_cancer": "perhaps"}),
    ("unknown age: ALP band unknown", {"patient.age": "", "labs.alp": "150 U/L"}),
    ("unknown sex", {"patient.sex": "", "labs.alp": "110 U/L", "labs.ggt": "40 U/L"}),
    ("bad lab limit", {"labs.alp_uln": "0 U/L"}),
    ("non-numeric lab limit", {"labs.alp_uln": "abc"}),
    ("own-limit unit without its limit", {"labs.bone_alp": "25 U/L", "labs.bone_alp_uln": ""}),
    ("own-limit unit, limit in another unit", {"labs.bone_alp": "25 U/L", "labs.bone_alp_uln": "20 ug/L"}),
    ("bad albumin", {"labs.albumin": "lots"}),
    ("activity limit for a mass result", {"labs.bone_alp": "25 ug/L", "labs.bone_alp_uln": "20 U/L"}),
]

GOOD_VARIANTS = [
    ("verdict high", {"labs.alp": "high", "labs.ggt": "Normal", "labs.calcium": "LOW"}),
    ("qualified values", {"labs.psa": "<4 ng/mL", "labs.alp": ">2000 U/L", "labs.phosphate": "≤ 0.5 mmol/L"}),
    ("other units", {"labs.alp": "2.5 µkat/L", "labs.calcium": "9.6 mg/dL", "labs.ggt": "60 IU/L"}),
    ("spaces", {"labs.alp": "  108   U/L ", "symptoms.fever": " yes "}),
    ("boolean words", {"symptoms.fever": "1", "symptoms.jaundice": "NO", "history.ckd": "True"}),
    ("lab limit", {"labs.alp": "150 U/L", "labs.alp_uln": "100 U/L"}),
    ("lab limit without age", {"patient.age": "", "labs.alp": "150 U/L", "labs.alp_uln": "100 U/L"}),
    ("own-limit unit", {"labs.bone_alp": "25 U/L", "labs.bone_alp_uln": "20 U/L"}),
    ("own-limit qualified", {"labs.bone_alp": ">25 U/L", "labs.bone_alp_uln": "20 U/L"}),
    ("albumin adjusts calcium", {"labs.albumin": "30 g/L", "labs.calcium": "2.3 mmol/L"}),
    ("albumin in g/dL", {"labs.albumin": "3.1 g/dL", "labs.calcium": "2.55 mmol/L"}),
    ("albumin verdict", {"labs.albumin": "low", "labs.calcium": "2.55 mmol/L"}),
    ("pregnant, no trimester", {"patient.sex": "female", "patient.age": "30", "patient.pregnant": "yes",
                                "patient.trimester": "", "labs.ggt": "20 U/L"}),
    ("pregnant, trimester", {"patient.sex": "female", "patient.age": "30", "patient.pregnant": "true",
                             "patient.trimester": "2.0", "labs.ggt": "25 U/L"}),
    ("infant", {"patient.age": "0.02", "labs.alp": "300 U/L", "labs.ggt": "150 U/L"}),
    ("age-dependent limit", {"patient.age": "75", "labs.esr": "30 mm/h"}),
    ("age-dependent limit, age unknown", {"patient.age": "", "labs.esr": "30 mm/h", "labs.alp": "high"}),
    ("fractional age", {"patient.age": "12.99", "labs.alp": "400 U/L"}),
    ("value on a band bound", {"patient.age": "50", "patient.sex": "male", "labs.alp": "129 U/L",
                               "labs.vitamin_d_25oh": "30 nmol/L", "labs.egfr": "60 mL/min/1.73m2"}),
]


def _variants(cohort: pd.DataFrame) -> pd.DataFrame:
    """Cohort rows with hand-made changes, each change on a few different base rows."""
    rows = []
    k = 0
    for label, change in BAD_ROWS + GOOD_VARIANTS:
        for _ in range(3):
            row = cohort.iloc[k % len(cohort)].copy()
            k += 7
            for col, value in change.items():
                row[col] = value if value != "" else np.nan
            row["id"] = f"{label} {k}"
            rows.append(row)
    out = pd.DataFrame(rows, columns=list(cohort.columns) + ["labs.alp_uln", "labs.bone_alp_uln", "labs.albumin"])
    out.loc[out.index[5], "id"] = np.nan  # a row without an id: case_id row<n>
    return out.reset_index(drop=True)


def test_cohort_and_bad_rows_give_the_reference_evidence_and_errors(model, cohort, monkeypatch):
    df = pd.concat([cohort, _variants(cohort)], ignore_index=True)
    calls = []
    real = batch.row_evidence

    def counted(*args, **kwargs):
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "row_evidence", counted)
    plan = plan_columns(df.columns, model.priors)
    chunk_evidence(model, df, plan)
    monkeypatch.undo()
    errors = assert_same_as_reference(model, df)
    # every hand-made bad row fails, with the reference's record
    failed = {e["case_id"].rsplit(" ", 1)[0] for e in errors}
    assert {label for label, _ in BAD_ROWS} <= failed
    incomplete = {"lab limit without age", "pregnant, no trimester", "age-dependent limit, age unknown"}
    assert not failed & ({label for label, _ in GOOD_VARIANTS} - incomplete)  # (those may fail on other labs)
    assert {"column", "value", "reason"} <= set(errors[0])
    # the column-wise path did the work: only failing rows (and a few it cannot decide) went row by row
    assert len(calls) <= len(errors) + 20
    assert len(calls) < len(df) / 4


def test_cohort_in_chunks_gives_the_same_rows(model, cohort):
    """Chunk after chunk (what is kept between calls must not change anything), row numbers offset."""
    df = pd.concat([cohort, _variants(cohort)], ignore_index=True)
    for start in range(0, len(df), 97):
        assert_same_as_reference(model, df.iloc[start:start + 97].reset_index(drop=True), first_row=start + 1)


def test_typed_frames_give_the_reference_evidence(model, cohort):
    """Model.score(df) receives typed frames: floats with NaN, booleans, ints, mixed object columns."""
    buf = io.StringIO()
    _variants(cohort).to_csv(buf, index=False)
    buf.seek(0)
    typed = pd.read_csv(buf)  # pandas' own types: float ages, bool/object booleans, NaN
    assert_same_as_reference(model, typed)
    raw = simulate(model, 120, seed=3, missing=0.3)  # as simulate returns it
    assert_same_as_reference(model, raw)
    mixed = raw.astype(object)
    mixed.loc[0, "symptoms.fever"] = True
    mixed.loc[1, "symptoms.fever"] = 1
    mixed.loc[2, "symptoms.fever"] = "1"
    mixed.loc[3, "patient.age"] = 40.0
    mixed.loc[4, "patient.age"] = True  # not a number: an error
    mixed.loc[5, "patient.age"] = np.float32(33.5)
    mixed.loc[6, "labs.alp"] = np.float32("nan")  # not empty for alpnet: the text "nan"
    mixed.loc[7, "labs.alp"] = pd.NA
    mixed.loc[8, "tests.xray"] = 1
    mixed.loc[9, "patient.trimester"] = True
    mixed.loc[10, "patient.pregnant"] = 1.0
    assert_same_as_reference(model, mixed)
    booleans = raw.copy()
    booleans["symptoms.fever"] = booleans["symptoms.fever"].map({"true": True, "false": False})
    assert_same_as_reference(model, booleans)


def test_unit_columns_give_the_reference_evidence(model):
    df = pd.DataFrame({
        "id": [f"u{i}" for i in range(8)],
        "age": ["50"] * 8,
        "sex": ["male", "female"] * 4,
        "alp": ["420", "2.5", "high", "420", "120", "", "99", "nan"],
        "alp_unit": ["U/L", "ukat/L", "U/L", "", "u/l", "U/L", "U/dl", "U/L"],
        "labs.ggt": ["40 U/L", "30", "", "normal", "20 U/L", "20 U/L", "20 U/L", "20 U/L"],
        "labs.ggt_unit": ["", "U/L", "U/L", "U/L", "", "", "", ""],
    })
    errors = assert_same_as_reference(model, df)
    assert {e["case_id"] for e in errors} == {"u3", "u5", "u6", "u7"}


def test_own_limit_on_every_row_and_only_qualified_values(model, cohort):
    df = cohort.iloc[:150].copy()
    df["labs.alp_uln"] = [f"{100 + (i % 40)} U/L" for i in range(len(df))]  # a limit on every row
    df.loc[df.index[::9], "labs.alp_uln"] = "0 U/L"
    df["labs.psa"] = ["<4 ng/mL", ">10 ng/mL", "<=0.5 ug/L"] * (len(df) // 3)  # no plain value in the column
    df.loc[df.index[:5], "patient.age"] = np.nan
    errors = assert_same_as_reference(model, df)
    assert any("alp_uln" in e["reason"] for e in errors)


def test_score_frame_unchanged_in_output_and_errors(model, cohort):
    """score_frame over the fast path equals posteriors from the reference's evidence."""
    df = pd.concat([cohort.iloc[:60], _variants(cohort)], ignore_index=True)
    res = model.score(df, errors="keep")
    evidences, ids, errors = reference(model, df)
    reasons = {e["row"]: e for e in res.attrs["errors"].to_dict("records")}
    for e in errors:
        assert reasons[e["row"]] == e
    good = [i for i, ev in enumerate(evidences) if ev is not None]
    posts = model.engine.posterior_many([evidences[i] for i in good])
    hidden = list(model.engine.hidden)
    for j, i in enumerate(good):
        if (i + 1) in reasons:  # impossible evidence: an error after the posteriors
            continue
        for c in model.causes:
            assert res[f"posterior.{c}"].iloc[i] == pytest.approx(float(posts[j][hidden.index(c)]), abs=1e-12)


# ------------------------------------------------------------------ the shared pieces


def _regex_only(text: str):
    m = _QUANTITY.match(text)
    if not m or "," in text:
        return None
    qual, num, unit = m.groups()
    value = float(num)
    if not math.isfinite(value):
        return None
    return value, unit, ({"≤": "<=", "≥": ">="}.get(qual, qual) if qual else None)


def test_split_quantity_shortcut_reads_as_the_regex():
    alphabet = list("0123456789.. eE+-<>≤≥,/UuLlgmµ%²٣\t\n\u00a0\u2028x") + ["U/L", "mmol/L", " ", "1e5", "inf", "nan"]
    rng = random.Random(11)
    for _ in range(60_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        assert split_quantity(text) == _regex_only(text), repr(text)
    for text in ["108.6 U/L", "5. U/L", ".5 mg/dL", "12 e5", "1" * 400 + " U/L", "7 mm/h\n", "3 U /L", "4 U/L "]:
        assert split_quantity(text) == _regex_only(text), repr(text)


def test_text_or_none_is_missing_then_text():
    from alpnet.batch import _missing, _text, _text_or_none

    cells = ["", " ", "\t", "\u00a0", " x ", "108 U/L", "high ", "nan", None, float("nan"), pd.NA, pd.NaT, 3.0, 2.5,
             np.int64(4), np.float32(1.5), np.float32("nan"), True, np.bool_(False), "\u2028", "0"]
    for c in cells:
        assert _text_or_none(c) == (None if _missing(c) else _text(c)), repr(c)


def test_band_index_many_equals_band_index(model):
    rng = np.random.default_rng(5)
    for name, spec in model.priors.reference["labs"].items():
        bands = spec.get("bands")
        if not bands:
            continue
        multiple = spec.get("scale") == "uln_multiple"
        for lln, uln in [(None, None), (3.0, 10.0), (None, 129), (0.5, 2.5)]:
            bounds = [batch_bound(b, lln, uln, multiple) for b in bands]
            finite = [b for b in bounds if not math.isnan(b)]
            x = np.concatenate([rng.uniform(0, 2 * max(finite + [10.0]), 300), finite,
                                np.nextafter(finite, -np.inf), np.nextafter(finite, np.inf), [0.0]])
            many = _band_index_many(bands, x, np.tile(bounds, (len(x), 1)))
            one = [_band_index(bands, float(v), lln, uln, multiple) for v in x]
            assert many.tolist() == one, name


def batch_bound(band, lln, uln, multiple) -> float:
    from alpnet.evidence import _band_bound, _band_rule

    op, b = _band_rule(band)
    bound = None if op is None else _band_bound(b, lln, uln, multiple)
    return float("nan") if bound is None else float(bound)


def test_lab_texts_read_inline_as_read_text(model):
    """The inline reading of "108.6 U/L"-shaped texts gives what :func:`_read_text` gives, on
    texts of every shape (verdicts, qualifiers, commas, odd spaces, unknown units)."""
    from alpnet.evidence import _unit_table
    from alpnet.evidence_columns import _read_text, _read_texts

    alphabet = list("0123456789.. <>,/Ulgmµ%\t\u00a0") + ["U/L", "mmol/L", "mg/dL", " ", "high", "normal", "1e5"]
    rng = random.Random(3)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(20_000)]
    texts += ["108.6 U/L", "5. U/L", ".5 U/L", "12 U/L,", "3 U /L", "4 U/L\u00a0", "7 U/L x", "high", "<5 U/L",
              "1.5 U/L\u2009", "2 U\u3000L", "0.1 mg/dL", "007 U/L", "1.25 µmol/L", "3 U/L\x1c", "9 U/L\x85",
              "0.30000000000000004 mmol/L", "123456789012345678901234567890.5 U/L"]
    for name in ("alp", "calcium"):
        spec = model.priors.reference["labs"][name]
        table = _unit_table(spec)
        want = [_read_text(name, f"labs.{name}", t, spec, table) for t in texts]
        known: dict = {}
        columns = _read_texts(name, f"labs.{name}", texts, spec, table, known)
        got = list(zip(*(c.tolist() if isinstance(c, np.ndarray) else c for c in columns)))
        assert len(got) == len(texts) and all(known[t] == w for t, w in zip(texts, want) if t in known)
        for t, g, w in zip(texts, got, want):
            assert g[:2] == w[:2] and g[3:] == w[3:] and (g[2] == w[2] or (math.isnan(g[2]) and math.isnan(w[2]))), repr(t)


def test_evidence_table_gives_the_engine_the_codes_of_its_dicts(model, cohort):
    """The table the batch path keeps: its rows are chunk_evidence's dicts, taking rows keeps
    the rows put in by hand, and the state codes it hands the engine column by column are the
    codes of those dicts, so posteriors are the same to the bit; anything that is not a plain
    state name makes it hand over nothing (the dicts are read instead)."""
    from alpnet.batch import _chunk_table

    df = pd.concat([cohort, _variants(cohort)], ignore_index=True)
    plan = plan_columns(df.columns, model.priors)
    table, _, _ = _chunk_table(model, df, plan)
    listed, _, _ = chunk_evidence(model, df, plan)
    assert list(table) == listed and len(table) == len(df) and table[-1] == listed[-1]
    with pytest.raises(IndexError):
        table[len(df)]
    good = np.flatnonzero(table.present()).tolist()
    assert good == [i for i, ev in enumerate(listed) if ev is not None] and len(good) < len(df)
    plain = [i for i in good if all(type(v) is str for v in listed[i].values())]
    engine = model.engine
    taken = table.take(plain[:300])
    assert [taken[j] for j in range(len(taken))] == [listed[i] for i in plain[:300]]
    codes = taken.state_codes(engine._state_index, engine._code_column)
    assert codes is not None
    assert np.array_equal(codes, engine._evidence_rows(list(taken)).matrix)
    assert np.array_equal(engine.posterior_many(taken), engine.posterior_many(list(taken)), equal_nan=True)
    # a row put in by hand is taken along, and read from its dict
    hand = {"alp": "marked", "sex": "female"}
    taken[3] = hand
    again = taken.take([3, 0])
    assert again[0] == hand and again[1] == taken[0]
    assert np.array_equal(again.state_codes(engine._state_index, engine._code_column),
                          engine._evidence_rows([hand, taken[0]]).matrix)
    # not plain state names: no codes, and the engine reads the dicts
    taken[1] = {"alp": ["marked", "extreme"]}
    assert taken.state_codes(engine._state_index, engine._code_column) is None
    with_list = [i for i in good if any(type(v) is list for v in listed[i].values())]
    assert with_list and table.take(with_list[:5]).state_codes(engine._state_index, engine._code_column) is None
    assert table.state_codes(engine._state_index, engine._code_column) is None  # rows left to the reference
    # each case its own list objects
    first, second = table[with_list[0]], table[with_list[0]]
    lists = [k for k, v in first.items() if type(v) is list]
    assert first == second and all(first[k] is not second[k] for k in lists)

"""Many cases to model evidence at once, column by column.

:func:`columns_to_evidence` gives, for the cases of a table, exactly the evidence that
:func:`alpnet.evidence.case_to_evidence` gives case by case (which stays the reference):
it calls the same helpers of :mod:`alpnet.evidence`, once per distinct value of a column
instead of once per cell, and maps lab values to their bands for a whole column with
numpy (:func:`alpnet.evidence._band_index_many`, the vectorised
:func:`~alpnet.evidence._band_index`).

It never reports an error itself. A case it cannot map on this path — any value the case
schema rejects, any value a helper rejects, a band that depends on what the case does not
give, a ``<`` or ``>`` value — is left to the caller, who maps it with
``case_to_evidence`` and so gets the reference's evidence or error, message for message.

What a case's evidence depends on, and so what is computed once for many rows:

* a history, symptom or test state: the cell's value alone;
* age, sex and pregnancy: the four patient fields (age, sex, pregnant, trimester);
* a lab's value: its text and, for a lab with its own limit key (``alp_uln``), that cell;
  its band: the value, the patient fields, that limit and, for calcium, the albumin value.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .evidence import (
    _accepted_unit,
    _albumin_adjusted,
    _band_bound,
    _band_index_many,
    _band_rule,
    _beyond_limit,
    _lab_reading,
    _Patient,
    _patient_entries,
    _plain_state,
    _quantity,
    _implausible,
    _negative,
    _reference_limits,
    _schema_for,
    _split,
    _state_value,
    _states_for,
    _unit_table,
)
from .priors import PriorSet
from .schema import EXTRA_LAB_KEYS, SECTIONS, VERDICTS

__all__ = ["columns_to_evidence", "columns_to_table", "EvidenceTable"]

#: Keywords of a schema that say nothing about a value's validity.
_ANNOTATIONS = {"description", "title", "$comment", "examples", "default"}
_PATIENT_KEYS = ("patient.age", "patient.sex", "patient.pregnant", "patient.trimester")

Column = tuple[np.ndarray, list[Any]]
Slot = tuple[str, list[Any]]


def columns_to_evidence(pset: PriorSet, columns: Mapping[str, Column], n: int) -> tuple[list[dict | None], np.ndarray]:
    """Model evidence of ``n`` cases given column by column.

    Parameters
    ----------
    pset : PriorSet
        Work that depends only on the prior set and a patient (reference limits, band
        bounds) is kept for the next call with the same ``pset`` object, which must not be
        changed in between.
    columns : mapping
        Dotted case key (``"labs.alp"``) -> ``(codes, values)``: case ``i`` holds
        ``values[codes[i]]`` under that key, or nothing when ``codes[i]`` is -1. The values
        are what a case mapping holds (booleans, numbers, texts); the keys come in the order
        a case mapping would list them.
    n : int
        Number of cases.

    Returns
    -------
    evidences : list of dict or None
        Evidence of each case as ``case_to_evidence`` gives it; None for a case left to it.
    refer : ndarray of bool
        The cases left to ``case_to_evidence`` (every case it rejects among them).
    """
    table, refer = columns_to_table(pset, columns, n)
    return list(table), refer


def columns_to_table(pset: PriorSet, columns: Mapping[str, Column], n: int) -> tuple["EvidenceTable", np.ndarray]:
    """As :func:`columns_to_evidence`, the evidence kept as columns (:class:`EvidenceTable`)."""
    return _ColumnMapper(pset, columns, n).run()


class EvidenceTable(Sequence):
    """The evidence of a batch of cases, kept as one column of values per variable.

    ``table[i]`` is case ``i``'s evidence as :func:`columns_to_evidence` gives it (a dict
    made when asked for; None for a case left to the reference), or what was put there
    with ``table[i] = evidence``. :meth:`state_codes` gives the engine every case's state
    codes column by column, without the dicts.

    Parameters
    ----------
    variables : list of str
        The variables, in the order a case's dict lists them.
    columns : list of ndarray of object
        Per variable, each case's value (None: no evidence).
    skip : ndarray of bool
        The cases left to the reference (None unless replaced).
    """

    def __init__(self, variables: list[str], columns: list[np.ndarray], skip: np.ndarray):
        self.variables = variables
        self.columns = columns
        self.skip = skip
        self.replaced: dict[int, dict | None] = {}

    def __len__(self) -> int:
        return len(self.skip)

    def _index(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return i % len(self)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = self._index(i)
        if i in self.replaced:
            return self.replaced[i]
        if self.skip[i]:
            return None
        # a list value (a verdict "high", pregnancy without trimester) is copied: each case its own list
        return {var: list(v) if type(v) is list else v
                for var, column in zip(self.variables, self.columns) if (v := column[i]) is not None}

    def __setitem__(self, i: int, evidence: dict | None) -> None:
        self.replaced[self._index(i)] = evidence

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def present(self) -> np.ndarray:
        """Which cases have evidence (not left to the reference, or replaced by a dict)."""
        ok = ~self.skip
        for i, evidence in self.replaced.items():
            ok[i] = evidence is not None
        return ok

    def take(self, rows: Sequence[int] | np.ndarray) -> "EvidenceTable":
        """The cases at ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.intp)
        out = EvidenceTable(self.variables, [column[rows] for column in self.columns], self.skip[rows])
        for new, old in enumerate(rows.tolist()):
            if old in self.replaced:
                out.replaced[new] = self.replaced[old]
        return out

    def state_codes(self, states: Mapping[str, Mapping[str, int]], column: Mapping[str, int]) -> np.ndarray | None:
        """``(cases, len(column))`` codes: ``states[var][value]`` at ``column[var]``, -1 where a
        case has no evidence on ``var``; None when some value is not one of its variable's
        state names (a list of states, an unknown name), or a case is left to the reference."""
        if not self.present().all():
            return None
        matrix = np.full((len(self), len(column)), -1, dtype=np.int64)
        for var, values in zip(self.variables, self.columns):
            try:
                codes, uniques = pd.factorize(values)
            except TypeError:  # a list
                return None
            if not len(uniques):
                continue
            index, j = states.get(var), column.get(var)
            if index is None or j is None:
                return None
            found = [index.get(u, -9) if type(u) is str else -9 for u in uniques.tolist()]
            if -9 in found:
                return None
            matrix[:, j] = np.array(found + [-1], dtype=np.int64)[codes]
        for i, evidence in self.replaced.items():  # each a dict (every case is present)
            matrix[i] = -1
            for var, value in evidence.items():
                index, j = states.get(var), column.get(var)
                code = index.get(value, -9) if index is not None and j is not None and type(value) is str else -9
                if code < 0:
                    return None
                matrix[i, j] = code
        return matrix


# ------------------------------------------------------------------ memory across calls

_MEMORY: dict[int, tuple[weakref.ref, dict[Any, Any]]] = {}
_MEMORY_MAX = 200_000


def _memory(pset: PriorSet) -> dict[Any, Any]:
    """What was worked out for this prior set (object) in earlier calls: per patient, per lab and patient."""
    key = id(pset)
    entry = _MEMORY.get(key)
    if entry is None or entry[0]() is not pset:
        entry = (weakref.ref(pset, lambda _, key=key: _MEMORY.pop(key, None)), {})
        _MEMORY[key] = entry
    if len(entry[1]) > _MEMORY_MAX:
        entry[1].clear()
    return entry[1]


def _remembered(memory: dict[Any, Any], key: tuple, compute) -> Any:
    """``compute()``, or its value from an earlier call; ``_FAILED`` when it raised."""
    try:
        return memory[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value: the reference will say what is wrong with it
        return _FAILED
    try:
        value = compute()
    except Exception:  # the reference meets the same value and says (or raises) what it says
        value = _FAILED
    memory[key] = value
    return value


_FAILED = object()


def _patient_key(p: _Patient) -> tuple:
    """A patient as a dict key that keeps ``True`` and ``1`` (or ``1`` and ``1.0``) apart."""
    return tuple((type(v), v) for v in p)


def _finite_age(age: Any) -> float:
    """A known age (an int or float, finite) as a float; NaN for any other."""
    if type(age) not in (int, float):
        return np.nan
    try:
        a = float(age)
    except OverflowError:
        return np.nan
    return a if np.isfinite(a) else np.nan


def _age_cuts(spec: Mapping[str, Any]) -> np.ndarray | None:
    """The ages where a lab's reference rows change, if its limits depend on age only through them.

    A reference row's age condition is ``lo <= age < hi``; when no row's limit grows with age
    (``uln: {per_year: ...}``), two known ages between the same cuts select the same rows and
    so the same limits. None when some limit grows with age.
    """
    rows = spec.get("reference") or []
    if any(isinstance(r.get("uln"), Mapping) or isinstance(r.get("lln"), Mapping) for r in rows):
        return None
    cuts = {float(b) for r in rows for b in ((r.get("when") or {}).get("age") or ())}
    return np.array(sorted(cuts), dtype=float)


# ------------------------------------------------------------------ helpers


def _valid_values(sub: Mapping[str, Any], values: list[Any], known: dict[Any, Any]) -> np.ndarray:
    """Which values the sub-schema of one key accepts (what jsonschema says, value by value).

    ``known`` keeps the validator and its answers for this key across calls.
    """
    rules = {k: v for k, v in sub.items() if k not in _ANNOTATIONS}
    if rules == {"type": "string"}:  # every lab value: jsonschema's string type is isinstance(value, str)
        if pd.api.types.infer_dtype(values, skipna=False) == "string":
            return np.ones(len(values), dtype=bool)
        return np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
    validator = known.get("validator")
    if validator is None:
        from jsonschema import Draft202012Validator

        validator = known["validator"] = Draft202012Validator(sub)

    def valid(v: Any) -> bool:
        try:
            key = (type(v), v)  # True and 1 apart
            return known[key]
        except KeyError:
            answer = known[key] = validator.is_valid(v)
            return answer
        except TypeError:  # unhashable
            return validator.is_valid(v)

    return np.fromiter((valid(v) for v in values), dtype=bool, count=len(values))


def _object_table(values: list[Any]) -> np.ndarray:
    """The values and a trailing None (code -1), as an object array (each value one element, lists too)."""
    return np.fromiter(iter([*values, None]), dtype=object, count=len(values) + 1)


def _first_of_each(codes: np.ndarray, k: int) -> list[int]:
    """For codes 0..k-1 (and -1, ignored), each present: the first position of each."""
    present = np.flatnonzero(codes >= 0)
    _, first = np.unique(codes[present], return_index=True)
    assert len(first) == k
    return present[first].tolist()


def _distinct_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the columns of a ``(k, n)`` array of codes >= -1: the first column of each distinct one, and each one's group."""
    key = np.zeros(codes.shape[1], dtype=np.int64)
    span = 1
    for row in codes:
        top = int(row.max(initial=-1)) + 2
        if span * top >= 2 ** 62:  # pragma: no cover - more distinct values than fit one integer
            _, first, inverse = np.unique(codes, axis=1, return_index=True, return_inverse=True)
            return first, inverse.reshape(-1)
        key = key * top + (row + 1)
        span *= top
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def _exact_float(b: Any) -> float:
    """A bound as the float numpy compares with (NaN for none); an error if that could change a comparison."""
    if b is None:
        return np.nan
    f = float(b)
    if not isinstance(b, float) and f != b:  # e.g. an int beyond 2**53: Python compares it exactly, numpy would not
        raise ValueError(f"bound {b!r} has no exact float")
    return f


# ------------------------------------------------------------------ the mapper


class _ColumnMapper:
    def __init__(self, pset: PriorSet, columns: Mapping[str, Column], n: int):
        self.pset = pset
        self.columns = columns
        self.n = n
        self.refer = np.zeros(n, dtype=bool)
        self.memory = _memory(pset)
        self.by_key = {str(v.case_key): v for v in pset.variables.values() if v.case_key}

    def _refer_where(self, codes: np.ndarray, failed: np.ndarray) -> None:
        """Leave the rows whose value failed to the reference (``failed`` per value, with a last entry for -1)."""
        self.refer |= failed[codes]

    def run(self) -> tuple[EvidenceTable, np.ndarray]:
        self._check_shape()
        ctx, patients, slots = self._patients()
        for section in ("history", "symptoms", "tests"):
            for key, (codes, values) in self.columns.items():
                if key.partition(".")[0] == section:
                    slots.append(self._plain(key, codes, values))
        slots.extend(self._labs(ctx, patients))
        return self._assemble(slots), self.refer

    # -------------------------------------------------------------- shape
    def _check_shape(self) -> None:
        """What the case schema checks: each value against its key's sub-schema, and an ALP value."""
        props = _schema_for(self.pset)["properties"]
        for key, (codes, values) in self.columns.items():
            section, dot, name = key.partition(".")
            sub = (props.get(section) or {}).get("properties", {}).get(name) if dot and section in SECTIONS else None
            if sub is None:
                self.refer |= codes >= 0
                continue
            known = self.memory.setdefault(("schema", key), {})
            if len(known) > _TEXTS_MAX:
                known.clear()
            self._refer_where(codes, np.append(~_valid_values(sub, values, known), False))
        alp = self.columns.get("labs.alp")
        if alp is None:
            self.refer[:] = True
        else:
            self.refer |= alp[0] < 0

    # -------------------------------------------------------------- patient
    def _patients(self) -> tuple[np.ndarray, list[_Patient], list[Slot]]:
        """Each row's patient (an index), the patients, and their evidence (age, sex, pregnant) per row."""
        parts = [self.columns.get(key, (np.full(self.n, -1, dtype=np.intp), [])) for key in _PATIENT_KEYS]
        first, ctx = _distinct_rows(np.stack([codes for codes, _ in parts]))
        patients: list[_Patient] = []
        evidence: list[dict[str, Any]] = []
        failed = np.zeros(len(first), dtype=bool)
        self.patient_keys: list[tuple] = []
        ages = []  # a known finite age as a float, else NaN
        rest: dict[tuple, int] = {}  # everything but the age
        rest_ids = []
        for g, i in enumerate(first):
            p = _Patient(*(values[codes[i]] if codes[i] >= 0 else None for codes, values in parts))
            patients.append(p)
            key = _patient_key(p)
            self.patient_keys.append(key)
            ages.append(_finite_age(p.age))
            rest_ids.append(rest.setdefault(key[1:], len(rest)))
            entries = _remembered(self.memory, ("patient", key),
                                  lambda p=p: {var: _state_value(states)
                                               for _, var, states, _ in _patient_entries(self.pset, p)})
            if entries is _FAILED:
                failed[g] = True
                entries = {}
            evidence.append(entries)
        self.refer |= failed[ctx]
        self.patient_ages = np.array(ages, dtype=float)
        self.patient_rest = np.array(rest_ids, dtype=np.intp)
        variables = _merged_order([list(e) for e in evidence])
        if variables is None:  # pragma: no cover - patients that list age, sex and pregnancy in different orders
            self.refer[:] = True
            variables = []
        slots = [(var, _object_table([e.get(var) for e in evidence])[ctx].tolist()) for var in variables]
        return ctx, patients, slots

    # -------------------------------------------------------------- history, symptoms, tests
    def _plain(self, key: str, codes: np.ndarray, values: list[Any]) -> Slot:
        var = self.by_key.get(key)
        if var is None:  # the reference fails on it
            self.refer |= codes >= 0
            return key, [None] * self.n
        states = []
        failed = np.zeros(len(values) + 1, dtype=bool)
        for j, v in enumerate(values):
            try:
                states.append(_plain_state(v))
            except Exception:
                states.append(None)
                failed[j] = True
        self._refer_where(codes, failed)
        return var.name, _object_table(states)[codes].tolist()

    # -------------------------------------------------------------- labs
    def _labs(self, ctx: np.ndarray, patients: list[_Patient]) -> list[Slot]:
        labs = self.pset.reference.get("labs") or {}
        albumin = None
        if "labs.albumin" in self.columns:
            codes, values = self.columns["labs.albumin"]
            gl = np.full(len(values) + 1, np.nan)
            failed = np.zeros(len(values) + 1, dtype=bool)
            try:
                table = _unit_table(labs["albumin"])
            except Exception:  # pragma: no cover - a prior set without albumin
                failed[:-1] = True
            else:
                for j, v in enumerate(values):
                    try:
                        g = _quantity(self.pset, "albumin", v, allow_verdict=True, table=table)
                    except Exception:
                        failed[j] = True
                    else:
                        gl[j] = np.nan if g is None else g
            self._refer_where(codes, failed)
            albumin = gl[codes]
        slots = []
        for key, (codes, values) in self.columns.items():
            section, _, name = key.partition(".")
            if section != "labs" or name in EXTRA_LAB_KEYS or name == "albumin":
                continue
            if name not in self.pset.variables or name not in labs:  # the reference fails on it
                self.refer |= codes >= 0
                slots.append((name, [None] * self.n))
                continue
            slots.append((name, self._lab(name, labs[name], codes, values, ctx, patients, albumin)))
        return slots

    def _lab(self, name: str, spec: Mapping[str, Any], codes: np.ndarray, values: list[Any], ctx: np.ndarray,
             patients: list[_Patient], albumin: np.ndarray | None) -> list[Any]:
        """One lab's evidence per row: a verdict's states, or the band of the value.

        Without the lab's own limit a value depends on its text alone: each distinct text is
        split once (:func:`_split`), each distinct unit resolved once (:func:`_accepted_unit`),
        and the checks on the numbers run on all of them at once (:func:`_negative`,
        :func:`_implausible`), the steps of :func:`_lab_reading`. With the lab's own limit each
        distinct (text, limit) is read by :func:`_lab_reading` itself.
        """
        key = f"labs.{name}"
        table = _remembered(self.memory, ("unit table", name), lambda: _unit_table(spec))
        if table is _FAILED:  # pragma: no cover - a lab without units: the reference fails on it
            self.refer |= codes >= 0
            return [None] * self.n
        m = len(values)
        texts = [str(v).strip() for v in values]
        known = self.memory.setdefault(("texts", name), {})  # text -> _read_text(...), across calls
        kinds, verdict_list, numbers, written_list, qualifier_list = _read_texts(name, key, texts, spec, table, known)
        kind = np.append(kinds, 0).astype(np.int8)  # 0 nothing, 1 verdict, 2 value, 3 value with < or >, -1 failed
        verdicts = _object_table(verdict_list)
        number = np.append(numbers, np.nan)
        qualifiers = qualifier_list + [None]
        # each unit as written, resolved once
        spelled, spellings = pd.factorize(np.fromiter(iter(written_list), dtype=object, count=m))
        unit_factor = np.full(len(spellings) + 1, np.nan)
        for u, (written, first) in enumerate(zip(spellings, _first_of_each(spelled, len(spellings)))):
            try:
                unit = _accepted_unit(key, texts[first], written, table)
            except Exception:
                continue  # NaN: failed below
            if unit not in table.own:  # (a unit that needs the lab's own limit: these texts do not give it)
                unit_factor[u] = table.factors[unit]
        factor = np.append(unit_factor[spelled], np.nan)
        kind[(kind >= 2) & np.isnan(factor)] = -1
        canonical = number * factor
        kind[(kind >= 2) & (_negative(number) | _implausible(canonical, spec)
                            | _beyond_limit(canonical, np.array(qualifiers, dtype=object), spec))] = -1

        row_kind = kind[codes]
        out = verdicts[codes]  # None where not a verdict
        x = canonical[codes]
        lab_uln = np.full(self.n, np.nan)  # the lab's own limit where a row gives one (it may itself be NaN)
        has_uln = np.zeros(self.n, dtype=bool)
        qualifier = _object_table(qualifiers[:-1])[codes]
        uln_key = spec.get("uln_key")
        if uln_key and f"labs.{uln_key}" in self.columns:
            self._with_own_limit(name, spec, table, codes, texts, uln_key, row_kind, out, x, lab_uln, has_uln,
                                 qualifier)
        self.refer |= row_kind < 0
        rows = np.flatnonzero((row_kind >= 2) & ~self.refer)
        if not len(rows):
            return out.tolist()
        x = x[rows]
        if name == "calcium" and albumin is not None:
            adjust = ~np.isnan(albumin[rows])
            x[adjust] = _albumin_adjusted(self.pset, x[adjust], albumin[rows][adjust])
        plain = row_kind[rows] == 2
        out[rows[plain]] = self._bands(name, spec, x[plain], lab_uln[rows[plain]], has_uln[rows[plain]],
                                       ctx[rows[plain]], patients)
        # "<5 ng/mL" and the like: a range of bands, read one by one
        for j in np.flatnonzero(~plain).tolist():
            i = rows[j]
            u = float(lab_uln[i]) if has_uln[i] else None
            try:
                states, _ = _states_for(key, texts[codes[i]], float(x[j]), qualifier[i], spec, u, patients[ctx[i]])
            except Exception:
                continue  # out[i] stays None, and the row goes to the reference below
            out[i] = _state_value(states)
        self.refer[rows[np.equal(out[rows], None)]] = True
        return out.tolist()

    def _with_own_limit(self, name: str, spec: Mapping[str, Any], table: Any, codes: np.ndarray, texts: list[str],
                        uln_key: str, row_kind: np.ndarray, out: np.ndarray, x: np.ndarray, lab_uln: np.ndarray,
                        has_uln: np.ndarray, qualifier: np.ndarray) -> None:
        """Rows that give the lab's own limit (``alp_uln``): each distinct (text, limit) read by :func:`_lab_reading`."""
        ucodes, uvalues = self.columns[f"labs.{uln_key}"]
        rows = np.flatnonzero((codes >= 0) & (ucodes >= 0))
        if not len(rows):
            return
        first, group = _distinct_rows(np.stack([codes[rows], ucodes[rows]]))
        order = np.argsort(group, kind="stable")
        by_group = np.split(rows[order], np.cumsum(np.bincount(group, minlength=len(first)))[:-1])
        for i, members in zip(rows[first].tolist(), by_group):
            try:
                r = _lab_reading(name, texts[codes[i]], spec, {uln_key: uvalues[ucodes[i]]}, table)
            except Exception:
                row_kind[members] = -1
                continue
            if type(r) is list:
                row_kind[members] = 1
                for k in members.tolist():
                    out[k] = _state_value(r)
            else:
                row_kind[members] = 2 if r.qualifier is None else 3
                x[members] = r.value
                if r.lab_uln is not None:
                    lab_uln[members] = r.lab_uln
                    has_uln[members] = True
                qualifier[members] = r.qualifier

    def _limits_classes(self, name: str, spec: Mapping[str, Any]) -> tuple[list[tuple], np.ndarray]:
        """Patients with the same reference limits for this lab: a key per class, and each patient's class.

        Patients whose known age lies between the same two of the lab's age cuts (:func:`_age_cuts`)
        and who agree in everything else share a class; any other patient is a class of its own.
        """
        cuts = _remembered(self.memory, ("age cuts", name), lambda: _age_cuts(spec))
        n = len(self.patient_keys)
        if cuts is None or cuts is _FAILED:
            between = np.full(n, -1)
        else:
            known = ~np.isnan(self.patient_ages)
            between = np.where(known, np.searchsorted(cuts, np.where(known, self.patient_ages, 0.0), side="right"), -1)
        own = between < 0
        first, limits_class = _distinct_rows(np.stack([np.where(own, np.arange(n), -1), between,
                                                       np.where(own, -1, self.patient_rest)]))
        keys = [self.patient_keys[c] if between[c] < 0 else (("between age cuts", int(between[c])),) +
                self.patient_keys[c][1:] for c in first.tolist()]
        return keys, limits_class

    def _bands(self, name: str, spec: Mapping[str, Any], x: np.ndarray, lab_uln: np.ndarray, has_uln: np.ndarray,
               ctx: np.ndarray, patients: list[_Patient]) -> np.ndarray:
        """The state of each value; None where it depends on what the case does not give.

        Rows with the same patient and lab limit share their reference limits: every distinct
        set of band bounds those allow (one, unless the case leaves out age, sex or trimester)
        maps the values with :func:`_band_index_many`, and a row whose sets disagree on the
        state is left to the reference (which reports it).
        """
        bands = spec["bands"]
        state_names = _object_table([b["state"] for b in bands])[:-1]
        if not len(x):
            return state_names[:0]
        uln_group = np.full(len(x), -1)  # -1: no own limit
        if has_uln.any():
            uln_group[has_uln] = np.unique(lab_uln[has_uln], return_inverse=True)[1].reshape(-1)
        keys, limits_class = self._limits_classes(name, spec)
        first, group = _distinct_rows(np.stack([limits_class[ctx], uln_group]))
        candidates = []
        for i in first.tolist():
            u = float(lab_uln[i]) if has_uln[i] else None
            p = patients[ctx[i]]
            candidates.append(_remembered(self.memory, ("bounds", name, keys[limits_class[ctx[i]]], u),
                                          lambda p=p, u=u: _bound_sets(spec, p, u)))
        failed = np.array([c is _FAILED for c in candidates], dtype=bool)
        candidates = [[(np.nan,) * len(bands)] if c is _FAILED else c for c in candidates]
        idx = None
        differ = failed[group]
        for k in range(max(len(c) for c in candidates)):
            # the k-th set of bounds of each group (its first where it has fewer)
            bounds = np.array([c[k] if k < len(c) else c[0] for c in candidates], dtype=float)
            idx_k = _band_index_many(bands, x, bounds.reshape(len(candidates), len(bands))[group])
            if idx is None:
                idx = idx_k
            else:
                differ |= state_names[idx_k] != state_names[idx]
        assert idx is not None
        names = state_names[idx]
        names[differ] = None
        return names

    # -------------------------------------------------------------- evidence
    def _assemble(self, slots: list[Slot]) -> EvidenceTable:
        """Each row's evidence in the reference's order: patient, history, symptoms, tests, labs."""
        columns = [np.fromiter(iter(values), dtype=object, count=self.n) for _, values in slots]
        return EvidenceTable([var for var, _ in slots], columns, self.refer.copy())


#: Lab texts remembered per lab across calls (then read afresh): enough for the distinct values of a large file.
_TEXTS_MAX = 10_000


def _read_texts(name: str, key: str, texts: list[str], spec: Mapping[str, Any], table: Any,
                known: dict[str, tuple]) -> tuple[np.ndarray, list[Any], np.ndarray, list[str | None], list[str | None]]:
    """:func:`_read_text` of every text, as five columns: ``(kinds, verdicts, numbers, units
    as written, qualifiers)``.

    The common "108.6 U/L" (ASCII digits, a point between digits if any, one space, a
    unit with no white space or comma) is read by :func:`_plain_quantities`, for all
    texts at once; every other text goes through :func:`_read_text` (or its reading in
    ``known``, which keeps up to :data:`_TEXTS_MAX` of them across calls).
    """
    m = len(texts)
    plain, numbers, written = _plain_quantities(texts)
    kinds = np.where(plain, 2, 0).astype(np.int8)
    verdicts: list[Any] = [None] * m
    qualifiers: list[str | None] = [None] * m
    get = known.get
    for i in np.flatnonzero(~plain).tolist():
        text = texts[i]
        reading = get(text)
        if reading is None:
            reading = _read_text(name, key, text, spec, table)
            if len(known) < _TEXTS_MAX:
                known[text] = reading
        kinds[i], verdicts[i], numbers[i], written[i], qualifiers[i] = reading
    return kinds, verdicts, numbers, written, qualifiers


#: "108.6 U/L": digits (a point between them), one space, a unit with none of the characters
#: Python's ``str.split`` splits at (nor other control characters) and no comma.
_PLAIN_QUANTITY = (r"^[0-9]+(?:\.[0-9]+)? [^\x00-\x20,\x7f-\xa0\x{1680}\x{2000}-\x{200a}"
                   r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+$")


def _plain_quantities(texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Which texts are a plain "108.6 U/L", with the number and the unit of each (of the
    others: anything), found by :mod:`pyarrow` on all of them at once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not texts:
        return np.zeros(0, dtype=bool), np.zeros(0), []
    text = pa.array(texts, type=pa.string())
    plain = pc.match_substring_regex(text, _PLAIN_QUANTITY)
    parts = pc.split_pattern(pc.if_else(plain, text, "0 -"), " ", max_splits=1)
    numbers = pc.cast(pc.list_element(parts, 0), pa.float64()).to_numpy(zero_copy_only=False)
    units = pc.list_element(parts, 1).to_pylist()
    return plain.to_numpy(zero_copy_only=False), numbers.astype(float, copy=True), units


def _read_text(name: str, key: str, text: str, spec: Mapping[str, Any], table: Any
               ) -> tuple[int, Any, float, str | None, str | None]:
    """What a lab text says before its unit is resolved: ``(kind, verdict states, number, unit as written, qualifier)``.

    ``kind`` is 1 for a verdict word, 2 for a value, 3 for a value with ``<`` or ``>``, -1 when
    :func:`_lab_reading` (its verdict step) or :func:`_split` rejects the text.
    """
    try:
        if text.lower() in VERDICTS:
            return 1, _state_value(_lab_reading(name, text, spec, {}, table)), np.nan, None, None
        number, written, qualifier = _split(key, text, table)
    except Exception:
        return -1, None, np.nan, None, None
    return (2 if qualifier is None else 3), None, number, written, qualifier


def _merged_order(orders: list[list[str]]) -> list[str] | None:
    """One order of all names that keeps the order of each list (None if there is none)."""
    merged: list[str] = []
    for order in orders:
        at = -1
        for name in order:
            if name in merged:
                at = merged.index(name)
            else:
                at += 1
                merged.insert(at, name)
    position = {name: i for i, name in enumerate(merged)}
    if any([position[x] for x in order] != sorted(position[x] for x in order) for order in orders):
        return None
    return merged


def _bound_sets(spec: Mapping[str, Any], p: _Patient, lab_uln: float | None) -> list[tuple[float, ...]]:
    """The distinct band bounds (:func:`_band_bound`, NaN for none) the reference limits of a patient allow."""
    bands = spec["bands"]
    multiple = spec.get("scale") == "uln_multiple"
    rules = [_band_rule(b) for b in bands]
    sets: list[tuple[float, ...]] = []
    for lln, uln, _ in _reference_limits(spec, p, lab_uln):
        bounds = tuple(np.nan if op is None else _exact_float(_band_bound(b, lln, uln, multiple)) for op, b in rules)
        if bounds not in sets:
            sets.append(bounds)
    return sets

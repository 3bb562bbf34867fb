"""From a case (file or mapping) to model evidence.

Reads YAML or JSON, checks it against the case schema, converts units exactly,
picks the reference interval (the lab's own limit first, then alpnet's age-,
sex- and pregnancy-specific one) and maps every value to a model state. Every
problem is a :class:`~alpnet.errors.CaseError` naming the key, the value and what
is accepted; nothing is dropped or guessed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml

from .documents import DocumentError, load_json, load_yaml
from .errors import CaseError
from .priors import PriorSet
from .schema import EXTRA_LAB_KEYS, QUALIFIES, SECTIONS, VERDICTS, case_schema
from .units import normalise_unit, split_quantity

__all__ = ["Case", "read_case", "case_from_mapping", "case_to_evidence", "StateMapping"]


@dataclass
class Case:
    """One patient at one moment, as read from a case file or mapping.

    Attributes
    ----------
    id : str
        ``case_id`` in outputs.
    data : dict
        The case mapping (sections patient, history, symptoms, labs, tests).
    path : Path or None
        The file it came from.
    """

    id: str
    data: dict[str, Any]
    path: Path | None = None

    @property
    def about(self) -> dict[str, Any]:
        """Teaching metadata (alpnet's ``about:`` addition), or an empty dict."""
        about = self.data.get("about")
        return dict(about) if isinstance(about, Mapping) else {}


@dataclass
class StateMapping:
    """How one input value became a model state (``--show-states``)."""

    key: str
    input: str
    variable: str
    states: list[str]
    value: float | None = None
    unit: str | None = None
    reference: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def read_case(path: str | Path) -> Case:
    """Read a case file (YAML or JSON).

    Parameters
    ----------
    path : str or Path
        ``.yaml``, ``.yml`` or ``.json``.

    Returns
    -------
    Case
        Its id is the file's ``id`` or else the file name's stem. The case is
        checked for shape here; values are checked when mapped to evidence.

    Raises
    ------
    CaseError
        If the file cannot be read or is not one mapping.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise CaseError(f"read_case: {path!r} is not a file path; accepted: a str or Path of a .yaml, .yml or .json file")
    p = Path(path)
    if not p.exists():
        raise CaseError(f"{p}: no such file")
    if p.is_dir():
        raise CaseError(f"{p}: is a folder, not a case file")
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the document
    except UnicodeDecodeError:
        raise CaseError(f"{p}: not a text file (expected YAML or JSON, UTF-8)") from None
    except OSError as exc:
        raise CaseError(f"{p}: cannot be read: {exc.strerror}") from None
    try:
        if p.suffix.lower() == ".json":
            data = load_json(text)
        else:
            data = load_yaml(text)
    except (yaml.YAMLError, json.JSONDecodeError, DocumentError) as exc:
        kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CaseError(f"{p}: not valid {kind}: {first}") from None
    return case_from_mapping(data, default_id=p.stem, path=p)


def case_from_mapping(data: Any, *, default_id: str = "case", path: Path | None = None) -> Case:
    """Wrap a case mapping as a :class:`Case` (shape checked, values not yet).

    Raises
    ------
    CaseError
        If ``data`` is not a mapping with string keys.
    """
    where = f"{path}: " if path else ""
    if not isinstance(data, Mapping):
        raise CaseError(f"{where}a case must be one mapping with the sections "
                        f"{', '.join(SECTIONS)}; got {type(data).__name__}")
    cid = data.get("id", default_id)
    if isinstance(cid, bool) or not isinstance(cid, (str, int)) or str(cid).strip() == "":
        raise CaseError(f"{where}id: {cid!r} must be a non-empty string")
    return Case(id=str(cid), data=dict(data), path=path)


# ------------------------------------------------------------------ validation


def _check_plain_values(value: Any, where: str) -> None:
    """Refuse a value a YAML or JSON file could not hold (a complex number, bytes, a date...),
    which a case built in Python may carry; the schema check assumes plain values."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_plain_values(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_plain_values(v, where)
    elif not (value is None or isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_))):
        raise CaseError(f"{where or 'case'}: {value!r} is a {type(value).__name__}; accepted: text, a number, "
                        "true or false, as in a case file")


def _path_str(path) -> str:
    return ".".join(str(p) for p in path)


def _validate_shape(case: Case, pset: PriorSet) -> None:
    import difflib

    from jsonschema import Draft202012Validator

    _check_plain_values(case.data, "")
    schema = _schema_for(pset)
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(case.data), key=lambda e: (len(e.path), [str(p) for p in e.path]))
    if not errors:
        return
    e = errors[0]
    loc = _path_str(e.absolute_path)
    if e.validator == "additionalProperties":
        props = e.schema.get("properties", {})
        extra = [k for k in e.instance if k not in props]
        bad = extra[0]
        close = difflib.get_close_matches(str(bad), list(props), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        key = f"{loc}.{bad}" if loc else str(bad)
        raise CaseError(f"{key}: unknown key{hint}; accepted: {', '.join(props)}")
    if e.validator == "required":
        missing = [k for k in e.validator_value if k not in e.instance][0]
        key = f"{loc}.{missing}" if loc else str(missing)
        why = " (every case needs the ALP result)" if missing in ("labs", "alp") else ""
        raise CaseError(f"{key}: is required{why}")
    if e.validator == "enum":
        accepted = ", ".join(str(x) for x in e.validator_value)
        why = ""
        if isinstance(e.instance, bool) and not any(isinstance(x, bool) for x in e.validator_value):
            # YAML 1.1 reads yes/no/on/off as booleans before alpnet sees the word
            why = " (YAML reads an unquoted yes, no, on or off as true or false)"
        raise CaseError(f"{loc}: {_shown(e.instance)} is not accepted{why}; accepted: {accepted}")
    if e.validator == "type":
        expected = e.validator_value
        if loc.startswith("labs.") and isinstance(e.instance, (int, float)) and not isinstance(e.instance, bool):
            raise CaseError(f"{loc}: {e.instance!r} has no unit; write the value with its unit, "
                            f"e.g. \"{e.instance} {_example_unit(pset, loc)}\", or the lab's verdict low | normal | high")
        want = {"boolean": "true or false", "number": "a number", "object": "a mapping of keys to values",
                "string": "a string such as \"420 U/L\""}
        w = " or ".join(want.get(t, t) for t in (expected if isinstance(expected, list) else [expected]))
        raise CaseError(f"{loc or 'case'}: expected {w}; got {_shown(e.instance)}")
    if e.validator in ("minimum", "maximum"):
        raise CaseError(f"{loc}: {e.instance!r} is not possible; accepted: 0 to 125 years")
    raise CaseError(f"{loc or 'case'}: {e.message}")  # pragma: no cover - other keywords are not used


def _shown(value: Any) -> str:
    """A value as a case file writes it: null, true and false as YAML and JSON spell them (not
    Python's None, True, False); anything else as its repr (strings quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


_SCHEMA_CACHE: dict[str, dict[str, Any]] = {}


def _schema_for(pset: PriorSet) -> dict[str, Any]:
    key = pset.sha256
    if key not in _SCHEMA_CACHE:
        _SCHEMA_CACHE[key] = case_schema(pset)
    return _SCHEMA_CACHE[key]


def _example_unit(pset: PriorSet, loc: str) -> str:
    lab = loc.split(".", 1)[1]
    spec = pset.reference["labs"].get(lab if lab not in EXTRA_LAB_KEYS else lab.replace("_uln", ""), {})
    return spec.get("unit", "U/L")


# ------------------------------------------------------------------ mapping


def case_to_evidence(case: Case | Mapping[str, Any], pset: PriorSet) -> tuple[dict[str, Any], list[StateMapping]]:
    """Map a case to model evidence.

    Parameters
    ----------
    case : Case or mapping
    pset : PriorSet

    Returns
    -------
    evidence : dict
        Variable -> state, or variable -> list of states (a value known only to
        lie in one of several states, e.g. ``alp: high``).
    mappings : list of StateMapping
        How each input value became its state(s).

    Raises
    ------
    CaseError
    """
    if not isinstance(case, Case):
        case = case_from_mapping(case)
    _validate_shape(case, pset)
    mapper = _Mapper(case, pset)
    return mapper.run()


class _Patient(NamedTuple):
    """The patient fields a case's mapping reads (None where the case does not give one)."""

    age: Any = None
    sex: Any = None
    pregnant: Any = None
    trimester: Any = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> "_Patient":
        patient = data.get("patient") or {}
        return cls(patient.get("age"), patient.get("sex"), patient.get("pregnant"), patient.get("trimester"))


class _Reading(NamedTuple):
    """A lab value read from its text, before the reference interval: see :func:`_lab_reading`."""

    value: float
    qualifier: str | None
    lab_uln: float | None
    unit: str  # the unit the value is shown in


class _UnitTable(NamedTuple):
    """A lab's accepted units (see :func:`_unit_table`)."""

    units: dict[str, Any]  # unit -> its factor entry; None for a unit that needs the lab's own limit
    accepted: str
    norm: dict[str, str]  # normalised spelling -> unit
    factors: dict[str, float]  # unit -> factor to the canonical unit (NaN: needs the lab's own limit)
    own: set[str]  # units whose limits differ between labs (those of own_limit_units, in any spelling)


def _state_value(states: list[str]) -> str | list[str]:
    """Evidence for one variable: its state, or the list of states it may be in."""
    return states[0] if len(states) == 1 else list(states)


def _plain_state(value: Any) -> str:
    """The state a history, symptom or test value names (a boolean as ``true``/``false``)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class _Mapper:
    def __init__(self, case: Case, pset: PriorSet):
        self.case = case
        self.pset = pset
        self.data = case.data
        self.by_key = {str(v.case_key): v for v in pset.variables.values() if v.case_key}
        self.evidence: dict[str, Any] = {}
        self.records: list[StateMapping] = []
        self.patient = _Patient.of(self.data)

    def put(self, key: str, var: str, states: list[str], **extra: Any) -> None:
        self.evidence[var] = _state_value(states)
        shown = extra.pop("input", None)
        self.records.append(StateMapping(key=key, input=str(shown), variable=var, states=list(states), **extra))

    def unused(self, key: str, raw: Any, why: str, value: float | None = None, unit: str | None = None) -> None:
        """Record an input that is valid but moves no variable (``states`` empty), saying why."""
        self.records.append(StateMapping(key=key, input=str(raw), variable="", states=[], value=value, unit=unit,
                                         note=f"not used: {why}"))

    def run(self) -> tuple[dict[str, Any], list[StateMapping]]:
        for key, var, states, extra in _patient_entries(self.pset, self.patient):
            self.put(key, var, states, **extra)
        for section in ("history", "symptoms", "tests"):
            for name, value in (self.data.get(section) or {}).items():
                key = f"{section}.{name}"
                var = self.by_key[key]
                self.put(key, var.name, [_plain_state(value)], input=value)
        self._labs()
        return self.evidence, self.records

    def _labs(self) -> None:
        labs = self.data.get("labs") or {}
        ref = self.pset.reference
        albumin_gl = None
        albumin_used = False
        if "albumin" in labs:
            albumin_gl = _quantity(self.pset, "albumin", labs["albumin"], allow_verdict=True)
        for extra in EXTRA_LAB_KEYS:  # a lab's own limit without its result: checked, then reported unused
            lab = QUALIFIES[extra]
            if extra in labs and lab not in labs:
                _quantity_uln(extra, labs[extra], ref["labs"][lab])
                self.unused(f"labs.{extra}", labs[extra], f"it is the reporting lab's limit for labs.{lab}, "
                                                          "which the case does not give")
        for name, raw in labs.items():
            if name in EXTRA_LAB_KEYS or name == "albumin":
                continue
            key = f"labs.{name}"
            if name not in self.pset.variables:  # pragma: no cover - schema only admits known labs
                raise CaseError(f"{key}: unknown lab")
            spec = ref["labs"][name]
            text = str(raw).strip()
            reading = _lab_reading(name, text, spec, labs)
            if isinstance(reading, list):
                self.put(key, name, reading, input=raw, note="the reporting lab's own verdict")
                continue
            value, note = reading.value, None
            if name == "calcium" and albumin_gl is not None:
                note = f"albumin-adjusted from {value:.4g} with albumin {albumin_gl:.3g} g/L"
                value = _albumin_adjusted(self.pset, value, albumin_gl)
                albumin_used = True
            states, ref_text = _states_for(key, text, value, reading.qualifier, spec, reading.lab_uln, self.patient)
            if reading.lab_uln is not None:
                ref_text = f"the lab's own limit {reading.lab_uln:.4g} {reading.unit}"
            self.put(key, name, states, input=text, value=round(value, 6), unit=reading.unit, reference=ref_text,
                     note=note)
        if "albumin" in labs and not albumin_used:
            if albumin_gl is None:
                self.unused("labs.albumin", labs["albumin"], "albumin adjusts a total calcium given as a number; "
                                                             "a verdict word gives no number to adjust with")
            else:
                given = "the calcium as a verdict word" if "calcium" in labs else "no calcium"
                self.unused("labs.albumin", labs["albumin"], "albumin only adjusts a total calcium given as a "
                            f"number, and the case gives {given}", round(albumin_gl, 6), "g/L")


# ------------------------------------------------------------------ patient


def _patient_entries(pset: PriorSet, p: _Patient) -> list[tuple[str, str, list[str], dict[str, Any]]]:
    """``(key, variable, states, record fields)`` for age, sex and pregnancy.

    Raises
    ------
    CaseError
        A trimester without pregnancy, or a pregnant man.
    """
    out: list[tuple[str, str, list[str], dict[str, Any]]] = []
    if p.age is not None:
        if not math.isfinite(float(p.age)):
            raise CaseError(f"patient.age: {p.age!r} is not a number; accepted: 0 to 125 years")
        var = pset.variables["age"]
        bands = var.spec["bands"]
        idx = int(np.searchsorted(bands, float(p.age), side="right"))
        out.append(("patient.age", "age", [var.states[idx]], {"input": p.age, "value": float(p.age), "unit": "years"}))
    if p.sex is not None:
        out.append(("patient.sex", "sex", [p.sex], {"input": p.sex}))
    if p.trimester is not None and p.pregnant is not True:
        raise CaseError(f"patient.trimester: {p.trimester!r} is given without patient.pregnant: true")
    if p.pregnant is not None:
        if p.pregnant and p.sex == "male":
            raise CaseError("patient.pregnant: true conflicts with patient.sex: male")
        window = pset.reference.get("pregnancy_age")
        if p.pregnant and p.age is not None and window and not window["min"] <= float(p.age) < window["max"]:
            raise CaseError(f"patient.pregnant: true conflicts with patient.age: {p.age!r}; accepted: pregnancy at "
                            f"{window['min']:g} to {window['max']:g} years (priors/reference.yaml, pregnancy_age)")
        if not p.pregnant:
            states = ["not_pregnant"]
        elif p.trimester is not None:
            states = [f"trimester_{int(p.trimester)}"]
        else:
            states = ["trimester_1", "trimester_2", "trimester_3"]
        out.append(("patient.pregnant", "pregnant", states,
                    {"input": p.pregnant, "note": None if len(states) == 1 else "trimester not given: any of the three"}))
    return out


# ------------------------------------------------------------------ lab values


def _unit_table(spec: Mapping[str, Any]) -> _UnitTable:
    """The units a lab accepts, as :func:`_parse` reads them."""
    units = dict(spec["units"])
    for own in spec.get("own_limit_units") or []:
        units.setdefault(own, None)  # needs the lab's own limit; no factor
    own_norm = {normalise_unit(u) for u in spec.get("own_limit_units") or []}
    return _UnitTable(units=units, accepted=", ".join(units), norm={normalise_unit(u): u for u in units},
                      factors={u: float("nan") if f is None else float(f["factor"] if isinstance(f, Mapping) else f)
                               for u, f in units.items()},
                      own={u for u in units if normalise_unit(u) in own_norm})


def _parse(key: str, text: str, spec: Mapping[str, Any], table: _UnitTable | None = None
           ) -> tuple[float, str | None, str, float]:
    """``(value as written, qualifier, accepted unit, factor to the canonical unit)`` of a lab text.

    ``table`` is ``_unit_table(spec)``, given by a caller that reads many values of one lab.
    """
    t = _unit_table(spec) if table is None else table
    value, written, qualifier = _split(key, text, t)
    unit = _accepted_unit(key, text, written, t)
    if _negative(value):
        raise CaseError(f"{key}: {text!r} is negative; a concentration or activity cannot be below 0")
    return value, qualifier, unit, t.factors[unit]


def _split(key: str, text: str, t: _UnitTable) -> tuple[float, str, str | None]:
    """``(value, unit as written, qualifier)`` of a lab text: the first step of :func:`_parse`."""
    if "," in text:
        raise CaseError(f"{key}: {text!r}: write the number without a comma "
                        "(a comma could be a thousands separator or a decimal point)")
    q = split_quantity(text)
    if q is None:
        raise CaseError(f"{key}: {text!r} is not a value with a unit; accepted: \"<number> <unit>\" "
                        f"with a unit among {t.accepted}, or low | normal | high")
    if q[1] == "":
        raise CaseError(f"{key}: {text!r} has no unit; accepted units: {t.accepted}")
    return q


def _accepted_unit(key: str, text: str, written: str, t: _UnitTable) -> str:
    """The accepted unit a written unit names (the second step of :func:`_parse`)."""
    unit = t.norm.get(normalise_unit(written))
    if unit is None:
        raise CaseError(f"{key}: unknown unit {written!r} in {text!r}; accepted: {t.accepted}")
    return unit


def _negative(value: Any) -> Any:
    """A value below 0 (floats or numpy arrays alike)."""
    return value < 0


def _implausible(value: Any, spec: Mapping[str, Any]) -> Any:
    """A value (canonical unit) outside the lab's plausible limits (floats or numpy arrays alike)."""
    pl = spec.get("plausible") or {}
    lo, hi = pl.get("min"), pl.get("max")
    out = False
    if lo is not None:
        out = out | (value < lo)
    if hi is not None:
        out = out | (value > hi)
    return out


def _beyond_limit(value: Any, qualifier: Any, spec: Mapping[str, Any]) -> Any:
    """A bound that leaves no plausible value: ``<`` at or below the plausible minimum, ``>`` at
    or above the maximum (``<0``, say). Floats, or numpy arrays of values and qualifiers alike."""
    pl = spec.get("plausible") or {}
    lo, hi = pl.get("min"), pl.get("max")
    q = np.asarray(qualifier, dtype=object)
    out = np.zeros(np.shape(value), dtype=bool)
    if lo is not None:
        out = out | ((q == "<") & (value <= lo))
    if hi is not None:
        out = out | ((q == ">") & (value >= hi))
    return out


def _check_plausible(key: str, text: str, value: float, spec: Mapping[str, Any], qualifier: str | None = None) -> None:
    if _implausible(value, spec) or bool(_beyond_limit(value, qualifier, spec)):
        pl = spec.get("plausible") or {}
        raise CaseError(f"{key}: {text!r} is physiologically impossible; accepted: {pl.get('min')} to {pl.get('max')} "
                        f"{spec['unit']} (or the equivalent in another unit)")


def _quantity(pset: PriorSet, name: str, raw: Any, allow_verdict: bool = False,
              table: _UnitTable | None = None) -> float | None:
    """A lab value in its canonical unit (None for a verdict word when ``allow_verdict``)."""
    key = f"labs.{name}"
    spec = pset.reference["labs"][name]
    text = str(raw).strip()
    if allow_verdict and text.lower() in VERDICTS:
        return None
    value, qualifier, _, factor = _parse(key, text, spec, table)
    value = value * factor
    _check_plausible(key, text, value, spec, qualifier)
    return value


def _quantity_uln(uln_key: str, raw: Any, spec: Mapping[str, Any], table: _UnitTable | None = None) -> float:
    key = f"labs.{uln_key}"
    text = str(raw).strip()
    t = _unit_table(spec) if table is None else table
    value, qualifier, unit, factor = _parse(key, text, spec, t)
    if qualifier is not None:
        raise CaseError(f"{key}: {text!r} is a limit, so it must be one number with its unit, "
                        f"without {qualifier!r}")
    if unit in t.own or not np.isfinite(factor):  # an activity limit for a mass result: no conversion
        raise CaseError(f"{key}: {text!r} is in {unit}, which cannot be compared with the result's unit; "
                        f"give the limit in the result's unit (accepted: "
                        f"{', '.join(u for u, f in t.factors.items() if np.isfinite(f))})")
    value = value * factor
    if value <= 0:
        raise CaseError(f"{key}: {text!r} must be above 0")
    # the limit's own plausible span where the prior set gives one, else the result's
    limits = {"plausible": spec["uln_plausible"], "unit": spec["unit"]} if spec.get("uln_plausible") else spec
    if _implausible(value, limits):
        pl = limits["plausible"]
        raise CaseError(f"{key}: {text!r} is not a plausible upper reference limit; accepted: {pl.get('min')} to "
                        f"{pl.get('max')} {spec['unit']} (or the equivalent in another unit)")
    return value


def _lab_reading(name: str, text: str, spec: Mapping[str, Any], labs: Mapping[str, Any],
                 table: _UnitTable | None = None) -> list[str] | _Reading:
    """One lab cell read: the states its verdict word allows, or its value (see :class:`_Reading`).

    Depends only on the text, the lab and, for a lab with its own limit (``uln_key``), that
    limit's entry in ``labs``; not on the patient. The reference interval comes after
    (:func:`_states_for`), and for calcium the albumin adjustment before it.

    Raises
    ------
    CaseError
    """
    key = f"labs.{name}"
    if text.lower() in VERDICTS:
        verdicts = spec.get("verdicts") or {}
        word = text.lower()
        states = list(verdicts.get(word) or [])
        if not states:
            raise CaseError(f"{key}: the verdict {word!r} has no meaning for this lab; "
                            f"accepted: {', '.join(verdicts) or 'a value with its unit'}")
        return states
    t = _unit_table(spec) if table is None else table
    value, qualifier, unit, factor = _parse(key, text, spec, t)
    uln_key = spec.get("uln_key")
    lab_uln = None
    if unit in t.own:
        if not uln_key or uln_key not in labs:
            raise CaseError(f"{key}: {text!r} is in {unit}, whose limits differ between labs; "
                            f"give the lab's own limit as labs.{uln_key} in {unit}")
        uvalue, _, uunit, _ = _parse(f"labs.{uln_key}", str(labs[uln_key]).strip(), spec, t)
        if normalise_unit(uunit) != normalise_unit(unit):
            raise CaseError(f"labs.{uln_key}: {labs[uln_key]!r} must be in the same unit as {key} ({unit})")
        lab_uln = uvalue
        shown_unit = unit
    else:
        value = value * factor
        _check_plausible(key, text, value, spec, qualifier)
        shown_unit = spec["unit"]
        if uln_key and uln_key in labs:
            lab_uln = _quantity_uln(uln_key, labs[uln_key], spec, t)
    return _Reading(value, qualifier, lab_uln, shown_unit)


def _albumin_adjusted(pset: PriorSet, value: Any, albumin_gl: Any) -> Any:
    """Calcium adjusted for albumin (g/L); floats or numpy arrays alike."""
    adj = pset.reference["albumin_adjustment"]
    coef = float(adj["coefficient"]["value"])
    ref_alb = float(adj["reference_albumin"]["value"])
    return value + coef * (ref_alb - albumin_gl)


# ------------------------------------------------------------ reference


def _candidates(p: _Patient) -> list[tuple[float | None, str | None, str | None]]:
    """Every (age, sex, pregnancy state) the case allows: several where it does not say."""
    ages = [float(p.age)] if p.age is not None else [None]
    sexes = [p.sex] if p.sex is not None else ["female", "male"]
    out = []
    for sex in sexes:
        # pregnancy-specific ranges apply only when the case says the patient is pregnant
        # (documented in docs/case-format.md), as a laboratory does
        if p.pregnant is True and sex != "male":
            pregs = [f"trimester_{int(p.trimester)}"] if p.trimester else ["trimester_1", "trimester_2", "trimester_3"]
        else:
            pregs = ["not_pregnant"]
        for age in ages:
            for preg in pregs:
                out.append((age, sex, preg))
    return out


def _row_matches(when: Mapping[str, Any], age: float | None, sex: str | None, preg: str | None) -> bool | None:
    """True/False, or None when it depends on an unknown age."""
    if "sex" in when and when["sex"] != sex:
        return False
    if "pregnant" in when:
        allowed = when["pregnant"] if isinstance(when["pregnant"], list) else [when["pregnant"]]
        if preg not in allowed:
            return False
    if "age" in when:
        lo, hi = when["age"]
        if age is None:
            return None
        if not (lo <= age < hi):
            return False
    return True


def _reference_limits(spec: Mapping[str, Any], p: _Patient, lab_uln: float | None) -> list[tuple[Any, Any, Any]]:
    """``(lln, uln, reference row)`` for every patient the case may describe, in order.

    One entry when the case gives what the lab's reference interval depends on; several
    (every candidate sex, trimester and, for an unknown age, a set of probe ages) otherwise.
    With the lab's own limit ``lab_uln`` that limit is the uln and there is no lln.
    """
    rows = spec.get("reference") or []
    out = []
    for age, sex, preg in _candidates(p):
        ages_to_try = [age]
        age_dependent = any("age" in (r.get("when") or {}) or isinstance(r.get("uln"), Mapping) for r in rows)
        if age is None and age_dependent and lab_uln is None:
            ages_to_try = sorted({float(r["when"]["age"][0]) for r in rows if "age" in (r.get("when") or {})}
                                 | {5.0, 12.0, 16.0, 30.0, 60.0, 85.0})
        for a in ages_to_try:
            row = next(r for r in rows if _row_matches(r.get("when") or {}, a, sex, preg) is not False) \
                if rows else {}
            lln = row.get("lln")
            uln = row.get("uln")
            if isinstance(uln, Mapping):
                uln = float(uln.get("add", 0)) + float(uln.get("per_year", 0)) * (a if a is not None else 0.0)
            if lab_uln is not None:
                uln, lln = lab_uln, None
            out.append((lln, uln, row))
    return out


def _states_for(key: str, text: str, value: float, qualifier: str | None, spec: Mapping[str, Any],
                lab_uln: float | None, p: _Patient) -> tuple[list[str], str]:
    """The states of a lab value and the reference text; CaseError when they depend on what the case does not give."""
    results: dict[tuple[str, ...], str] = {}
    for lln, uln, row in _reference_limits(spec, p, lab_uln):
        states = tuple(_band_states(spec, value, qualifier, lln, uln))
        results.setdefault(states, _ref_text(spec, lln, uln, row, lab_uln))
    if len(results) > 1:
        needs = [w for w, known in (("patient.age", p.age is not None), ("patient.sex", p.sex is not None),
                                    ("patient.trimester", p.trimester is not None or not p.pregnant))
                 if not known]
        hint = f" or labs.{spec['uln_key']}" if spec.get("uln_key") else " or the lab's verdict (low | normal | high)"
        raise CaseError(f"{key}: {text!r} falls in different bands depending on {', '.join(needs) or 'the patient'}, "
                        f"which the case does not give; add {' and '.join(needs) or 'them'}{hint}")
    states, ref_text = next(iter(results.items()))
    return list(states), ref_text


def _ref_text(spec, lln, uln, row, lab_uln) -> str:
    parts = []
    if lln is not None:
        parts.append(f"lln {lln:.4g}")
    if uln is not None:
        parts.append(f"uln {uln:.4g}")
    src = row.get("source") if lab_uln is None and row else None
    text = " ".join(parts) + (f" {spec['unit']}" if parts else "")
    if src:
        text += f" (alpnet reference: {src})"
    return text.strip()


# ------------------------------------------------------------ bands


def _band_rule(band: Mapping[str, Any]) -> tuple[str | None, Any]:
    """How a value is tested against a band: ``("<", bound)``, ``("<=", bound)``, or ``(None, None)`` (any value)."""
    if "below" in band:
        return "<", band["below"]
    if "at_most" in band:
        return "<=", band["at_most"]
    return None, None


def _band_bound(b: Any, lln: Any, uln: Any, multiple: bool) -> Any:
    """A band's bound as a number (None: no bound, the band is skipped)."""
    if b == "lln":
        return lln
    if b == "uln":
        return uln
    if multiple:
        return None if uln is None else float(b) * uln
    return float(b)


def _band_index(bands: list[Mapping[str, Any]], x: float, lln: Any, uln: Any, multiple: bool) -> int:
    """The first band a value falls in."""
    for i, band in enumerate(bands):
        op, b = _band_rule(band)
        if op is None:
            return i
        bound = _band_bound(b, lln, uln, multiple)
        if bound is not None and (x < bound if op == "<" else x <= bound):
            return i
    return len(bands) - 1  # pragma: no cover - the last band has no bound


def _band_index_many(bands: list[Mapping[str, Any]], x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """:func:`_band_index` of many values at once.

    ``bounds[i, j]`` is band ``j``'s bound (:func:`_band_bound`) for ``x[i]``, NaN where it has none.
    """
    idx = np.full(len(x), len(bands) - 1, dtype=np.intp)
    for j in range(len(bands) - 1, -1, -1):  # the first band that holds the value wins
        op, _ = _band_rule(bands[j])
        if op is None:
            idx[:] = j
        elif op == "<":
            idx[x < bounds[:, j]] = j
        else:
            idx[x <= bounds[:, j]] = j
    return idx


def _band_states(spec: Mapping[str, Any], value: float, qualifier: str | None,
                 lln: float | None, uln: float | None) -> list[str]:
    bands = spec["bands"]
    multiple = spec.get("scale") == "uln_multiple"
    if qualifier is None:
        idx = [_band_index(bands, value, lln, uln, multiple)]
    else:
        pl = spec.get("plausible") or {}
        if qualifier in ("<", "<="):
            lo = float(pl.get("min", 0.0))
            hi = value if qualifier == "<=" else float(np.nextafter(value, -np.inf))
        else:
            lo = value if qualifier == ">=" else float(np.nextafter(value, np.inf))
            hi = float(pl.get("max", value * 1e6))
        a, b = _band_index(bands, max(lo, 0.0), lln, uln, multiple), _band_index(bands, hi, lln, uln, multiple)
        idx = list(range(min(a, b), max(a, b) + 1))
    seen: list[str] = []
    for i in idx:
        s = bands[i]["state"]
        if s not in seen:
            seen.append(s)
    return seen

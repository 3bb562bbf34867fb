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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from .errors import CaseError
from .priors import PriorSet
from .schema import EXTRA_LAB_KEYS, SECTIONS, VERDICTS, case_schema
from .units import normalise_unit, parse_quantity

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
    p = Path(path)
    if not p.exists():
        raise CaseError(f"{p}: no such file")
    if p.is_dir():
        raise CaseError(f"{p}: is a folder, not a case file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CaseError(f"{p}: not a text file (expected YAML or JSON, UTF-8)") from None
    except OSError as exc:
        raise CaseError(f"{p}: cannot be read: {exc.strerror}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
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


def _path_str(path) -> str:
    return ".".join(str(p) for p in path)


def _validate_shape(case: Case, pset: PriorSet) -> None:
    import difflib

    from jsonschema import Draft202012Validator

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
        raise CaseError(f"{loc}: {e.instance!r} is not accepted; accepted: {accepted}")
    if e.validator == "type":
        expected = e.validator_value
        if loc.startswith("labs.") and isinstance(e.instance, (int, float)) and not isinstance(e.instance, bool):
            raise CaseError(f"{loc}: {e.instance!r} has no unit; write the value with its unit, "
                            f"e.g. \"{e.instance} {_example_unit(pset, loc)}\", or the lab's verdict low | normal | high")
        want = {"boolean": "true or false", "number": "a number", "object": "a mapping of keys to values",
                "string": "a string such as \"420 U/L\""}
        w = " or ".join(want.get(t, t) for t in (expected if isinstance(expected, list) else [expected]))
        raise CaseError(f"{loc or 'case'}: expected {w}; got {e.instance!r}")
    if e.validator in ("minimum", "maximum"):
        raise CaseError(f"{loc}: {e.instance!r} is not possible; accepted: 0 to 125 years")
    raise CaseError(f"{loc or 'case'}: {e.message}")  # pragma: no cover - other keywords are not used


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


class _Mapper:
    def __init__(self, case: Case, pset: PriorSet):
        self.case = case
        self.pset = pset
        self.data = case.data
        self.by_key = {str(v.case_key): v for v in pset.variables.values() if v.case_key}
        self.evidence: dict[str, Any] = {}
        self.records: list[StateMapping] = []
        patient = self.data.get("patient") or {}
        self.age = patient.get("age")
        self.sex = patient.get("sex")
        self.pregnant = patient.get("pregnant")
        self.trimester = patient.get("trimester")

    def put(self, key: str, var: str, states: list[str], **extra: Any) -> None:
        self.evidence[var] = states[0] if len(states) == 1 else list(states)
        shown = extra.pop("input", None)
        self.records.append(StateMapping(key=key, input=str(shown), variable=var, states=list(states), **extra))

    def run(self) -> tuple[dict[str, Any], list[StateMapping]]:
        self._patient()
        for section in ("history", "symptoms", "tests"):
            for name, value in (self.data.get(section) or {}).items():
                key = f"{section}.{name}"
                var = self.by_key[key]
                state = ("true" if value else "false") if isinstance(value, bool) else str(value)
                self.put(key, var.name, [state], input=value)
        self._labs()
        return self.evidence, self.records

    # -------------------------------------------------------------- patient
    def _patient(self) -> None:
        if self.age is not None:
            if not math.isfinite(float(self.age)):
                raise CaseError(f"patient.age: {self.age!r} is not a number; accepted: 0 to 125 years")
            var = self.pset.variables["age"]
            bands = var.spec["bands"]
            idx = int(np.searchsorted(bands, float(self.age), side="right"))
            self.put("patient.age", "age", [var.states[idx]], input=self.age, value=float(self.age), unit="years")
        if self.sex is not None:
            self.put("patient.sex", "sex", [self.sex], input=self.sex)
        if self.trimester is not None and self.pregnant is not True:
            raise CaseError(f"patient.trimester: {self.trimester!r} is given without patient.pregnant: true")
        if self.pregnant is not None:
            if self.pregnant and self.sex == "male":
                raise CaseError("patient.pregnant: true conflicts with patient.sex: male")
            if not self.pregnant:
                states = ["not_pregnant"]
            elif self.trimester is not None:
                states = [f"trimester_{int(self.trimester)}"]
            else:
                states = ["trimester_1", "trimester_2", "trimester_3"]
            self.put("patient.pregnant", "pregnant", states, input=self.pregnant,
                     note=None if len(states) == 1 else "trimester not given: any of the three")

    # ----------------------------------------------------------------- labs
    def _labs(self) -> None:
        labs = self.data.get("labs") or {}
        ref = self.pset.reference
        albumin_gl = None
        if "albumin" in labs:
            albumin_gl = self._quantity("albumin", labs["albumin"], allow_verdict=True)
        for name, raw in labs.items():
            if name in EXTRA_LAB_KEYS or name == "albumin":
                continue
            key = f"labs.{name}"
            if name not in self.pset.variables:  # pragma: no cover - schema only admits known labs
                raise CaseError(f"{key}: unknown lab")
            spec = ref["labs"][name]
            text = str(raw).strip()
            verdicts = spec.get("verdicts") or {}
            if text.lower() in VERDICTS:
                word = text.lower()
                states = list(verdicts.get(word) or [])
                if not states:
                    raise CaseError(f"{key}: the verdict {word!r} has no meaning for this lab; "
                                    f"accepted: {', '.join(verdicts) or 'a value with its unit'}")
                self.put(key, name, states, input=raw, note="the reporting lab's own verdict")
                continue
            self._lab_value(name, key, text, spec, albumin_gl)

    def _parse(self, key: str, text: str, spec: Mapping[str, Any], accept: list[str] | None = None):
        if "," in text:
            raise CaseError(f"{key}: {text!r}: write the number without a comma "
                            "(a comma could be a thousands separator or a decimal point)")
        q = parse_quantity(text)
        units = dict(spec["units"])
        for own in spec.get("own_limit_units") or []:
            units.setdefault(own, None)  # needs the lab's own limit; no factor
        accepted = ", ".join(units)
        if q is None:
            raise CaseError(f"{key}: {text!r} is not a value with a unit; accepted: \"<number> <unit>\" "
                            f"with a unit among {accepted}, or low | normal | high")
        if q.unit == "":
            raise CaseError(f"{key}: {text!r} has no unit; accepted units: {accepted}")
        norm = {normalise_unit(u): u for u in units}
        unit = norm.get(normalise_unit(q.unit))
        if unit is None:
            raise CaseError(f"{key}: unknown unit {q.unit!r} in {text!r}; accepted: {accepted}")
        if q.value < 0:
            raise CaseError(f"{key}: {text!r} is negative; a concentration or activity cannot be below 0")
        f = units[unit]
        factor = float("nan") if f is None else float(f["factor"] if isinstance(f, Mapping) else f)
        return q, unit, factor

    def _check_plausible(self, key: str, text: str, value: float, spec: Mapping[str, Any]) -> None:
        pl = spec.get("plausible") or {}
        lo, hi = pl.get("min"), pl.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise CaseError(f"{key}: {text!r} is physiologically impossible; accepted: {lo} to {hi} "
                            f"{spec['unit']} (or the equivalent in another unit)")

    def _quantity(self, name: str, raw: Any, allow_verdict: bool = False) -> float | None:
        key = f"labs.{name}"
        spec = self.pset.reference["labs"][name]
        text = str(raw).strip()
        if allow_verdict and text.lower() in VERDICTS:
            return None
        q, unit, factor = self._parse(key, text, spec)
        value = q.value * factor
        self._check_plausible(key, text, value, spec)
        return value

    def _lab_value(self, name: str, key: str, text: str, spec: Mapping[str, Any], albumin_gl: float | None) -> None:
        q, unit, factor = self._parse(key, text, spec)
        labs = self.data.get("labs") or {}
        own_units = {normalise_unit(u) for u in spec.get("own_limit_units") or []}
        uln_key = spec.get("uln_key")
        lab_uln = None
        note = None
        if normalise_unit(unit) in own_units:
            if not uln_key or uln_key not in labs:
                raise CaseError(f"{key}: {text!r} is in {unit}, whose limits differ between labs; "
                                f"give the lab's own limit as labs.{uln_key} in {unit}")
            uq, uunit, _ = self._parse(f"labs.{uln_key}", str(labs[uln_key]).strip(), spec)
            if normalise_unit(uunit) != normalise_unit(unit):
                raise CaseError(f"labs.{uln_key}: {labs[uln_key]!r} must be in the same unit as {key} ({unit})")
            value = q.value
            lab_uln = uq.value
            shown_unit = unit
        else:
            value = q.value * factor
            self._check_plausible(key, text, value, spec)
            shown_unit = spec["unit"]
            if uln_key and uln_key in labs:
                lab_uln = self._quantity_uln(uln_key, labs[uln_key], spec)
        if name == "calcium" and albumin_gl is not None:
            adj = self.pset.reference["albumin_adjustment"]
            coef = float(adj["coefficient"]["value"])
            ref_alb = float(adj["reference_albumin"]["value"])
            adjusted = value + coef * (ref_alb - albumin_gl)
            note = f"albumin-adjusted from {value:.4g} with albumin {albumin_gl:.3g} g/L"
            value = adjusted
        states, ref_text = self._states_for(name, key, text, value, q.qualifier, spec, lab_uln)
        if lab_uln is not None:
            ref_text = f"the lab's own limit {lab_uln:.4g} {shown_unit}"
        self.put(key, name, states, input=text, value=round(value, 6), unit=shown_unit, reference=ref_text, note=note)

    def _quantity_uln(self, uln_key: str, raw: Any, spec: Mapping[str, Any]) -> float:
        key = f"labs.{uln_key}"
        text = str(raw).strip()
        q, unit, factor = self._parse(key, text, spec)
        value = q.value * factor
        if value <= 0:
            raise CaseError(f"{key}: {text!r} must be above 0")
        self._check_plausible(key, text, value, spec)
        return value

    # ------------------------------------------------------------ reference
    def _candidates(self) -> list[tuple[float | None, str | None, str | None]]:
        ages = [float(self.age)] if self.age is not None else [None]
        sexes = [self.sex] if self.sex is not None else ["female", "male"]
        out = []
        for sex in sexes:
            # pregnancy-specific ranges apply only when the case says the patient is pregnant
            # (documented in docs/case-format.md), as a laboratory does
            if self.pregnant is True and sex != "male":
                pregs = [f"trimester_{int(self.trimester)}"] if self.trimester else ["trimester_1", "trimester_2", "trimester_3"]
            else:
                pregs = ["not_pregnant"]
            for age in ages:
                for preg in pregs:
                    out.append((age, sex, preg))
        return out

    @staticmethod
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

    def _states_for(self, name: str, key: str, text: str, value: float, qualifier: str | None,
                    spec: Mapping[str, Any], lab_uln: float | None) -> tuple[list[str], str]:
        rows = spec.get("reference") or []
        results: dict[tuple[str, ...], str] = {}
        for age, sex, preg in self._candidates():
            row = None
            ages_to_try = [age]
            age_dependent = any("age" in (r.get("when") or {}) or isinstance(r.get("uln"), Mapping) for r in rows)
            if age is None and age_dependent and lab_uln is None:
                ages_to_try = sorted({float(r["when"]["age"][0]) for r in rows if "age" in (r.get("when") or {})}
                                     | {5.0, 12.0, 16.0, 30.0, 60.0, 85.0})
            for a in ages_to_try:
                row = next(r for r in rows if self._row_matches(r.get("when") or {}, a, sex, preg) is not False) \
                    if rows else {}
                lln = row.get("lln")
                uln = row.get("uln")
                if isinstance(uln, Mapping):
                    uln = float(uln.get("add", 0)) + float(uln.get("per_year", 0)) * (a if a is not None else 0.0)
                if lab_uln is not None:
                    uln, lln = lab_uln, None
                states = tuple(self._band_states(spec, value, qualifier, lln, uln))
                ref_text = self._ref_text(spec, lln, uln, row, lab_uln)
                results.setdefault(states, ref_text)
        if len(results) > 1:
            needs = [w for w, known in (("patient.age", self.age is not None), ("patient.sex", self.sex is not None),
                                        ("patient.trimester", self.trimester is not None or not self.pregnant))
                     if not known]
            hint = f" or labs.{spec['uln_key']}" if spec.get("uln_key") else " or the lab's verdict (low | normal | high)"
            raise CaseError(f"{key}: {text!r} falls in different bands depending on {', '.join(needs) or 'the patient'}, "
                            f"which the case does not give; add {' and '.join(needs) or 'them'}{hint}")
        states, ref_text = next(iter(results.items()))
        return list(states), ref_text

    @staticmethod
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

    @staticmethod
    def _band_states(spec: Mapping[str, Any], value: float, qualifier: str | None,
                     lln: float | None, uln: float | None) -> list[str]:
        bands = spec["bands"]
        multiple = spec.get("scale") == "uln_multiple"

        def bound(b: Any) -> float | None:
            if b == "lln":
                return lln
            if b == "uln":
                return uln
            if multiple:
                return None if uln is None else float(b) * uln
            return float(b)

        def state_of(x: float) -> int:
            for i, band in enumerate(bands):
                if "below" in band:
                    b = bound(band["below"])
                    if b is not None and x < b:
                        return i
                elif "at_most" in band:
                    b = bound(band["at_most"])
                    if b is not None and x <= b:
                        return i
                else:
                    return i
            return len(bands) - 1  # pragma: no cover - the last band has no bound

        if qualifier is None:
            idx = [state_of(value)]
        else:
            pl = spec.get("plausible") or {}
            if qualifier in ("<", "<="):
                lo = float(pl.get("min", 0.0))
                hi = value if qualifier == "<=" else float(np.nextafter(value, -np.inf))
            else:
                lo = value if qualifier == ">=" else float(np.nextafter(value, np.inf))
                hi = float(pl.get("max", value * 1e6))
            a, b = state_of(max(lo, 0.0)), state_of(hi)
            idx = list(range(min(a, b), max(a, b) + 1))
        seen: list[str] = []
        for i in idx:
            s = bands[i]["state"]
            if s not in seen:
                seen.append(s)
        return seen

"""What-if scenarios: change findings in a case and watch every cause move.

A scenario sets case keys to new values (``labs.ggt: "300 U/L"``) and unsets
others (``labs.pth``). The changed case goes through the same validation and
mapping as a case file, so a bad value is a :class:`~alpnet.errors.CaseError`
naming the key. Before and after are computed by the same exact engine;
setting a key to the value it already has gives exactly the same answer.

Scenario files (``alpnet what-if CASE --scenarios FILE.yaml``) are YAML or JSON::

    scenarios:
      - name: GGT raised
        set: {labs.ggt: "300 U/L"}
      - name: no PTH, bone pain
        set: {symptoms.bone_pain: true}
        unset: [labs.pth]

(a bare list of scenarios is accepted too). ``name`` is optional (default
``scenario 1``, ...); ``set`` maps dotted case keys to values written exactly
as in a case file; ``unset`` lists dotted case keys.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd

from .formatting import percent as _pct
from .errors import CaseError
from .evidence import Case, case_from_mapping
from .schema import SECTIONS

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["Scenario", "apply_changes", "what_if", "what_if_record", "what_if_evidence", "read_scenarios",
           "compare_scenarios", "scenarios_record", "parse_assignment", "format_what_if", "format_scenarios"]


class Scenario:
    """One named set of changes to a case.

    Parameters
    ----------
    name : str
    set : mapping, optional
        Dotted case key -> value as in a case file.
    unset : sequence of str, optional
        Dotted case keys to remove.
    """

    def __init__(self, name: str, set: Mapping[str, Any] | None = None,  # noqa: A002 - the contract's word
                 unset: Sequence[str] | None = None):
        self.name = str(name)
        self.set = dict(set or {})
        self.unset = list(unset or [])

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Scenario({self.name!r}, set={self.set!r}, unset={self.unset!r})"


# ----------------------------------------------------------------------------- changing a case


def _as_case(case: Case | Mapping[str, Any]) -> Case:
    return case if isinstance(case, Case) else case_from_mapping(case)


def _split_key(key: Any, where: str) -> tuple[str, str]:
    """``(section, name)`` of a dotted case key given to ``set`` or ``unset`` (``where``)."""
    if not isinstance(key, str):
        raise CaseError(f"{where}: {key!r} is not a case key; accepted: a dotted case key such as labs.ggt")
    section, dot, name = key.strip().partition(".")
    if not dot or not name or section not in SECTIONS or "." in name:
        raise CaseError(f"{where}: {key!r} is not a case key; accepted: <section>.<name> with a section among "
                        f"{', '.join(SECTIONS)} (e.g. labs.ggt, symptoms.bone_pain, patient.age)")
    return section, name


def apply_changes(case: Case | Mapping[str, Any], *, set: Mapping[str, Any] | None = None,  # noqa: A002
                  unset: Sequence[str] | None = None) -> tuple[Case, list[dict[str, Any]]]:
    """A copy of ``case`` with keys set and unset (the original is not modified).

    Parameters
    ----------
    case : Case or mapping
    set : mapping, optional
        Dotted case key -> value as in a case file (``{"labs.ggt": "300 U/L"}``).
    unset : sequence of str, optional
        Dotted case keys to remove; each must be in the case.

    Returns
    -------
    changed : Case
        Not yet validated (:func:`what_if` validates it through the model).
    changes : list of dict
        ``{"key", "before", "after"}`` per change; ``None`` means absent (not known).

    Raises
    ------
    CaseError
        For a key that is not ``<section>.<name>``, a key both set and unset, or an
        unset key the case does not have.
    """
    base = _as_case(case)
    data = copy.deepcopy(base.data)
    if isinstance(unset, str):  # one key given bare
        unset = [unset]
    if set is not None and not isinstance(set, Mapping):
        raise CaseError(f"set must map case keys to values, e.g. {{'labs.ggt': '300 U/L'}}; got {type(set).__name__}")
    set = dict(set or {})
    unset = list(unset or [])
    both = sorted(set.keys() & {str(u).strip() for u in unset if isinstance(u, str)})
    if both:
        raise CaseError(f"{both[0]}: both set and unset; give one of the two")
    changes: list[dict[str, Any]] = []
    seen: list[str] = []  # (``set`` is the parameter here)
    for key in unset:
        section, name = _split_key(key, "unset")
        if f"{section}.{name}" in seen:
            raise CaseError(f"unset: {section}.{name} is given twice; give each key once")
        seen.append(f"{section}.{name}")
        block = data.get(section)
        if not isinstance(block, Mapping) or name not in block:
            present = [f"{s}.{k}" for s in SECTIONS for k in (data.get(s) or {})]
            raise CaseError(f"{section}.{name}: not in the case, so it cannot be unset; the case has: "
                            f"{', '.join(present)}")
        if section == "labs" and name == "alp":
            raise CaseError("labs.alp: cannot be unset (every case needs the ALP result); set it to another value")
        block = dict(block)
        before = block.pop(name)
        data[section] = block
        changes.append({"key": f"{section}.{name}", "before": before, "after": None})
    for key, value in set.items():
        section, name = _split_key(key, "set")
        block = data.get(section)
        block = dict(block) if isinstance(block, Mapping) else {}
        before = block.get(name)
        block[name] = value
        data[section] = block
        changes.append({"key": f"{section}.{name}", "before": before, "after": value})
    return Case(id=base.id, data=data, path=base.path), changes


def _validated_evidence(model: "Model", case: Case, where: str) -> dict[str, Any]:
    try:
        return model.evidence_of(case)[0]
    except CaseError as exc:
        raise CaseError(f"{where}{exc}") from None


def _best_test(model: "Model", evidence: Mapping[str, Any]) -> dict[str, Any] | None:
    ranking = model.rank_tests(evidence=evidence)
    tests = ranking[ranking["kind"] == "test"]
    if not len(tests):
        return None
    top = tests.iloc[0]
    return {"test": str(top["test"]), "label": str(top["label"]),
            "expected_information_gain_bits": float(top["expected_information_gain_bits"])}


# ----------------------------------------------------------------------------- one what-if


def what_if(model: "Model", case: Case | Mapping[str, Any], *, set: Mapping[str, Any] | None = None,  # noqa: A002
            unset: Sequence[str] | None = None, next_test: bool = True) -> pd.DataFrame:
    """Every cause's posterior before and after changing some findings.

    Parameters
    ----------
    model : Model
    case : Case or mapping
        The case as it is (validated here too).
    set : mapping, optional
        Dotted case key -> value, written as in a case file: ``{"labs.ggt": "300 U/L",
        "symptoms.bone_pain": True, "patient.age": 72}``.
    unset : sequence of str, optional
        Dotted case keys to remove (``["labs.pth"]``): the value becomes "not known".
    next_test : bool, default True
        Also rank the tests before and after (the best one goes into ``attrs``).

    Returns
    -------
    pandas.DataFrame
        One row per cause, sorted by the posterior after the change: ``cause, label,
        before, after, change`` (``change = after - before``). ``attrs`` holds
        ``case_id``, ``changes`` (``key, before, after``), ``leading_before``,
        ``leading_after``, ``next_test_before``, ``next_test_after`` (``{"test", "label",
        "expected_information_gain_bits"}`` or None), ``leak_before``, ``leak_after``,
        ``evidence_before``, ``evidence_after`` and ``model``.

    Raises
    ------
    CaseError
        For a bad key or value (the message names the key), in the case or in the change,
        or when neither ``set`` nor ``unset`` names a key (nothing to change).
    EvidenceConflictError
        When the changed case is impossible under the model.

    Examples
    --------
    >>> import alpnet
    >>> from alpnet.whatif import what_if
    >>> model = alpnet.load_model()
    >>> case = alpnet.read_case(alpnet.example_path("paget"))
    >>> df = what_if(model, case, set={"labs.ggt": "300 U/L"}, next_test=False)
    >>> list(df.columns)
    ['cause', 'label', 'before', 'after', 'change']
    """
    base = _as_case(case)
    ev_before = _validated_evidence(model, base, "")
    changed, changes = apply_changes(base, set=set, unset=unset)
    if not changes:  # as ``alpnet what-if`` without --set/--unset: a what-if needs a change
        raise CaseError("set: nothing to change (no set and no unset given); accepted: set={dotted case key: value}"
                        " and/or unset=[dotted case keys], e.g. set={'labs.ggt': '300 U/L'} or unset=['labs.pth']")
    ev_after = _validated_evidence(model, changed, "what-if: ")
    before = model.diagnose(evidence=ev_before)
    after = model.diagnose(evidence=ev_after)
    b = before.set_index("cause")["posterior"]
    a = after.set_index("cause")["posterior"]
    rows = [{"cause": c, "label": model.label(c), "before": float(b[c]), "after": float(a[c]),
             "change": float(a[c] - b[c])} for c in model.causes]
    df = pd.DataFrame(rows, columns=["cause", "label", "before", "after", "change"])
    df = df.sort_values(["after", "before", "cause"], ascending=[False, False, True],
                        kind="mergesort").reset_index(drop=True)
    df.attrs.update({
        "case_id": base.id,
        "changes": changes,
        "leading_before": before.attrs["leading_cause"],
        "leading_after": after.attrs["leading_cause"],
        "leak_before": before.attrs["leak"],
        "leak_after": after.attrs["leak"],
        "evidence_before": ev_before,
        "evidence_after": ev_after,
        "next_test_before": _best_test(model, ev_before) if next_test else None,
        "next_test_after": _best_test(model, ev_after) if next_test else None,
        "model": model.version_info,
    })
    return df


def what_if_evidence(model: "Model", before: Mapping[str, Any], after: Mapping[str, Any], *,
                     case_id: str = "evidence") -> pd.DataFrame:
    """:func:`what_if` on model evidence (``{variable: state}``) instead of case values.

    For interactive controls that set model states directly (``alpnet.widgets``). Same frame
    as :func:`what_if` without the next-test columns; ``attrs["changes"]`` lists the
    variables whose evidence differs (``key`` is the case key).

    Examples
    --------
    >>> import alpnet
    >>> from alpnet.whatif import what_if_evidence
    >>> model = alpnet.load_model()
    >>> ev = {"age": "70_plus", "alp": "moderate"}
    >>> df = what_if_evidence(model, ev, {**ev, "ggt": "very_high"})
    >>> df.attrs["changes"][0]["key"]
    'labs.ggt'
    """
    b = model.diagnose(evidence=dict(before))
    a = model.diagnose(evidence=dict(after))
    bp, ap = b.set_index("cause")["posterior"], a.set_index("cause")["posterior"]
    rows = [{"cause": c, "label": model.label(c), "before": float(bp[c]), "after": float(ap[c]),
             "change": float(ap[c] - bp[c])} for c in model.causes]
    df = pd.DataFrame(rows, columns=["cause", "label", "before", "after", "change"])
    df = df.sort_values(["after", "before", "cause"], ascending=[False, False, True],
                        kind="mergesort").reset_index(drop=True)
    changes = []
    for var in list(dict.fromkeys([*before, *after])):
        if before.get(var) != after.get(var):
            key = model.priors.variables[var].case_key or var
            changes.append({"key": str(key), "before": before.get(var), "after": after.get(var)})
    df.attrs.update({"case_id": case_id, "changes": changes, "leading_before": b.attrs["leading_cause"],
                     "leading_after": a.attrs["leading_cause"], "leak_before": b.attrs["leak"],
                     "leak_after": a.attrs["leak"], "evidence_before": dict(before), "evidence_after": dict(after),
                     "next_test_before": None, "next_test_after": None, "model": model.version_info})
    return df


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, float) and value != value:
        return None
    return value


def what_if_record(model: "Model", case: Case | Mapping[str, Any], *, set: Mapping[str, Any] | None = None,  # noqa: A002
                   unset: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON answer of ``alpnet what-if CASE --format json`` (JSON-serialisable).

    Returns
    -------
    dict
        ``case_id``, ``changes`` (``[{"key", "before", "after"}]``, ``null`` = not known),
        ``causes`` (``[{"cause", "label", "before", "after", "change"}]``, sorted by the
        posterior after), ``before`` and ``after`` (each ``{"posterior": {cause: p},
        "leading_cause", "leak", "next_test", "evidence"}``), ``model`` (version, prior-set
        hash, overrides) and ``disclaimer``.
    """
    from .model import DISCLAIMER

    df = what_if(model, case, set=set, unset=unset)
    return _record_from_frame(df, DISCLAIMER)


def _record_from_frame(df: pd.DataFrame, disclaimer: str) -> dict[str, Any]:
    at = df.attrs
    side = {}
    for when in ("before", "after"):
        side[when] = {"posterior": {r.cause: float(getattr(r, when)) for r in df.itertuples()},
                      "leading_cause": at[f"leading_{when}"], "leak": at[f"leak_{when}"],
                      "next_test": at[f"next_test_{when}"], "evidence": at[f"evidence_{when}"]}
    rec = {
        "case_id": at["case_id"],
        "changes": at["changes"],
        "causes": df.to_dict(orient="records"),
        "before": side["before"],
        "after": side["after"],
        "model": at["model"],
        "disclaimer": disclaimer,
    }
    return _jsonable(rec)


# ----------------------------------------------------------------------------- several scenarios


def parse_assignment(item: str) -> tuple[str, Any]:
    """``"labs.ggt=300 U/L"`` -> ``("labs.ggt", "300 U/L")``; the value is read as YAML.

    ``true``/``false`` become booleans and bare numbers numbers (``patient.age=72``), as
    in a case file; a lab value keeps its unit (``"300 U/L"`` stays a string).

    Raises
    ------
    CaseError
        Without ``=`` or a key.
    """
    import yaml

    from .documents import DocumentError, load_yaml

    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise CaseError(f"--set {item!r}: expected KEY=VALUE, e.g. --set labs.ggt=\"300 U/L\"")
    try:
        value = load_yaml(text) if text.strip() else None
    except DocumentError as exc:
        raise CaseError(f"--set {key.strip()}: the value cannot be read: {exc}") from None
    except yaml.YAMLError:
        value = text.strip()
    if value is None:
        raise CaseError(f"--set {item!r}: no value; to remove a value use --unset {key.strip()}")
    if isinstance(value, (list, dict)):
        value = text.strip()
    return key.strip(), value


def read_scenarios(path: str | Path) -> list[Scenario]:
    """Read a scenario file (YAML or JSON; format in the module docstring).

    Raises
    ------
    CaseError
        If the file is missing or malformed (names the scenario and the key).
    """
    import yaml

    from .documents import load_json, load_yaml

    p = Path(path)
    if p.is_dir():
        raise CaseError(f"{p}: is a folder, not a scenario file")
    if not p.is_file():
        raise CaseError(f"{p}: no such scenario file")
    try:
        text = p.read_text(encoding="utf-8-sig")
        data = load_json(text) if p.suffix.lower() == ".json" else load_yaml(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:  # DocumentError is a ValueError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CaseError(f"{p}: not a readable YAML or JSON scenario file: {first}") from None
    return scenarios_from_data(data, where=f"{p}: ")


def scenarios_from_data(data: Any, *, where: str = "") -> list[Scenario]:
    """Scenarios from parsed YAML/JSON (a ``scenarios:`` mapping or a bare list)."""
    if isinstance(data, Mapping):
        extra = sorted(set(data) - {"scenarios"})
        if extra:
            raise CaseError(f"{where}unknown key {extra[0]!r}; accepted: scenarios")
        data = data.get("scenarios")
    if not isinstance(data, list) or not data:
        raise CaseError(f"{where}expected a non-empty list of scenarios under 'scenarios:' "
                        "(each with name, set and/or unset)")
    out: list[Scenario] = []
    names: set[str] = set()
    for i, item in enumerate(data, start=1):
        if not isinstance(item, Mapping):
            raise CaseError(f"{where}scenario {i}: expected a mapping with name, set, unset; got {item!r}")
        extra = sorted(set(item) - {"name", "set", "unset"})
        if extra:
            raise CaseError(f"{where}scenario {i}: unknown key {extra[0]!r}; accepted: name, set, unset")
        name = str(item.get("name") or f"scenario {i}")
        if name in names or name in ("cause", "label", "before"):
            raise CaseError(f"{where}scenario {i}: the name {name!r} is used twice (or is one of cause, label, before)")
        names.add(name)
        st = item.get("set") or {}
        un = item.get("unset") or []
        if isinstance(un, str):
            un = [un]
        if not isinstance(st, Mapping):
            raise CaseError(f"{where}scenario {name!r}: set must map case keys to values, e.g. "
                            "{labs.ggt: \"300 U/L\"}")
        if not isinstance(un, list):
            raise CaseError(f"{where}scenario {name!r}: unset must be a list of case keys")
        if not st and not un:
            raise CaseError(f"{where}scenario {name!r}: changes nothing; give set and/or unset")
        out.append(Scenario(name, st, un))
    return out


def compare_scenarios(model: "Model", case: Case | Mapping[str, Any],
                      scenarios: Sequence[Scenario | Mapping[str, Any]], *, next_test: bool = True) -> pd.DataFrame:
    """Several what-ifs of one case side by side.

    Parameters
    ----------
    model : Model
    case : Case or mapping
    scenarios : sequence of Scenario or mapping
        Each with ``name`` and ``set`` and/or ``unset`` (see :func:`read_scenarios`).
    next_test : bool, default True

    Returns
    -------
    pandas.DataFrame
        ``cause, label, before`` and one column per scenario (its posterior), sorted by
        ``before``. ``attrs["scenarios"]`` holds, per scenario, its ``changes``,
        ``leading_cause`` and ``next_test``; ``attrs`` also holds ``leading_before``,
        ``next_test_before``, ``case_id`` and ``model``.

    Raises
    ------
    CaseError
        Naming the scenario and the key. Nothing is computed if any scenario is wrong.
    """
    scs = [s if isinstance(s, Scenario) else scenarios_from_data([s])[0] for s in scenarios]
    if not scs:
        raise CaseError("give at least one scenario")
    base = _as_case(case)
    ev_before = _validated_evidence(model, base, "")
    prepared = []
    for s in scs:  # validate every scenario before computing anything
        try:
            changed, changes = apply_changes(base, set=s.set, unset=s.unset)
            ev = model.evidence_of(changed)[0]
        except CaseError as exc:
            raise CaseError(f"scenario {s.name!r}: {exc}") from None
        prepared.append((s, changes, ev))
    before = model.diagnose(evidence=ev_before)
    df = before[["cause", "label", "posterior"]].rename(columns={"posterior": "before"}).copy()
    info = []
    for s, changes, ev in prepared:
        after = model.diagnose(evidence=ev).set_index("cause")
        df[s.name] = [float(after.loc[c, "posterior"]) for c in df["cause"]]
        info.append({"name": s.name, "changes": changes, "leading_cause": after.index[0],
                     "leak": after.attrs["leak"], "next_test": _best_test(model, ev) if next_test else None})
    df = df.reset_index(drop=True)
    df.attrs.update({"case_id": base.id, "leading_before": before.attrs["leading_cause"],
                     "next_test_before": _best_test(model, ev_before) if next_test else None,
                     "scenarios": info, "model": model.version_info})
    return df


def scenarios_record(model: "Model", case: Case | Mapping[str, Any],
                     scenarios: Sequence[Scenario | Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON answer of ``alpnet what-if CASE --scenarios FILE --format json``.

    Returns
    -------
    dict
        ``case_id``, ``before`` (``posterior``, ``leading_cause``, ``next_test``),
        ``scenarios`` (``[{"name", "changes", "posterior", "leading_cause", "leak",
        "next_test"}]``), ``model`` and ``disclaimer``.
    """
    from .model import DISCLAIMER

    return _scenarios_record_from_frame(compare_scenarios(model, case, scenarios), DISCLAIMER)


def _scenarios_record_from_frame(df: pd.DataFrame, disclaimer: str) -> dict[str, Any]:
    at = df.attrs
    out = {
        "case_id": at["case_id"],
        "before": {"posterior": dict(zip(df["cause"], df["before"])), "leading_cause": at["leading_before"],
                   "next_test": at["next_test_before"]},
        "scenarios": [dict(s, posterior=dict(zip(df["cause"], df[s["name"]]))) for s in at["scenarios"]],
        "model": at["model"],
        "disclaimer": disclaimer,
    }
    return _jsonable(out)


# ----------------------------------------------------------------------------- text




def _shown(value: Any) -> str:
    if value is None:
        return "not known"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _test_text(t: Mapping[str, Any] | None) -> str:
    if not t:
        return "none left"
    return f"{t['label'].split(' (')[0]} ({t['test']}, {t['expected_information_gain_bits']:.3f} bits)"


def format_what_if(df: pd.DataFrame, model: "Model") -> str:
    """The table ``alpnet what-if`` prints for one what-if (:func:`what_if`'s frame)."""
    at = df.attrs
    lines = [f"case {at['case_id']}: what if"]
    for c in at["changes"]:
        lines.append(f"  {c['key']}: {_shown(c['before'])} -> {_shown(c['after'])}")
    names = [f"{lab.split(' (')[0]} ({c})" for c, lab in zip(df["cause"], df["label"])]
    width = max(len(n) for n in names)
    lines.append(f"  {'cause':{width}s}  {'before':>7s}  {'after':>7s}  {'change':>9s}")
    for name, r in zip(names, df.itertuples()):
        lines.append(f"  {name:{width}s}  {_pct(r.before):>7s}  {_pct(r.after):>7s}  {100 * r.change:+8.1f}pp")
    lb, la = at["leading_before"], at["leading_after"]
    same = " (unchanged)" if lb == la else ""
    lines.append(f"  leading cause: {model.label(lb)} ({lb}) -> {model.label(la)} ({la}){same}")
    if at.get("next_test_before") or at.get("next_test_after"):
        lines.append(f"  best next test: {_test_text(at['next_test_before'])} -> {_test_text(at['next_test_after'])}")
    return "\n".join(lines)


def format_scenarios(df: pd.DataFrame, model: "Model") -> str:
    """The table ``alpnet what-if --scenarios`` prints (:func:`compare_scenarios`'s frame)."""
    at = df.attrs
    scs = at["scenarios"]
    lines = [f"case {at['case_id']}: {len(scs)} scenario(s)"]
    for i, s in enumerate(scs, start=1):
        what = "; ".join(f"{c['key']}: {_shown(c['before'])} -> {_shown(c['after'])}" for c in s["changes"])
        lines.append(f"  [{i}] {s['name']}: {what}")
    names = [f"{lab.split(' (')[0]} ({c})" for c, lab in zip(df["cause"], df["label"])]
    width = max(len(n) for n in names)
    head = f"  {'cause':{width}s}  {'before':>7s}" + "".join(f"  {f'[{i}]':>7s}" for i in range(1, len(scs) + 1))
    lines.append(head)
    for name, (_, r) in zip(names, df.iterrows()):
        lines.append(f"  {name:{width}s}  {_pct(r['before']):>7s}"
                     + "".join(f"  {_pct(r[s['name']]):>7s}" for s in scs))
    lines.append(f"  leading cause: before {at['leading_before']}; "
                 + "; ".join(f"[{i}] {s['leading_cause']}" for i, s in enumerate(scs, start=1)))
    if at.get("next_test_before") is not None or any(s.get("next_test") for s in scs):
        lines.append(f"  best next test: before {(at['next_test_before'] or {}).get('test', 'none')}; "
                     + "; ".join(f"[{i}] {(s['next_test'] or {}).get('test', 'none')}"
                                 for i, s in enumerate(scs, start=1)))
    return "\n".join(lines)

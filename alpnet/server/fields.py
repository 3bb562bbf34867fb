"""The case form of the explorer, derived from a model (no web framework needed).

Every field the page shows comes from the prior set: the case keys of its
observable variables, their states, their labels in people's words and, for
labs, the units :mod:`alpnet.evidence` accepts. A prior set with more labs or
tests gets a longer form without a change to the page.
"""

from __future__ import annotations

from typing import Any

from ..schema import EXTRA_LAB_KEYS, SECTIONS, VERDICTS

__all__ = ["case_fields", "SECTION_TITLES"]

#: Headings of the form's sections.
SECTION_TITLES = {
    "patient": "Patient",
    "history": "History",
    "symptoms": "Symptoms",
    "labs": "Labs",
    "tests": "Imaging and other tests",
}

_LAB_LABELS = {"alp_uln": "ALP upper reference limit of the reporting lab",
               "bone_alp_uln": "Bone ALP upper limit of the reporting lab",
               "albumin": "Albumin (adjusts calcium)"}


def _lab_field(name: str, spec: dict[str, Any], label: str, *, required: bool = False) -> dict[str, Any]:
    units = list(spec.get("units") or [spec.get("unit", "")])
    units += [u for u in spec.get("own_limit_units") or [] if u not in units]
    canonical = spec.get("unit") or (units[0] if units else "")
    verdicts = [w for w in VERDICTS if (spec.get("verdicts") or {}).get(w)]
    field = {"key": f"labs.{name}", "name": name, "label": label, "type": "lab", "units": units,
             "unit": canonical, "verdicts": verdicts, "required": required}
    plausible = spec.get("plausible") or {}
    if plausible.get("min") is not None and plausible.get("max") is not None:
        field["plausible"] = [float(plausible["min"]), float(plausible["max"])]  # in `unit`
    return field


def case_fields(model: Any) -> dict[str, Any]:
    """Describe the case form for a model.

    Parameters
    ----------
    model : alpnet.Model

    Returns
    -------
    dict
        ``{"sections": [{"name", "title", "fields": [...]}]}``. A field has ``key``
        (the dotted case key, e.g. ``labs.ggt``), ``name``, ``label`` and ``type``:
        ``number`` (with ``minimum``, ``maximum``, ``unit``), ``boolean``
        (``true`` / ``false`` / not known), ``choice`` (with ``options``) or ``lab``
        (with ``units``, the canonical ``unit``, the lab's ``verdicts`` and ``plausible``,
        the possible range in the canonical unit).

    Examples
    --------
    >>> import alpnet
    >>> form = case_fields(alpnet.load_model())          # doctest: +SKIP
    >>> [s["name"] for s in form["sections"]]            # doctest: +SKIP
    ['patient', 'history', 'symptoms', 'labs', 'tests']
    """
    pset = model.priors
    by_section: dict[str, list[tuple[str, Any]]] = {s: [] for s in SECTIONS}
    for var in pset.variables.values():
        if var.kind not in ("context", "finding") or not var.case_key:
            continue
        section, _, name = str(var.case_key).partition(".")
        if section in by_section:
            by_section[section].append((name, var))

    sex_states = list(pset.variables["sex"].states) if "sex" in pset.variables else ["female", "male"]
    patient = [
        {"key": "patient.age", "name": "age", "label": "Age", "type": "number", "minimum": 0, "maximum": 125,
         "step": "any", "unit": "years"},
        {"key": "patient.sex", "name": "sex", "label": "Sex", "type": "choice", "options": sex_states},
        {"key": "patient.pregnant", "name": "pregnant", "label": "Pregnant", "type": "boolean"},
        {"key": "patient.trimester", "name": "trimester", "label": "Trimester (with pregnant: yes)",
         "type": "choice", "options": [1, 2, 3]},
    ]
    sections: list[dict[str, Any]] = [{"name": "patient", "title": SECTION_TITLES["patient"], "fields": patient}]

    def simple(section: str) -> list[dict[str, Any]]:
        out = []
        for name, var in by_section[section]:
            if list(var.states) == ["false", "true"]:
                out.append({"key": f"{section}.{name}", "name": name, "label": var.label, "type": "boolean"})
            else:
                out.append({"key": f"{section}.{name}", "name": name, "label": var.label, "type": "choice",
                            "options": list(var.states)})
        return out

    sections.append({"name": "history", "title": SECTION_TITLES["history"], "fields": simple("history")})
    sections.append({"name": "symptoms", "title": SECTION_TITLES["symptoms"], "fields": simple("symptoms")})

    ref_labs = pset.reference.get("labs", {})
    labs: list[dict[str, Any]] = []
    names = [n for n, _ in by_section["labs"]]
    if "alp" in names:  # the ALP first, then its limit, then the rest in the prior set's order
        names.remove("alp")
        names.insert(0, "alp")
    order = names[:1] + [k for k in ("alp_uln",) if "alp" in ref_labs] + names[1:]
    order += [k for k in ref_labs if k not in order and k not in EXTRA_LAB_KEYS]  # e.g. albumin
    order += [k for k in EXTRA_LAB_KEYS if k not in order and k.replace("_uln", "") in ref_labs]
    for name in order:
        base = name.replace("_uln", "") if name in EXTRA_LAB_KEYS else name
        spec = ref_labs.get(base)
        if spec is None:
            continue
        if name in _LAB_LABELS:
            label = _LAB_LABELS[name]
        elif name in pset.variables:
            label = pset.variables[name].label
        else:
            label = str(spec.get("label", name))
        field = _lab_field(name, spec, label, required=(name == "alp"))
        if name in EXTRA_LAB_KEYS:
            field["verdicts"] = []
        labs.append(field)
    sections.append({"name": "labs", "title": SECTION_TITLES["labs"], "fields": labs})
    sections.append({"name": "tests", "title": SECTION_TITLES["tests"], "fields": simple("tests")})
    return {"sections": sections}

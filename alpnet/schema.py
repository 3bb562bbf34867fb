"""The JSON Schema of a case file, generated from a prior set.

The keys and units of a case are fixed by ``case-format.md``; the states a
test may take and the labs a prior set knows come from the prior set, so the
schema is generated from it. The bundled schema is shipped as
``alpnet/schema/case.schema.json`` (a test keeps it in step with the bundled
priors) and printed by ``alpnet schema``.
"""

from __future__ import annotations

from typing import Any

from .priors import PriorSet

__all__ = ["case_schema", "SECTIONS", "VERDICTS", "EXTRA_LAB_KEYS", "QUALIFIES"]

#: Case sections besides ``id``; ``about`` is alpnet's addition for teaching cases.
SECTIONS = ("patient", "history", "symptoms", "labs", "tests")
VERDICTS = ("low", "normal", "high")
#: Lab keys that are not findings: limits given by the reporting lab, and albumin.
EXTRA_LAB_KEYS = ("alp_uln", "bone_alp_uln")
#: Lab keys that only qualify another lab's value (a lab's own limit; the albumin that adjusts
#: calcium): without that value they move nothing, and alpnet says so.
QUALIFIES = {"alp_uln": "alp", "bone_alp_uln": "bone_alp", "albumin": "calcium"}


def case_schema(pset: PriorSet) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a case for this prior set.

    Parameters
    ----------
    pset : PriorSet

    Returns
    -------
    dict
    """
    by_key = {v.case_key: v for v in pset.variables.values() if v.case_key}
    section_vars: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, var in by_key.items():
        section, _, name = str(key).partition(".")
        if section in section_vars:
            section_vars[section][name] = var

    def boolean(desc: str) -> dict[str, Any]:
        return {"type": "boolean", "description": desc}

    patient = {
        "age": {"type": "number", "minimum": 0, "maximum": 125, "description": "years; fractions for infants"},
        "sex": {"enum": list(pset.variables["sex"].states) if "sex" in pset.variables else ["female", "male"]},
        "pregnant": {"type": "boolean"},
        "trimester": {"enum": [1, 2, 3]},
    }
    history: dict[str, Any] = {}
    for name, var in section_vars["history"].items():
        if var.states == ["false", "true"]:
            history[name] = boolean(var.label)
        else:
            history[name] = {"enum": list(var.states), "description": var.label}
    symptoms = {name: boolean(var.label) for name, var in section_vars["symptoms"].items()}
    lab_value = {
        "type": "string",
        "description": '"<number> <unit>" (optionally with < or >), or the lab\'s verdict: low | normal | high',
    }
    labs = {name: dict(lab_value, description=f"{var.label}: " + lab_value["description"])
            for name, var in section_vars["labs"].items()}
    for extra in EXTRA_LAB_KEYS + tuple(k for k in pset.reference.get("labs", {}) if k not in labs):
        labs.setdefault(extra, dict(lab_value, description=f"{extra}: \"<number> <unit>\""))
    tests = {name: {"enum": list(var.states), "description": var.label} for name, var in section_vars["tests"].items()}

    def section(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": dict(sorted(props.items()))}
        if required:
            out["required"] = required
        return out

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/alpnet/alpnet/blob/main/alpnet/schema/case.schema.json",
        "title": "alpnet case",
        "description": "Everything known about one patient at one moment (case-format.md). "
                       "A key that is absent means not known / not done.",
        "type": "object",
        "additionalProperties": False,
        "required": ["labs"],
        "properties": {
            "id": {"type": ["string", "integer"], "description": "case id; default: the file name's stem"},
            "about": {"type": "object", "description": "alpnet's addition for teaching cases: title, "
                      "expected_cause, key_findings, teaching_point, narrative, expected_reasoning, source"},
            "patient": section(patient),
            "history": section(history),
            "symptoms": section(symptoms),
            "labs": section(labs, ["alp"]),
            "tests": section(tests),
        },
    }

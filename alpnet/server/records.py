"""The JSON answers of the HTTP API, built from the model (no web framework needed).

Each function takes a model and a case mapping and returns a JSON-serialisable
dict that is the same record as the command line's ``--format json`` (and adds
people's words for the page). Bad input raises :class:`alpnet.CaseError` or
another :class:`alpnet.AlpnetError`, which the app turns into a 422.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from ..errors import CaseError
from ..evidence import Case, case_from_mapping, read_case
from ..examples import example_path, list_examples

__all__ = ["diagnose_record", "next_test_record", "what_if_answer", "explain_answer", "case_list",
           "teaching_case", "jsonable", "CASE_NAME_PATTERN"]

#: What a teaching case's name may look like (a file stem; never a path).
CASE_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays to Python, NaN and infinities to ``None``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _case(data: Any) -> Case:
    return data if isinstance(data, Case) else case_from_mapping(data, default_id="case")


def _labels(model: Any) -> dict[str, str]:
    return {name: model.label(name) for name in list(model.causes) + list(model.leaks)}


def diagnose_record(model: Any, data: Any) -> dict[str, Any]:
    """``alpnet diagnose --format json --show-states`` for one case, plus ``labels``.

    Returns
    -------
    dict
        ``case_id, posterior, prior, leading_cause, leak, evidence, model, disclaimer,
        states`` as the command line writes them, and ``labels`` (cause -> people's words).
    """
    from ..cli import _diagnose_record

    case = _case(data)
    evidence, mappings = model.evidence_of(case)
    table = model.diagnose(evidence=evidence)
    rec = _diagnose_record(model, case, table, mappings, True)
    rec["labels"] = _labels(model)
    return jsonable(rec)


def next_test_record(model: Any, data: Any, *, target: str | None = None, cost_weight: float = 0.0,
                     lookahead: int = 1, top: int | None = None) -> dict[str, Any]:
    """``alpnet next-test --format json`` for one case, plus ``labels`` of tests and causes.

    Parameters
    ----------
    top : int, optional
        Keep only the first ``top`` tests and questions.
    """
    from ..cli import _ranking_records
    from ..model import DISCLAIMER

    if target is not None and target not in model.causes:
        import difflib

        close = difflib.get_close_matches(str(target), model.causes, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CaseError(f"target {target!r}: unknown cause{hint}; accepted: {', '.join(model.causes)}")
    case = _case(data)
    evidence, _ = model.evidence_of(case)
    df = model.rank_tests(evidence=evidence, target=target, cost_weight=cost_weight, lookahead=lookahead)
    tests, questions = df[df["kind"] == "test"], df[df["kind"] == "question"]
    if top is not None:
        tests, questions = tests.head(top), questions.head(top)
    labels = _labels(model)
    labels.update({str(r.test): str(r.label) for r in df.itertuples()})
    rec = {"case_id": case.id, "leading_cause": df.attrs["leading_cause"],
           "leading_probability": df.attrs["leading_probability"], "entropy_bits": df.attrs["entropy_bits"],
           "target": target, "cost_weight": cost_weight, "lookahead": lookahead,
           "currency": df.attrs["currency"], "ranking": _ranking_records(tests),
           "questions": _ranking_records(questions), "labels": labels, "model": df.attrs["model"],
           "disclaimer": DISCLAIMER}
    return jsonable(rec)


def what_if_answer(model: Any, data: Any, *, set: Mapping[str, Any] | None = None,  # noqa: A002
                   unset: Sequence[str] | None = None) -> dict[str, Any]:
    """``alpnet what-if --format json`` (:func:`alpnet.whatif.what_if_record`)."""
    from ..whatif import what_if_record

    if set is not None and not isinstance(set, Mapping):
        raise CaseError(f"set: {set!r} must be a mapping of dotted case keys to values, "
                        "e.g. {\"labs.ggt\": \"300 U/L\"}")
    if unset is not None and (isinstance(unset, (str, bytes)) or not isinstance(unset, Sequence)):
        raise CaseError(f"unset: {unset!r} must be a list of dotted case keys, e.g. [\"labs.pth\"]")
    return jsonable(what_if_record(model, _case(data), set=set, unset=unset))


def explain_answer(model: Any, data: Any, *, cause: str | None = None, versus: str | None = None,
                   method: str = "chain") -> dict[str, Any]:
    """``alpnet explain --format json`` (:func:`alpnet.explain.explain_record`)."""
    from ..explain import explain_record

    return jsonable(explain_record(model, _case(data), cause=cause, versus=versus, method=method))


def case_list() -> list[dict[str, Any]]:
    """The bundled teaching cases: ``name``, ``title``, ``expected_cause``."""
    out = []
    for name in list_examples():
        about = read_case(example_path(name)).about
        out.append({"name": name, "title": about.get("title", name),
                    "expected_cause": about.get("expected_cause")})
    return out


def teaching_case(name: str) -> dict[str, Any]:
    """One bundled teaching case by name (validated against the bundled list; never a path).

    Raises
    ------
    CaseError
        For a name that is not one of :func:`alpnet.list_examples`, listing them.
    """
    known = list_examples()
    if not isinstance(name, str) or name not in known:
        raise CaseError(f"case {name!r}: unknown teaching case; accepted: {', '.join(known)}")
    case = read_case(example_path(name))
    data = {k: v for k, v in case.data.items() if k != "about"}
    return jsonable({"name": name, "case": data, "about": case.about})

"""Interactive what-if controls for notebooks (needs ``ipywidgets``: ``pip install alpnet[widgets]``).

One drop-down per finding sets its state (or "not known"); every change redraws the
before/after bars (:func:`alpnet.plots.plot_what_if`) and names the leading cause. The
logic lives in :func:`evidence_from_choices` and :func:`alpnet.whatif.what_if_evidence`,
which need no widgets, so notebooks can show the same what-ifs as static cells when
``ipywidgets`` is not installed (:func:`widgets_available`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .errors import AlpnetError
from .evidence import Case, case_from_mapping

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["NOT_KNOWN", "AS_IN_CASE", "widgets_available", "evidence_from_choices", "default_findings",
           "what_if_controls"]

NOT_KNOWN = "(not known)"
AS_IN_CASE = "(as in the case)"


def widgets_available() -> bool:
    """True when ``ipywidgets`` can be imported."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def evidence_from_choices(base: Mapping[str, Any], choices: Mapping[str, str]) -> dict[str, Any]:
    """The case's evidence with the chosen states applied.

    Parameters
    ----------
    base : mapping
        The case's evidence (``model.evidence_of(case)[0]``).
    choices : mapping
        Variable -> a state, :data:`NOT_KNOWN` (drop it) or :data:`AS_IN_CASE` (keep it).

    Returns
    -------
    dict
    """
    out = dict(base)
    for var, choice in choices.items():
        if choice == AS_IN_CASE:
            continue
        if choice == NOT_KNOWN:
            out.pop(var, None)
        else:
            out[var] = choice
    return out


def default_findings(model: "Model", evidence: Mapping[str, Any], extra: int = 5) -> list[str]:
    """The case's findings plus the ``extra`` best tests not yet done (by information gain)."""
    present = [f for f in model.priors.findings if f in evidence]
    if extra <= 0:
        return present
    ranking = model.rank_tests(evidence=evidence)
    more = [t for t in ranking.loc[ranking["kind"] == "test", "test"] if t not in evidence][:extra]
    return present + [str(t) for t in more]


def what_if_controls(model: "Model", case: Case | Mapping[str, Any], *, findings: Sequence[str] | None = None,
                     top: int = 8) -> Any:
    """A widget box: one drop-down per finding, before/after bars that follow them.

    Parameters
    ----------
    model : Model
    case : Case or mapping
    findings : sequence of str, optional
        Finding variables to offer (default: :func:`default_findings`).
    top : int, default 8
        Causes drawn.

    Returns
    -------
    ipywidgets.VBox

    Raises
    ------
    AlpnetError
        When ``ipywidgets`` is not installed (``pip install alpnet[widgets]``).
    """
    try:
        import ipywidgets as w
    except ImportError:
        raise AlpnetError("interactive controls need ipywidgets: pip install 'alpnet[widgets]'") from None
    import matplotlib.pyplot as plt

    from .plots import plot_what_if
    from .whatif import what_if_evidence

    if not isinstance(case, Case):
        case = case_from_mapping(case)
    base, _ = model.evidence_of(case)
    names = list(findings) if findings is not None else default_findings(model, base)
    unknown = [n for n in names if n not in model.priors.findings]
    if unknown:
        raise AlpnetError(f"findings: unknown finding {unknown[0]!r}; accepted: {', '.join(model.priors.findings)}")
    drops = {}
    for var in names:
        states = list(model.priors.variables[var].states)
        current = base.get(var)
        first = AS_IN_CASE if isinstance(current, (list, tuple)) else None
        options = ([first] if first else []) + [NOT_KNOWN] + states
        value = first or (current if current in states else NOT_KNOWN)
        drops[var] = w.Dropdown(options=options, value=value, description=str(model.priors.variables[var].case_key),
                                style={"description_width": "initial"})
    out = w.Output()
    status = w.HTML()

    def redraw(*_: Any) -> None:
        after = evidence_from_choices(base, {v: d.value for v, d in drops.items()})
        with out:
            out.clear_output(wait=True)
            try:
                df = what_if_evidence(model, base, after, case_id=case.id)
            except AlpnetError as exc:
                status.value = f"<b>impossible:</b> {exc}"
                return
            fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
            plot_what_if(df, ax=ax, top=top)
            plt.show()
            plt.close(fig)
            lead = df.attrs["leading_after"]
            status.value = f"leading cause: <b>{model.label(lead)}</b> ({df.set_index('cause').loc[lead, 'after']:.1%})"

    for d in drops.values():
        d.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HTML(f"<b>What if — case {case.id}</b> (research and teaching only)"),
                   w.GridBox(list(drops.values()), layout=w.Layout(grid_template_columns="repeat(2, 50%)")),
                   status, out])

"""The public model object: load a prior set once, ask it about cases."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from . import __version__
from .cpt import build_cpts
from .engine import Engine
from .errors import AlpnetError, CaseError
from .evidence import Case, StateMapping, case_from_mapping, case_to_evidence
from .priors import PriorSet, checked_overrides, load_priors

if TYPE_CHECKING:  # pragma: no cover
    from pgmpy.models import DiscreteBayesianNetwork
    from .batch import CredibleIntervals

__all__ = ["Model", "load_model", "DISCLAIMER"]

DISCLAIMER = ("alpnet is for research and teaching, not for clinical decisions: "
              "its probabilities must not guide the care of a patient.")


class Model:
    """A compiled alpnet network.

    Build it with :func:`load_model`. Every question goes through one exact
    engine (:class:`alpnet.engine.Engine`); :meth:`to_pgmpy` gives the same
    network as a pgmpy ``DiscreteBayesianNetwork`` for reference and export.

    Attributes
    ----------
    priors : PriorSet
        The validated prior set, with any overrides.
    """

    def __init__(self, priors: PriorSet):
        from .reference_engine import choose_engine

        self.priors = priors
        self.cpts, self.engine = choose_engine(priors, build_cpts)

    # --------------------------------------------------------------- names
    @property
    def causes(self) -> list[str]:
        """Names of the causes, in the prior set's order (the leak is not a cause)."""
        return self.priors.causes

    @property
    def leaks(self) -> list[str]:
        """Names of latent 'other / unexplained' variables."""
        return [h for h in self.priors.hidden if h not in self.priors.causes]

    @property
    def observables(self) -> dict[str, list[str]]:
        """Observable variable -> its states (context, labs, symptoms, tests), named by case keys."""
        return {n: list(v.states) for n, v in self.priors.variables.items() if v.kind in ("context", "finding")}

    def label(self, variable: str) -> str:
        """People's words for a variable ("Paget disease of bone").

        Parameters
        ----------
        variable : str
            A variable of the prior set: a cause, the leak, or an observable (see
            :attr:`causes`, :attr:`leaks` and :attr:`observables`).

        Returns
        -------
        str

        Raises
        ------
        CaseError
            For an unknown variable, naming the accepted ones.
        """
        spec = self.priors.variables.get(variable) if isinstance(variable, str) else None
        if spec is None:
            import difflib

            names = list(self.priors.variables)
            close = difflib.get_close_matches(str(variable), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CaseError(f"variable {variable!r}: unknown{hint}; accepted: {', '.join(names)}")
        return spec.label

    @property
    def version_info(self) -> dict[str, Any]:
        """What every answer records: alpnet version, prior-set hash, overrides."""
        info: dict[str, Any] = {"version": __version__, "priors_sha256": self.priors.sha256}
        if self.priors.overrides:
            info["overrides"] = dict(self.priors.overrides)
        return info

    # ------------------------------------------------------------- queries
    def evidence_of(self, case: Case | Mapping[str, Any]) -> tuple[dict[str, Any], list[StateMapping]]:
        """Map a case to model evidence and say how each value was mapped.

        Returns
        -------
        evidence : dict
            Variable -> state (or list of states).
        mappings : list of StateMapping
        """
        return case_to_evidence(case, self.priors)

    def _evidence(self, case: Case | Mapping[str, Any] | None, evidence: Mapping[str, Any] | None) -> dict[str, Any]:
        if (case is None) == (evidence is None):
            raise CaseError("give either a case or evidence (one of the two)")
        if case is not None:
            if not isinstance(case, Case):
                case = case_from_mapping(case)
            return self.evidence_of(case)[0]
        assert evidence is not None
        if not isinstance(evidence, Mapping):
            raise CaseError(f"evidence must be a mapping {{variable: state}}; got {type(evidence).__name__}")
        return dict(evidence)

    def diagnose(self, case: Case | Mapping[str, Any] | None = None, *,
                 evidence: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Prior and posterior probability of every cause.

        Parameters
        ----------
        case : Case or mapping, optional
            A case as in ``case-format.md``.
        evidence : mapping, optional
            ``{model variable: state}`` (or a list of states, or
            ``{state: likelihood}``) instead of a case. Give one of the two.

        Returns
        -------
        pandas.DataFrame
            Columns ``cause, label, prior, posterior``, one row per cause,
            sorted by posterior (highest first). ``prior`` is P(cause | patient
            and history only), ``posterior`` P(cause | all evidence). ``attrs``
            holds ``leak`` (the posterior of the unexplained leak),
            ``leading_cause``, ``evidence`` and ``model``.

        Raises
        ------
        CaseError, EvidenceConflictError

        Examples
        --------
        >>> import alpnet
        >>> model = alpnet.load_model()
        >>> table = model.diagnose(evidence={"alp": "moderate", "ggt": "normal", "age": "70_plus"})
        >>> list(table.columns)
        ['cause', 'label', 'prior', 'posterior']
        """
        ev = self._evidence(case, evidence)
        post = self.engine.posterior(ev)
        prior = self.engine.prior(ev)
        rows = [{"cause": c, "label": self.label(c), "prior": prior[c], "posterior": post[c]} for c in self.causes]
        df = pd.DataFrame(rows, columns=["cause", "label", "prior", "posterior"])
        df = df.sort_values(["posterior", "cause"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
        df.attrs["leak"] = {h: post[h] for h in self.leaks}
        df.attrs["leading_cause"] = str(df["cause"].iloc[0]) if len(df) else None
        df.attrs["evidence"] = ev
        df.attrs["model"] = self.version_info
        return df

    def predictive(self, variable: str, case: Case | Mapping[str, Any] | None = None, *,
                   evidence: Mapping[str, Any] | None = None) -> dict[str, float]:
        """P(variable = state | evidence) for an observable not yet in the evidence."""
        ev = self._evidence(case, evidence)
        return self.engine.predictive(ev, variable)

    @property
    def ranker(self):
        """The :class:`alpnet.next_test.TestRanker` of this model (built on first use)."""
        if getattr(self, "_ranker", None) is None:
            from .next_test import TestRanker

            if not isinstance(self.engine, Engine):
                raise AlpnetError("ranking tests needs alpnet's exact enumeration engine; this prior set has more "
                                  "causes than its limit (see alpnet.engine.MAX_HIDDEN)")
            self._ranker = TestRanker(self)
        return self._ranker

    def rank_tests(self, case: Case | Mapping[str, Any] | None = None, *, evidence: Mapping[str, Any] | None = None,
                   target: str | None = None, cost_weight: float = 0.0, lookahead: int = 1) -> pd.DataFrame:
        """Rank every test and question not yet observed by its value.

        Parameters
        ----------
        case, evidence
            As in :meth:`diagnose` (one of the two).
        target : str, optional
            Rank by the information about this one cause instead of the joint of all causes.
        cost_weight : float, default 0
            lambda in ``score = gain - lambda * cost`` (cost in the prior set's currency).
        lookahead : {1, 2}
            With 2, the exact best two-test policy: the second test is chosen after seeing the
            first one's outcome; ``expected_information_gain_bits`` and ``score`` are then the
            two-step values and ``second_test`` maps each outcome to the second test.

        Returns
        -------
        pandas.DataFrame
            One row per candidate, tests first (best score first), then questions (best
            gain first, ``kind == "question"``, free). Columns ``test, kind, label,
            expected_information_gain_bits, cost, burden, score, gain_per_cost,
            expected_change_leading, outcomes`` where ``outcomes`` maps each state to its
            predictive probability ``p`` and the posterior of the leading causes after it.
            A blood test's cost includes the blood draw. ``attrs`` holds the current
            entropy, leading cause and settings.

        Examples
        --------
        >>> import alpnet
        >>> model = alpnet.load_model()
        >>> ranking = model.rank_tests(evidence={"age": "55_to_69", "sex": "male", "alp": "moderate"})
        >>> bool(ranking.loc[ranking["kind"] == "test", "score"].is_monotonic_decreasing)
        True
        """
        ev = self._evidence(case, evidence)
        df = self.ranker.rank(ev, target=target, cost_weight=cost_weight, lookahead=lookahead)
        df.attrs["model"] = self.version_info
        return df

    def plan(self, case: Case | Mapping[str, Any] | None = None, *, evidence: Mapping[str, Any] | None = None,
             max_depth: int = 3, stop_probability: float = 0.9, min_gain: float = 0.05,
             budget: float | None = None, cost_weight: float = 0.0) -> dict[str, Any]:
        """A work-up plan: a decision tree of tests and questions until a stopping rule.

        At every node the best free question is asked first if its gain reaches
        ``min_gain``; otherwise the best affordable test by ``gain - cost_weight * cost``.
        A branch stops when the leading cause reaches ``stop_probability``, no test's gain
        reaches ``min_gain`` (or, with a cost weight, is worth its cost), the ``budget`` is
        spent, or ``max_depth`` is reached.

        Returns
        -------
        dict
            ``tree`` (nested: ``test``/``ask``, ``outcomes`` -> state -> ``{"p", "next"}``,
            or ``stop`` with the reason), ``expected_cost``,
            ``expected_final_leading_probability``, ``currency``, ``settings``, ``model``.
        """
        ev = self._evidence(case, evidence)
        out = self.ranker.plan(ev, max_depth=max_depth, stop_probability=stop_probability, min_gain=min_gain,
                               budget=budget, cost_weight=cost_weight)
        out["model"] = self.version_info
        return out

    def to_pgmpy(self) -> "DiscreteBayesianNetwork":
        """The pgmpy ``DiscreteBayesianNetwork`` the answers come from (imports pgmpy)."""
        from .network import to_pgmpy

        return to_pgmpy(self.priors, self.cpts)

    def what_if(self, case: Case | Mapping[str, Any], *, set: Mapping[str, Any] | None = None,  # noqa: A002
                unset: list[str] | None = None) -> pd.DataFrame:
        """Every cause before and after changing case values (:func:`alpnet.whatif.what_if`)."""
        from .whatif import what_if

        return what_if(self, case, set=set, unset=unset)

    def explain(self, case: Case | Mapping[str, Any], *, cause: str | None = None, versus: str | None = None):
        """Weights of evidence of every finding (:func:`alpnet.explain.explain`)."""
        from .explain import explain

        return explain(self, case, cause=cause, versus=versus)
    def score(self, df: pd.DataFrame, *, next_test: bool = False, intervals: "CredibleIntervals | bool | None" = None,
              errors: str = "raise") -> pd.DataFrame:
        """Score a table of cases in the batch layout (case-format.md §5), one row per case.

        Thin wrapper of :func:`alpnet.batch.score_frame`: pass-through columns, then
        ``posterior.<cause>`` for every cause, ``leading_cause`` (and ``next_test``,
        ``next_test_gain_bits``; with ``intervals=True`` or an
        :class:`alpnet.batch.CredibleIntervals`, ``posterior_low.<cause>``,
        ``posterior_high.<cause>`` and ``leading_cause_stays``). ``errors="keep"`` scores
        the good rows and lists the bad ones in ``result.attrs["errors"]``; ``"raise"``
        (default) stops at the first.
        """
        from .batch import score_frame

        return score_frame(self, df, next_test=next_test, intervals=intervals, errors=errors)  # type: ignore[arg-type]


def load_model(priors: str | Path | PriorSet | None = None, *, overrides: Mapping[str, float] | None = None) -> Model:
    """Load and compile a prior set.

    Parameters
    ----------
    priors : str, Path or PriorSet, optional
        A prior-set folder, an already loaded set, or None for the bundled set.
    overrides : mapping, optional
        Parameter id -> value (a finite number), applied on top of the set (recorded in
        answers).

    Returns
    -------
    Model

    Raises
    ------
    PriorsError
        If the prior set is malformed (names file and key), ``priors`` is not a folder,
        a PriorSet or None, or ``overrides`` is not a mapping of parameter ids to finite
        numbers in range.
    """
    values = None if overrides is None else checked_overrides(overrides)
    pset = priors if isinstance(priors, PriorSet) else load_priors(priors)
    if values:
        pset = pset.with_overrides(values)
    return Model(pset)

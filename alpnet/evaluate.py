"""Evaluate the model on labelled cases: scores, bootstrap intervals, calibration.

A labelled table is a batch table (case-format.md §5) with one ``cause.<name>``
column per cause of the model holding 0 or 1 (what ``alpnet simulate`` writes).
Every row is scored with the model's exact engine and compared with its labels.

Per cause
    * **Brier score** ``mean((p - y)^2)``;
    * **log loss** ``-mean(y log p + (1 - y) log(1 - p))``, with ``p`` clipped to
      ``[eps, 1 - eps]`` (``eps`` the float64 machine epsilon, as scikit-learn does);
    * **ROC AUC** (the Mann-Whitney statistic, ties counted one half; undefined, NaN,
      when the cause is always or never present);
    * **top-1 / top-3 accuracy**: among the rows where the cause is present, the share
      in which it is the leading cause / among the three highest posteriors.
Overall
    * **top-1 / top-3 accuracy**: among the rows with at least one true cause, the share
      whose leading cause is a true cause / whose three highest include a true cause.

Ranks break ties as ``diagnose`` does (higher posterior first, then the cause name).
Every metric gets a percentile bootstrap interval (rows resampled with replacement,
``numpy.random.default_rng(seed)``). The calibration table bins the predictions in
equal-width bins on [0, 1] (as ``sklearn.calibration.calibration_curve`` with
``strategy="uniform"``) and gives, per bin, the mean prediction and the observed
frequency.

References
----------
.. [1] Brier GW. Verification of forecasts expressed in terms of probability.
   Mon Weather Rev 1950;78:1-3.
.. [2] Hanley JA, McNeil BJ. The meaning and use of the area under a ROC curve.
   Radiology 1982;143:29-36.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .checks import check_seed
from .errors import AlpnetError, CaseError

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["EvaluationResult", "LabelError", "evaluate", "read_labelled", "score_labelled", "labelled_evidence", "METRICS",
           "brier_score", "log_loss", "roc_auc"]

#: Per-cause metrics, in output order.
METRICS = ["brier", "log_loss", "roc_auc", "top1_accuracy", "top3_accuracy"]
LABEL_PREFIX = "cause."
_EPS = float(np.finfo(np.float64).eps)


class LabelError(CaseError):
    """A labelled table that cannot be evaluated; ``errors`` lists every bad row.

    Attributes
    ----------
    errors : pandas.DataFrame
        Columns ``row, case_id, column, value, reason`` (row 1 is the first row under the header).
    """

    def __init__(self, message: str, errors: pd.DataFrame | None = None):
        super().__init__(message)
        self.errors = errors if errors is not None else pd.DataFrame(columns=["row", "case_id", "column", "value",
                                                                               "reason"])


# --------------------------------------------------------------------------- metrics


def brier_score(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Brier score along the last axis."""
    return np.mean((p - y) ** 2, axis=-1)


def log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Binary log loss along the last axis (natural log; ``p`` clipped to [eps, 1 - eps])."""
    q = np.clip(p, _EPS, 1 - _EPS)
    return -np.mean(y * np.log(q) + (1 - y) * np.log1p(-q), axis=-1)


def roc_auc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ROC AUC along the last axis (Mann-Whitney with mid-ranks); NaN with one class only."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=float)
    ranks = rankdata(p, axis=-1)
    n_pos = y.sum(axis=-1)
    n_neg = y.shape[-1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _ranks(post: np.ndarray, causes: list[str]) -> np.ndarray:
    """Rank (0 = leading) of every cause in every row; ties to the first name in sorted order."""
    name_rank = np.argsort(np.argsort(np.array(causes)))
    # sort by (-posterior, name): lexsort uses the last key first
    order = np.lexsort((np.broadcast_to(name_rank, post.shape), -post), axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(post.shape[1])[None, :].repeat(post.shape[0], 0), axis=1)
    return ranks


def _per_cause_topk(y: np.ndarray, ranks: np.ndarray, k: int) -> np.ndarray:
    """(..., rows) labels and ranks -> share of present rows ranked within k; NaN when none present."""
    hit = (ranks < k) & (y > 0)
    n = y.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, hit.sum(axis=-1) / n, np.nan)


# --------------------------------------------------------------------------- result


@dataclass
class EvaluationResult:
    """What :func:`evaluate` returns.

    Attributes
    ----------
    metrics : pandas.DataFrame
        One row per cause and metric: ``cause, metric, value, low, high, n, n_present``
        (``low``/``high`` the bootstrap interval; NaN without a bootstrap).
    overall : pandas.DataFrame
        ``metric, value, low, high, n``: top-1 and top-3 accuracy over all rows with a
        true cause.
    calibration : pandas.DataFrame
        ``cause, bin, lower, upper, n, mean_predicted, observed`` for every non-empty bin.
    n_rows : int
    settings : dict
        ``bootstrap``, ``seed``, ``confidence``, ``bins``.
    model : dict
        :attr:`alpnet.Model.version_info` of the model evaluated.
    """

    metrics: pd.DataFrame
    overall: pd.DataFrame
    calibration: pd.DataFrame
    n_rows: int
    settings: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``metrics -> cause -> metric -> {value, low, high}``, ..."""
        def num(x: Any) -> Any:
            return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

        metrics: dict[str, Any] = {}
        for r in self.metrics.itertuples(index=False):
            entry = metrics.setdefault(r.cause, {"n_present": int(r.n_present)})
            entry[r.metric] = {"value": num(r.value), "low": num(r.low), "high": num(r.high)}
        overall = {r.metric: {"value": num(r.value), "low": num(r.low), "high": num(r.high), "n": int(r.n)}
                   for r in self.overall.itertuples(index=False)}
        calibration: dict[str, list] = {}
        for r in self.calibration.itertuples(index=False):
            calibration.setdefault(r.cause, []).append(
                {"lower": float(r.lower), "upper": float(r.upper), "n": int(r.n),
                 "mean_predicted": float(r.mean_predicted), "observed": float(r.observed)})
        return {"n_rows": self.n_rows, "metrics": metrics, "overall": overall, "calibration": calibration,
                "settings": dict(self.settings), "model": dict(self.model)}


# --------------------------------------------------------------------------- input


def read_labelled(path: str | Path) -> pd.DataFrame:
    """Read a whole labelled table (CSV or Parquet); CSV cells as text.

    Raises
    ------
    LabelError
        For a row with the wrong number of fields (a truncated CSV), listing every one.
    AlpnetError
        For a missing, empty or unreadable file.
    """
    from .tableio import check_input_path, iter_chunks

    p = Path(path)
    check_input_path(p)
    chunks = list(iter_chunks(p, 50_000))
    bad = [{"row": int(place) + 1, "case_id": "", "column": "", "value": "", "reason": reason}
           for chunk in chunks for place, reason in sorted(chunk.attrs.get("bad_rows", {}).items())]
    if bad:  # a line with too many or too few fields (tableio): every one listed
        raise LabelError(f"{p}: {len(bad)} row(s) cannot be read", pd.DataFrame(bad))
    if not chunks:
        from .tableio import read_columns

        return pd.DataFrame(columns=read_columns(p))
    return pd.concat(chunks) if len(chunks) > 1 else chunks[0]


def _labels(frame: pd.DataFrame, causes: list[str]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(n, n_causes) 0/1 labels and one error per bad cell; raises for missing columns."""
    label_cols = [c for c in frame.columns if str(c).startswith(LABEL_PREFIX)]
    unknown = [c for c in label_cols if str(c)[len(LABEL_PREFIX):] not in causes]
    missing = [f"{LABEL_PREFIX}{c}" for c in causes if f"{LABEL_PREFIX}{c}" not in frame.columns]
    problems = []
    if missing:
        problems.append(f"missing label column(s): {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown label column(s): {', '.join(map(str, unknown))}; accepted: "
                        + ", ".join(LABEL_PREFIX + c for c in causes))
    if problems:
        raise LabelError("labels: " + "; ".join(problems) + " (one cause.<name> column of 0 or 1 per cause)")
    y = np.zeros((len(frame), len(causes)), dtype=float)
    errors: list[dict[str, Any]] = []
    for j, cause in enumerate(causes):
        col = f"{LABEL_PREFIX}{cause}"
        for i, v in enumerate(frame[col].to_numpy(dtype=object)):
            text = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
            try:
                num = float(text)
            except ValueError:
                num = float("nan")
            if num in (0.0, 1.0):
                y[i, j] = num
            else:
                errors.append({"row": i + 1, "case_id": "", "column": col, "value": text,
                               "reason": f"{col}: {text!r} is not a label; accepted: 0, 1"
                                         + (" (an empty cell is not allowed)" if not text else "")})
    return y, errors


def labelled_evidence(model: "Model", frame: pd.DataFrame) -> tuple[list[dict[str, Any]], np.ndarray, list[str]]:
    """Model evidence and labels of every row of a labelled table, or every problem.

    Returns
    -------
    evidences : list of dict
        Variable -> state (or states, or likelihoods) for each row, as ``Model.evidence_of``.
    labels : ndarray
        ``(n_rows, n_causes)`` 0/1 in ``model.causes`` order.
    ids : list of str
        Each row's ``case_id``.

    Raises
    ------
    LabelError
        Listing every bad row (a case value, a label) with row, column, value and reason.
    """
    from .batch import ERROR_COLUMNS, chunk_evidence, plan_columns

    causes = model.causes
    y, errors = _labels(frame, causes)
    data = frame.drop(columns=[f"{LABEL_PREFIX}{c}" for c in causes]).reset_index(drop=True)
    plan = plan_columns(data.columns, model.priors)
    found, ids, case_errors = chunk_evidence(model, data, plan)  # row by row, as score reads them
    evidences: list[dict[str, Any]] = [{} if ev is None else ev for ev in found]
    errors.extend(case_errors)
    for e in errors:
        e["case_id"] = ids[e["row"] - 1] if e["row"] - 1 < len(ids) else e["case_id"]
    if errors:
        table = pd.DataFrame(errors, columns=ERROR_COLUMNS).sort_values(["row", "column"], kind="mergesort")
        raise LabelError(f"{len(table)} problem(s) in {table['row'].nunique()} row(s); nothing was computed",
                         table.reset_index(drop=True))
    return evidences, y, ids


def score_labelled(model: "Model", frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Posteriors and labels of a labelled table, in ``model.causes`` order.

    Returns
    -------
    posteriors, labels : ndarray
        Shape ``(n_rows, n_causes)``.
    scored : DataFrame
        What :func:`alpnet.batch.score_frame` returns (pass-through columns and posteriors).

    Raises
    ------
    LabelError
        When any row is bad (a case value or a label), with every bad row in ``errors``;
        nothing is evaluated then.
    """
    from .batch import ERROR_COLUMNS, score_frame

    causes = model.causes
    y, label_errors = _labels(frame, causes)
    data = frame.drop(columns=[f"{LABEL_PREFIX}{c}" for c in causes])
    scored = score_frame(model, data.reset_index(drop=True), errors="keep")
    errs = scored.attrs["errors"]
    id_values = frame["id"].to_numpy(dtype=object) if "id" in frame.columns else [None] * len(frame)
    ids = [str(v).strip() if isinstance(v, str) and v.strip() else f"row{i + 1}" for i, v in enumerate(id_values)]
    for e in label_errors:
        e["case_id"] = ids[e["row"] - 1]
    all_errors = pd.concat([errs, pd.DataFrame(label_errors, columns=ERROR_COLUMNS)], ignore_index=True) \
        if label_errors else errs
    if len(all_errors):
        all_errors = all_errors.sort_values(["row", "column"], kind="mergesort").reset_index(drop=True)
        raise LabelError(f"{len(all_errors)} problem(s) in {all_errors['row'].nunique()} row(s); nothing was "
                         "evaluated", all_errors)
    post = scored[[f"posterior.{c}" for c in causes]].to_numpy(dtype=float)
    return post, y, scored


# --------------------------------------------------------------------------- evaluation


def _calibration(post: np.ndarray, y: np.ndarray, causes: list[str], bins: int) -> pd.DataFrame:
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for j, cause in enumerate(causes):
        # the same binning as sklearn.calibration.calibration_curve(strategy="uniform")
        idx = np.searchsorted(edges[1:-1], post[:, j])
        for b in range(bins):
            m = idx == b
            if m.any():
                rows.append({"cause": cause, "bin": b, "lower": edges[b], "upper": edges[b + 1], "n": int(m.sum()),
                             "mean_predicted": float(post[m, j].mean()), "observed": float(y[m, j].mean())})
    return pd.DataFrame(rows, columns=["cause", "bin", "lower", "upper", "n", "mean_predicted", "observed"])


def _metric_values(post: np.ndarray, y: np.ndarray, ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics per cause for arrays shaped (..., rows, causes) -> (..., causes)."""
    p, t, r = np.moveaxis(post, -1, -2), np.moveaxis(y, -1, -2), np.moveaxis(ranks, -1, -2)
    return {"brier": brier_score(t, p), "log_loss": log_loss(t, p), "roc_auc": roc_auc(t, p),
            "top1_accuracy": _per_cause_topk(t, r, 1), "top3_accuracy": _per_cause_topk(t, r, 3)}


def _overall(y: np.ndarray, ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Overall top-k over rows with a true cause, arrays shaped (..., rows, causes)."""
    any_true = y.sum(axis=-1) > 0
    n = any_true.sum(axis=-1)
    out = {}
    for k in (1, 3):
        hit = ((ranks < k) & (y > 0)).any(axis=-1) & any_true
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"top{k}_accuracy"] = np.where(n > 0, hit.sum(axis=-1) / np.maximum(n, 1), np.nan)
    return out


def evaluate_arrays(post: np.ndarray, y: np.ndarray, causes: list[str], *, bootstrap: int = 1000,
                    seed: int | None = 0, confidence: float = 0.95, bins: int = 10) -> EvaluationResult:
    """Evaluate posteriors against 0/1 labels (both ``(n_rows, n_causes)``).

    See :func:`evaluate`; this is the part that needs no model.

    Raises
    ------
    AlpnetError
        For arrays of different shapes, no rows, or a bad ``bootstrap``, ``seed``,
        ``confidence`` or ``bins``.
    """
    post = np.asarray(post, dtype=float)
    y = np.asarray(y, dtype=float)
    if post.shape != y.shape or post.ndim != 2 or post.shape[1] != len(causes):
        raise AlpnetError(f"posteriors {post.shape} and labels {y.shape} must both be (rows, {len(causes)})")
    if not isinstance(bootstrap, (int, np.integer)) or isinstance(bootstrap, bool) or bootstrap < 0:
        raise AlpnetError(f"bootstrap must be a whole number >= 0; got {bootstrap!r} instead")
    if not 0 < confidence < 1:
        raise AlpnetError(f"confidence must lie in (0, 1); got {confidence!r} instead")
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise AlpnetError(f"bins must be a whole number >= 1; got {bins!r} instead")
    check_seed(seed)
    n = len(post)
    if n == 0:
        raise AlpnetError("no rows to evaluate (the table has a header but no data rows)")
    ranks = _ranks(post, causes)
    point = _metric_values(post, y, ranks)
    over = _overall(y, ranks)
    lo_q, hi_q = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2
    low: dict[str, np.ndarray] = {}
    high: dict[str, np.ndarray] = {}
    if bootstrap and n:
        rng = np.random.default_rng(seed)
        draws: dict[str, list[np.ndarray]] = {}
        block = max(1, int(2e6 // max(n * len(causes), 1)))
        done = 0
        while done < bootstrap:
            b = min(block, bootstrap - done)
            idx = rng.integers(0, n, size=(b, n))
            pb, yb, rb = post[idx], y[idx], ranks[idx]
            overall_b = {f"overall.{k}": v for k, v in _overall(yb, rb).items()}
            for name, v in {**_metric_values(pb, yb, rb), **overall_b}.items():
                draws.setdefault(name, []).append(v)
            done += b
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (a cause never present)
            for name, parts in draws.items():
                arr = np.concatenate(parts, axis=0)
                low[name] = np.nanpercentile(arr, lo_q, axis=0)
                high[name] = np.nanpercentile(arr, hi_q, axis=0)
    rows = []
    n_present = y.sum(axis=0)
    for j, cause in enumerate(causes):
        for m in METRICS:
            rows.append({"cause": cause, "metric": m, "value": float(point[m][j]),
                         "low": float(low[m][j]) if m in low else math.nan,
                         "high": float(high[m][j]) if m in high else math.nan,
                         "n": n, "n_present": int(n_present[j])})
    metrics = pd.DataFrame(rows, columns=["cause", "metric", "value", "low", "high", "n", "n_present"])
    n_true = int((y.sum(axis=1) > 0).sum())
    overall = pd.DataFrame([{"metric": m, "value": float(v),
                             "low": float(low[f"overall.{m}"]) if f"overall.{m}" in low else math.nan,
                             "high": float(high[f"overall.{m}"]) if f"overall.{m}" in high else math.nan,
                             "n": n_true}
                            for m, v in over.items()], columns=["metric", "value", "low", "high", "n"])
    return EvaluationResult(metrics=metrics, overall=overall, calibration=_calibration(post, y, causes, bins),
                            n_rows=n, settings={"bootstrap": int(bootstrap), "seed": seed, "confidence": confidence,
                                                "bins": int(bins)})


def evaluate(model: "Model", frame: pd.DataFrame | str | Path, *, bootstrap: int = 1000, seed: int | None = 0,
             confidence: float = 0.95, bins: int = 10) -> EvaluationResult:
    """Score labelled cases with ``model`` and measure how good the posteriors are.

    Parameters
    ----------
    model : Model
    frame : DataFrame, str or Path
        A labelled table in the batch layout with a ``cause.<name>`` column (0 or 1) for
        every cause of the model, or the path of one (CSV or Parquet).
    bootstrap : int, default 1000
        Bootstrap resamples for the intervals (0: no intervals).
    seed : int, optional
        Seed of the bootstrap; the same seed gives the same intervals.
    confidence : float, default 0.95
        Coverage of the percentile intervals.
    bins : int, default 10
        Equal-width bins of the calibration table.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    LabelError
        Missing or unknown label columns, a label that is not 0 or 1, a bad case value, a
        truncated file: every bad row is listed in ``errors``, and nothing is evaluated.
    AlpnetError
        A table with no data rows, or a bad ``bootstrap``, ``seed``, ``confidence`` or ``bins``.

    Examples
    --------
    >>> import alpnet
    >>> from alpnet.simulate import simulate
    >>> model = alpnet.load_model()                           # doctest: +SKIP
    >>> result = evaluate(model, simulate(model, 200, seed=1))  # doctest: +SKIP
    >>> result.metrics.query("metric == 'roc_auc'")             # doctest: +SKIP
    """
    if isinstance(frame, (str, Path)):
        frame = read_labelled(frame)
    if not isinstance(frame, pd.DataFrame):
        raise AlpnetError(f"frame must be a pandas DataFrame or a path; got {type(frame).__name__} instead")
    post, y, _ = score_labelled(model, frame)
    result = evaluate_arrays(post, y, model.causes, bootstrap=bootstrap, seed=seed, confidence=confidence, bins=bins)
    result.model = model.version_info
    return result


def format_table(result: EvaluationResult, labels: dict[str, str] | None = None) -> str:
    """The result as aligned text: one line per cause, then the overall accuracy."""
    def cell(v: float, lo: float, hi: float) -> str:
        if math.isnan(v):
            return "n/a"
        return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if not math.isnan(lo) else "")

    wide = result.metrics.pivot(index="cause", columns="metric")
    causes = list(dict.fromkeys(result.metrics["cause"]))
    head = ["cause", "n_present"] + METRICS
    lines = []
    table = [head]
    for c in causes:
        row = [c, str(int(wide.loc[c, ("n_present", METRICS[0])]))]
        for m in METRICS:
            row.append(cell(wide.loc[c, ("value", m)], wide.loc[c, ("low", m)], wide.loc[c, ("high", m)]))
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        lines.append("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    lines.append("")
    for r in result.overall.itertuples(index=False):
        lines.append(f"overall {r.metric} (rows with a true cause: {r.n}): {cell(r.value, r.low, r.high)}")
    s = result.settings
    if s.get("bootstrap"):
        lines.append(f"intervals: {100 * s['confidence']:g}% percentile bootstrap, {s['bootstrap']} resamples, "
                     f"seed {s['seed']}")
    lines.append(f"{result.n_rows} labelled row(s)")
    return "\n".join(lines)

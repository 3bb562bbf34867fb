"""Batch scoring: many cases in a table (case-format.md §5) to posteriors per row.

A batch row is a case written flat. Columns are case keys, dotted or bare
(``patient.age`` or ``age``, ``labs.alp`` or ``alp``); a lab cell holds a value
with its unit (``"420 U/L"``) or a verdict word, or the number alone with its unit
in a ``<key>_unit`` column (``alp``, ``alp_unit``); booleans are ``true``,
``false``, ``yes``, ``no``, ``1`` or ``0``; an empty cell means not known. Every
other column passes through to the output untouched, and ``id`` names the row's
``case_id``.

Each row becomes a case through the same validation as a case file
(:func:`alpnet.evidence.case_to_evidence`), so the same errors apply; a row that
fails is reported with its row number, column, value and reason and never stops
the batch. The reference for one row is :func:`row_evidence`; a chunk is read
column by column (:func:`chunk_evidence`, with the same helpers, once per distinct
value), which gives the same evidence and sends every row it cannot map, each
failing row among them, through :func:`row_evidence`. Posteriors for a chunk of
rows come from one call of ``model.engine.posterior_many``.

Output columns: the pass-through columns (in input order), then
``posterior.<cause>`` for every cause, ``leading_cause``, and with ``next_test``
also ``next_test`` and ``next_test_gain_bits``, and with credible intervals
(:class:`CredibleIntervals`) ``posterior_low.<cause>`` and ``posterior_high.<cause>``
for every cause and ``leading_cause_stays``. A failed row keeps its place with
empty results.
"""

from __future__ import annotations

import gc
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal

import numpy as np
import pandas as pd

from .errors import AlpnetError, CaseError, EvidenceConflictError
from .evidence import case_from_mapping
from .schema import SECTIONS, case_schema

if TYPE_CHECKING:  # pragma: no cover
    from .evidence_columns import EvidenceTable
    from .model import Model

__all__ = ["ColumnPlan", "CredibleIntervals", "plan_columns", "row_to_case", "row_evidence", "chunk_evidence",
           "score_frame",
           "score_chunk", "output_columns",
           "ERROR_COLUMNS", "BOOLEAN_WORDS"]

#: Columns of the errors file.
ERROR_COLUMNS = ["row", "case_id", "column", "value", "reason"]
#: Accepted spellings of a boolean cell (case-insensitive).
BOOLEAN_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


@dataclass(frozen=True)
class CredibleIntervals:
    """Ask for credible intervals per row, from parameter draws.

    The draws are those of :func:`alpnet.uncertainty.posterior_uncertainty` with the same
    seed (``alpnet diagnose --uncertainty``), so a row's interval is the one its case gets
    alone. Each row costs about ``draws`` times a posterior.

    Attributes
    ----------
    draws : int
        Parameter draws (at least 2).
    seed : int or None
        Seed of the draws; None draws afresh every run.
    level : float
        Credible level of the central intervals, strictly between 0 and 1.
    """

    draws: int = 200
    seed: int | None = 0
    level: float = 0.95

    def __post_init__(self) -> None:
        from .uncertainty import _check_draws

        _check_draws(self.draws, self.level, self.seed)


@dataclass
class ColumnPlan:
    """How the columns of a batch table are read.

    Attributes
    ----------
    key_of : dict
        Column -> dotted case key (``"age"`` -> ``"patient.age"``).
    unit_of : dict
        Dotted lab key -> the column holding its unit (``"labs.alp"`` -> ``"alp_unit"``).
    passthrough : list of str
        Columns that are not case keys, in input order (``id`` included).
    id_column : str or None
        The column that names each row's ``case_id``.
    booleans : set of str
        Dotted keys whose cells are booleans.
    """

    key_of: dict[str, str]
    unit_of: dict[str, str]
    passthrough: list[str]
    id_column: str | None
    booleans: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    integers: set[str] = field(default_factory=set)

    @property
    def column_of(self) -> dict[str, str]:
        """Dotted case key -> its column."""
        return {k: c for c, k in self.key_of.items()}

    @property
    def unit_columns(self) -> set[str]:
        return set(self.unit_of.values())


_SCHEMA_CACHE: dict[str, dict[str, Any]] = {}


def _known_keys(pset) -> tuple[dict[str, str], dict[str, list[str]], set[str], set[str], set[str]]:
    """(dotted -> dotted, bare -> [dotted], booleans, numbers, integers) for a prior set."""
    schema = _SCHEMA_CACHE.get(pset.sha256)
    if schema is None:
        schema = _SCHEMA_CACHE[pset.sha256] = case_schema(pset)
    dotted: dict[str, str] = {}
    bare: dict[str, list[str]] = {}
    booleans, numbers, integers = set(), set(), set()
    for section in SECTIONS:
        props = schema["properties"][section]["properties"]
        for name, spec in props.items():
            key = f"{section}.{name}"
            dotted[key] = key
            bare.setdefault(name, []).append(key)
            if spec.get("type") == "boolean":
                booleans.add(key)
            elif spec.get("type") == "number":
                numbers.add(key)
            elif "enum" in spec and all(isinstance(x, int) and not isinstance(x, bool) for x in spec["enum"]):
                integers.add(key)
    return dotted, bare, booleans, numbers, integers


def plan_columns(columns: Iterable[Any], pset) -> ColumnPlan:
    """Classify the columns of a batch table: case keys, unit columns, pass-through.

    Parameters
    ----------
    columns : iterable of str
        The header, in order.
    pset : PriorSet
        The prior set whose case keys are accepted.

    Returns
    -------
    ColumnPlan

    Raises
    ------
    CaseError
        When a key appears twice (``alp`` and ``labs.alp``), a bare name is ambiguous,
        a ``<key>_unit`` column has no value column, or there is no ALP column.
    """
    dotted, bare, booleans, numbers, integers = _known_keys(pset)
    cols = [str(c) for c in columns]
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise CaseError(f"columns {', '.join(repr(d) for d in dupes)} appear more than once; every column needs its own name")
    key_of: dict[str, str] = {}
    for c in cols:
        name = c.strip()
        if name in dotted:
            key_of[c] = name
        elif name in bare:
            if len(bare[name]) > 1:
                raise CaseError(f"column {c!r} is ambiguous; write it dotted: {' or '.join(bare[name])}")
            key_of[c] = bare[name][0]
    seen: dict[str, str] = {}
    for c, key in key_of.items():
        if key in seen:
            raise CaseError(f"columns {seen[key]!r} and {c!r} both give {key}; keep one of them")
        seen[key] = c
    unit_of: dict[str, str] = {}
    for c in cols:
        if c in key_of or not c.strip().endswith("_unit"):
            continue
        base = c.strip()[: -len("_unit")]
        key = dotted.get(base) or (bare[base][0] if base in bare and len(bare[base]) == 1 else None)
        if key is None:
            continue  # an ordinary column that happens to end in _unit: passes through
        if not key.startswith("labs."):
            raise CaseError(f"column {c!r}: only lab values take a unit column; {key} is not a lab")
        if key not in seen:
            raise CaseError(f"column {c!r} gives the unit of {key}, but there is no column {base!r} with its values")
        unit_of[key] = c
    if "labs.alp" not in seen:
        glued = next((sep for sep in (";", "\t", "|") if len(cols) == 1 and sep in cols[0]), None)
        hint = (f"; the header looks separated by {glued!r}: alpnet reads commas in .csv and tabs in .tsv files"
                if glued else "")
        raise CaseError(f"no ALP column: every case needs the ALP result (a column 'alp' or 'labs.alp'){hint}")
    passthrough = [c for c in cols if c not in key_of and c not in unit_of.values()]
    for c in passthrough:
        _check_passthrough(c, dotted, bare)
    id_column = next((c for c in passthrough if c.strip() == "id"), None)
    return ColumnPlan(key_of=key_of, unit_of=unit_of, passthrough=passthrough, id_column=id_column,
                      booleans=booleans, numbers=numbers, integers=integers)


#: Output columns alpnet writes after the pass-through ones (and prefixes of the per-cause ones).
_OUTPUT_NAMES = {"leading_cause", "next_test", "next_test_gain_bits", "leading_cause_stays"}
_OUTPUT_PREFIXES = ("posterior.", "posterior_low.", "posterior_high.")


def _check_passthrough(column: str, dotted: dict[str, str], bare: dict[str, list[str]]) -> None:
    """Refuse a column that would pass through but looks like a mistyped case key (a
    section prefix, or a key in other letter case), or that has the name of an output column.

    Raises
    ------
    CaseError
        Naming the column and, where one is close, the key it was probably meant to be.
    """
    import difflib

    name = column.strip()
    if name in _OUTPUT_NAMES or name.startswith(_OUTPUT_PREFIXES):
        raise CaseError(f"column {column!r} has the name of a column alpnet writes to the output; "
                        "rename it (or drop the scores of an earlier run)")
    lower = name.lower()
    by_lower = {k.lower(): k for k in list(dotted) + list(bare)}
    if lower in by_lower:
        raise CaseError(f"column {column!r}: case keys are written in lower case; write it {by_lower[lower]!r}")
    if "." not in name:
        return
    section = name.split(".", 1)[0].lower()
    sections = sorted({k.split(".", 1)[0] for k in dotted})
    if section in sections or difflib.get_close_matches(section, sections, n=1, cutoff=0.75):
        close = difflib.get_close_matches(lower, list(dotted), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(k) for k in close)}?" if close else \
            f"; the sections are {', '.join(sections)} (see alpnet schema)"
        raise CaseError(f"column {column!r} is not a case key{hint}")


def output_columns(model: "Model", plan: ColumnPlan, *, next_test: bool = False,
                   intervals: CredibleIntervals | None = None) -> list[str]:
    """The output header: pass-through columns, posteriors, leading cause (then next test, intervals)."""
    cols = list(plan.passthrough) + [f"posterior.{c}" for c in model.causes] + ["leading_cause"]
    if next_test:
        cols += ["next_test", "next_test_gain_bits"]
    if intervals is not None:
        cols += interval_columns(model)
    return cols


def interval_columns(model: "Model") -> list[str]:
    """``posterior_low.<cause>`` and ``posterior_high.<cause>`` cause by cause, then
    ``leading_cause_stays``."""
    return [f"posterior_{end}.{c}" for c in model.causes for end in ("low", "high")] + ["leading_cause_stays"]


# ----------------------------------------------------------------- one row


class RowError(CaseError):
    """A batch row that cannot be read: carries the column and the cell's value."""

    def __init__(self, column: str, value: Any, reason: str):
        super().__init__(reason)
        self.column = column
        self.value = value


def _missing(value: Any) -> bool:
    if type(value) is str:  # the common case first
        return value.strip() == ""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _text(value: Any) -> str:
    """A cell as the user wrote it (numbers from typed files without a trailing .0)."""
    if type(value) is str:  # the common case first
        return value.strip()
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value).strip()


def _boolean(key: str, column: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    word = _text(value).lower()
    if word in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[word]
    raise RowError(column, value, f"{key}: {_text(value)!r} is not accepted; accepted: true, false, yes, no, 1, 0")


def _number(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return value  # the validator names it
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        return int(v) if v.is_integer() else v
    text = str(value).strip()
    try:
        v = float(text)
    except ValueError:
        return text  # the validator reports "expected a number; got 'abc'"
    if not math.isfinite(v):
        return text
    return int(v) if v.is_integer() else v


def row_to_case(cells: dict[str, Any], plan: ColumnPlan, *, default_id: str):
    """One batch row (column -> cell) as a :class:`~alpnet.evidence.Case` mapping.

    Empty cells are left out (not known). Booleans, numbers and ``<key>_unit``
    columns are read here; everything else is checked by the case validation.

    Raises
    ------
    RowError
        A boolean cell that is not one of the accepted words.
    CaseError
        From :func:`~alpnet.evidence.case_from_mapping` (a bad ``id``).
    """
    data: dict[str, Any] = {}
    for column, key in plan.key_of.items():
        value = cells.get(column)
        if _missing(value):
            continue
        unit_col = plan.unit_of.get(key)
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = _cell(key, column, value, plan,
                                                   None if unit_col is None else cells.get(unit_col))
    if plan.id_column is not None and not _missing(cells.get(plan.id_column)):
        data["id"] = _text(cells[plan.id_column])
    return case_from_mapping(data, default_id=default_id)


def _cell(key: str, column: str, value: Any, plan: ColumnPlan, unit: Any = None) -> Any:
    """A non-empty cell as the case holds it: a boolean, a number or a text.

    ``unit`` is the cell of the lab's ``<key>_unit`` column (None without one); it is
    appended to the value unless empty or the value is a verdict word.

    Raises
    ------
    RowError
        A boolean cell that is not one of the accepted words.
    """
    return _cell_reader(key, column, plan, unit is not None)(value, unit)


def _cell_reader(key: str, column: str, plan: ColumnPlan, with_unit: bool) -> Callable[[Any, Any], Any]:
    """How :func:`_cell` reads the cells of one column: ``read(value, unit)``, chosen once per column."""
    if key in plan.booleans:
        return lambda value, unit: _boolean(key, column, value)
    if key in plan.numbers or key in plan.integers:
        return lambda value, unit: _number(value)
    if with_unit and key.partition(".")[0] == "labs":
        return _text_with_unit
    return _plain_text


def _plain_text(value: Any, unit: Any = None) -> str:
    """A text cell as the case holds it (:func:`_cell`'s reader for texts without a unit column)."""
    return _text(value)


def _text_or_none(value: Any) -> str | None:
    """``_text`` of a cell, None for an empty one: ``_missing`` and ``_text`` in one step for text cells."""
    if type(value) is str:
        text = value.strip()  # _missing: text == "", _text: text
        return text or None
    return None if _missing(value) else _text(value)


def _text_with_unit(value: Any, unit: Any) -> str:
    """A lab cell and its ``<key>_unit`` cell as one text, unless the unit is empty or the value a verdict."""
    v = _text(value)
    if not _missing(unit) and v.lower() not in ("low", "normal", "high"):
        v = f"{v} {_text(unit)}"
    return v


def row_evidence(model: "Model", cells: dict[str, Any], plan: ColumnPlan, row: int
                 ) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """One row the reference way: :func:`row_to_case`, then ``model.evidence_of``.

    Returns
    -------
    case_id : str
    evidence : dict or None
        None when the row fails.
    error : dict or None
        ``row, case_id, column, value, reason`` of a failed row (the errors file's record).
    """
    cid = f"row{row}"
    if plan.id_column is not None and not _missing(cells.get(plan.id_column)):
        cid = _text(cells[plan.id_column])
    try:
        case = row_to_case(cells, plan, default_id=cid)
        cid = case.id
        ev, _ = model.evidence_of(case)
    except RowError as exc:
        return cid, None, {"row": row, "case_id": cid, "column": exc.column,
                           "value": "" if _missing(exc.value) else _text(exc.value), "reason": str(exc)}
    except AlpnetError as exc:
        col, value = _blame(str(exc), plan, cells)
        if not col and plan.id_column and str(exc).startswith("id:"):
            col, value = plan.id_column, _text(cells.get(plan.id_column))
        return cid, None, {"row": row, "case_id": cid, "column": col, "value": value, "reason": str(exc)}
    return cid, ev, None


_KEY_AT_START = re.compile(r"^([a-z_]+(?:\.[a-z0-9_]+)?):")


def _blame(message: str, plan: ColumnPlan, cells: dict[str, Any]) -> tuple[str, str]:
    """(column, value) that an error message is about, from the key it starts with."""
    m = _KEY_AT_START.match(message)
    if m:
        key = m.group(1)
        if key == "labs":  # "labs: is required": the ALP cell is empty
            key = "labs.alp"
        col = plan.column_of.get(key)
        if col is not None:
            value = cells.get(col)
            shown = "" if _missing(value) else _text(value)
            unit_col = plan.unit_of.get(key)
            if unit_col is not None and not _missing(cells.get(unit_col)):
                return f"{col},{unit_col}", f"{shown} {_text(cells[unit_col])}".strip()
            return col, shown
        return key, ""
    return "", ""


# ----------------------------------------------------------------- chunks


def _posteriors(model: "Model", evidences: list[dict[str, Any]]) -> np.ndarray:
    """(n, n_causes) posteriors in ``model.causes`` order; NaN rows for impossible evidence."""
    engine = model.engine
    causes = model.causes
    if not evidences:
        return np.zeros((0, len(causes)))
    many = getattr(engine, "posterior_many", None)
    if many is not None:
        raw = np.asarray(many(evidences), dtype=float)
        hidden = list(engine.hidden)
        out = raw[:, [hidden.index(c) for c in causes]]
        return np.where(np.isnan(out), np.nan, np.clip(out, 0.0, 1.0))
    out = np.full((len(evidences), len(causes)), np.nan)  # pragma: no cover - the pgmpy fallback engine
    for i, ev in enumerate(evidences):  # pragma: no cover
        try:
            post = engine.posterior(ev)
        except EvidenceConflictError:
            continue
        out[i] = [post[c] for c in causes]
    return out  # pragma: no cover


def _best_test(model: "Model", evidence: dict[str, Any]) -> tuple[str | None, float]:
    """The test with the highest expected information gain about all causes, and that gain.

    The same ranking as :meth:`Model.rank_tests` (``cost_weight=0``, ties to the first
    name in sorted order), computed for the tests only: the free questions, which
    ``rank_tests`` also scores, are not needed here and cost most of its time.
    """
    ranker = model.ranker
    ev = model.engine.normalise(evidence)
    tests = sorted(ranker.candidates(ev)[0])
    best = ranker.rank_normalised(ev, tests, None, 0.0, frozenset()) if tests else None
    if best is None:
        return None, float("nan")
    return str(best[0]), float(best[1])


def _distinct_cells(dtype: Any, values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """``(codes, cells)``: row ``i`` holds ``cells[codes[i]]``; -1 for an empty cell (None, NaN, NA).

    Cells are merged only where equal cells read alike: texts, booleans, or numbers of one
    column type (``True`` and ``1``, or ``1`` and ``"1"``, are never merged). Otherwise every
    row keeps its own cell.
    """
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in ("string", "empty", "boolean") or (
            inferred in ("floating", "integer", "mixed-integer-float") and dtype != object):
        codes, distinct = pd.factorize(values)
        na = values[codes < 0]
        if not len(na) or set(map(type, na)) <= _EMPTY_TYPES or all(_missing(v) for v in na):
            return codes, list(distinct)
    return np.arange(len(values)), list(values)


#: Types of cells that pandas and :func:`_missing` both read as empty (NaN, None, NA, NaT).
_EMPTY_TYPES = {float, np.float64, type(None), type(pd.NA), type(pd.NaT)}


def _read_cells(read: Callable[[Any, Any], Any], cells: list[Any], units: list[Any]) -> tuple[list[Any], np.ndarray]:
    """Each cell read (None for an empty one), and which raised a RowError (with a last entry for code -1)."""
    failed = np.zeros(len(cells) + 1, dtype=bool)
    if read is _plain_text:
        return [_text_or_none(c) for c in cells], failed
    try:  # a reader never gives None, so None marks an empty cell
        return [None if _missing(c) else read(c, u) for c, u in zip(cells, units)], failed
    except RowError:
        pass
    values: list[Any] = []
    for j, (cell, unit) in enumerate(zip(cells, units)):
        try:
            values.append(None if _missing(cell) else read(cell, unit))
        except RowError:
            failed[j] = True
            values.append(None)
    return values, failed


def chunk_evidence(model: "Model", chunk: pd.DataFrame, plan: ColumnPlan, *, first_row: int = 1,
                   arrays: dict[str, np.ndarray] | None = None
                   ) -> tuple[list[dict[str, Any] | None], list[str], list[dict[str, Any]]]:
    """The evidence of every row of a chunk, as :func:`row_evidence` gives it row by row.

    As :func:`_chunk_table`, with the evidence as a list of dicts.
    """
    table, ids, errors = _chunk_table(model, chunk, plan, first_row=first_row, arrays=arrays)
    return list(table), ids, errors


def _chunk_table(model: "Model", chunk: pd.DataFrame, plan: ColumnPlan, *, first_row: int = 1,
                 arrays: dict[str, np.ndarray] | None = None
                 ) -> tuple["EvidenceTable", list[str], list[dict[str, Any]]]:
    """The evidence of every row of a chunk, as :func:`row_evidence` gives it row by row.

    Each column's distinct cells are read once (:func:`_cell`, the reading ``row_to_case``
    uses), then :func:`alpnet.evidence_columns.columns_to_table` maps the cases column by
    column. The rows it leaves to the reference (every row that fails among them) go through
    :func:`row_evidence`, so evidence, case ids and error records are the reference's.

    Returns
    -------
    evidences : EvidenceTable
        Per row (a dict when asked for); None for a failed row.
    case_ids : list of str
    errors : list of dict
        ``row, case_id, column, value, reason`` of every failed row, in row order.
    """
    from .evidence_columns import _distinct_rows, columns_to_table

    n = len(chunk)
    columns = list(chunk.columns)
    if arrays is None:
        arrays = {c: chunk[c].to_numpy(dtype=object) for c in columns}
    refer = np.zeros(n, dtype=bool)
    dtypes = dict(zip(chunk.columns, chunk.dtypes))
    empty = np.full(n, None, dtype=object)  # a plan column the chunk does not have: empty, as cells.get reads it
    case_columns: dict[str, tuple[np.ndarray, list[Any]]] = {}
    for column, key in plan.key_of.items():
        codes, cells = _distinct_cells(dtypes.get(column, object), arrays.get(column, empty))
        unit_col = plan.unit_of.get(key)
        if unit_col is None:
            units: list[Any] = [None] * len(cells)
        else:  # one reading per distinct (value, unit)
            ucodes, ucells = _distinct_cells(dtypes.get(unit_col, object), arrays.get(unit_col, empty))
            both = np.stack([codes, np.where(codes >= 0, ucodes, -1)])
            first, codes = _distinct_rows(both)
            cells = [cells[c] if c >= 0 else None for c in both[0, first].tolist()]
            units = [ucells[u] if u >= 0 else None for u in both[1, first].tolist()]
        values, failed = _read_cells(_cell_reader(key, column, plan, unit_col is not None), cells, units)
        refer |= failed[codes]
        blank = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        case_columns[key] = (np.where(np.append(blank, True)[codes], -1, codes), values)
    evidences, left = columns_to_table(model.priors, case_columns, n)
    refer |= left
    if plan.id_column is None:
        ids = [f"row{first_row + i}" for i in range(n)]
    else:
        ids = [f"row{first_row + i}" if _missing(v) else _text(v)
               for i, v in enumerate(arrays.get(plan.id_column, empty))]
    errors: list[dict[str, Any]] = []
    for i in np.flatnonzero(refer).tolist():
        cid, ev, error = row_evidence(model, {c: arrays[c][i] for c in columns}, plan, first_row + i)
        evidences[i], ids[i] = ev, cid
        if error is not None:
            errors.append(error)
    return evidences, ids, errors


#: The garbage collector's first threshold while a chunk is scored (:func:`_fewer_collections`).
CHUNK_GC_THRESHOLD = 100_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often for a while.

    Reading a chunk makes hundreds of thousands of small objects (cells, readings, evidence
    dicts) that reference counting frees; the collector, run every 700 allocations by
    default, would walk every live object each time (the model, the caches), a fifth of
    the time a chunk takes. The first threshold is raised to :data:`CHUNK_GC_THRESHOLD`
    and set back after; garbage is still collected.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], CHUNK_GC_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def score_chunk(model: "Model", chunk: pd.DataFrame, plan: ColumnPlan, *, next_test: bool = False,
                intervals: CredibleIntervals | None = None, first_row: int = 1,
                progress: Callable[[float], None] | None = None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Score the rows of one chunk.

    Parameters
    ----------
    model : Model
    chunk : DataFrame
        Rows in the batch layout (columns as classified by ``plan``).
    plan : ColumnPlan
    next_test : bool
        Also the best next test (by expected information gain) and its gain in bits.
    intervals : CredibleIntervals, optional
        Also the credible interval of every posterior and the share of draws in which
        the leading cause stays the leading cause.
    first_row : int
        Row number of the chunk's first row (1 = the first row under the header).
    progress : callable, optional
        With ``intervals``: called after every parameter draw with the rows it stands
        for (the rows scored divided by the number of draws).

    Returns
    -------
    out : DataFrame
        :func:`output_columns`, one row per input row, in order.
    errors : list of dict
        One record per failed row: ``row, case_id, column, value, reason``.
    """
    with _fewer_collections():
        return _score_chunk(model, chunk, plan, next_test=next_test, intervals=intervals, first_row=first_row,
                            progress=progress)


def _score_chunk(model: "Model", chunk: pd.DataFrame, plan: ColumnPlan, *, next_test: bool,
                 intervals: CredibleIntervals | None, first_row: int,
                 progress: Callable[[float], None] | None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    n = len(chunk)
    columns = list(chunk.columns)
    arrays = {c: chunk[c].to_numpy(dtype=object) for c in columns}
    all_evidence, all_ids, errors = _chunk_table(model, chunk, plan, first_row=first_row, arrays=arrays)
    unread = {int(place) - int(chunk.index[0]): reason for place, reason in chunk.attrs.get("bad_rows", {}).items()}
    if unread:  # lines the CSV reader could not split into the header's columns (tableio)
        errors = [e for e in errors if e["row"] - first_row not in unread]
        for i, reason in unread.items():
            all_evidence[i] = None
            errors.append({"row": first_row + i, "case_id": all_ids[i], "column": "", "value": "", "reason": reason})
    good = np.flatnonzero(all_evidence.present()).tolist()
    evidences = all_evidence.take(good)  # each row's dict is made only if asked for
    ids = [all_ids[i] for i in good]
    post = _posteriors(model, evidences)
    causes = model.causes
    full = np.full((n, len(causes)), np.nan)
    ok_rows: list[int] = []
    for j, i in enumerate(good):
        if np.isnan(post[j]).any():
            try:  # the same message as diagnose gives
                model.engine.posterior(evidences[j])
                reason = "the evidence is impossible under the model"
                names: list[str] = []
            except EvidenceConflictError as exc:
                reason, names = str(exc), exc.findings
            cells = {c: arrays[c][i] for c in columns}
            keys = [model.priors.variables[v].case_key for v in names if v in model.priors.variables]
            cols = [plan.column_of.get(str(k), str(k)) for k in keys if k]
            vals = ["" if _missing(cells.get(c)) else _text(cells.get(c)) for c in cols]
            errors.append({"row": first_row + i, "case_id": ids[j], "column": ",".join(cols),
                           "value": ",".join(vals), "reason": reason})
            continue
        full[i] = post[j]
        ok_rows.append(j)
    out = chunk[plan.passthrough].copy() if plan.passthrough else pd.DataFrame(index=chunk.index)
    out = out.reset_index(drop=True)
    post_df = pd.DataFrame(full, columns=[f"posterior.{c}" for c in causes])
    # leading cause as diagnose gives it: highest posterior, ties to the first name in sorted order
    order = sorted(range(len(causes)), key=lambda k: causes[k])
    lead = np.full(n, None, dtype=object)
    if len(causes):
        valid = ~np.isnan(full).any(axis=1)
        idx = np.argmax(full[:, order], axis=1)
        lead[valid] = np.array([causes[order[k]] for k in idx], dtype=object)[valid]
    post_df["leading_cause"] = lead
    if next_test:
        tests = np.full(n, None, dtype=object)
        gains = np.full(n, np.nan)
        for j in ok_rows:
            i = good[j]
            tests[i], gains[i] = _best_test(model, evidences[j])
        post_df["next_test"] = tests
        post_df["next_test_gain_bits"] = gains
    if intervals is not None:
        post_df = pd.concat([post_df, _interval_frame(model, intervals, [evidences[j] for j in ok_rows],
                                                      [good[j] for j in ok_rows], n, progress)], axis=1)
    out = pd.concat([out, post_df], axis=1)
    errors.sort(key=lambda e: e["row"])
    return out, errors


def _interval_frame(model: "Model", intervals: CredibleIntervals, evidences: list[dict[str, Any]],
                    rows: list[int], n: int, progress: Callable[[float], None] | None = None) -> pd.DataFrame:
    """The interval columns of a chunk of ``n`` rows; ``rows`` are the scored rows' places."""
    from .uncertainty import posterior_intervals

    low, high, stays = posterior_intervals(model, evidences, draws=intervals.draws, seed=intervals.seed,
                                           level=intervals.level, progress=progress)
    k = len(model.causes)
    both = np.full((n, 2 * k), np.nan)
    both[rows, 0::2] = low
    both[rows, 1::2] = high
    frame = pd.DataFrame(both, columns=interval_columns(model)[:-1])
    share = np.full(n, np.nan)
    share[rows] = stays
    frame["leading_cause_stays"] = share
    return frame


def score_frame(model: "Model", df: pd.DataFrame, *, next_test: bool = False,
                intervals: CredibleIntervals | bool | None = None,
                errors: Literal["raise", "keep"] = "raise") -> pd.DataFrame:
    """Score a DataFrame in the batch layout (case-format.md §5).

    Parameters
    ----------
    model : Model
    df : DataFrame
        One row per case; columns are case keys (dotted or bare), ``<key>_unit``
        columns and pass-through columns.
    next_test : bool, default False
        Add ``next_test`` and ``next_test_gain_bits``.
    intervals : CredibleIntervals or bool, optional
        ``True`` for the defaults (200 draws, seed 0, 95%). Add ``posterior_low.<cause>``,
        ``posterior_high.<cause>`` and
        ``leading_cause_stays`` (the share of parameter draws in which the leading cause
        stays first). Costs about ``intervals.draws`` posteriors a row.
    errors : {"raise", "keep"}
        ``"raise"``: the first bad row raises :class:`~alpnet.CaseError` naming its row,
        column and value. ``"keep"``: bad rows keep their place with empty results and
        are listed in ``result.attrs["errors"]``.

    Returns
    -------
    DataFrame
        Pass-through columns, ``posterior.<cause>`` for every cause, ``leading_cause``
        (then the next-test and interval columns). ``attrs`` holds ``errors`` (a DataFrame with
        columns ``row, case_id, column, value, reason``; row 1 is the first row) and
        ``model`` (version, prior-set hash, overrides).

    Raises
    ------
    CaseError
        For columns that cannot be read (no ALP column, a key given twice), and with
        ``errors="raise"`` for the first bad row.
    """
    if errors not in ("raise", "keep"):
        raise CaseError(f"errors must be 'raise' or 'keep'; got {errors!r} instead")
    if not isinstance(df, pd.DataFrame):
        raise CaseError(f"df must be a pandas DataFrame; got {type(df).__name__} instead")
    if intervals is True:
        intervals = CredibleIntervals()
    elif intervals is False:
        intervals = None
    if intervals is not None and not isinstance(intervals, CredibleIntervals):
        raise CaseError(f"intervals must be True, False, None or a CredibleIntervals; got "
                        f"{type(intervals).__name__} instead")
    plan = plan_columns(df.columns, model.priors)
    out, errs = score_chunk(model, df, plan, next_test=next_test, intervals=intervals)
    if errs and errors == "raise":
        e = errs[0]
        where = f", column {e['column']!r}" if e["column"] else ""
        raise CaseError(f"row {e['row']}{where}: {e['reason']} ({len(errs)} bad row(s) in all; "
                        "errors='keep' scores the rest and lists them)")
    out.index = df.index
    out.attrs["errors"] = pd.DataFrame(errs, columns=ERROR_COLUMNS)
    out.attrs["model"] = model.version_info
    if intervals is not None:
        out.attrs["intervals"] = {"draws": intervals.draws, "seed": intervals.seed, "level": intervals.level}
    return out

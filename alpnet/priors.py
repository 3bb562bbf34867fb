"""Load and validate a prior set (a folder laid out like ``priors/``).

A prior set is data: variables, states, edges and numbers, each number with its
source, plausible range and a note. This module reads the YAML files, checks
every rule of ``priors/README.md`` and returns a :class:`PriorSet`. It knows
nothing about pgmpy or inference; :mod:`alpnet.cpt` turns the canonical models
into tables.

Every validation error names the file, the key and the problem; all errors of
a set are reported together.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import numbers
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import PriorsError

__all__ = [
    "Parameter",
    "Row",
    "Variable",
    "PriorSet",
    "load_priors",
    "bundled_priors_path",
    "SPECIAL_SOURCES",
    "is_test",
    "is_question",
    "checked_overrides",
]

#: Source ids that are not bibliography entries.
SPECIAL_SOURCES = ("expert-judgment", "by-definition")

BINARY_STATES = ["false", "true"]
CAUSE_STATES = ["absent", "present"]
DIST_TOLERANCE = 1e-6
#: Keys ``model.yaml`` must give (each a non-empty text).
MODEL_KEYS = ("name", "version", "description")


# --------------------------------------------------------------------------- data


@dataclass
class Parameter:
    """One number of the prior set with its provenance.

    Attributes
    ----------
    id : str
        Stable readable id, e.g. ``paget.baseline[age=70_plus,sex=male]``.
    value : float
        The number.
    low, high : float
        Plausible range.
    source : str
        Bibliography id, ``expert-judgment`` or ``by-definition``.
    note : str
        How the number was derived.
    where : str or None
        Where in the source the figure stands.
    file : str
        Prior file (relative to the set) the number comes from.
    kind : str
        ``probability`` or ``ratio``.
    """

    id: str
    value: float
    low: float
    high: float
    source: str
    note: str
    where: str | None
    file: str
    kind: str = "probability"

    @property
    def literature(self) -> bool:
        """True when the number comes from a bibliography entry."""
        return self.source not in SPECIAL_SOURCES


@dataclass
class Row:
    """A ``when:`` clause with its parameter(s).

    ``value`` is a :class:`Parameter` (scalar rows) or a mapping state ->
    Parameter (distribution rows; states not listed have probability 0).
    """

    when: dict[str, frozenset[str]]
    value: Any

    def matches(self, config: Mapping[str, str]) -> bool:
        return all(config[v] in states for v, states in self.when.items())


@dataclass
class Variable:
    """A variable of the network with its canonical model specification."""

    name: str
    kind: str  # context | cause | leak | finding
    states: list[str]
    label: str
    file: str
    parents: list[str] = field(default_factory=list)
    case_key: str | None = None
    group: str | None = None
    description: str | None = None
    note: str | None = None
    model: str | None = None  # findings: noisy_max | set_union | table
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def is_hidden(self) -> bool:
        """Causes and the leak are never observed directly."""
        return self.kind in ("cause", "leak")


@dataclass
class PriorSet:
    """A validated prior set.

    Attributes
    ----------
    path : Path
        The folder it was read from.
    meta : dict
        ``model.yaml``.
    variables : dict
        Name -> :class:`Variable`, in topological order (parents first).
    parameters : dict
        Parameter id -> :class:`Parameter`.
    sources : dict
        Bibliography id -> entry.
    reference : dict
        The raw ``reference.yaml`` (units, reference intervals, bands), validated.
    sha256 : str
        Hash of every file of the set (stable across machines).
    overrides : dict
        Parameter id -> value applied on top of the files (empty for a plain load).
    """

    path: Path
    meta: dict[str, Any]
    variables: dict[str, Variable]
    parameters: dict[str, Parameter]
    sources: dict[str, dict[str, Any]]
    reference: dict[str, Any]
    sha256: str
    columns: dict[str, list[str]] = field(default_factory=dict)
    overrides: dict[str, float] = field(default_factory=dict)
    costs: dict[str, Any] = field(default_factory=dict)

    @property
    def causes(self) -> list[str]:
        return [v.name for v in self.variables.values() if v.kind == "cause"]

    @property
    def hidden(self) -> list[str]:
        """Causes followed by the leak(s): the enumerated space."""
        return [v.name for v in self.variables.values() if v.kind == "cause"] + [
            v.name for v in self.variables.values() if v.kind == "leak"
        ]

    @property
    def context(self) -> list[str]:
        return [v.name for v in self.variables.values() if v.kind == "context"]

    @property
    def findings(self) -> list[str]:
        return [v.name for v in self.variables.values() if v.kind == "finding"]

    def with_overrides(self, overrides: Mapping[str, float]) -> "PriorSet":
        """Return a copy with some parameter values replaced.

        Distribution columns are re-normalised by scaling the other entries of
        the column proportionally, so that each column still sums to 1.

        Parameters
        ----------
        overrides : mapping
            Parameter id -> new value.

        Raises
        ------
        PriorsError
            For overrides that are not a mapping, a value that is not a finite number,
            an unknown id or a value outside [0, 1] for a probability.
        """
        values = checked_overrides(overrides)
        new = copy.deepcopy(self)
        for pid, value in values.items():
            if pid not in new.parameters:
                close = _close_matches(pid, new.parameters)
                raise PriorsError(
                    f"--param {pid}: unknown parameter id" + (f"; did you mean {close}?" if close else "")
                    + "; `alpnet priors report` lists every id"
                )
            p = new.parameters[pid]
            if p.kind == "probability" and not 0.0 <= value <= 1.0:
                raise PriorsError(f"--param {pid}={value}: a probability must lie in [0, 1]")
            if p.kind == "ratio" and value <= 0:
                raise PriorsError(f"--param {pid}={value}: a ratio must be > 0")
            siblings = _column_of(new, pid)
            p.value = value
            if siblings:
                rest = sum(s.value for s in siblings)
                for s in siblings:
                    s.value = s.value * (1.0 - value) / rest if rest > 0 else (1.0 - value) / len(siblings)
            new.overrides[pid] = value
        new.sha256 = self.sha256
        return new


def checked_overrides(overrides: Any) -> dict[str, float]:
    """Check that ``overrides`` maps parameter ids to finite numbers.

    Parameters
    ----------
    overrides : mapping
        Parameter id (str) -> value (a real number, not a bool or a string).

    Returns
    -------
    dict
        Parameter id -> value as a float.

    Raises
    ------
    PriorsError
        Naming the argument, the offending id or value, and what is accepted.
    """
    if not isinstance(overrides, Mapping):
        raise PriorsError(f"overrides: got {type(overrides).__name__} {overrides!r:.80}; accepted: a mapping "
                          "{parameter id: number}, e.g. {'paget.link[...]': 0.2}")
    out: dict[str, float] = {}
    for pid, value in overrides.items():
        if not isinstance(pid, str):
            raise PriorsError(f"overrides: key {pid!r} is not a parameter id; accepted: parameter ids as text "
                              "(see `alpnet priors report`)")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise PriorsError(f"overrides[{pid!r}]: {value!r:.60} is not a number; accepted: a finite number "
                              "(a probability in [0, 1], a ratio > 0)")
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
        if not math.isfinite(number):
            raise PriorsError(f"--param {pid}={number}: must be a finite number")
        out[pid] = number
    return out


def _column_of(pset: PriorSet, pid: str) -> list[Parameter]:
    """The other parameters of the distribution column ``pid`` belongs to."""
    column = pset.columns.get(pid)
    if not column:
        return []
    return [pset.parameters[q] for q in column if q != pid]


def _close_matches(word: str, options: Iterable[str]) -> str:
    import difflib

    found = difflib.get_close_matches(word, list(options), n=3)
    return ", ".join(found)


# --------------------------------------------------------------------------- loading


def bundled_priors_path() -> Path:
    """Path of the prior set shipped with the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_priors", here.parent / "priors"):
        if (candidate / "model.yaml").is_file():
            return candidate
    try:  # pragma: no cover - importlib fallback for zipped installs
        ref = resources.files("alpnet") / "_priors"
        return Path(str(ref))
    except Exception as exc:  # pragma: no cover
        raise PriorsError("the bundled prior set is missing from the installation") from exc


class _Collector:
    """Collects validation errors so that all are reported at once."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, file: str, key: str, problem: str) -> None:
        self.errors.append(f"{file}: {key}: {problem}")

    def raise_if_any(self) -> None:
        if self.errors:
            head = f"the prior set has {len(self.errors)} problem(s):\n  - "
            raise PriorsError(head + "\n  - ".join(self.errors))


#: libyaml's safe loader when PyYAML was built with it (about ten times faster on the
#: prior files, the same documents); the pure-Python one otherwise.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path, rel: str, errors: _Collector) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        errors.add(rel, "(file)", f"is not valid YAML: {exc}".replace("\n", " "))
    except UnicodeDecodeError as exc:
        errors.add(rel, "(file)", f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at byte offset "
                   f"{exc.start}); prior files must be saved as UTF-8")
    except OSError as exc:
        errors.add(rel, "(file)", f"cannot be read: {exc.strerror}")
    return None


def _state_str(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    return str(x)


def _hash_folder(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.yaml")):
        rel = p.relative_to(folder).as_posix()
        h.update(rel.encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def load_priors(path: str | Path | None = None) -> PriorSet:
    """Load and validate a prior set.

    Parameters
    ----------
    path : str or Path, optional
        Folder of the prior set; the bundled set when omitted.

    Returns
    -------
    PriorSet

    Raises
    ------
    PriorsError
        Listing every problem, each naming the file, the key and what is wrong.
    """
    if not (path is None or isinstance(path, (str, os.PathLike))):
        raise PriorsError(f"priors: got {type(path).__name__} {path!r:.60}; accepted: the path of a prior-set "
                          "folder (str or pathlib.Path), or None for the bundled set")
    folder = Path(path) if path is not None else bundled_priors_path()
    if not folder.is_dir():
        raise PriorsError(f"--priors {folder}: not a folder")
    if not (folder / "model.yaml").is_file():
        raise PriorsError(f"--priors {folder}: no model.yaml; a prior set needs model.yaml, "
                          "context.yaml, causes.yaml, findings/, reference.yaml and sources/")
    errors = _Collector()
    loader = _Loader(folder, errors)
    pset = loader.load()
    errors.raise_if_any()
    assert pset is not None
    return pset


class _Loader:
    def __init__(self, folder: Path, errors: _Collector):
        self.folder = folder
        self.errors = errors
        self.parameters: dict[str, Parameter] = {}
        self.columns: dict[str, list[str]] = {}
        self.used_sources: set[str] = set()
        self.source_refs: list[tuple[str, str, str]] = []  # (file, key, source)

    # -- helpers ----------------------------------------------------------
    def rel(self, p: Path) -> str:
        return "priors/" + p.relative_to(self.folder).as_posix() if p.is_relative_to(self.folder) else str(p)

    def _register(self, param: Parameter, file: str, key: str) -> None:
        if param.id in self.parameters:
            self.errors.add(file, key, f"parameter id {param.id!r} is defined twice")
            return
        self.parameters[param.id] = param
        self.source_refs.append((file, key, param.source))

    def _number(self, x: Any, file: str, key: str) -> float | None:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            self.errors.add(file, key, f"must be a number; got {x!r}")
            return None
        if not math.isfinite(float(x)):
            self.errors.add(file, key, f"must be finite; got {x!r}")
            return None
        return float(x)

    def _range(self, r: Any, value: float, file: str, key: str, kind: str) -> tuple[float, float] | None:
        if not (isinstance(r, (list, tuple)) and len(r) == 2):
            self.errors.add(file, key, f"range must be [low, high]; got {r!r}")
            return None
        lo = self._number(r[0], file, key)
        hi = self._number(r[1], file, key)
        if lo is None or hi is None:
            return None
        if lo > hi:
            self.errors.add(file, key, f"range [{lo}, {hi}] has low > high")
        elif not (lo - 1e-12 <= value <= hi + 1e-12):
            self.errors.add(file, key, f"range [{lo}, {hi}] does not contain the value {value}")
        if kind == "probability" and (lo < 0 or hi > 1):
            self.errors.add(file, key, f"range [{lo}, {hi}] of a probability must lie in [0, 1]")
        return lo, hi

    def _meta(self, spec: Mapping[str, Any], file: str, key: str) -> tuple[str, str, str | None] | None:
        src = spec.get("source")
        note = spec.get("note")
        ok = True
        if not isinstance(src, str) or not src:
            self.errors.add(file, key, "needs a `source` (a bibliography id, expert-judgment or by-definition)")
            ok = False
        if not isinstance(note, str) or not note.strip():
            self.errors.add(file, key, "needs a `note` saying how the number was derived")
            ok = False
        where = spec.get("where")
        return (src, note, None if where is None else str(where)) if ok else None

    def scalar(self, spec: Any, pid: str, file: str, key: str, kind: str = "probability") -> Parameter | None:
        """Parse ``{value, range, source, note, where}``."""
        if not isinstance(spec, Mapping):
            self.errors.add(file, key, f"must be a mapping with value, range, source, note; got {spec!r}")
            return None
        value = self._number(spec.get("value"), file, key + ".value")
        meta = self._meta(spec, file, key)
        if value is None or meta is None:
            return None
        if kind == "probability" and not 0.0 <= value <= 1.0:
            self.errors.add(file, key, f"probability {value} is outside [0, 1]")
        if kind == "ratio" and value <= 0:
            self.errors.add(file, key, f"ratio {value} must be > 0")
        if kind == "quantity" and value < 0:
            self.errors.add(file, key, f"{value} must not be negative")
        rng = self._range(spec.get("range"), value, file, key + ".range", kind)
        if rng is None:
            return None
        param = Parameter(pid, value, rng[0], rng[1], meta[0], meta[1], meta[2], file, kind)
        self._register(param, file, key)
        return param

    def distribution(self, spec: Any, pid: str, states: list[str], file: str, key: str) -> dict[str, Parameter] | None:
        """Parse ``{p: {state: v}, range: {state: [lo, hi]}, source, note}``."""
        if not isinstance(spec, Mapping) or not isinstance(spec.get("p"), Mapping):
            self.errors.add(file, key, "must be a distribution {p: {state: value}, range: {...}, source, note}")
            return None
        meta = self._meta(spec, file, key)
        p = {_state_str(k): v for k, v in spec["p"].items()}
        ranges = spec.get("range")
        ranges = {_state_str(k): v for k, v in ranges.items()} if isinstance(ranges, Mapping) else {}
        out: dict[str, Parameter] = {}
        total = 0.0
        bad = False
        for state, v in p.items():
            if state not in states:
                self.errors.add(file, f"{key}.p.{state}", f"unknown state; accepted: {', '.join(states)}")
                bad = True
                continue
            val = self._number(v, file, f"{key}.p.{state}")
            if val is None:
                bad = True
                continue
            if not 0.0 <= val <= 1.0:
                self.errors.add(file, f"{key}.p.{state}", f"probability {val} is outside [0, 1]")
                bad = True
            total += val
            if state not in ranges:
                self.errors.add(file, f"{key}.range.{state}", "missing range for this state")
                bad = True
                continue
            rng = self._range(ranges[state], val, file, f"{key}.range.{state}", "probability")
            if rng is None or meta is None:
                bad = True
                continue
            out[state] = Parameter(f"{pid}.{state}", val, rng[0], rng[1], meta[0], meta[1], meta[2], file)
        for state in ranges:
            if state not in p and state in states:
                self.errors.add(file, f"{key}.range.{state}", "range given for a state with no value in p")
        if abs(total - 1.0) > DIST_TOLERANCE:
            self.errors.add(file, f"{key}.p", f"values sum to {total:.6g}, not 1")
            bad = True
        if bad or meta is None:
            return None
        for param in out.values():
            self._register(param, file, key)
        self.columns.update({q.id: [r.id for r in out.values()] for q in out.values()})
        return out

    def when(self, spec: Any, allowed: Mapping[str, list[str]], file: str, key: str) -> dict[str, frozenset[str]] | None:
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            self.errors.add(file, key, f"`when` must be a mapping; got {spec!r}")
            return None
        out: dict[str, frozenset[str]] = {}
        for var, states in spec.items():
            var = str(var)
            if var not in allowed:
                self.errors.add(file, f"{key}.{var}", "unknown parent variable (or not allowed here); "
                                f"accepted: {', '.join(sorted(allowed))}")
                return None
            values = states if isinstance(states, list) else [states]
            values = [_state_str(s) for s in values]
            for s in values:
                if s not in allowed[var]:
                    self.errors.add(file, f"{key}.{var}", f"unknown state {s!r}; accepted: {', '.join(allowed[var])}")
                    return None
            out[var] = frozenset(values)
        return out

    @staticmethod
    def when_label(when: Mapping[str, frozenset[str]], order: list[str] | None = None) -> str:
        parts = []
        keys = list(when)
        for var in keys:
            states = sorted(when[var])
            parts.append(f"{var}={'|'.join(states)}")
        return ",".join(parts)

    def coverage(self, rows: list[Row], parents: list[str], states: Mapping[str, list[str]], file: str, key: str) -> None:
        if not rows:
            self.errors.add(file, key, "has no rows")
            return
        for combo in itertools.product(*[states[p] for p in parents]):
            config = dict(zip(parents, combo))
            if not any(r.matches(config) for r in rows):
                desc = ", ".join(f"{k}={v}" for k, v in config.items())
                self.errors.add(file, key, f"no row matches {desc}; end the rows with `when: {{}}`")
                return

    # -- files ------------------------------------------------------------
    def load(self) -> PriorSet | None:
        f = self.folder
        reported = len(self.errors.errors)
        meta_doc = _read_yaml(f / "model.yaml", "priors/model.yaml", self.errors)
        meta = self._model(meta_doc) if len(self.errors.errors) == reported else {}
        context_doc = _read_yaml(f / "context.yaml", "priors/context.yaml", self.errors) or {}
        causes_doc = _read_yaml(f / "causes.yaml", "priors/causes.yaml", self.errors) or {}
        reference = _read_yaml(f / "reference.yaml", "priors/reference.yaml", self.errors) or {}
        costs_doc = _read_yaml(f / "costs.yaml", "priors/costs.yaml", self.errors) if (f / "costs.yaml").is_file() else None
        finding_docs = []
        fdir = f / "findings"
        if not fdir.is_dir():
            self.errors.add("priors/findings", "(folder)", "is missing")
        else:
            for p in sorted(fdir.glob("*.yaml")):
                finding_docs.append((self.rel(p), _read_yaml(p, self.rel(p), self.errors) or {}))
        sources: dict[str, dict[str, Any]] = {}
        sdir = f / "sources"
        source_files: dict[str, str] = {}
        if not sdir.is_dir():
            self.errors.add("priors/sources", "(folder)", "is missing")
        else:
            for p in sorted(sdir.glob("*.yaml")):
                doc = _read_yaml(p, self.rel(p), self.errors) or {}
                entries = doc.get("sources") if isinstance(doc, Mapping) else None
                if not isinstance(entries, Mapping):
                    self.errors.add(self.rel(p), "sources", "must be a mapping id -> entry")
                    continue
                for sid, entry in entries.items():
                    sid = str(sid)
                    if sid in sources:
                        self.errors.add(self.rel(p), f"sources.{sid}", f"id already defined in {source_files[sid]}")
                        continue
                    if sid in SPECIAL_SOURCES:
                        self.errors.add(self.rel(p), f"sources.{sid}", "is reserved; do not define it")
                        continue
                    if not isinstance(entry, Mapping) or not entry.get("citation"):
                        self.errors.add(self.rel(p), f"sources.{sid}", "needs a `citation`")
                        continue
                    if not any(entry.get(k) for k in ("url", "pmid", "doi")):
                        self.errors.add(self.rel(p), f"sources.{sid}", "needs a `url`, `pmid` or `doi`")
                    sources[sid] = dict(entry)
                    source_files[sid] = self.rel(p)
        if self.errors.errors:
            return None

        variables: dict[str, Variable] = {}
        self._context(context_doc, variables)
        self._causes(causes_doc, variables)
        for rel, doc in finding_docs:
            self._findings(doc, rel, variables)
        if self.errors.errors:
            return None
        order = self._topological(variables)
        if order is None:
            return None
        variables = {n: variables[n] for n in order}

        _validate_reference(reference, variables, self)
        costs = self._costs(costs_doc, variables) if costs_doc is not None else {}

        for file, key, src in self.source_refs:
            if src in SPECIAL_SOURCES:
                continue
            if src not in sources:
                self.errors.add(file, key, f"source {src!r} is not in priors/sources/*.yaml")
            else:
                self.used_sources.add(src)
        for sid in sources:
            if sid not in self.used_sources:
                self.errors.add(source_files[sid], f"sources.{sid}", "is not used by any parameter; remove it")
        if self.errors.errors:
            return None
        return PriorSet(
            path=f,
            meta=meta,
            variables=variables,
            parameters=self.parameters,
            sources=sources,
            reference=reference,
            sha256=_hash_folder(f),
            columns=self.columns,
            costs=costs,
        )

    def _model(self, doc: Any) -> dict[str, Any]:
        """Check ``model.yaml``: a mapping with the set's ``name``, ``version`` and ``description``."""
        file = "priors/model.yaml"
        if not isinstance(doc, Mapping):
            what = "is empty" if doc is None else f"must be a mapping; got {type(doc).__name__} {doc!r:.60}"
            self.errors.add(file, "(file)", f"{what}; it needs name, version and description of the prior set")
            return {}
        for key in MODEL_KEYS:
            value = doc.get(key)
            if value is None:
                self.errors.add(file, key, "is missing; model.yaml needs name, version and description "
                                "of the prior set")
            elif isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
                self.errors.add(file, key, f"must be a non-empty text; got {value!r:.60}")
        return dict(doc)

    def _costs(self, doc: Any, variables: dict[str, Variable]) -> dict[str, Any]:
        file = "priors/costs.yaml"
        if not isinstance(doc, Mapping):
            self.errors.add(file, "(file)", "must be a mapping with currency, draw and tests")
            return {}
        currency = doc.get("currency")
        if not isinstance(currency, str) or not currency:
            self.errors.add(file, "currency", "is missing (one currency for every cost)")
        draws: dict[str, dict[str, Any]] = {}
        for name, spec in (doc.get("draw") or {}).items():
            if not isinstance(spec, Mapping):
                self.errors.add(file, f"draw.{name}", "must be a mapping with cost and burden")
                continue
            draws[str(name)] = {
                "cost": self.scalar(spec.get("cost"), f"cost.draw.{name}", file, f"draw.{name}.cost", "quantity"),
                "burden": self.scalar(spec.get("burden"), f"burden.draw.{name}", file, f"draw.{name}.burden", "quantity"),
            }
        tests: dict[str, dict[str, Any]] = {}
        entries = doc.get("tests") or {}
        for name, spec in entries.items():
            name = str(name)
            key = f"tests.{name}"
            var = variables.get(name)
            if var is None or var.kind != "finding":
                self.errors.add(file, key, "is not a finding of this prior set")
                continue
            if not isinstance(spec, Mapping):
                self.errors.add(file, key, "must be a mapping with cost (and draw or burden)")
                continue
            draw = spec.get("draw")
            if draw is not None and draw not in draws:
                self.errors.add(file, f"{key}.draw", f"unknown draw {draw!r}; accepted: {', '.join(draws)}")
                continue
            burden = spec.get("burden")
            tests[name] = {
                "cost": self.scalar(spec.get("cost"), f"cost.{name}", file, f"{key}.cost", "quantity"),
                "burden": None if burden is None else self.scalar(burden, f"burden.{name}", file, f"{key}.burden", "quantity"),
                "draw": draw,
            }
            if burden is None and draw is None:
                self.errors.add(file, f"{key}.burden", "is missing (or give a draw whose burden applies)")
        for name, var in variables.items():
            if var.kind == "finding" and is_test(var) and name not in tests:
                self.errors.add(file, f"tests.{name}", "is missing: every test needs a cost")
        return {"currency": currency, "draws": draws, "tests": tests}

    def _context(self, doc: Any, variables: dict[str, Variable]) -> None:
        file = "priors/context.yaml"
        entries = doc.get("variables") if isinstance(doc, Mapping) else None
        if not isinstance(entries, Mapping):
            self.errors.add(file, "variables", "must be a mapping name -> variable")
            return
        for name, spec in entries.items():
            name = str(name)
            key = f"variables.{name}"
            if not isinstance(spec, Mapping):
                self.errors.add(file, key, "must be a mapping")
                continue
            states = [_state_str(s) for s in spec.get("states") or []]
            if len(states) < 2 or len(set(states)) != len(states):
                self.errors.add(file, f"{key}.states", f"needs two or more distinct states; got {states}")
                continue
            variables[name] = Variable(
                name=name, kind="context", states=states, label=str(spec.get("label") or name),
                file=file, parents=[str(p) for p in spec.get("parents") or []],
                case_key=spec.get("case_key"), description=spec.get("description"),
                spec={"raw": spec},
            )
        for name, var in variables.items():
            spec = var.spec["raw"]
            key = f"variables.{name}"
            allowed = {}
            for p in var.parents:
                if p not in variables:
                    self.errors.add(file, f"{key}.parents", f"unknown parent {p!r}; context parents only")
                else:
                    allowed[p] = variables[p].states
            if name == "age":
                bands = spec.get("bands")
                if not (isinstance(bands, list) and len(bands) == len(var.states) - 1
                        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bands)
                        and bands == sorted(bands)):
                    self.errors.add(file, f"{key}.bands", "needs one ascending lower bound (years) per state after the first")
                else:
                    var.spec["bands"] = [float(b) for b in bands]
            rows = []
            for i, row in enumerate(spec.get("cpt") or []):
                rk = f"{key}.cpt[{i}]"
                if not isinstance(row, Mapping):
                    self.errors.add(file, rk, "must be a mapping")
                    continue
                when = self.when(row.get("when"), allowed, file, rk + ".when")
                if when is None:
                    continue
                label = self.when_label(when)
                pid = f"{name}.prior" + (f"[{label}]" if label else "")
                dist = self.distribution(row, pid, var.states, file, rk)
                if dist is not None:
                    rows.append(Row(when, dist))
            if not spec.get("cpt"):
                self.errors.add(file, f"{key}.cpt", "is missing: a context variable needs a prior for when it is unknown")
            self.coverage(rows, var.parents, allowed, file, f"{key}.cpt")
            var.spec["rows"] = rows

    def _causes(self, doc: Any, variables: dict[str, Variable]) -> None:
        file = "priors/causes.yaml"
        entries = doc.get("causes") if isinstance(doc, Mapping) else None
        if not isinstance(entries, Mapping):
            self.errors.add(file, "causes", "must be a mapping name -> cause")
            return
        for name, spec in entries.items():
            name = str(name)
            if name in variables:
                self.errors.add(file, f"causes.{name}", "name already used by a context variable")
                continue
            if not isinstance(spec, Mapping):
                self.errors.add(file, f"causes.{name}", "must be a mapping")
                continue
            kind = spec.get("kind", "cause")
            if kind not in ("cause", "leak"):
                self.errors.add(file, f"causes.{name}.kind", f"must be cause or leak; got {kind!r}")
                continue
            variables[name] = Variable(
                name=name, kind=kind, states=list(CAUSE_STATES), label=str(spec.get("label") or name),
                file=file, group=spec.get("group"), description=spec.get("description"), spec={"raw": spec},
            )
        cause_names = [n for n, v in variables.items() if v.is_hidden]
        allowed_all = {n: v.states for n, v in variables.items()}
        for name in cause_names:
            var = variables[name]
            spec = var.spec["raw"]
            key = f"causes.{name}"
            allowed = {n: s for n, s in allowed_all.items() if n != name}
            base_rows, rr_rows, link_rows = [], [], []
            parents: list[str] = []
            for section, kind, store in (("baseline", "probability", base_rows),
                                         ("relative_risks", "ratio", rr_rows),
                                         ("links", "probability", link_rows)):
                rows = spec.get(section) or []
                if not isinstance(rows, list):
                    self.errors.add(file, f"{key}.{section}", "must be a list of rows")
                    continue
                for i, row in enumerate(rows):
                    rk = f"{key}.{section}[{i}]"
                    if not isinstance(row, Mapping):
                        self.errors.add(file, rk, "must be a mapping")
                        continue
                    when = self.when(row.get("when"), allowed, file, rk + ".when")
                    if when is None:
                        continue
                    for p in when:
                        if p not in parents:
                            parents.append(p)
                    label = self.when_label(when)
                    tag = {"baseline": "baseline", "relative_risks": "rr", "links": "link"}[section]
                    pid = f"{name}.{tag}" + (f"[{label}]" if label else "")
                    param = self.scalar(row, pid, file, rk, kind)
                    if param is not None:
                        store.append(Row(when, param))
            if not spec.get("baseline"):
                self.errors.add(file, f"{key}.baseline", "is missing")
            for p in parents:
                if variables[p].kind == "finding":
                    self.errors.add(file, key, f"parent {p!r} is a finding; causes depend on context and causes only")
            cap = spec.get("cap", 0.99)
            if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0 < cap <= 1:
                self.errors.add(file, f"{key}.cap", f"must be a number in (0, 1]; got {cap!r}")
                cap = 0.99
            var.parents = parents
            self.coverage(base_rows, [p for p in parents if any(p in r.when for r in base_rows)],
                          allowed, file, f"{key}.baseline")
            var.spec.update(baseline=base_rows, relative_risks=rr_rows, links=link_rows, cap=float(cap))

    def _findings(self, doc: Any, file: str, variables: dict[str, Variable]) -> None:
        entries = doc.get("findings") if isinstance(doc, Mapping) else None
        if not isinstance(entries, Mapping):
            self.errors.add(file, "findings", "must be a mapping name -> finding")
            return
        for name, spec in entries.items():
            name = str(name)
            key = f"findings.{name}"
            if name in variables:
                self.errors.add(file, key, f"name already used ({variables[name].file})")
                continue
            if not isinstance(spec, Mapping):
                self.errors.add(file, key, "must be a mapping")
                continue
            states = [_state_str(s) for s in spec.get("states") or []]
            if len(states) < 2 or len(set(states)) != len(states):
                self.errors.add(file, f"{key}.states", f"needs two or more distinct states; got {states}")
                continue
            model = spec.get("model")
            var = Variable(name=name, kind="finding", states=states, label=str(spec.get("label") or name),
                           file=file, case_key=spec.get("case_key"), description=spec.get("description"),
                           note=spec.get("note"), model=model, spec={"raw": spec})
            if model == "noisy_max":
                self._noisy_max(var, spec, variables, file, key)
            elif model == "set_union":
                self._set_union(var, spec, variables, file, key)
            elif model == "table":
                self._table(var, spec, variables, file, key)
            else:
                self.errors.add(file, f"{key}.model", f"unknown model {model!r}; accepted: noisy_max, set_union, table")
                continue
            variables[name] = var

    def _link_parent_ok(self, parent: str, variables: dict[str, Variable], file: str, key: str) -> bool:
        v = variables.get(parent)
        if v is None:
            self.errors.add(file, key, f"unknown cause or context variable {parent!r}")
            return False
        if v.is_hidden or (v.kind == "context" and v.states == BINARY_STATES):
            return True
        self.errors.add(file, key, f"{parent!r} cannot be a link: links come from causes, the leak "
                        "or binary context variables (use model: table for others)")
        return False

    def _leak_and_links(self, var: Variable, spec: Mapping[str, Any], variables: dict[str, Variable],
                        file: str, key: str, states: list[str]) -> tuple[dict | None, dict[str, dict]]:
        binary = var.states == BINARY_STATES

        def parse(entry: Any, pid: str, k: str) -> dict[str, Parameter] | None:
            if binary and isinstance(entry, Mapping) and "value" in entry:
                param = self.scalar(entry, pid + ".true", file, k)
                if param is None:
                    return None
                return {"true": param}
            return self.distribution(entry, pid, states, file, k)

        leak = parse(spec.get("leak"), f"{var.name}.leak", f"{key}.leak")
        if spec.get("leak") is None:
            self.errors.add(file, f"{key}.leak", "is missing")
        links: dict[str, dict] = {}
        raw_links = spec.get("links") or {}
        if not isinstance(raw_links, Mapping):
            self.errors.add(file, f"{key}.links", "must be a mapping parent -> distribution")
            raw_links = {}
        for parent, entry in raw_links.items():
            parent = str(parent)
            if not self._link_parent_ok(parent, variables, file, f"{key}.links.{parent}"):
                continue
            dist = parse(entry, f"{var.name}.link[{parent}]", f"{key}.links.{parent}")
            if dist is not None:
                links[parent] = dist
        return leak, links

    def _noisy_max(self, var: Variable, spec: Mapping[str, Any], variables: dict[str, Variable], file: str, key: str) -> None:
        normal = _state_str(spec.get("normal_state", var.states[0]))
        if normal not in var.states:
            self.errors.add(file, f"{key}.normal_state", f"{normal!r} is not one of the states {var.states}")
            return
        leak, links = self._leak_and_links(var, spec, variables, file, key, var.states)
        z = var.states.index(normal)
        conflict = None
        if 0 < z < len(var.states) - 1:
            if spec.get("conflict") is None:
                self.errors.add(file, f"{key}.conflict", "is needed: states lie on both sides of the normal state")
            else:
                conflict = self.distribution(spec.get("conflict"), f"{var.name}.conflict", ["down", "normal", "up"],
                                             file, f"{key}.conflict")
        var.parents = list(links)
        var.spec.update(normal=normal, leak=leak, links=links, conflict=conflict)

    def _set_union(self, var: Variable, spec: Mapping[str, Any], variables: dict[str, Variable], file: str, key: str) -> None:
        none = _state_str(spec.get("none_state", ""))
        mixed = _state_str(spec.get("mixed_state", ""))
        for k, s in (("none_state", none), ("mixed_state", mixed)):
            if s not in var.states:
                self.errors.add(file, f"{key}.{k}", f"{s!r} is not one of the states {var.states}")
                return
        leak, links = self._leak_and_links(var, spec, variables, file, key, var.states)
        var.parents = list(links)
        var.spec.update(none=none, mixed=mixed, leak=leak, links=links)

    def _table(self, var: Variable, spec: Mapping[str, Any], variables: dict[str, Variable], file: str, key: str) -> None:
        parents = [str(p) for p in spec.get("parents") or []]
        allowed = {}
        for p in parents:
            if p not in variables or variables[p].kind == "finding":
                self.errors.add(file, f"{key}.parents", f"unknown cause or context variable {p!r}")
                return
            allowed[p] = variables[p].states
        rows = []
        for i, row in enumerate(spec.get("rows") or []):
            rk = f"{key}.rows[{i}]"
            if not isinstance(row, Mapping):
                self.errors.add(file, rk, "must be a mapping")
                continue
            when = self.when(row.get("when"), allowed, file, rk + ".when")
            if when is None:
                continue
            label = self.when_label(when)
            dist = self.distribution(row, f"{var.name}.table" + (f"[{label}]" if label else ""), var.states, file, rk)
            if dist is not None:
                rows.append(Row(when, dist))
        self.coverage(rows, parents, allowed, file, f"{key}.rows")
        var.parents = parents
        var.spec.update(rows=rows)

    def _topological(self, variables: dict[str, Variable]) -> list[str] | None:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str, trail: list[str]) -> bool:
            if state.get(n) == 2:
                return True
            if state.get(n) == 1:
                cycle = " -> ".join(trail[trail.index(n):] + [n])
                self.errors.add(variables[n].file, n, f"the graph has a cycle: {cycle}")
                return False
            state[n] = 1
            for p in variables[n].parents:
                if not visit(p, trail + [n]):
                    return False
            state[n] = 2
            order.append(n)
            return True

        for n in variables:
            if not visit(n, []):
                return None
        return order


# --------------------------------------------------------------------------- reference.yaml


def is_test(var: Variable) -> bool:
    """A test costs something: every ``labs`` and ``tests`` finding except the ALP itself."""
    key = str(var.case_key or "")
    return var.kind == "finding" and (key.startswith("labs.") or key.startswith("tests.")) and var.name != "alp"


def is_question(var: Variable) -> bool:
    """A question is free: a ``symptoms`` or ``history`` key."""
    key = str(var.case_key or "")
    return key.startswith("symptoms.") or key.startswith("history.")


def _validate_reference(ref: Any, variables: dict[str, Variable], ld: _Loader) -> None:
    file = "priors/reference.yaml"
    if not isinstance(ref, Mapping) or not isinstance(ref.get("labs"), Mapping):
        ld.errors.add(file, "labs", "must be a mapping lab -> definition")
        return
    adj = ref.get("albumin_adjustment")
    if isinstance(adj, Mapping):
        for k in ("coefficient", "reference_albumin"):
            ld.scalar(adj.get(k), f"albumin_adjustment.{k}", file, f"albumin_adjustment.{k}", kind="quantity")
    else:
        ld.errors.add(file, "albumin_adjustment", "is missing")
    preg = ref.get("pregnancy_age")
    if preg is not None:  # optional: without it any age may be pregnant
        if not (isinstance(preg, Mapping) and all(isinstance(preg.get(k), (int, float)) and not isinstance(preg.get(k), bool)
                                                  for k in ("min", "max")) and 0 <= preg["min"] < preg["max"]):
            ld.errors.add(file, "pregnancy_age", "needs 0 <= min < max (years)")
        else:
            ld.source_refs.append((file, "pregnancy_age", str(preg.get("source"))))
    for lab, spec in ref["labs"].items():
        key = f"labs.{lab}"
        if not isinstance(spec, Mapping):
            ld.errors.add(file, key, "must be a mapping")
            continue
        units = spec.get("units")
        if not isinstance(units, Mapping) or spec.get("unit") not in units:
            ld.errors.add(file, f"{key}.units", "must map every accepted unit (including `unit`) to a factor")
            continue
        for u, f in units.items():
            factor = f.get("factor") if isinstance(f, Mapping) else f
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
                ld.errors.add(file, f"{key}.units.{u}", f"factor must be a positive number; got {factor!r}")
            if isinstance(f, Mapping):
                ld.source_refs.append((file, f"{key}.units.{u}", str(f.get("source"))))
        for field, required in (("plausible", True), ("uln_plausible", False)):  # uln_: the lab's own limit
            pl = spec.get(field)
            if pl is None and not required:
                continue
            if not (isinstance(pl, Mapping) and isinstance(pl.get("min"), (int, float))
                    and isinstance(pl.get("max"), (int, float)) and pl["min"] < pl["max"]):
                ld.errors.add(file, f"{key}.{field}", "needs min < max (canonical unit)")
            else:
                ld.source_refs.append((file, f"{key}.{field}", str(pl.get("source"))))
        for i, row in enumerate(spec.get("reference") or []):
            rk = f"{key}.reference[{i}]"
            if not isinstance(row, Mapping):
                ld.errors.add(file, rk, "must be a mapping")
                continue
            ld.source_refs.append((file, rk, str(row.get("source"))))
            lln, uln = row.get("lln"), row.get("uln")
            if isinstance(lln, (int, float)) and isinstance(uln, (int, float)) and not lln < uln:
                ld.errors.add(file, rk, f"lln {lln} must be below uln {uln}")
            when = row.get("when") or {}
            if not isinstance(when, Mapping) or set(when) - {"age", "sex", "pregnant"}:
                ld.errors.add(file, f"{rk}.when", "may only use age, sex and pregnant")
        refs = spec.get("reference") or []
        if refs and (refs[-1].get("when") or {}):
            ld.errors.add(file, f"{key}.reference", "must end with a `when: {}` row")
        bands = spec.get("bands")
        if lab in variables:
            var = variables[lab]
            if not isinstance(bands, list) or not bands:
                ld.errors.add(file, f"{key}.bands", "is missing")
                continue
            for i, b in enumerate(bands):
                if not isinstance(b, Mapping) or b.get("state") not in var.states:
                    ld.errors.add(file, f"{key}.bands[{i}]", f"state must be one of {var.states}")
            if isinstance(bands[-1], Mapping) and ("below" in bands[-1] or "at_most" in bands[-1]):
                ld.errors.add(file, f"{key}.bands[{len(bands) - 1}]", "the last band has no bound")
            bs = spec.get("bands_source")
            if isinstance(bs, Mapping):
                ld.source_refs.append((file, f"{key}.bands_source", str(bs.get("source"))))
            for word, states in (spec.get("verdicts") or {}).items():
                for s in states or []:
                    if s not in var.states:
                        ld.errors.add(file, f"{key}.verdicts.{word}", f"unknown state {s!r}; accepted: {', '.join(var.states)}")
    for name, var in variables.items():
        if var.kind == "finding" and var.case_key and str(var.case_key).startswith("labs.") and name not in ref["labs"]:
            ld.errors.add(file, f"labs.{name}", "is missing: every lab finding needs units, a reference and bands")

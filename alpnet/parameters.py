"""Which table each parameter feeds, and changing parameter values for a moment.

Sensitivity analysis and parameter redraws change one or many numbers of a prior
set and need only the tables those numbers feed. This module finds, for every
parameter id, the variables whose table it enters, and sets values in place
(with the same proportional co-variation of a distribution column as
:meth:`alpnet.priors.PriorSet.with_overrides`), restoring them afterwards.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import numpy as np

from .cpt import build_cpt
from .errors import PriorsError
from .priors import Parameter, PriorSet, Row, _column_of

__all__ = ["parameter_owners", "temporary_values", "assigned_values", "tables_for", "model_parameters"]


#: id(prior set) -> (a weak reference to it, its owners); a set's entry goes when the set does
_OWNERS: dict[int, tuple[weakref.ref, dict[str, list[str]]]] = {}


def parameter_owners(pset: PriorSet) -> dict[str, list[str]]:
    """Parameter id -> names of the variables whose table it enters.

    Parameters that enter no table (reference ranges, costs) are not listed. The walk
    over the prior set is done once per set (the structure does not change with the
    values) and a copy is returned.
    """
    entry = _OWNERS.get(id(pset))
    if entry is None or entry[0]() is not pset:
        key = id(pset)
        entry = (weakref.ref(pset, lambda _ref: _OWNERS.pop(key, None)), _walk_owners(pset))
        _OWNERS[key] = entry
    return {pid: list(names) for pid, names in entry[1].items()}


def _walk_owners(pset: PriorSet) -> dict[str, list[str]]:
    ids = {id(p): pid for pid, p in pset.parameters.items()}
    owners: dict[str, list[str]] = {}

    def walk(x: Any, var: str) -> None:
        if isinstance(x, Parameter):
            pid = ids.get(id(x))
            if pid is not None and var not in owners.setdefault(pid, []):
                owners[pid].append(var)
        elif isinstance(x, Row):
            walk(x.value, var)
        elif isinstance(x, Mapping):
            for v in x.values():
                walk(v, var)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v, var)

    for name, var in pset.variables.items():
        walk(var.spec, name)
    return owners


def model_parameters(pset: PriorSet) -> list[str]:
    """Ids of the parameters that enter a table, in the prior set's order."""
    owners = parameter_owners(pset)
    return [pid for pid in pset.parameters if pid in owners]


def _check(pset: PriorSet, pid: str, value: float) -> None:
    p = pset.parameters.get(pid)
    if p is None:
        from .priors import _close_matches

        close = _close_matches(pid, pset.parameters)
        raise PriorsError(f"parameter {pid!r}: unknown id" + (f"; did you mean {close}?" if close else ""))
    if not np.isfinite(value):
        raise PriorsError(f"parameter {pid}={value}: not a finite number")
    if p.kind == "probability" and not 0.0 <= value <= 1.0:
        raise PriorsError(f"parameter {pid}={value}: a probability must lie in [0, 1]")
    if p.kind == "ratio" and value <= 0:
        raise PriorsError(f"parameter {pid}={value}: a ratio must be > 0")


@contextmanager
def temporary_values(pset: PriorSet, values: Mapping[str, float]) -> Iterator[None]:
    """Set parameter values in place (co-varying distribution columns) and restore them on exit.

    Raises
    ------
    PriorsError
        For an unknown id or a value outside the parameter's domain.
    """
    saved: list[tuple[Parameter, float]] = []
    try:
        for pid, value in values.items():
            value = float(value)
            _check(pset, pid, value)
            p = pset.parameters[pid]
            siblings = _column_of(pset, pid)
            saved.append((p, p.value))
            saved.extend((s, s.value) for s in siblings)
            p.value = value
            if siblings:
                rest = sum(s.value for s in siblings)
                for s in siblings:
                    s.value = s.value * (1.0 - value) / rest if rest > 0 else (1.0 - value) / len(siblings)
        yield
    finally:
        for p, v in reversed(saved):
            p.value = v


@contextmanager
def assigned_values(pset: PriorSet, ids: list[str], values: np.ndarray) -> Iterator[None]:
    """Set many values at once, as given (no co-variation), and restore them on exit.

    For complete draws, where every distribution column is drawn whole and already sums
    to one; :func:`temporary_values` is the checked, co-varying form for single changes.
    """
    params = [pset.parameters[pid] for pid in ids]
    saved = [p.value for p in params]
    try:
        for p, v in zip(params, values):
            p.value = float(v)
        yield
    finally:
        for p, v in zip(params, saved):
            p.value = v


def tables_for(pset: PriorSet, variables: list[str]) -> dict[str, np.ndarray]:
    """Tables of the named variables from the prior set's current values."""
    return {v: build_cpt(pset.variables[v], pset.variables) for v in variables}

"""Synthetic patients: ancestral sampling of the network, written as batch rows.

Every variable is drawn from its CPT given its already drawn parents (context, then
causes, then findings), so a simulated cohort follows the model exactly. Each patient
becomes one row in the batch layout of case-format.md §5: dotted case keys, lab
values **with their units** as a laboratory reports them, and the true causes as
``cause.<name>`` columns (0 or 1).

A lab value is drawn inside the interval of its sampled band under the reference
range that alpnet applies to what the row shows (age, sex and, when shown,
pregnancy; ``priors/reference.yaml``), so scoring the row reads back exactly the
sampled state (the round trip is a test). The age is drawn inside its age band; in
the rare row where a sampled lab state cannot be written as a number for that age
(a neonate's bilirubin limit lies above the "high" band; an infant's calcium limit is
the top of the "high" band), the age is redrawn in its band, up to 100 times; if no
draw works, that one lab value is left empty.

Missingness (``missing``) hides each observable independently with that
probability, except ``labs.alp`` (every case needs it) and the patient's age and
sex (needed to read every other lab against its age- and sex-specific range).
``patient.pregnant`` and ``patient.trimester`` are hidden together.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np
import pandas as pd

from .checks import check_seed
from .errors import AlpnetError

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["simulate", "simulate_chunks", "write_simulation"]

_ALWAYS_SHOWN = ("alp", "age", "sex")
_OLDEST = 95.0  # upper end of the open 70_plus age band


def _sample_states(model: "Model", n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Ancestral sample of every variable: name -> state indices, shape (n,)."""
    pset = model.priors
    values: dict[str, np.ndarray] = {}
    for name, var in pset.variables.items():  # the prior set lists parents before children
        table = np.asarray(model.cpts[name])
        idx = tuple(values[p] for p in var.parents)
        probs = table[(slice(None),) + idx] if idx else np.repeat(table[:, None], n, axis=1)
        cum = np.cumsum(probs, axis=0)
        u = rng.random(n) * cum[-1]
        values[name] = np.minimum((u[None, :] > cum).sum(axis=0), len(var.states) - 1)
    return values


def _draw_ages(bands: list[float], states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An age inside each age band: whole years from 2 on, two decimals below."""
    edges = [0.0] + [float(b) for b in bands] + [_OLDEST + 1]
    lo = np.array(edges)[states]
    hi = np.array(edges)[states + 1]
    raw = lo + (hi - lo) * rng.random(len(states))
    young = hi <= 2.0
    age = np.where(young, np.floor(raw * 100) / 100, np.floor(raw))
    age = np.clip(age, lo, np.nextafter(hi, -np.inf))
    return np.char.mod("%g", age).astype(float)  # exactly the number the file will show


class _LabWriter:
    """Values inside a lab band under alpnet's reference row, vectorised over rows."""

    def __init__(self, name: str, spec: Mapping[str, Any], states: list[str]):
        self.name = name
        self.spec = spec
        self.states = states
        self.bands = spec["bands"]
        self.multiple = spec.get("scale") == "uln_multiple"
        self.unit = spec["unit"]
        pl = spec.get("plausible") or {}
        self.pl_min = float(pl.get("min", 0.0))
        self.pl_max = float(pl.get("max", np.inf))
        self.band_of_state = {b["state"]: i for i, b in enumerate(self.bands)}

    def limits(self, age: np.ndarray, sex: np.ndarray, preg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lln, uln) per row, NaN when the matching row has none; first matching row wins."""
        n = len(age)
        lln = np.full(n, np.nan)
        uln = np.full(n, np.nan)
        done = np.zeros(n, dtype=bool)
        for row in self.spec.get("reference") or []:
            when = row.get("when") or {}
            m = ~done
            if "sex" in when:
                m &= sex == when["sex"]
            if "pregnant" in when:
                allowed = when["pregnant"] if isinstance(when["pregnant"], list) else [when["pregnant"]]
                m &= np.isin(preg, allowed)
            if "age" in when:
                a, b = when["age"]
                m &= (age >= a) & (age < b)
            if not m.any():
                continue
            if row.get("lln") is not None:
                lln[m] = float(row["lln"])
            u = row.get("uln")
            if isinstance(u, Mapping):
                uln[m] = float(u.get("add", 0)) + float(u.get("per_year", 0)) * age[m]
            elif u is not None:
                uln[m] = float(u)
            done |= m
        return lln, uln

    def _bound(self, b: Any, lln: np.ndarray, uln: np.ndarray) -> np.ndarray:
        if b == "lln":
            return lln
        if b == "uln":
            return uln
        if self.multiple:
            return float(b) * uln
        return np.full(len(uln), float(b))

    def state_of(self, x: np.ndarray, lln: np.ndarray, uln: np.ndarray) -> np.ndarray:
        """The band index of each value, exactly as :mod:`alpnet.evidence` assigns it."""
        out = np.full(len(x), len(self.bands) - 1)
        open_ = np.ones(len(x), dtype=bool)
        for i, band in enumerate(self.bands):
            if "below" in band:
                b = self._bound(band["below"], lln, uln)
                hit = open_ & ~np.isnan(b) & (x < np.nan_to_num(b, nan=0.0))
            elif "at_most" in band:
                b = self._bound(band["at_most"], lln, uln)
                hit = open_ & ~np.isnan(b) & (x <= np.nan_to_num(b, nan=0.0))
            else:
                hit = open_.copy()
            out[hit] = i
            open_ &= ~hit
        return out

    def values(self, target: np.ndarray, lln: np.ndarray, uln: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Text values (``"412.3"``) inside each row's target band, and a mask of rows where that works."""
        n = len(target)
        lo = np.full(n, -np.inf)
        hi = np.full(n, np.inf)
        reachable = np.ones(n, dtype=bool)
        for i, band in enumerate(self.bands):
            key = "below" if "below" in band else ("at_most" if "at_most" in band else None)
            b = self._bound(band[key], lln, uln) if key else np.full(n, np.inf)
            mine = target == i
            if key:
                reachable[mine & np.isnan(b)] = False
                hi[mine] = b[mine]
            later = target > i
            lo[later] = np.fmax(lo[later], b[later])  # fmax ignores NaN (a skipped band)
        lo_eff = np.where(np.isinf(lo), np.maximum(self.pl_min, 0.5 * np.where(np.isinf(hi), 1.0, hi)), lo)
        hi_eff = np.where(np.isinf(hi), np.minimum(self.pl_max, np.maximum(2.0 * lo_eff, lo_eff + 1.0)), hi)
        reachable &= hi_eff > lo_eff
        x = lo_eff + (hi_eff - lo_eff) * rng.uniform(0.1, 0.9, n)
        text = np.char.mod("%.4g", x)
        back = text.astype(float)
        ok = self.state_of(back, lln, uln) == target
        if not ok.all():  # rounding left the band (a narrow one): more digits
            more = np.char.mod("%.12g", x)
            text = np.where(ok, text, more)
            back = text.astype(float)
            ok = self.state_of(back, lln, uln) == target
        return text, reachable & ok


def simulate_chunks(model: "Model", n: int, *, seed: int | None = None, missing: float = 0.0,
                    chunk_size: int = 50_000) -> Iterator[pd.DataFrame]:
    """Yield a simulated cohort in chunks of at most ``chunk_size`` rows (see :func:`simulate`)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise AlpnetError(f"n must be a whole number >= 0; got {n!r} instead")
    if not (isinstance(missing, (int, float)) and 0.0 <= float(missing) < 1.0):
        raise AlpnetError(f"missing must be a fraction in [0, 1); got {missing!r} instead")
    check_seed(seed)
    rng = np.random.default_rng(seed)
    done = 0
    while done < n:
        size = min(chunk_size, n - done)
        yield _simulate_block(model, size, rng, float(missing), start=done)
        done += size


def _simulate_block(model: "Model", n: int, rng: np.random.Generator, missing: float, start: int) -> pd.DataFrame:
    pset = model.priors
    variables = pset.variables
    values = _sample_states(model, n, rng)
    observables = [v for v, var in variables.items() if var.kind in ("context", "finding") and var.case_key]
    shown = {v: (rng.random(n) >= missing) if v not in _ALWAYS_SHOWN else np.ones(n, dtype=bool)
             for v in observables}
    cols: dict[str, Any] = {"id": np.array([f"sim-{start + i + 1:07d}" for i in range(n)], dtype=object)}
    sex = np.array(variables["sex"].states, dtype=object)[values["sex"]] if "sex" in values else np.full(n, None)
    preg_state = (np.array(variables["pregnant"].states, dtype=object)[values["pregnant"]]
                  if "pregnant" in values else np.full(n, "not_pregnant", dtype=object))
    preg_shown = shown.get("pregnant", np.zeros(n, dtype=bool))
    # alpnet reads pregnancy-specific ranges only when the row says pregnant: true
    preg_for_ref = np.where(preg_shown & (sex != "male"), preg_state, "not_pregnant")
    age = _draw_ages(variables["age"].spec["bands"], values["age"], rng)
    labs = [v for v in observables if str(variables[v].case_key).startswith("labs.")]
    writers = {v: _LabWriter(v, pset.reference["labs"][v], variables[v].states) for v in labs}
    lab_text = {v: np.full(n, None, dtype=object) for v in labs}
    todo = np.arange(n)
    attempts = 100
    for attempt in range(attempts):
        bad = np.zeros(len(todo), dtype=bool)
        failed: dict[str, np.ndarray] = {}
        for v, w in writers.items():
            target = np.array([w.band_of_state[variables[v].states[s]] for s in values[v][todo]], dtype=int)
            lln, uln = w.limits(age[todo], sex[todo], preg_for_ref[todo])
            text, ok = w.values(target, lln, uln, rng)
            failed[v] = shown[v][todo] & ~ok
            bad |= failed[v]
            lab_text[v][todo[ok]] = np.char.add(np.char.add(text[ok].astype(str), " "), w.unit).astype(object)
        if not bad.any():
            break
        if attempt == attempts - 1:  # no age in the band lets these values be written: leave them empty
            for v in labs:
                shown[v][todo[failed[v]]] = False
            break
        todo = todo[bad]
        age[todo] = _draw_ages(variables["age"].spec["bands"], values["age"][todo], rng)
    for v in observables:
        var = variables[v]
        key = str(var.case_key)
        vis = shown[v]
        if v == "age":
            col = np.array([f"{a:g}" for a in age], dtype=object)
        elif v == "pregnant":
            is_preg = preg_state != "not_pregnant"
            col = np.where(is_preg, "true", "false").astype(object)
            tri = np.array([s.rsplit("_", 1)[-1] if s != "not_pregnant" else None for s in preg_state], dtype=object)
            tri[~vis] = None
            cols["patient.trimester"] = tri
        elif v in writers:
            col = lab_text[v]
        else:
            col = np.array(var.states, dtype=object)[values[v]]
        col = col.copy()
        col[~vis] = None
        cols[key] = col
    if "patient.trimester" in cols:  # trimester right after pregnant
        tri = cols.pop("patient.trimester")
        cols = {k: v for k, v in cols.items()}
        items = list(cols.items())
        at = [k for k, _ in items].index("patient.pregnant") + 1
        cols = dict(items[:at] + [("patient.trimester", tri)] + items[at:])
    order = ["id"] + [c for section in ("patient", "history", "symptoms", "labs", "tests")
                      for c in cols if c.startswith(section + ".")]
    df = pd.DataFrame({c: cols[c] for c in order})
    for c in pset.causes:
        df[f"cause.{c}"] = values[c].astype(np.int64)  # state 1 = present
    df.attrs["states"] = {v: np.array(variables[v].states, dtype=object)[values[v]] for v in variables}
    return df


def simulate(model: "Model", n: int, *, seed: int | None = None, missing: float = 0.0,
             return_states: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """A synthetic cohort of ``n`` patients in the batch layout, with their true causes.

    Parameters
    ----------
    model : Model
    n : int
        Number of patients (rows).
    seed : int, optional
        Seed of the random generator, a whole number >= 0: the same seed and ``n`` give
        the same cohort.
    missing : float, default 0
        Probability that each observable (except ALP, age and sex) is left empty.
    return_states : bool, default False
        Also return the sampled state of every variable (shown or not), one column each.

    Returns
    -------
    cohort : DataFrame
        ``id``, dotted case keys (``patient.age``, ``labs.alp`` as ``"412 U/L"``,
        ``tests.xray`` ...) with empty cells for what is not known, and
        ``cause.<name>`` (0/1) for every cause.
    states : DataFrame
        Only with ``return_states``: variable -> sampled state name.

    Examples
    --------
    >>> import alpnet
    >>> from alpnet.simulate import simulate
    >>> cohort = simulate(alpnet.load_model(), 5, seed=1)  # doctest: +SKIP
    >>> cohort.filter(like="cause.").shape[1] == len(alpnet.load_model().causes)  # doctest: +SKIP
    True
    """
    chunks = list(simulate_chunks(model, n, seed=seed, missing=missing))
    if not chunks:
        chunks = [_simulate_block(model, 0, np.random.default_rng(seed), float(missing), 0)]
    cohort = pd.concat(chunks, ignore_index=True)
    cohort.attrs = {}
    if not return_states:
        return cohort
    states = pd.concat([pd.DataFrame(c.attrs["states"]) for c in chunks], ignore_index=True)
    return cohort, states


def write_simulation(model: "Model", n: int, output: str | Path, *, seed: int | None = None, missing: float = 0.0,
                     force: bool = False, chunk_size: int = 50_000) -> int:
    """Simulate ``n`` patients straight to a CSV or Parquet file (atomically, in chunks).

    Returns
    -------
    int
        Rows written.
    """
    from .tableio import AtomicTableWriter

    with AtomicTableWriter(output, force=force) as writer:
        if writer.format == "parquet":
            import pyarrow as pa

            head = _simulate_block(model, 0, np.random.default_rng(0), 0.0, 0)
            writer.set_schema(pa.schema([pa.field(c, pa.int64() if c.startswith("cause.") else pa.string())
                                         for c in head.columns]))
        for chunk in simulate_chunks(model, n, seed=seed, missing=missing, chunk_size=chunk_size):
            writer.write(chunk)
        writer.commit(empty_columns=list(_simulate_block(model, 0, np.random.default_rng(0), 0.0, 0).columns))
        return writer.rows

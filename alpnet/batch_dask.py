"""The batch scorer on Dask: the same :func:`alpnet.batch.score_chunk` over a Dask DataFrame.

The file is read as a Dask DataFrame (``dask.dataframe.read_csv`` with every cell as
text, or ``read_parquet``), scored with ``map_partitions`` on a ``LocalCluster`` or an
existing scheduler, and the partitions are collected in order — a few at a time, so
the driver's memory stays bounded — and written by the same atomic writer as the
local engine. Results are identical to the local engine: the scorer is the same
function on the same rows.

Workers in other processes rebuild the model once per process from the prior-set
folder and overrides (the folder must be readable by them); workers in the driver's
process (``processes=False``) share the driver's model.

Dask is an optional dependency (``pip install 'alpnet[dask]'``), imported only here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pandas as pd

from .batch import ColumnPlan, CredibleIntervals, interval_columns, output_columns, score_chunk
from .errors import AlpnetError
from .tableio import _PANDAS_INDEX, count_rows, first_short_line, table_format

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["require_dask", "dask_chunks", "ModelRef"]

_ERR = "__alpnet_errors__"
_MODELS: dict[tuple, Any] = {}


def require_dask() -> None:
    """Raise a clear error when ``dask[distributed]`` is not installed."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise AlpnetError("--engine dask needs Dask: pip install 'alpnet[dask]' "
                          "(dask[distributed]); or use --engine local") from None


class ModelRef:
    """A picklable handle on a model: workers load it once per process and keep it."""

    def __init__(self, priors: str | None, overrides: dict[str, float] | None, sha256: str):
        self.priors = priors
        self.overrides = dict(overrides or {})
        self.sha256 = sha256

    @property
    def key(self) -> tuple:
        return (self.priors, tuple(sorted(self.overrides.items())), self.sha256)

    def get(self) -> "Model":
        model = _MODELS.get(self.key)
        if model is None:
            from .model import load_model

            model = load_model(self.priors, overrides=self.overrides or None)
            if model.priors.sha256 != self.sha256:
                raise AlpnetError(f"a Dask worker loaded a different prior set ({model.priors.sha256[:12]}) "
                                  f"than the driver ({self.sha256[:12]}); give every worker the same --priors folder")
            _MODELS[self.key] = model
        return model


def _score_partition(part: pd.DataFrame, plan: ColumnPlan, ref: ModelRef, next_test: bool,
                     intervals: CredibleIntervals | None) -> pd.DataFrame:
    model = ref.get()
    out, errors = score_chunk(model, part, plan, next_test=next_test, intervals=intervals, first_row=1)
    col = [""] * len(out)
    for e in errors:  # rows are local (1 = the partition's first row); the driver adds the offset
        i = e["row"] - 1
        col[i] = json.dumps(e)
    out[_ERR] = col
    return out


def _unreadable(input_path: Path, exc: Exception) -> AlpnetError:
    """A CSV line that does not split into the header's columns: on Dask a file-level error
    (the local engine puts such a line in the errors file)."""
    lines = [line.strip().split("C error: ")[-1] for line in str(exc).splitlines() if "fields" in line] \
        or [type(exc).__name__]
    return AlpnetError(f"{input_path}: cannot be read as CSV: {lines[0]} (without --engine dask, "
                       "such a line is reported as a failed row)")


def _meta(model: "Model", plan: ColumnPlan, next_test: bool, intervals: CredibleIntervals | None,
          ddf) -> pd.DataFrame:
    meta = {c: ddf._meta[c] for c in plan.passthrough}
    frame = pd.DataFrame(meta)
    for c in model.causes:
        frame[f"posterior.{c}"] = pd.Series(dtype="float64")
    frame["leading_cause"] = pd.Series(dtype="object")
    if next_test:
        frame["next_test"] = pd.Series(dtype="object")
        frame["next_test_gain_bits"] = pd.Series(dtype="float64")
    if intervals is not None:
        for c in interval_columns(model):
            frame[c] = pd.Series(dtype="float64")
    frame[_ERR] = pd.Series(dtype="object")
    return frame[output_columns(model, plan, next_test=next_test, intervals=intervals) + [_ERR]]


def dask_chunks(model: "Model", input_path: Path, plan: ColumnPlan, *, next_test: bool,
                intervals: CredibleIntervals | None = None, chunk_size: int,
                scheduler: str | None, model_spec: tuple[str | None, dict[str, float]] | None,
                n_workers: int | None = None, processes: bool | None = None) -> Iterator[tuple[pd.DataFrame, list[dict]]]:
    """Yield (scored rows, errors) per partition, in file order.

    Parameters
    ----------
    model : Model
        The driver's model (shared with in-process workers).
    input_path : Path
    plan : ColumnPlan
    next_test : bool
    intervals : CredibleIntervals, optional
    chunk_size : int
        Rows per partition (approximate for CSV, whose partitions are cut by bytes).
    scheduler : str or None
        Address of a running scheduler (``tcp://host:8786``); None starts a LocalCluster.
    model_spec : (priors folder or None, overrides), optional
        How workers in other processes rebuild the model (default: the bundled set).
    n_workers, processes : optional
        For the LocalCluster (default: ``ALPNET_DASK_WORKERS`` or 2 workers, separate processes).
    """
    require_dask()
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    priors, overrides = model_spec if model_spec is not None else (None, {})
    ref = ModelRef(None if priors is None else str(Path(priors).resolve()), overrides, model.priors.sha256)
    _MODELS.setdefault(ref.key, model)
    fmt = table_format(input_path)
    if fmt == "csv":
        short = first_short_line(input_path)  # Dask, like pandas, would read a cut-short row as unknowns
        if short is not None:
            raise AlpnetError(f"{input_path}: cannot be read as CSV: {short} (without --engine dask, such a line "
                              "is reported as a failed row)")
        n = count_rows(input_path) or 1
        size = max(os.path.getsize(input_path), 1)
        blocksize = max(int(size / max(n, 1) * chunk_size), 64 * 1024)
        sep = "\t" if input_path.name.lower().endswith(".tsv") else ","
        compression = "gzip" if input_path.name.lower().endswith(".gz") else None
        try:
            ddf = dd.read_csv(str(input_path), dtype=str, keep_default_na=False, na_values=[""], sep=sep,
                              index_col=False, blocksize=None if compression else blocksize, compression=compression)
        except pd.errors.ParserError as exc:
            raise _unreadable(input_path, exc) from None
    else:
        ddf = dd.read_parquet(str(input_path), split_row_groups=True, index=False)
        ddf = ddf[[c for c in ddf.columns if not _PANDAS_INDEX.fullmatch(str(c))]]
    scored = ddf.map_partitions(_score_partition, plan, ref, next_test, intervals,
                                meta=_meta(model, plan, next_test, intervals, ddf))
    parts = scored.to_delayed()
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise AlpnetError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
    else:
        workers = n_workers or int(os.environ.get("ALPNET_DASK_WORKERS", "2"))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                               processes=True if processes is None else processes, dashboard_address=None)
        client = Client(cluster)
    try:
        window = 2 * max(len(client.scheduler_info().get("workers", {})), 1)
        futures: dict[int, Any] = {}
        nxt = 0
        offset = 0
        for i in range(len(parts)):
            while nxt < len(parts) and nxt < i + window:
                futures[nxt] = client.compute(parts[nxt])
                nxt += 1
            try:
                out = futures.pop(i).result()
            except pd.errors.ParserError as exc:
                raise _unreadable(input_path, exc) from None
            errs = []
            for j, text in enumerate(out[_ERR].tolist()):
                if text:
                    e = json.loads(text)
                    if e["case_id"] == f"row{e['row']}":  # the default id names the row in the whole file
                        e["case_id"] = f"row{offset + j + 1}"
                    e["row"] = offset + j + 1
                    errs.append(e)
            out = out.drop(columns=[_ERR]).reset_index(drop=True)
            offset += len(out)
            yield out, errs
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

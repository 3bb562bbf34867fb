"""Score a whole batch file, streaming: read a chunk, score it, append it, repeat.

Memory stays bounded by the chunk size whatever the file's length; rows keep
their order; the output and the errors file are written atomically
(:class:`alpnet.tableio.AtomicTableWriter`). ``engine="dask"`` runs the same
scoring over a Dask DataFrame (:mod:`alpnet.batch_dask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Literal

import pandas as pd

from .batch import (ERROR_COLUMNS, ColumnPlan, CredibleIntervals, interval_columns, output_columns, plan_columns,
                    score_chunk)
from .errors import AlpnetError
from .tableio import (AtomicTableWriter, check_input_path, check_output_path, iter_chunks, read_columns,
                      table_format)

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["ScoreSummary", "score_file", "default_errors_path", "prepare", "check_paths"]


@dataclass
class ScoreSummary:
    """What a batch run did."""

    rows: int
    failed: int
    output: Path
    errors_path: Path
    passthrough: list[str]


#: Rows per chunk of ``alpnet score`` unless told: big enough that the per-chunk and per-pass
#: costs (column set-up, context groups) are spread thin, small enough that memory stays
#: near 400 MB whatever the file's size.
DEFAULT_CHUNK_SIZE = 10_000


def default_errors_path(output: str | Path) -> Path:
    """``out.csv`` -> ``out.errors.csv`` (next to the output)."""
    out = Path(output)
    name = out.name
    for ext in (".csv.gz", ".parquet", ".csv", ".tsv", ".pq", ".txt"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return out.with_name(f"{name}.errors.csv")


def check_paths(input_path: str | Path, output: str | Path, *, errors_path: str | Path | None,
                force: bool) -> Path:
    """Check the input, output and errors paths (cheap; before any model is loaded).

    Returns
    -------
    Path
        The errors file.

    Raises
    ------
    AlpnetError
    """
    inp, out = Path(input_path), Path(output)
    check_input_path(inp)
    table_format(inp)
    table_format(out, role="output")
    errs = Path(errors_path) if errors_path else default_errors_path(out)
    table_format(errs, role="errors file")
    for p in (out, errs):
        if p.exists() and inp.resolve() == p.resolve():
            raise AlpnetError(f"{p}: is the input file; the input is never overwritten, choose another name")
    if out.resolve() == errs.resolve():
        raise AlpnetError(f"{out}: the output and the errors file must differ")
    check_output_path(out, force=force)
    check_output_path(errs, force=force)
    return errs


def prepare(input_path: str | Path, output: str | Path, *, errors_path: str | Path | None, force: bool,
            pset) -> tuple[ColumnPlan, Path]:
    """Check paths and columns before anything is computed (every problem: AlpnetError).

    Returns
    -------
    plan : ColumnPlan
    errors_path : Path
    """
    errs = check_paths(input_path, output, errors_path=errors_path, force=force)
    plan = plan_columns(read_columns(input_path), pset)
    return plan, errs


class _RowTicker:
    """Progress in whole rows from fractions of a chunk (a parameter draw scores all its rows
    once): a chunk with credible intervals takes minutes, and the bar should move meanwhile."""

    def __init__(self, progress: Callable[[int], None]):
        self.progress = progress
        self.done = 0.0
        self.shown = 0

    def tick(self, rows: float) -> None:
        self.done += rows
        step = int(self.done) - self.shown
        if step > 0:
            self.shown += step
            self.progress(step)

    def finish_chunk(self, rows: int) -> None:
        """The chunk's rows are all done: show what the ticks have not, and start afresh."""
        if rows > self.shown:
            self.progress(rows - self.shown)
        self.done, self.shown = 0.0, 0


def _local_chunks(model: "Model", input_path: Path, plan: ColumnPlan, next_test: bool,
                  intervals: CredibleIntervals | None, chunk_size: int,
                  tick: Callable[[float], None] | None = None) -> Iterator[tuple[pd.DataFrame, list[dict]]]:
    row = 1
    for chunk in iter_chunks(input_path, chunk_size):
        out, errors = score_chunk(model, chunk, plan, next_test=next_test, intervals=intervals, first_row=row,
                                  progress=tick)
        row += len(chunk)
        yield out, errors


def _arrow_schema(model: "Model", input_path: Path, plan: ColumnPlan, next_test: bool,
                  intervals: CredibleIntervals | None):
    """Output Arrow schema: pass-through columns keep their input types (text from CSV)."""
    import pyarrow as pa

    fields = []
    if table_format(input_path) == "parquet":
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(input_path).schema_arrow
        fields += [schema.field(c) for c in plan.passthrough]
    else:
        fields += [pa.field(c, pa.string()) for c in plan.passthrough]
    fields += [pa.field(f"posterior.{c}", pa.float64()) for c in model.causes]
    fields.append(pa.field("leading_cause", pa.string()))
    if next_test:
        fields += [pa.field("next_test", pa.string()), pa.field("next_test_gain_bits", pa.float64())]
    if intervals is not None:
        fields += [pa.field(c, pa.float64()) for c in interval_columns(model)]
    return pa.schema(fields)


def score_file(model: "Model", input_path: str | Path, output: str | Path, *, next_test: bool = False,
               intervals: CredibleIntervals | None = None, errors_path: str | Path | None = None,
               force: bool = False, chunk_size: int = DEFAULT_CHUNK_SIZE,
               engine: Literal["local", "dask"] = "local", scheduler: str | None = None,
               progress: Callable[[int], None] | None = None,
               model_spec: tuple[str | None, dict[str, float]] | None = None,
               plan: ColumnPlan | None = None) -> ScoreSummary:
    """Score a CSV or Parquet file into another, streaming in chunks.

    Parameters
    ----------
    model : Model
    input_path, output : str or Path
        Formats from the extensions. The input is never modified.
    next_test : bool
        Add the best next test and its expected information gain.
    intervals : CredibleIntervals, optional
        Add every posterior's credible interval and ``leading_cause_stays``.
    errors_path : str or Path, optional
        Where bad rows are listed (default: ``<output stem>.errors.csv``). Always
        written, with a header only when no row failed.
    force : bool
        Replace an existing output or errors file.
    chunk_size : int
        Rows per chunk (per Dask partition with ``engine="dask"``).
    engine : {"local", "dask"}
    scheduler : str, optional
        Address of a running Dask scheduler; default a LocalCluster.
    progress : callable, optional
        Called with a number of rows as they are done: every finished chunk, and with
        ``intervals`` on the local engine also whole rows as the draws go.
    model_spec : (priors folder or None, overrides), optional
        How Dask workers in other processes rebuild the model.

    Returns
    -------
    ScoreSummary

    Raises
    ------
    AlpnetError
        For a bad input file, flag or column layout: nothing is written.
    """
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise AlpnetError(f"--chunk-size must be a whole number >= 1; got {chunk_size!r} instead")
    if engine not in ("local", "dask"):
        raise AlpnetError(f"--engine must be local or dask; got {engine!r} instead")
    if scheduler and engine != "dask":
        raise AlpnetError("--scheduler needs --engine dask")
    inp, out = Path(input_path), Path(output)
    if plan is None:
        plan, errs = prepare(inp, out, errors_path=errors_path, force=force, pset=model.priors)
    else:
        errs = Path(errors_path) if errors_path else default_errors_path(out)
    ticker = None
    if engine == "dask":
        from .batch_dask import dask_chunks, require_dask

        require_dask()
        chunks = dask_chunks(model, inp, plan, next_test=next_test, intervals=intervals, chunk_size=chunk_size,
                             scheduler=scheduler, model_spec=model_spec)
    else:
        ticker = _RowTicker(progress) if progress is not None and intervals is not None else None
        chunks = _local_chunks(model, inp, plan, next_test, intervals, chunk_size,
                               ticker.tick if ticker is not None else None)
    header = output_columns(model, plan, next_test=next_test, intervals=intervals)
    rows = failed = 0
    with AtomicTableWriter(out, force=force) as writer, AtomicTableWriter(errs, force=force) as err_writer:
        if writer.format == "parquet":
            writer.set_schema(_arrow_schema(model, inp, plan, next_test, intervals))
        if err_writer.format == "parquet":  # pragma: no cover - errors files are CSV by default
            import pyarrow as pa

            err_writer.set_schema(pa.schema([pa.field("row", pa.int64())] +
                                            [pa.field(c, pa.string()) for c in ERROR_COLUMNS[1:]]))
        for out_df, errors in chunks:
            writer.write(out_df)
            if errors:
                err_writer.write(pd.DataFrame(errors, columns=ERROR_COLUMNS))
            rows += len(out_df)
            failed += len(errors)
            if ticker is not None:
                ticker.finish_chunk(len(out_df))
            elif progress is not None:
                progress(len(out_df))
        writer.commit(empty_columns=header)
        err_writer.commit(empty_columns=ERROR_COLUMNS)
    return ScoreSummary(rows=rows, failed=failed, output=out, errors_path=errs, passthrough=list(plan.passthrough))

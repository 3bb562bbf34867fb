"""Reading and writing batch tables (CSV or Parquet) in chunks, atomically.

The format comes from the file name's extension: ``.csv`` (also ``.csv.gz``, ``.tsv``)
or ``.parquet`` / ``.pq``. :mod:`pyarrow` reads and writes Parquet and formats the numbers
of CSV output (:func:`write_csv_rows`); it is imported only when needed.

CSV cells are read as text, exactly as written (an ``id`` of ``007`` stays ``007``);
an empty cell is missing. Outputs go to a temporary file in the destination folder
that is renamed over the final name only when complete, so an interrupted run
leaves nothing under the output name.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import pandas as pd

from .errors import AlpnetError

__all__ = ["table_format", "iter_chunks", "read_columns", "count_rows", "AtomicTableWriter", "check_input_path",
           "check_output_path", "check_parent_folder", "check_not_input"]

Format = Literal["csv", "parquet"]


def table_format(path: str | Path, *, role: str = "input") -> Format:
    """``"csv"`` or ``"parquet"`` from the file name's extension.

    Raises
    ------
    AlpnetError
        For any other extension, naming the accepted ones.
    """
    name = Path(path).name.lower()
    if name.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise AlpnetError(f"{path}: unknown {role} format {Path(path).suffix or '(no extension)'!r}; "
                      "accepted: .csv, .csv.gz, .tsv, .parquet, .pq")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise AlpnetError("pyarrow is missing (a dependency of alpnet): pip install pyarrow") from None
    return pyarrow


def _csv_options(path: Path) -> dict:
    # index_col=False: pandas must never take the first column for an index when a row has
    # one field more than the header (every column would be read one place off). dtype=object:
    # every cell a Python str (NaN where empty), the objects the scorer reads; pandas' string
    # dtype (dtype=str) holds the same texts but converts them twice on the way, about half the
    # reading time
    sep = "\t" if path.name.lower().endswith(".tsv") else ","
    return {"sep": sep, "dtype": object, "keep_default_na": False, "na_values": [""], "index_col": False}


#: Columns in which pandas stores a DataFrame's unnamed index in a Parquet file.
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")




def check_input_path(path: Path) -> None:
    """Refuse a missing input or a folder, before its extension is looked at."""
    if not path.exists():
        raise AlpnetError(f"{path}: no such file")
    if path.is_dir():
        raise AlpnetError(f"{path}: is a folder, not a table")


def read_columns(path: str | Path) -> list[str]:
    """The column names of a table, without reading its rows.

    Raises
    ------
    AlpnetError
        If the file is missing, empty or unreadable.
    """
    p = Path(path)
    check_input_path(p)
    fmt = table_format(p)
    try:
        if fmt == "csv":  # as written: pandas would rename 'a', 'a' to 'a', 'a.1' (plan_columns refuses twins)
            options = dict(_csv_options(p), header=None, nrows=1)
            names = ["" if pd.isna(c) else str(c) for c in pd.read_csv(p, **options).iloc[0].tolist()]
        else:
            pa = _pyarrow()
            names = [n for n in pa.parquet.ParquetFile(p).schema_arrow.names if not _PANDAS_INDEX.fullmatch(n)]
        empty = next((i for i, name in enumerate(names) if not name.strip()), None)
        if empty is not None:
            raise AlpnetError(f"{p}: column {empty + 1} of the header has no name; give every column a name")
        return names
    except AlpnetError:
        raise
    except pd.errors.EmptyDataError:
        raise AlpnetError(f"{p}: the file is empty (expected a header row)") from None
    except Exception as exc:  # a malformed file: one clear line
        raise AlpnetError(f"{p}: cannot be read as {fmt.upper()}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def count_rows(path: str | Path) -> int | None:
    """Number of data rows (exact for Parquet; lines minus the header for CSV), or None."""
    p = Path(path)
    try:
        if table_format(p) == "parquet":
            return int(_pyarrow().parquet.ParquetFile(p).metadata.num_rows)
        if p.name.lower().endswith(".gz"):
            return None
        n = 0
        last = b"\n"
        with open(p, "rb") as fh:
            while True:
                block = fh.read(1 << 20)
                if not block:
                    break
                n += block.count(b"\n")
                last = block[-1:]
        if last != b"\n":
            n += 1
        return max(n - 1, 0)
    except (OSError, AlpnetError):
        return None


def iter_chunks(path: str | Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Yield the rows of a table as DataFrames of at most ``chunk_size`` rows, in order.

    CSV cells come as text (missing cells as NaN); Parquet columns keep their types.
    The index of each chunk is the 0-based position of its rows in the file.
    """
    p = Path(path)
    check_input_path(p)
    fmt = table_format(p)
    start = 0
    try:
        if fmt == "csv":
            reader = pd.read_csv(p, chunksize=chunk_size, on_bad_lines="warn", **_csv_options(p))
            with _FieldCounter(p) as fields:
                while True:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", pd.errors.ParserWarning)
                        chunk = next(reader, None)
                    if chunk is None:
                        return
                    chunk = _with_bad_lines(p, chunk, start, [str(w.message) for w in caught
                                                              if issubclass(w.category, pd.errors.ParserWarning)])
                    fields.mark_short_rows(chunk)
                    start += len(chunk)
                    yield chunk
        pa = _pyarrow()
        pf = pa.parquet.ParquetFile(p)
        for batch in pf.iter_batches(batch_size=chunk_size):
            # the table's own columns, not a pandas index stored alongside them
            chunk = batch.to_pandas(ignore_metadata=True)
            chunk = chunk[[c for c in chunk.columns if not _PANDAS_INDEX.fullmatch(str(c))]]
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            start += len(chunk)
            yield chunk
    except AlpnetError:
        raise
    except pd.errors.EmptyDataError:
        raise AlpnetError(f"{p}: the file is empty (expected a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AlpnetError(f"{p}: cannot be read as {fmt.upper()} after row {start}: {first}") from None


_SKIPPED = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")


def _with_bad_lines(path: Path, chunk: pd.DataFrame, start: int, messages: list[str]) -> pd.DataFrame:
    """A CSV chunk with an empty row put back where pandas skipped a line with too many fields.

    The chunk's index is the 0-based place of its rows among the file's data rows, and
    ``chunk.attrs["bad_rows"]`` maps the place of each line put back to why it could not be
    read, so that the line is reported as a failed row instead of vanishing. A line is placed
    by its line number (one line a row; a file with line breaks inside quoted cells may
    place it a little off, and the reason names the line). A first row with more fields
    than the header is a problem of the whole file: pandas would cut every such row short.
    """
    bad: dict[int, str] = {}
    for text in messages:
        if "does not match length of data" in text:
            raise AlpnetError(f"{path}: a row near row {start + 1} has more fields than the header's "
                              f"{len(chunk.columns)} columns; is a column name missing from the header?")
        for line, expected, saw in _SKIPPED.findall(text):
            bad[int(line)] = f"line {line} has {saw} fields, the header {expected}; the row could not be read"
    if not bad:
        chunk.index = pd.RangeIndex(start, start + len(chunk))
        chunk.attrs["bad_rows"] = {}
        return chunk
    total = len(chunk) + len(bad)
    places: dict[int, str] = {}
    for line in sorted(bad):  # line 1 is the header: data row r (0-based) is line r + 2
        free = [i for i in range(start, start + total) if i not in places]
        place = next((i for i in free if i >= line - 2), free[-1])
        places[place] = bad[line]
    chunk.index = [i for i in range(start, start + total) if i not in places]
    chunk = chunk.reindex(pd.RangeIndex(start, start + total))
    chunk.attrs["bad_rows"] = places
    return chunk


def _open_text(path: Path):
    """A CSV file as text, as pandas reads it (UTF-8, a byte-order mark dropped, gzip by extension)."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


class _FieldCounter:
    """The fields of every CSV record, read alongside pandas to find rows with too few fields.

    pandas fills the cells missing from a short row with NaN and says nothing, so a truncated
    line would pass as a row of unknowns. This reads the same records with :mod:`csv` (same
    quoting; blank and whitespace-only lines skipped, as pandas skips them), and
    :meth:`mark_short_rows` adds every short record of a chunk to ``chunk.attrs["bad_rows"]``,
    so that it becomes a failed row in its place.
    """

    def __init__(self, path: Path):
        self.path = path
        self.handle = _open_text(path)
        sep = _csv_options(path)["sep"]
        self.records: Any = csv.reader(self.handle, delimiter=sep)
        self.header = len(self._next() or [])

    @property
    def line(self) -> int:
        """The line the last record ended on."""
        return self.records.line_num if self.records is not None else 0

    def __enter__(self) -> "_FieldCounter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def _next(self) -> list[str] | None:
        """The next non-blank record; None at the end, or for good once :mod:`csv` cannot split a
        line that pandas may (a cell beyond csv's field size limit, a NUL byte): the check then stops."""
        if self.records is None:
            return None
        try:
            for record in self.records:
                if record and not (len(record) == 1 and not record[0].strip()):
                    return record
        except csv.Error:
            self.records = None
        return None

    def mark_short_rows(self, chunk: pd.DataFrame) -> None:
        """Record the chunk's rows whose line has fewer fields than the header (the chunk's index: places)."""
        bad = chunk.attrs.setdefault("bad_rows", {})
        first = chunk.columns[0] if len(chunk.columns) else None
        for place in chunk.index:
            record = self._next()
            if record is None or len(record) >= self.header or place in bad:
                continue
            cell = chunk.at[place, first]
            if (record[0] or None) != (None if pd.isna(cell) else cell):  # pragma: no cover - out of step
                continue
            bad[place] = (f"line {self.line} has {len(record)} field(s), the header {self.header}; "
                          "the row looks truncated and could not be read")


def first_short_line(path: str | Path) -> str | None:
    """For a CSV file: the first line with fewer fields than the header, described; else None."""
    p = Path(path)
    if table_format(p) != "csv":
        return None
    with _FieldCounter(p) as fields:
        while (record := fields._next()) is not None:
            if len(record) < fields.header:
                return f"line {fields.line} has {len(record)} field(s), the header {fields.header}"
    return None


def write_csv_rows(df: pd.DataFrame, fh: Any, sep: str = ",") -> None:
    """Write a frame's rows (no header) as CSV text, the numbers in Arrow's shortest form.

    Floating-point and integer columns are written as :mod:`pyarrow` formats them: the
    shortest text that reads back as the same number (``1.5e-7``, ``0.25``, ``0`` for
    0.0), several times faster than pandas' formatting. Text is written as it is; any
    other column (booleans, dates, mixed objects) as :meth:`pandas.DataFrame.to_csv`
    writes its values. A missing value is an empty cell. A cell is quoted when it holds
    the separator, a double quote (doubled) or a line break, ``\\r`` included.
    """
    pa = _pyarrow()
    import pyarrow.compute as pc

    texts = [pc.fill_null(_column_text(df[name], pa, pc), "") for name in df.columns]
    if not texts:
        df.to_csv(fh, index=False, header=False, sep=sep)
        return
    needs = "[" + re.escape(sep) + '"\r\n]'  # what a cell must quote
    for i, text in enumerate(texts):
        quote = pc.match_substring_regex(text, needs)
        if len(texts) == 1:  # a lone empty cell is quoted, or the line would be blank
            quote = pc.or_(quote, pc.equal(pc.utf8_length(text), 0))
        if pc.any(quote).as_py():
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
            texts[i] = pc.if_else(quote, quoted, text)
    lines = texts[0] if len(texts) == 1 else pc.binary_join_element_wise(*texts, sep)
    fh.write("\n".join(lines.to_pylist()) + "\n")


def _column_text(column: pd.Series, pa: Any, pc: Any) -> Any:
    """One column's cells as an Arrow string array (null where missing), unquoted."""
    if column.dtype.kind in "fiu":
        return pc.cast(pa.array(column, from_pandas=True), pa.string())
    if column.dtype.kind in "OUT":
        try:
            text = pa.array(column.to_numpy(dtype=object), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            text = None
        if text is not None and (pa.types.is_string(text.type) or pa.types.is_null(text.type)):
            return text.cast(pa.string())
    # anything else: the text pandas writes for each value, every cell quoted so that the
    # csv module reads the cells back whole
    written = column.to_frame().to_csv(index=False, header=False, quoting=csv.QUOTE_ALL, lineterminator="\n")
    return pa.array([row[0] for row in csv.reader(io.StringIO(written, newline=""))], type=pa.string())


class AtomicTableWriter:
    """Write a table chunk by chunk to a temporary file, renamed into place on :meth:`commit`.

    Parameters
    ----------
    path : str or Path
        The final file; its extension gives the format.
    force : bool
        Replace an existing file. Without it an existing ``path`` is an error.

    Notes
    -----
    Use it as a context manager: leaving the block without :meth:`commit` (an error,
    Ctrl-C) deletes the temporary file and leaves ``path`` untouched.
    """

    def __init__(self, path: str | Path, *, force: bool = False):
        self.path = Path(path)
        self.format = table_format(self.path, role="output")
        check_output_path(self.path, force=force)
        if self.format == "parquet":
            _pyarrow()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self._fh = None
        self._pq = None
        self._schema = None
        self._columns: list[str] | None = None
        self.rows = 0

    def write(self, df: pd.DataFrame) -> None:
        """Append rows (the first call fixes the columns)."""
        if self._columns is None:
            self._columns = [str(c) for c in df.columns]
        elif [str(c) for c in df.columns] != self._columns:  # pragma: no cover - a programming error
            raise AlpnetError("internal: chunks with different columns")
        if self.format == "csv":
            sep = "\t" if self.path.name.lower().endswith(".tsv") else ","
            if self._fh is None:
                if self.path.name.lower().endswith(".gz"):
                    self._fh = gzip.open(self.tmp, "wt", encoding="utf-8", newline="")
                else:
                    self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
                if self._columns:
                    write_csv_rows(pd.DataFrame([self._columns], dtype=object), self._fh, sep)
                else:
                    df.to_csv(self._fh, index=False, header=True, sep=sep)
            if len(df):
                write_csv_rows(df, self._fh, sep)
        else:
            pa = _pyarrow()
            if self._pq is None:
                self._schema = self._schema or pa.Schema.from_pandas(df, preserve_index=False)
                self._pq = pa.parquet.ParquetWriter(self.tmp, self._schema)
            df = df.copy(deep=False)
            df.attrs = {}  # attrs are not table content
            table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False, safe=False)
            self._pq.write_table(table)
        self.rows += len(df)

    def set_schema(self, schema) -> None:
        """Parquet only: fix the Arrow schema before the first write (types of every column)."""
        self._schema = schema

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._pq is not None:
            self._pq.close()
            self._pq = None

    def commit(self, empty_columns: list[str] | None = None) -> None:
        """Finish the file and move it to its final name.

        Parameters
        ----------
        empty_columns : list of str, optional
            Columns of the header when no row was written.
        """
        if self._columns is None:
            self.write(pd.DataFrame(columns=empty_columns or []))
        self._close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file; the final name is not touched."""
        try:
            self._close()
        finally:
            if self.tmp.exists():
                self.tmp.unlink()

    def __enter__(self) -> "AtomicTableWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():
            self.abort()


def check_output_path(path: Path, *, force: bool) -> None:
    """Refuse an existing output (unless forced), a folder, or a missing parent folder."""
    if path.is_dir():
        raise AlpnetError(f"{path}: is a folder")
    if path.exists() and not force:
        raise AlpnetError(f"{path}: already exists; use --force to replace it")
    check_parent_folder(path)


def check_not_input(out: Path, flag: str, inputs: Sequence[str | Path | None]) -> None:
    """Refuse an output path that is one of the input files (symlinks and hard links
    resolved), even with --force: an input is never overwritten."""
    for given in filter(None, inputs):
        inp = Path(given)
        if inp.exists() and out.exists() and (out.resolve() == inp.resolve() or out.samefile(inp)):
            raise AlpnetError(f"{flag} {out}: is the input file {given}; the input is never overwritten, "
                              "choose another name")


def check_parent_folder(path: Path, where: str | None = None) -> None:
    """Refuse an output whose folder is missing or not writable; ``where`` names it in the message."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise AlpnetError(f"{where or path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise AlpnetError(f"{where or path}: the folder {parent} is not writable")

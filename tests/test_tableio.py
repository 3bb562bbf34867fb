"""CSV output text: numbers read back exactly, text cells as they were, quoting as CSV needs."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from alpnet.tableio import AtomicTableWriter, write_csv_rows


def _written(df: pd.DataFrame, sep: str = ",") -> str:
    fh = io.StringIO()
    write_csv_rows(df, fh, sep)
    return fh.getvalue()


def _cells(text: str, sep: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))


def test_every_double_reads_back_as_the_same_number():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.random(2000) ** rng.integers(1, 60, 2000), [0.0, 1.0, 5e-324, 1.7976931348623157e308,
                                                                           -0.0, 1e-7, 0.1, np.inf]])
    df = pd.DataFrame({"id": [f"r{i}" for i in range(len(values))], "p": values})
    rows = _cells(_written(df))
    assert [r[0] for r in rows] == df["id"].tolist()
    back = np.array([float(r[1]) for r in rows])
    assert np.array_equal(back, values)  # bit for bit, not to a tolerance
    assert [float(r[1]) for r in rows[-8:]] == [0.0, 1.0, 5e-324, 1.7976931348623157e308, -0.0, 1e-7, 0.1, np.inf]


def test_missing_numbers_and_text_are_empty_cells_and_ints_stay_ints():
    df = pd.DataFrame({"id": ["a", None, "c"], "p": [0.5, np.nan, 0.25], "n": [1, 2, 30],
                       "lead": pd.Series(["paget", None, "growth"], dtype="str")})
    assert _written(df) == "a,0.5,1,paget\n,,2,\nc,0.25,30,growth\n"


@pytest.mark.parametrize("sep", [",", "\t"])
def test_text_that_needs_quotes_reads_back_unchanged(sep):
    texts = ["plain", "a,b", 'say "hi"', "tab\there", "two\nlines", "cr\rhere", "", " lead", "007", None]
    df = pd.DataFrame({"site": texts, "p": np.linspace(0, 1, len(texts))})
    text = _written(df, sep)
    rows = _cells(text, sep)
    assert [r[0] for r in rows] == [t or "" for t in texts]
    assert np.array_equal([float(r[1]) for r in rows], df["p"].to_numpy())
    assert text.startswith("plain" + sep + "0" + "\n")  # no quotes where none are needed
    assert ('"a,b"' in text) == (sep == ",") and ('"tab\there"' in text) == (sep == "\t")
    assert '"say ""hi"""' in text and '"cr\rhere"' in text


def test_other_column_types_are_written_as_pandas_writes_them():
    df = pd.DataFrame({"id": ["a", 3], "flag": [True, False], "n": pd.array([1, None], dtype="Int64"),
                       "day": pd.to_datetime(["2026-01-02", None]), "note": ["x\ry", 2.5], "p": [1.0, 0.5]})
    assert _written(df) == 'a,True,1,2026-01-02,"x\ry",1\n3,False,,,2.5,0.5\n'


def test_a_lone_empty_cell_is_not_a_blank_line():
    text = _written(pd.DataFrame({"id": ["", "a"]}))
    assert text == '""\na\n'
    assert pd.read_csv(io.StringIO("id\n" + text), dtype=str, keep_default_na=False)["id"].tolist() == ["", "a"]


def test_writer_puts_the_header_once_and_reads_back_every_chunk(tmp_path):
    out = tmp_path / "out.csv"
    parts = [pd.DataFrame({"id": [f"r{i}", f"s{i}"], "posterior.x": [i / 7, np.nan]}) for i in range(3)]
    with AtomicTableWriter(out) as writer:
        for part in parts:
            writer.write(part)
        writer.commit()
    assert out.read_text().startswith("id,posterior.x\nr0,0\ns0,\n")
    back = pd.read_csv(out, dtype={"id": str})
    whole = pd.concat(parts, ignore_index=True)
    assert back.columns.tolist() == ["id", "posterior.x"]
    assert back["id"].tolist() == whole["id"].tolist()
    assert np.array_equal(back["posterior.x"].to_numpy(), whole["posterior.x"].to_numpy(), equal_nan=True)


@pytest.mark.parametrize("name, sep", [("out.csv.gz", ","), ("out.tsv", "\t")])
def test_gzipped_and_tab_separated_outputs_read_back(tmp_path, name, sep):
    out = tmp_path / name
    df = pd.DataFrame({"id": ["a\tb", "c,d"], "posterior.x": [1e-7, 0.5]})
    with AtomicTableWriter(out) as writer:
        writer.write(df)
        writer.commit()
    back = pd.read_csv(out, sep=sep, dtype={"id": str})
    assert back.columns.tolist() == ["id", "posterior.x"]
    assert back["id"].tolist() == ["a\tb", "c,d"]
    assert np.array_equal(back["posterior.x"].to_numpy(), df["posterior.x"].to_numpy())

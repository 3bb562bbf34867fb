"""Speed of the row-to-evidence step of batch scoring, and of ``Model.score``, on a simulated file.

Run: ``python benchmarks/convert_speed.py [--rows 10000] [--missing 0.2] [--reference-rows N]``.

* The input is ``alpnet simulate -n ROWS --seed 1 --missing MISSING`` (made in this process
  with the same Python API), read as ``alpnet score`` reads a CSV (every cell a string).
* "reference" is the row-by-row path: ``row_to_case`` then ``Model.evidence_of`` per row
  (timed on the first ``--reference-rows`` rows, default all).
* "chunk" is :func:`alpnet.batch.chunk_evidence`, the conversion ``score_chunk`` uses
  (absent before issue 7; then only the reference is timed): the whole file as one chunk
  (as ``Model.score`` reads a frame), first call in the process and best of ``--repeat``;
  then in chunks of ``--chunk-size`` rows (``alpnet score``'s default 2000), first pass
  over the file (nothing remembered) and a second pass.
* "Model.score" is the whole call (conversion, posteriors, output frame) with ``errors="keep"``,
  timed once.

Prints rows/s for each; not a unit test (timings depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import alpnet  # noqa: E402
from alpnet import batch  # noqa: E402
from alpnet.errors import AlpnetError  # noqa: E402
from alpnet.simulate import simulate  # noqa: E402


def reference_rows(model, df: pd.DataFrame, plan) -> int:
    """The per-row path as score_chunk ran it before issue 7; returns the number of good rows."""
    columns = list(df.columns)
    arrays = {c: df[c].to_numpy(dtype=object) for c in columns}
    good = 0
    for i in range(len(df)):
        cells = {c: arrays[c][i] for c in columns}
        try:
            model.evidence_of(batch.row_to_case(cells, plan, default_id=f"row{i + 1}"))
            good += 1
        except AlpnetError:
            pass
    return good


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--missing", type=float, default=0.2)
    ap.add_argument("--reference-rows", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-size", type=int, default=2000)
    args = ap.parse_args()

    model = alpnet.load_model()
    buf = io.StringIO()
    simulate(model, args.rows, seed=1, missing=args.missing).to_csv(buf, index=False)
    buf.seek(0)
    df = pd.read_csv(buf, dtype=str, keep_default_na=False, na_values=[""])
    plan = batch.plan_columns(df.columns, model.priors)
    n = len(df)
    print(f"{n} simulated rows (seed 1, missing {args.missing}), {len(df.columns)} columns")

    nref = min(args.reference_rows or n, n)
    sub = df.iloc[:nref]
    t = best_of(lambda: reference_rows(model, sub, plan), 1)
    print(f"reference row-by-row conversion: {nref} rows in {t:.2f} s = {nref / t:,.0f} rows/s "
          f"({1e6 * t / nref:.0f} us/row)")

    fast = getattr(batch, "chunk_evidence", None)
    if fast is not None:
        first = best_of(lambda: fast(model, df, plan), 1)  # the first call: imports, nothing remembered yet
        t = best_of(lambda: fast(model, df, plan), args.repeat)
        print(f"chunk conversion (score_chunk's), first call: {n} rows in {first:.3f} s = {n / first:,.0f} rows/s "
              f"({1e6 * first / n:.1f} us/row)")
        print(f"chunk conversion (score_chunk's), best of {args.repeat}: {n} rows in {t:.3f} s = {n / t:,.0f} rows/s "
              f"({1e6 * t / n:.1f} us/row)")
        from alpnet import evidence_columns

        size = args.chunk_size

        def chunked():
            for start in range(0, n, size):
                fast(model, df.iloc[start:start + size], plan, first_row=start + 1)

        for label in ("first pass", "second pass"):
            if label == "first pass":
                evidence_columns._MEMORY.clear()  # nothing remembered from the calls above
            t = best_of(chunked, 1)
            print(f"chunk conversion in {size}-row chunks, {label}: {n} rows in {t:.3f} s = {n / t:,.0f} rows/s "
                  f"({1e6 * t / n:.1f} us/row)")
    t = best_of(lambda: model.score(df, errors="keep"), 1)
    print(f"Model.score: {n} rows in {t:.2f} s = {n / t:,.0f} rows/s")


if __name__ == "__main__":
    main()

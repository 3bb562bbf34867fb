"""Batch scoring speed and memory: `alpnet score` on simulated files, pgmpy loop as the baseline.

Run: ``python benchmarks/score.py [--sizes 10000,100000,1000000] [--baseline-rows 1000]
[--next-test-rows 1000] [--interval-rows 1000 --interval-draws 200] [--repeat 1] [--workdir DIR]``.
Prints one Markdown table.

* Input files are made by ``alpnet simulate -n N --seed 1 --missing M`` (``--missing``, default 0.3; kept in
  ``--workdir`` and reused).
* ``--repeat N`` runs every command of the main table (the one-row start-up and each file
  up to ``--repeat-max-rows`` rows) N times: rows/s is then the median of the N runs
  (each with the median start-up subtracted), with the slowest and fastest in brackets,
  because this machine's speed wanders by 20 to 30% from minute to minute.
* Every ``alpnet score`` runs as its own process, so its peak memory is that process's
  peak resident set size (``os.wait4`` rusage ``ru_maxrss``), whole command included
  (Python, pandas, the compiled model). "rows/s" divides the rows by the wall time of
  the command minus the time the same command takes on a one-row file (start-up and
  model loading), which is reported on its own row.
* With numba installed (``pip install "alpnet[fast]"``) ``alpnet score`` uses the compiled
  engine; the smallest file is then also scored with ``ALPNET_COMPILED=0`` (the numpy engine,
  its own start-up subtracted), for comparison in the same run.
* ``--next-test`` ranks every test exactly for every row, which is slow: it is timed on
  a small sample (``--next-test-rows``, scored with and without it: the difference is the
  ranking's own time) and the time for the full file is **extrapolated**
  from that rate (labelled as such).
* ``--uncertainty`` (credible intervals per row) costs about ``--draws`` posteriors a row:
  it is timed on its own sample (``--interval-rows`` rows, ``--interval-draws`` draws),
  rows/s net of start-up.
* The baseline is a pgmpy ``VariableElimination`` query of every cause per row, timed in
  this process on the first ``--baseline-rows`` rows of the smallest file (the same
  evidence alpnet reads from those rows; reading and mapping the rows is not counted for
  pgmpy, it is for alpnet).

Nothing here is a unit test: timings depend on the machine, which the header names.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import alpnet  # noqa: E402
from alpnet.batch_file import DEFAULT_CHUNK_SIZE  # noqa: E402

ALPNET = [sys.executable, "-m", "alpnet"]


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process; raises if it fails."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=None if env is None else {**os.environ, **env})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if code not in (0,):
        raise SystemExit(f"{' '.join(cmd)} exited {code}: {err.strip()}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    return wall, int(usage.ru_maxrss) * scale


MISSING = 0.3  # set from --missing in main()
try:  # the compiled engine (the 'fast' extra) scores the files when numba is installed
    import numba  # noqa: F401

    COMPILED = os.environ.get("ALPNET_COMPILED", "1").strip() != "0"
except ImportError:  # pragma: no cover - depends on the install
    COMPILED = False
ENGINE = ", compiled engine (numba)" if COMPILED else ", numpy engine"


def simulated(workdir: Path, n: int) -> Path:
    path = workdir / f"cohort-{n}-missing{MISSING:g}.csv"
    if not path.exists():
        run(ALPNET + ["simulate", "-n", str(n), "--seed", "1", "--missing", f"{MISSING:g}", "-o", str(path)])
    return path


def head(path: Path, n: int, out: Path) -> Path:
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i > n:
                break
            dst.write(line)
    return out


def fmt_time(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def spread(values: list[float], fmt) -> str:
    """`` (lowest to highest)`` of several runs; nothing for one run."""
    if len(values) < 2:
        return ""
    return f" ({fmt(min(values))} to {fmt(max(values))})"


def pgmpy_baseline(path: Path, rows: int) -> tuple[float, int]:
    """Seconds per row of a pgmpy VariableElimination loop over the first ``rows`` rows."""
    import pandas as pd
    from pgmpy.inference import VariableElimination

    from alpnet.batch import plan_columns, row_to_case

    model = alpnet.load_model()
    ve = VariableElimination(model.to_pgmpy())
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], nrows=rows)
    plan = plan_columns(df.columns, model.priors)
    evidences = []
    for i in range(len(df)):
        ev, _ = model.evidence_of(row_to_case(df.iloc[i].to_dict(), plan, default_id="x"))
        if all(not isinstance(v, list) for v in ev.values()):  # pgmpy takes hard evidence only
            evidences.append(ev)
    t = time.perf_counter()
    for ev in evidences:
        try:
            ve.query(variables=model.causes, evidence=ev, joint=False, show_progress=False)
        except Exception:  # pragma: no cover - impossible evidence
            pass
    return (time.perf_counter() - t) / max(len(evidences), 1), len(evidences)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated row counts")
    ap.add_argument("--baseline-rows", type=int, default=1000, help="rows the pgmpy loop is timed on")
    ap.add_argument("--next-test-rows", type=int, default=1000, help="rows --next-test is timed on")
    ap.add_argument("--interval-rows", type=int, default=1000, help="rows --uncertainty is timed on (0: skip)")
    ap.add_argument("--interval-draws", type=int, default=200, help="--draws for the --uncertainty timing")
    ap.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, help="as alpnet score's default")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each file's scoring (median reported)")
    ap.add_argument("--repeat-max-rows", type=int, default=100_000,
                    help="files larger than this are scored once whatever --repeat says")
    ap.add_argument("--missing", type=float, default=0.3,
                    help="alpnet simulate --missing: the chance that each finding or history cell is empty")
    ap.add_argument("--workdir", default=None, help="where simulated files are kept (default: a temp folder)")
    args = ap.parse_args()
    global MISSING
    MISSING = args.missing
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="alpnet-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)

    rows_out = []
    one = head(simulated(workdir, min(sizes)), 1, workdir / "one.csv")
    starts = [run(ALPNET + ["score", str(one), "-o", str(workdir / "out-one.csv"), "--quiet", "--force"])
              for _ in range(max(args.repeat, 1))]
    start_s = float(np.median([t for t, _ in starts]))
    start_mem = max(m for _, m in starts)
    rows_out.append(("1 (start-up: import, load and compile the model)", f"posteriors{ENGINE}",
                     fmt_time(start_s) + spread([t for t, _ in starts], fmt_time), "-",
                     f"{start_mem / 1024**2:.0f} MB"))
    sample = head(simulated(workdir, min(sizes)), args.next_test_rows, workdir / "nt-sample.csv")
    nt_s, nt_mem = run(ALPNET + ["score", str(sample), "-o", str(workdir / "out-nt.csv"), "--quiet", "--force",
                                 "--next-test"])
    plain_s, _ = run(ALPNET + ["score", str(sample), "-o", str(workdir / "out-plain.csv"), "--quiet", "--force"])
    extra = nt_s - plain_s  # the ranking's own time: the same rows scored with and without it
    nt_rate = args.next_test_rows / extra if extra > 0 else float("nan")
    if args.interval_rows > 0:
        isample = head(simulated(workdir, min(sizes)), args.interval_rows, workdir / "iv-sample.csv")
        iv_s, iv_mem = run(ALPNET + ["score", str(isample), "-o", str(workdir / "out-iv.csv"), "--quiet", "--force",
                                     "--uncertainty", "--draws", str(args.interval_draws)])
        rows_out.append((f"{args.interval_rows:,} (sample of the {min(sizes):,}-row file)",
                         f"+ --uncertainty --draws {args.interval_draws}", fmt_time(iv_s),
                         f"{args.interval_rows / max(iv_s - start_s, 1e-9):,.1f}", f"{iv_mem / 1024**2:.0f} MB"))
    rates = []
    for n in sizes:
        path = simulated(workdir, n)
        runs = [run(ALPNET + ["score", str(path), "-o", str(workdir / f"out-{n}.csv"), "--quiet", "--force",
                              "--chunk-size", str(args.chunk_size)])
                for _ in range(max(args.repeat, 1) if n <= args.repeat_max_rows else 1)]
        wall = float(np.median([t for t, _ in runs]))
        mem = max(m for _, m in runs)
        run_rates = [n / max(t - start_s, 1e-9) for t, _ in runs]
        rate = float(np.median(run_rates))
        rates.append(rate)
        rows_out.append((f"{n:,}", f"posteriors{ENGINE}" + (f", median of {len(runs)} runs" if len(runs) > 1 else ""),
                         fmt_time(wall), f"{rate:,.0f}" + spread(run_rates, lambda r: f"{r:,.0f}"),
                         f"{mem / 1024**2:.0f} MB"))
        if n == min(sizes) and COMPILED:  # the same file on the numpy engine, for comparison
            plain_start, _ = run(ALPNET + ["score", str(one), "-o", str(workdir / "out-one.csv"), "--quiet", "--force"],
                                 env={"ALPNET_COMPILED": "0"})
            wall0, mem0 = run(ALPNET + ["score", str(path), "-o", str(workdir / f"out-{n}.csv"), "--quiet", "--force",
                                        "--chunk-size", str(args.chunk_size)], env={"ALPNET_COMPILED": "0"})
            rows_out.append((f"{n:,}", "posteriors, numpy engine (ALPNET_COMPILED=0)", fmt_time(wall0),
                             f"{n / max(wall0 - plain_start, 1e-9):,.0f}", f"{mem0 / 1024**2:.0f} MB"))
        what = (f"+ --next-test (extrapolated from {args.next_test_rows} rows)" if nt_rate == nt_rate else
                "+ --next-test: no slower than without it on the sample (no test left to rank: every cell filled)")
        rows_out.append((f"{n:,}", what,
                         fmt_time(wall + n / nt_rate) if nt_rate == nt_rate else "-",
                         f"{1 / (1 / rate + 1 / nt_rate):,.1f}" if nt_rate == nt_rate else "-",
                         f"{nt_mem / 1024**2:.0f} MB (on the sample)"))
    base_path = simulated(workdir, min(sizes))
    per_row, used = pgmpy_baseline(base_path, args.baseline_rows)
    rows_out.append((f"{used:,} (sample of the {min(sizes):,}-row file)", "pgmpy VariableElimination loop, posteriors",
                     fmt_time(per_row * used), f"{1 / per_row:,.0f}", "-"))

    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, pgmpy {__import__('pgmpy').__version__}, alpnet {alpnet.__version__}; "
          f"files: alpnet simulate --seed 1 --missing {MISSING:g}; chunk size {args.chunk_size}"
          + (f"; --repeat {args.repeat} (files up to {args.repeat_max_rows:,} rows)" if args.repeat > 1 else ""))
    print("\n| rows | what | wall time | rows/s | peak memory (RSS) |")
    print("|---|---|---|---|---|")
    for r in rows_out:
        print("| " + " | ".join(r) + " |")
    print(f"\nalpnet posteriors vs the pgmpy loop: {min(rates) * per_row:.1f}x (slowest size) to "
          f"{max(rates) * per_row:.1f}x (fastest size).")


if __name__ == "__main__":
    main()

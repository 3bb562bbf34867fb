"""Command-line commands for analysts: sensitivity, and uncertainty on ``diagnose``."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["register", "cmd_sensitivity", "uncertainty_record", "print_uncertainty"]


def _fmt(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.4g}"


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from .cli import EXIT_OK, _load, _one_case, _write_atomic
    from .errors import AlpnetError
    from .model import DISCLAIMER
    from .sensitivity import sensitivity

    if args.top < 1:
        raise AlpnetError(f"--top {args.top}: must be >= 1")
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise AlpnetError(f"--plot {args.plot}: accepted file types: .png, .svg, .pdf")
    if args.plot and Path(args.plot).exists() and not args.force:
        raise AlpnetError(f"{args.plot}: already exists; use --force to replace it")
    model = _load(args)
    case, evidence = _one_case(args, model)
    result = sensitivity(model, evidence, cause=args.cause)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from .tornado import plot_tornado

        ax = plot_tornado(result, top=args.top, cause_label=model.label(result.cause))
        buf = io.BytesIO()
        ax.figure.savefig(buf, format=Path(args.plot).suffix.lower().lstrip("."), dpi=120)
        _write_atomic(Path(args.plot), buf.getvalue(), args.force)
    if args.format == "json":
        rec = {"case_id": case.id, **result.to_dict(top=args.top), "model": model.version_info,
               "disclaimer": DISCLAIMER}
        print(json.dumps(rec))
        return EXIT_OK
    df = result.table
    print(f"case {case.id}: sensitivity of P({result.cause} | evidence) = {result.posterior:.4g}; "
          f"leading cause {result.leading_cause}")
    n_none = int((df["effect"] == "none").sum())
    print(f"  {len(df)} parameters; {n_none} cannot move it (they feed only findings not observed)")
    print(f"  {'parameter':58s} {'value':>8s} {'range':>17s} {'P at low':>9s} {'P at high':>9s} "
          f"{'dP/dx':>9s} {'leader holds for x in':>24s}  source")
    for r in df.head(args.top).itertuples():
        rng = f"[{r.low:.3g}, {r.high:.3g}]"
        held = f"[{_fmt(r.admissible_low)}, {_fmt(r.admissible_high)}]"
        flag = "" if r.exact_form else " (piecewise)"
        print(f"  {r.parameter[:58]:58s} {r.value:8.3g} {rng:>17s} {_fmt(r.posterior_low):>9s} "
              f"{_fmt(r.posterior_high):>9s} {_fmt(r.sensitivity_value):>9s} {held:>24s}  {r.source}{flag}")
    if model.version_info.get("overrides"):
        print("  overrides: " + ", ".join(f"{k}={v}" for k, v in model.version_info["overrides"].items()))
    print(DISCLAIMER)
    return EXIT_OK


def uncertainty_record(result: Any) -> dict[str, Any]:
    """The ``uncertainty`` member of ``diagnose --format json``."""
    return result.to_dict()


def print_uncertainty(model: Any, result: Any, out: Any = sys.stdout) -> None:
    """Credible intervals as a text table under the diagnose table."""
    pct = int(round(result.level * 100))
    print(f"  {pct}% credible intervals from {result.draws} parameter draws (seed {result.seed}):", file=out)
    for r in result.posteriors.itertuples():
        if r.high < 0.001 and r.posterior < 0.001:
            continue
        print(f"    {r.cause:32s} {r.posterior:8.3f}  [{r.low:.3f}, {r.high:.3f}]  leads in {r.p_leading:.0%}",
              file=out)
    print(f"  the leading cause ({result.leading_cause}) stays on top in {result.leading_stays:.0%} of draws",
          file=out)
    if result.best_test:
        print(f"  best next test {result.best_test} stays best in {result.best_test_stays:.0%} of draws; "
              "information gain:", file=out)
        for r in result.gains.itertuples():
            print(f"    {r.test:20s} {r.expected_information_gain_bits:.3f} bits  [{r.low:.3f}, {r.high:.3f}]",
                  file=out)
    print(file=out)


def register(sub: Any, common: Callable[..., None], one_case: Callable[..., None]) -> None:
    """Add the analysts' subcommands to the ``alpnet`` parser."""
    s = sub.add_parser("sensitivity", help="exact one-way sensitivity of a posterior to every parameter (tornado)")
    one_case(s)
    s.add_argument("--cause", metavar="CAUSE", help="the cause whose posterior is analysed (default: the leading one)")
    s.add_argument("--top", type=int, default=20, help="parameters to show (default 20)")
    s.add_argument("--format", choices=["table", "json"], default="table")
    s.add_argument("--plot", metavar="FILE.png", help="write a tornado plot")
    s.add_argument("--force", action="store_true", help="replace the plot file if it exists")
    common(s)
    s.set_defaults(func=cmd_sensitivity)

"""Command-line entry points for analysts: ``sensitivity``, uncertainty on ``diagnose``,
``evaluate``, ``calibrate``, ``priors diff``.

Thin: parse, call :mod:`alpnet.sensitivity`, :mod:`alpnet.evaluate`,
:mod:`alpnet.calibrate`, :mod:`alpnet.priors_diff`, print. Registered by
:func:`register` and :func:`register_sensitivity` from :func:`alpnet.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import AlpnetError

EXIT_OK, EXIT_INPUT = 0, 2


def _report_rows(errors) -> None:
    """Every bad row on stderr, one line each: row, case id, column, value, reason."""
    for r in errors.itertuples(index=False):
        where = f"row {r.row}" + (f" ({r.case_id})" if r.case_id else "")
        col = f", column {r.column}" if r.column else ""
        val = f", value {r.value!r}" if r.value not in ("", None) else ""
        sys.stderr.write(f"alpnet: {where}{col}{val}: {r.reason}\n")


def _json_default(x: Any) -> Any:
    import numpy as np

    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return None if np.isnan(x) else float(x)
    return str(x)


# --------------------------------------------------------------------------- evaluate


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .cli import _load, _write_atomic
    from .evaluate import LabelError, evaluate, format_table, read_labelled
    from .model import DISCLAIMER

    plot_path = None
    if args.plot:  # before the work: DIR is an existing folder, or a new one in an existing folder
        from .tableio import check_not_input, check_output_path

        plot_dir = Path(args.plot)
        if plot_dir.exists() and not plot_dir.is_dir():
            raise AlpnetError(f"--plot {plot_dir}: exists and is not a folder")
        plot_path = plot_dir / "reliability.png"
        check_not_input(plot_path, "--plot", [args.labelled])
        if plot_dir.is_dir():
            check_output_path(plot_path, force=args.force)
        else:
            check_output_path(plot_dir, force=False)  # created at the end, one level only
    try:
        frame = read_labelled(args.labelled)
        if len(frame) == 0:
            raise AlpnetError(f"{args.labelled}: no data rows under the header; nothing to evaluate")
        model = _load(args)
        result = evaluate(model, frame, bootstrap=args.bootstrap, seed=args.seed, bins=args.bins)
    except LabelError as exc:
        _report_rows(exc.errors)
        raise AlpnetError(f"{args.labelled}: {exc}") from None
    if plot_path is not None:  # everything is computed: now write
        import io

        from .plot_reliability import reliability_grid

        info = model.version_info
        fig = reliability_grid(result.calibration, model.causes, labels={c: model.label(c) for c in model.causes},
                               footer=f"alpnet {info['version']}, priors {info['priors_sha256'][:12]}"
                                      + (f", overrides {info['overrides']}" if info.get("overrides") else "")
                                      + " - " + DISCLAIMER)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        import matplotlib.pyplot as plt

        plt.close(fig)
        made = not plot_path.parent.is_dir()
        try:
            plot_path.parent.mkdir(exist_ok=True)  # never a folder tree: its parent was checked above
        except OSError as exc:
            raise AlpnetError(f"--plot {plot_path.parent}: cannot create the folder ({exc.strerror})") from None
        try:
            _write_atomic(plot_path, buf.getvalue(), args.force)
        except BaseException:
            if made:  # leave no empty folder behind
                with contextlib.suppress(OSError):
                    plot_path.parent.rmdir()
            raise
        sys.stderr.write(f"wrote {plot_path}\n")
    if args.format == "json":
        out = result.to_dict()
        out["disclaimer"] = DISCLAIMER
        print(json.dumps(out, default=_json_default))
    else:
        print(format_table(result))
        info = result.model
        print(f"model: alpnet {info['version']}, priors {info['priors_sha256'][:12]}"
              + (f", overrides {info['overrides']}" if info.get("overrides") else ""))
        print(DISCLAIMER)
    return EXIT_OK


# --------------------------------------------------------------------------- register


def register(sub: argparse._SubParsersAction, priors_sub: argparse._SubParsersAction,
             common: Callable[..., None]) -> None:
    """Add ``evaluate``, ``calibrate`` and ``priors diff`` to the parser."""
    from .cli import _whole_flag
    ev = sub.add_parser("evaluate", help="score labelled cases: Brier, log loss, ROC AUC, top-k, calibration",
                        description="Score labelled cases and measure the posteriors: Brier score, log loss, ROC "
                                    "AUC, top-1/top-3 accuracy and a calibration table. Every row must be valid: "
                                    "one bad row (a case value or a label) stops the command with exit code 2, "
                                    "every bad row listed on stderr, and nothing is evaluated (unlike `alpnet "
                                    "score`, which scores the good rows and lists the bad ones). A table with no "
                                    "data rows is refused too.")
    ev.add_argument("labelled", metavar="LABELLED", help="CSV or Parquet in the batch layout with cause.<name> 0/1 "
                    "columns (what `alpnet simulate` writes)")
    ev.add_argument("--format", choices=["table", "json"], default="table")
    ev.add_argument("--plot", metavar="DIR", help="write DIR/reliability.png (a reliability diagram per cause); "
                    "DIR is an existing folder, or a new one inside an existing folder")
    _whole_flag(ev, "--bootstrap", low=0, high=10_000, default=1000, metavar="N",
                help="bootstrap resamples (default 1000; 0: none; at most 10,000)")
    _whole_flag(ev, "--seed", low=0, default=0, metavar="S", help="bootstrap seed (default 0)")
    _whole_flag(ev, "--bins", low=1, default=10, metavar="B", help="calibration bins (default 10)")
    ev.add_argument("--force", action="store_true", help="replace DIR/reliability.png if it exists")
    common(ev)
    ev.set_defaults(func=cmd_evaluate)

    ca = sub.add_parser("calibrate", help="Bayesian update of the priors from labelled cases into a NEW prior set",
                        description="Bayesian (MAP) update of the prior set's parameters from labelled cases, "
                                    "written as a NEW prior-set folder; the labelled file and the input prior set "
                                    "are only read. Every row must be valid: one bad row (a case value or a "
                                    "label) stops the command with exit code 2, every bad row listed on stderr, "
                                    "and nothing is calibrated (unlike `alpnet score`, which scores the good rows "
                                    "and lists the bad ones). A table with no data rows is refused too.")
    ca.add_argument("labelled", metavar="LABELLED", help="CSV or Parquet with cause.<name> 0/1 columns")
    ca.add_argument("--strength", type=float, required=True, metavar="K",
                    help="equivalent sample size of the prior set's values (pseudo-counts per parameter column)")
    ca.add_argument("--out", required=True, metavar="DIR",
                    help="the new prior-set folder (must not exist, and may not be, hold or lie in LABELLED or "
                         "the --priors folder)")
    ca.add_argument("--force", action="store_true",
                    help="replace DIR if it is a prior set an earlier `alpnet calibrate` wrote (any other folder "
                         "is refused)")
    ca.add_argument("--max-iter", type=int, default=20, metavar="N", help="EM iterations at most (default 20)")
    ca.add_argument("--only", action="append", metavar="VARIABLE",
                    help="update only this variable's parameters (repeatable; default: every variable); a "
                         "variable of the prior set, e.g. paget, ggt, age")
    ca.add_argument("--format", choices=["table", "json"], default="table")
    ca.add_argument("--show", type=int, default=20, metavar="N", help="largest changes listed (default 20; 0: none)")
    ca.add_argument("--priors", metavar="DIR", help="the prior set to start from (default: the bundled set)")
    ca.set_defaults(func=cmd_calibrate)

    di = priors_sub.add_parser("diff", help="changed parameters between two prior sets and their effect on the "
                               "bundled example cases")
    di.add_argument("a", metavar="A", help="a prior-set folder (or 'bundled')")
    di.add_argument("b", metavar="B", help="a prior-set folder (or 'bundled')")
    di.add_argument("--format", choices=["table", "json"], default="table")
    di.add_argument("--no-examples", action="store_true", help="only list the changed parameters")
    di.add_argument("--param", action="append", metavar="ID=VALUE",
                    help="override one parameter of B (repeatable): `priors diff bundled bundled --param ...` "
                         "shows what an override does; recorded in the output")
    di.set_defaults(func=cmd_priors_diff)


# --------------------------------------------------------------------------- calibrate


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate, check_output_folder, check_variables, write_prior_set
    from .evaluate import LabelError, read_labelled
    from .model import DISCLAIMER, load_model
    from .priors import bundled_priors_path

    if not args.strength > 0:
        raise AlpnetError(f"--strength must be > 0; got {args.strength:g} instead")
    if args.max_iter < 1:
        raise AlpnetError(f"--max-iter must be >= 1; got {args.max_iter} instead")
    if args.show < 0:
        raise AlpnetError(f"--show {args.show}: must be a whole number >= 0")
    # before the slow work: --out may not be, hold or lie in an input, and --force replaces only
    # a prior set that calibrate wrote
    out = check_output_folder(args.out, force=args.force, labelled=args.labelled,
                              priors=args.priors if args.priors else bundled_priors_path())
    try:
        model = load_model(args.priors)
        check_variables(model.priors, args.only or [])
        frame = read_labelled(args.labelled)
        if len(frame) == 0:
            raise AlpnetError(f"{args.labelled}: no data rows under the header; nothing to calibrate on")
        result = calibrate(model, frame, strength=args.strength, max_iter=args.max_iter, variables=args.only)
    except LabelError as exc:
        _report_rows(exc.errors)
        raise AlpnetError(f"{args.labelled}: {exc}") from None
    import shlex

    parts = ["alpnet", "calibrate", args.labelled, "--strength", f"{args.strength:g}", "--out", args.out,
             "--max-iter", str(args.max_iter)] + (["--priors", args.priors] if args.priors else []) \
        + [x for v in (args.only or []) for x in ("--only", v)] \
        + (["--force"] if args.force else [])
    command = " ".join(shlex.quote(str(x)) for x in parts)
    write_prior_set(result, model.priors, out, force=args.force, data_path=args.labelled, command=command)
    changed = result.changed
    if args.format == "json":
        print(json.dumps({"out": str(out), "rows": result.n_rows, "strength": result.strength,
                          "iterations": result.iterations, "converged": result.converged,
                          "parent_sha256": model.priors.sha256,
                          "changed": changed[["id", "old", "new", "expected_count", "source"]].to_dict("records"),
                          "disclaimer": DISCLAIMER}, default=_json_default))
    else:
        print(f"{len(changed)} parameter(s) changed ({result.n_rows} rows, K={result.strength:g}, "
              f"{result.iterations} EM iteration(s){'' if result.converged else ', not converged'}):")
        top = changed.reindex(changed["change"].abs().sort_values(ascending=False).index)
        for r in top.head(args.show).itertuples(index=False):
            print(f"  {r.id:60s} {r.old:<10.4g} -> {r.new:<10.4g} (expected count {r.expected_count:.1f}, {r.source})")
        if len(changed) > args.show:
            print(f"  ... and {len(changed) - args.show} more in {out / 'manifest.json'}")
        print(f"wrote {out} (manifest.json lists every parameter); load it with --priors {out}")
        print(DISCLAIMER)
    return EXIT_OK


# --------------------------------------------------------------------------- priors diff


def cmd_priors_diff(args: argparse.Namespace) -> int:
    from .model import DISCLAIMER
    from .priors_diff import diff_priors, format_diff

    from .cli import _parse_params

    result = diff_priors(args.a, args.b, examples=not args.no_examples, overrides_b=_parse_params(args.param))
    if args.format == "json":
        out = result.to_dict()
        out["disclaimer"] = DISCLAIMER
        print(json.dumps(out, default=_json_default))
    else:
        print(format_diff(result))
        print(DISCLAIMER)
    return EXIT_OK


# --------------------------------------------------------------------------- sensitivity, uncertainty


def _fmt(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.4g}"


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from .cli import EXIT_OK, _load, _one_case, _write_atomic
    from .errors import AlpnetError
    from .model import DISCLAIMER
    from .sensitivity import sensitivity

    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise AlpnetError(f"--plot {args.plot}: accepted file types: .png, .svg, .pdf")
    if args.plot:  # before the work; the case file is never overwritten, even with --force
        from .tableio import check_not_input, check_output_path

        check_not_input(Path(args.plot), "--plot", [args.case])
        check_output_path(Path(args.plot), force=args.force)
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


def register_sensitivity(sub: Any, common: Callable[..., None], one_case: Callable[..., None]) -> None:
    """Add ``sensitivity`` to the ``alpnet`` parser."""
    from .cli import _whole_flag
    s = sub.add_parser("sensitivity", help="exact one-way sensitivity of a posterior to every parameter (tornado)")
    one_case(s)
    s.add_argument("--cause", metavar="CAUSE", help="the cause whose posterior is analysed (default: the leading one)")
    _whole_flag(s, "--top", low=1, default=20, help="parameters to show (default 20)")
    s.add_argument("--format", choices=["table", "json"], default="table")
    s.add_argument("--plot", metavar="FILE.png", help="write a tornado plot")
    s.add_argument("--force", action="store_true", help="replace the plot file if it exists (never the case file)")
    common(s)
    s.set_defaults(func=cmd_sensitivity)

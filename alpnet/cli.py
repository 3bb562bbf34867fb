"""The ``alpnet`` command line. Thin: parses, calls the public API, prints.

Exit codes (case-format.md §2): 0 success; 2 the input (a case, a file, a flag)
is wrong and nothing was computed; 1 reserved for a batch that finished with
failed rows (and for an internal error, reported in one line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .formatting import percent as _pct
from . import __version__
from .errors import AlpnetError

if TYPE_CHECKING:  # pragma: no cover
    from .batch import CredibleIntervals

EXIT_OK, EXIT_PARTIAL, EXIT_INPUT = 0, 1, 2

MAX_DRAWS = 10_000  # diagnose --uncertainty takes about 0.06 s a draw, score about 0.7 ms a row a draw
MAX_PLAN_DEPTH = 5  # each level multiplies a plan's work about fourfold: depth 5 can take a minute or two
CLI_SCENARIO = "command line"  # what-if: the name of the --set/--unset changes next to --scenarios

# A flag that does nothing without another: dest -> (flag, the dest it needs, that flag).
_NEEDS = {"draws": ("--draws", "uncertainty", "--uncertainty"), "seed": ("--seed", "uncertainty", "--uncertainty"),
          "level": ("--level", "uncertainty", "--uncertainty"), "plot_network": ("--plot-network", "plot", "--plot")}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump noise
        sys.stderr.write(f"alpnet: error: {message} (see: {self.prog} --help)\n")
        sys.exit(EXIT_INPUT)


def _whole_flag(p: argparse.ArgumentParser, *names: str, low: int = 1, high: int | None = None,
                **kwargs: Any) -> None:
    """Add a whole-number flag; :func:`_check_flags` refuses a value outside ``[low, high]`` before any work."""
    action = p.add_argument(*names, type=int, **kwargs)
    bounds = dict(p.get_default("_whole") or {})
    bounds[action.dest] = (names[-1], low, high)
    p.set_defaults(_whole=bounds)


def _check_flags(args: argparse.Namespace) -> None:
    """The checks every command shares, before anything is read or computed: whole-number
    flags within their bounds, and no flag given without the flag it belongs to."""
    for dest, (flag, low, high) in (getattr(args, "_whole", None) or {}).items():
        value = getattr(args, dest)
        if value is None:
            continue
        if value < low or (high is not None and value > high):
            accepted = f">= {low}" if high is None else f"from {low} to {high:,}"
            raise AlpnetError(f"{flag} {value}: must be a whole number {accepted}")
    for dest, (flag, parent, parent_flag) in _NEEDS.items():
        given = getattr(args, dest, None)
        if given is not None and given is not False and hasattr(args, parent) and not getattr(args, parent):
            shown = "" if given is True else f" {given}"
            raise AlpnetError(f"{flag}{shown}: only used with {parent_flag}; add {parent_flag} or drop {flag}")


def _no_repeats(flag: str, keys: Sequence[str]) -> None:
    """Refuse a key given twice to a repeatable flag (the last one would silently win)."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise AlpnetError(f"{flag} {key}: given twice; give each key once")
        seen.add(key)


def _parse_params(items: Sequence[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        pid, sep, value = item.rpartition("=")  # ids contain "=" (paget.baseline[age=70_plus])
        if not sep or not pid:
            raise AlpnetError(f"--param {item!r}: expected ID=VALUE, e.g. --param 'paget.link[...]=0.2'")
        try:
            out[pid.strip()] = float(value)
        except ValueError:
            raise AlpnetError(f"--param {item!r}: {value!r} is not a number") from None
    return out


def _load(args: argparse.Namespace):
    from .model import load_model

    return load_model(args.priors, overrides=_parse_params(getattr(args, "param", None)))


def _write_atomic(path: Path, text: str | bytes, force: bool) -> None:
    """Write a file atomically; refuse to replace an existing one unless forced."""
    from .tableio import check_output_path

    check_output_path(path, force=force)
    parent = path.parent if str(path.parent) else Path(".")
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, not mkstemp's owner-only mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- diagnose




def _bar(p: float, width: int = 20) -> str:
    n = int(round(p * width))
    return "#" * n + "." * (width - n)


def _diagnose_record(model, case, table, mappings, show_states: bool) -> dict[str, Any]:
    from .model import DISCLAIMER

    rec: dict[str, Any] = {
        "case_id": case.id,
        "posterior": {r.cause: r.posterior for r in table.itertuples()},
        "prior": {r.cause: r.prior for r in table.itertuples()},
        "leading_cause": table.attrs["leading_cause"],
        "leak": table.attrs["leak"],
        "evidence": table.attrs["evidence"],
        "model": table.attrs["model"],
        "disclaimer": DISCLAIMER,
    }
    if show_states:
        rec["states"] = [m.as_dict() for m in mappings]
    unused = [{"key": m.key, "input": m.input, "note": m.note} for m in mappings if not m.states]
    if unused:
        rec["unused"] = unused
    return rec


def _print_table(model, case, table, mappings, show_states: bool, out) -> None:
    info = table.attrs["model"]
    head = f"case {case.id}   (alpnet {info['version']}, priors {info['priors_sha256'][:12]}"
    if info.get("overrides"):
        head += ", overrides: " + ", ".join(f"{k}={v}" for k, v in info["overrides"].items())
    print(head + ")", file=out)
    if show_states:
        print("  how the case was read:", file=out)
        for m in mappings:
            val = f"{m.value:g} {m.unit}" if m.value is not None else ""
            ref = f"  [{m.reference}]" if m.reference else ""
            note = f"  ({m.note})" if m.note else ""
            print(f"    {m.key:28s} {m.input!s:>18s}  {val:>16s} -> {' | '.join(m.states) or '-'}{ref}{note}",
                  file=out)
    def short(label: str) -> str:
        return label.split(" (")[0]

    width = max(len(f"{short(r.label)} ({r.cause})") for r in table.itertuples())
    print(f"  {'cause':{width}s}  {'prior':>7s}  {'posterior':>9s}", file=out)
    for r in table.itertuples():
        name = f"{short(r.label)} ({r.cause})"
        print(f"  {name:{width}s}  {_pct(r.prior):>7s}  {_pct(r.posterior):>9s}  {_bar(r.posterior)}", file=out)
    lead = table.attrs["leading_cause"]
    print(f"  leading cause: {model.label(lead)} ({lead})", file=out)
    for leak, p in table.attrs["leak"].items():
        print(f"  {model.label(leak)} ({leak}, not a cause): {_pct(p)}", file=out)
    if not show_states:  # (--show-states lists them with the rest)
        for m in mappings:
            if not m.states:
                print(f"  {m.key} = {m.input}: {m.note}", file=out)
    print(file=out)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .evidence import read_case
    from .examples import example_path
    from .model import DISCLAIMER

    paths = list(args.cases) + [str(example_path(n)) for n in args.example or []]
    if not paths:
        raise AlpnetError("diagnose: give one or more case files (or --example NAME)")
    plot = _plot_target(args, paths)
    if plot is not None and len(paths) > 1:
        raise AlpnetError(f"--plot {args.plot}: draws one case; got {len(paths)} cases")
    intervals = _intervals_from_flags(args)
    model = _load(args)
    prepared = []
    for p in paths:  # read and map every case first: nothing is computed if one is wrong
        case = read_case(p)
        try:
            ev, mappings = model.evidence_of(case)
            table = model.diagnose(evidence=ev)
        except AlpnetError as exc:
            raise AlpnetError(f"{p}: {exc}") from None
        prepared.append((case, table, mappings))
    uncertain = {}
    if intervals is not None:
        from .uncertainty import posterior_uncertainty

        for case, table, _ in prepared:
            uncertain[id(case)] = posterior_uncertainty(model, table.attrs["evidence"], draws=intervals.draws,
                                                        seed=intervals.seed, level=intervals.level)
    out = sys.stdout
    if args.format == "json":
        for case, table, mappings in prepared:
            rec = _diagnose_record(model, case, table, mappings, args.show_states)
            if id(case) in uncertain:
                rec["uncertainty"] = uncertain[id(case)].to_dict()
            print(json.dumps(rec), file=out)
    else:
        from .cli_analysts import print_uncertainty

        for case, table, mappings in prepared:
            _print_table(model, case, table, mappings, args.show_states, out)
            if id(case) in uncertain:
                print_uncertainty(model, uncertain[id(case)], out)
        print(DISCLAIMER, file=out)
    if plot is not None:
        _use_agg()
        from .plots import plot_network, plot_posterior

        case, table, _ = prepared[0]
        if args.plot_network:
            ax = plot_network(model, table.attrs["evidence"], posterior=dict(zip(table["cause"], table["posterior"])))
        else:
            ax = plot_posterior(table, title=f"Case {case.id}: probability of each cause (prior marked)")
        _save_plot(plot, ax, args.force)
    return EXIT_OK


# --------------------------------------------------------------------------- next test / plan


def _case_path(args: argparse.Namespace) -> str:
    """The one case of next-test, plan, what-if, explain: a file or a bundled example."""
    from .examples import example_path

    path = args.case if args.case else (str(example_path(args.example)) if args.example else None)
    if path is None:
        raise AlpnetError(f"{args.command}: give a case file (or --example NAME)")
    return path


def _one_case(args: argparse.Namespace, model):
    from .evidence import read_case

    path = _case_path(args)
    case = read_case(path)
    try:
        evidence, _ = model.evidence_of(case)
    except AlpnetError as exc:
        raise AlpnetError(f"{path}: {exc}") from None
    return case, evidence


def _ranking_records(df) -> list[dict[str, Any]]:
    import math

    out = []
    for r in df.itertuples():
        rec = {"test": r.test, "kind": r.kind, "expected_information_gain_bits": r.expected_information_gain_bits,
               "cost": None if (r.cost is None or (isinstance(r.cost, float) and math.isnan(r.cost))) else r.cost,
               "burden": None if isinstance(r.burden, float) and math.isnan(r.burden) else r.burden,
               "score": r.score, "expected_change_leading": r.expected_change_leading, "outcomes": r.outcomes}
        if not (isinstance(r.gain_per_cost, float) and math.isnan(r.gain_per_cost)):
            rec["gain_per_cost"] = r.gain_per_cost
        if hasattr(r, "second_test"):
            rec["one_step_gain_bits"] = r.one_step_gain_bits
            rec["second_test"] = r.second_test
        out.append(rec)
    return out


def cmd_next_test(args: argparse.Namespace) -> int:
    from .model import DISCLAIMER

    plot = _plot_target(args, [_case_path(args)])
    model = _load(args)
    case, evidence = _one_case(args, model)
    df = model.rank_tests(evidence=evidence, target=args.target, cost_weight=args.cost_weight,
                          lookahead=args.lookahead)
    if plot is not None:
        _use_agg()
        from .plots import plot_next_test

        _save_plot(plot, plot_next_test(df, top=args.top, title=f"Case {case.id}: which test next"), args.force)
    tests, questions = df[df["kind"] == "test"], df[df["kind"] == "question"]
    if args.format == "json":
        rec = {"case_id": case.id, "leading_cause": df.attrs["leading_cause"],
               "leading_probability": df.attrs["leading_probability"], "entropy_bits": df.attrs["entropy_bits"],
               "target": args.target, "cost_weight": args.cost_weight, "lookahead": args.lookahead,
               "currency": df.attrs["currency"], "ranking": _ranking_records(tests),
               "questions": _ranking_records(questions), "model": df.attrs["model"], "disclaimer": DISCLAIMER}
        print(json.dumps(rec))
        return EXIT_OK
    about = f"about {args.target}" if args.target else "about all causes"
    print(f"case {case.id}: leading cause {model.label(df.attrs['leading_cause'])} "
          f"({df.attrs['leading_probability']:.0%}); expected information gain {about}"
          + (", two-step lookahead" if args.lookahead == 2 else "")
          + (f", score = gain - {args.cost_weight:g} x cost" if args.cost_weight else ""))
    cur = df.attrs["currency"] or ""
    print(f"  {'test':18s} {'gain (bits)':>11s} {'cost ' + cur:>10s} {'score':>8s}  what each result would do")
    for r in tests.head(args.top).itertuples():
        outs = "; ".join(f"{s} {o['p']:.0%} -> {next(iter(o['leading']))} {next(iter(o['leading'].values())):.0%}"
                         for s, o in list(r.outcomes.items())[:4])
        cost = f"{r.cost:10.2f}" if r.cost == r.cost else f"{'?':>10s}"
        extra = f"  then {r.second_test}" if args.lookahead == 2 and getattr(r, "second_test", None) else ""
        print(f"  {r.test:18s} {r.expected_information_gain_bits:11.3f} {cost} {r.score:8.3f}  {outs}{extra}")
    if len(questions):
        print("  questions (free, ask first):")
        for r in questions.head(min(args.top, 6)).itertuples():
            print(f"  {r.test:18s} {r.expected_information_gain_bits:11.3f}")
    print(DISCLAIMER)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from .model import DISCLAIMER
    from .next_test import render_plan

    model = _load(args)
    case, evidence = _one_case(args, model)
    plan = model.plan(evidence=evidence, max_depth=args.max_depth, stop_probability=args.stop_probability,
                      min_gain=args.min_gain, budget=args.budget, cost_weight=args.cost_weight)
    if args.format == "json":
        print(json.dumps({"case_id": case.id, **plan, "disclaimer": DISCLAIMER}))
        return EXIT_OK
    print(f"work-up plan for case {case.id}")
    print(render_plan(plan, label=lambda v: v))
    print(DISCLAIMER)
    return EXIT_OK


# --------------------------------------------------------------------------- what-if / explain / plots


def _plot_target(args: argparse.Namespace, inputs: Sequence[str | None]) -> Path | None:
    """Check ``--plot FILE`` before anything is computed: its suffix, that it is none of the
    ``inputs`` (never replaced, not even with --force), and that it can be written (exists
    without --force, a folder, a missing or unwritable folder)."""
    target = getattr(args, "plot", None)
    if not target:
        return None
    from .plots import PLOT_FORMATS
    from .tableio import check_not_input, check_output_path

    path = Path(target)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise AlpnetError(f"--plot {target}: unknown file type {path.suffix or '(none)'!r}; accepted: "
                          + ", ".join(f".{f}" for f in PLOT_FORMATS))
    check_not_input(path, "--plot", inputs)
    try:
        check_output_path(path, force=args.force)
    except AlpnetError as exc:  # its messages start with the path: name the flag too
        raise AlpnetError(f"--plot {exc}") from None
    return path


def _save_plot(path: Path | None, ax, force: bool) -> None:
    if path is None:
        return
    from .plots import figure_bytes

    _write_atomic(path, figure_bytes(ax, path.suffix.lower().lstrip(".")), force)
    print(f"wrote {path}", file=sys.stderr)


def _use_agg() -> None:
    import matplotlib

    matplotlib.use("Agg")


def cmd_what_if(args: argparse.Namespace) -> int:
    from .model import DISCLAIMER
    from .whatif import (Scenario, _record_from_frame, _scenarios_record_from_frame, compare_scenarios,
                         format_scenarios, format_what_if, parse_assignment, read_scenarios, what_if)

    plot = _plot_target(args, [_case_path(args), args.scenarios])
    assignments = [parse_assignment(item) for item in args.set or []]
    unsets = [u.strip() for u in args.unset or []]
    _no_repeats("--set", [key for key, _ in assignments])
    _no_repeats("--unset", unsets)
    sets = dict(assignments)
    scenarios = read_scenarios(args.scenarios) if args.scenarios else None
    if not scenarios and not sets and not unsets:
        raise AlpnetError("what-if: nothing to change; give --set KEY=VALUE, --unset KEY or --scenarios FILE")
    if scenarios and (sets or unsets) and any(s.name == CLI_SCENARIO for s in scenarios):
        raise AlpnetError(f"--scenarios {args.scenarios}: a scenario is named {CLI_SCENARIO!r}, the name of the "
                          "--set/--unset changes; rename it (scenario names must differ)")
    model = _load(args)
    case, _ = _one_case(args, model)
    if scenarios:
        if sets or unsets:
            scenarios = [Scenario(CLI_SCENARIO, sets, unsets)] + scenarios
        df = compare_scenarios(model, case, scenarios)
        if args.format == "json":
            print(json.dumps(_scenarios_record_from_frame(df, DISCLAIMER)))
        else:
            print(format_scenarios(df, model))
            print(DISCLAIMER)
    else:
        df = what_if(model, case, set=sets, unset=unsets)
        if args.format == "json":
            print(json.dumps(_record_from_frame(df, DISCLAIMER)))
        else:
            print(format_what_if(df, model))
            print(DISCLAIMER)
    if plot is not None:
        _use_agg()
        from .plots import plot_what_if

        _save_plot(plot, plot_what_if(df), args.force)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain, format_explanation
    from .model import DISCLAIMER

    plot = _plot_target(args, [_case_path(args)])
    model = _load(args)
    case, _ = _one_case(args, model)
    ex = explain(model, case, cause=args.cause, versus=args.versus, top=args.top, method=args.method)
    if args.format == "json":
        rec = ex.to_record()
        rec["disclaimer"] = DISCLAIMER
        print(json.dumps(rec))
    else:
        print(format_explanation(ex))
        print(DISCLAIMER)
    if plot is not None:
        _use_agg()
        from .plots import plot_waterfall

        _save_plot(plot, plot_waterfall(ex), args.force)
    return EXIT_OK


# --------------------------------------------------------------------------- priors


def cmd_priors_report(args: argparse.Namespace) -> int:
    from .provenance import priors_report
    from .priors import load_priors

    report = priors_report(load_priors(args.priors))
    if args.format == "json":
        print(json.dumps(report, indent=1))
        return EXIT_OK
    for row in report["table"]:
        rng = f"[{row['range'][0]:g}, {row['range'][1]:g}]"
        print(f"{row['id']:60s} {row['value']:<10.4g} {rng:20s} {row['source']}")
    t = report
    print(f"\n{t['parameters']} parameters: {t['literature']} from the literature, "
          f"{t['expert_judgment']} expert judgment, {t['by_definition']} by definition; "
          f"{t['sources']} sources. Prior set {report['priors_sha256'][:12]}.")
    from .model import DISCLAIMER

    print(DISCLAIMER)
    return EXIT_OK


def cmd_priors_validate(args: argparse.Namespace) -> int:
    from .priors import load_priors

    pset = load_priors(args.priors)
    print(f"{pset.path}: valid ({len(pset.parameters)} parameters, {len(pset.sources)} sources, "
          f"sha256 {pset.sha256[:12]})")
    return EXIT_OK


# --------------------------------------------------------------------------- export / schema / cases


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise AlpnetError(f"{out}: already exists; use --force to replace it")
    model = _load(args)
    from .network import write_network

    text = write_network(model.to_pgmpy(), args.format)
    _write_atomic(out, text, args.force)
    print(f"wrote {out} ({args.format}, {len(model.priors.variables)} variables)", file=sys.stderr)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .priors import load_priors
    from .schema import case_schema

    text = json.dumps(case_schema(load_priors(args.priors)), indent=2) + "\n"
    if args.output:
        _write_atomic(Path(args.output), text, args.force)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_cases(args: argparse.Namespace) -> int:
    import textwrap

    from .examples import example_path, teaching_cases
    from .model import DISCLAIMER

    table = teaching_cases()
    if getattr(args, "name", None):
        example_path(args.name)  # names the accepted ones when unknown
        table = table[table["name"] == args.name]
    if getattr(args, "format", "table") == "json":
        for row in table.to_dict(orient="records"):
            print(json.dumps(dict(row, disclaimer=DISCLAIMER)))
        return EXIT_OK
    wrap = textwrap.TextWrapper(width=100, initial_indent="    ", subsequent_indent="    ")
    for row in table.itertuples():
        print(f"{row.name:40s} {row.expected_cause or '':32s} {row.title or ''}")
        if getattr(args, "name", None):
            for heading, text in (("narrative", row.narrative), ("teaching point", row.teaching_point)):
                print(f"  {heading}:")
                print(wrap.fill(str(text or "")))
            print("  expected reasoning:")
            for i, step in enumerate(row.expected_reasoning or [], start=1):
                print(textwrap.fill(step, width=100, initial_indent=f"    {i}. ", subsequent_indent="       "))
            print(f"  key findings: {', '.join(row.key_findings or [])}")
            print("  source:")
            print(wrap.fill(str(row.source or "")))
        else:
            print(wrap.fill(f"teaching point: {row.teaching_point or ''}"))
    print(DISCLAIMER)
    return EXIT_OK


# --------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import require_serve_extra, serve

    require_serve_extra()  # before the model loads: say at once what is missing
    if not 0 < args.port < 65536:
        raise AlpnetError(f"--port {args.port}: accepted: 1 to 65535")
    model = _load(args)
    print(f"alpnet explorer on http://{args.host}:{args.port}/  (API: /openapi.json; Ctrl+C stops it)",
          file=sys.stderr)
    serve(model, host=args.host, port=args.port)
# --------------------------------------------------------------------------- batch scoring / simulation


def _intervals_from_flags(args: argparse.Namespace) -> "CredibleIntervals | None":
    """``--uncertainty --draws --seed --level`` as a CredibleIntervals (None without
    ``--uncertainty``); a bad value is an input error naming the flag."""
    if not args.uncertainty:
        return None
    from .batch import CredibleIntervals

    # the flags default to None (so that one given without --uncertainty is seen): CredibleIntervals
    # holds the defaults, and checks the values
    given = {k: getattr(args, k) for k in ("draws", "seed", "level")}
    return CredibleIntervals(**{k: v for k, v in given.items() if v is not None})


def cmd_score(args: argparse.Namespace) -> int:
    from .batch_file import DEFAULT_CHUNK_SIZE, check_paths, prepare, score_file
    from .model import DISCLAIMER

    intervals = _intervals_from_flags(args)
    if args.scheduler and args.engine != "dask":
        raise AlpnetError("--scheduler needs --engine dask")
    if args.engine == "dask":
        from .batch_dask import require_dask

        require_dask()
    check_paths(args.input, args.output, errors_path=args.errors, force=args.force)  # before the slow load
    model = _load(args)
    plan, errors_path = prepare(args.input, args.output, errors_path=args.errors, force=args.force, pset=model.priors)
    say = (lambda text: None) if args.quiet else (lambda text: sys.stderr.write(text + "\n"))
    if plan.passthrough:
        say(f"passing through {len(plan.passthrough)} column(s) that are not case keys: {', '.join(plan.passthrough)}")
    from .schema import QUALIFIES

    for lab, needs in QUALIFIES.items():  # a column that only qualifies another, which the file lacks
        key, needs = f"labs.{lab}", f"labs.{needs}"
        if key in plan.column_of and needs not in plan.column_of:
            say(f"column {plan.column_of[key]} ({key}) is not used: it only qualifies {needs}, which the file has "
                f"no column for")
    bar = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm  # installed with pgmpy

        from .tableio import count_rows

        bar = tqdm(total=count_rows(args.input), unit="rows", file=sys.stderr, dynamic_ncols=True,
                   desc="scoring", smoothing=0.1)
    try:
        summary = score_file(model, args.input, args.output, next_test=args.next_test, intervals=intervals,
                             errors_path=errors_path,
                             force=args.force,
                             chunk_size=DEFAULT_CHUNK_SIZE if args.chunk_size is None else args.chunk_size,
                             engine=args.engine,
                             scheduler=args.scheduler, progress=bar.update if bar is not None else None,
                             model_spec=(args.priors, _parse_params(getattr(args, "param", None))), plan=plan)
    finally:
        if bar is not None:
            bar.close()
    info = model.version_info
    say(f"wrote {summary.output}: {summary.rows} row(s) scored with alpnet {info['version']}, "
        f"priors {info['priors_sha256'][:12]}" + (f", overrides {info['overrides']}" if info.get("overrides") else ""))
    if intervals is not None:
        say(f"credible intervals: central {intervals.level:.0%} of {intervals.draws} parameter draws, "
            f"seed {intervals.seed}")
    say(DISCLAIMER)
    if summary.failed:
        sys.stderr.write(f"alpnet: {summary.failed} of {summary.rows} row(s) failed and have empty results; "
                         f"see {summary.errors_path} (row, column, value, reason)\n")
        return EXIT_OK if args.allow_errors else EXIT_PARTIAL
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from .model import DISCLAIMER
    from .simulate import write_simulation
    from .tableio import check_output_path, table_format

    if not 0 <= args.missing < 1:
        raise AlpnetError(f"--missing must be a fraction in [0, 1); got {args.missing} instead")
    out = Path(args.output)
    table_format(out, role="output")
    check_output_path(out, force=args.force)
    model = _load(args)
    rows = write_simulation(model, args.n, out, seed=args.seed, missing=args.missing, force=args.force)
    sys.stderr.write(f"wrote {out}: {rows} simulated patient(s), seed {args.seed}, missing {args.missing:g} "
                     f"(true causes in cause.<name> columns)\n{DISCLAIMER}\n")
    return EXIT_OK


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="alpnet", description="Explain a raised alkaline phosphatase with a Bayesian network "
                     "(research and teaching only, not for clinical decisions).")
    parser.add_argument("--version", action="version", version=f"alpnet {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    def common(p: argparse.ArgumentParser, params: bool = True) -> None:
        p.add_argument("--priors", metavar="DIR", help="prior-set folder (default: the bundled set)")
        if params:
            p.add_argument("--param", action="append", metavar="ID=VALUE",
                           help="override one parameter (repeatable); recorded in the output")

    def uncertainty_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--uncertainty", action="store_true",
                       help="credible intervals from parameter draws matched to each number's range")
        _whole_flag(p, "--draws", low=2, high=MAX_DRAWS,
                    help=f"parameter draws for --uncertainty, 2 to {MAX_DRAWS:,} (default 200; diagnose takes "
                         "about 0.06 s a draw, so 10,000 about ten minutes; score about 0.7 ms a row a draw)")
        _whole_flag(p, "--seed", low=0, help="seed of the draws, >= 0 (default 0)")
        p.add_argument("--level", type=float, help="credible level for --uncertainty (default 0.95)")

    p = sub.add_parser("diagnose", help="posterior probability of every cause for one or more cases")
    p.add_argument("cases", nargs="*", metavar="CASE", help="case files (YAML or JSON)")
    p.add_argument("--example", action="append", metavar="NAME", help="a bundled example case (see `alpnet cases`)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--show-states", action="store_true", help="show how each input value became a model state")
    uncertainty_flags(p)
    p.add_argument("--plot", metavar="FILE.png", help="also draw the posterior bars, prior marked (one case)")
    p.add_argument("--plot-network", action="store_true", help="with --plot: draw the network, causes shaded")
    p.add_argument("--force", action="store_true", help="replace the --plot file if it exists")
    common(p)
    p.set_defaults(func=cmd_diagnose)

    def one_case(p: argparse.ArgumentParser) -> None:
        p.add_argument("case", nargs="?", metavar="CASE", help="a case file (YAML or JSON)")
        p.add_argument("--example", metavar="NAME", help="a bundled example case instead of a file")

    def number(text: str, ok: Any, accepted: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not ok(v):  # comparisons with nan are false: nan is refused too
            raise argparse.ArgumentTypeError(f"{text!r}: accepted: {accepted}")
        return v

    def nonneg(text: str) -> float:
        return number(text, lambda v: v >= 0, "a number >= 0")

    def probability(text: str) -> float:
        return number(text, lambda v: 0 < v <= 1, "a number in (0, 1], e.g. 0.9")

    n = sub.add_parser("next-test", help="rank the tests (and free questions) by expected information gain")
    one_case(n)
    n.add_argument("--format", choices=["table", "json"], default="table")
    n.add_argument("--target", metavar="CAUSE", help="gain about one cause instead of all causes")
    n.add_argument("--cost-weight", type=nonneg, default=0.0, metavar="L", help="score = gain - L x cost (default 0)")
    n.add_argument("--lookahead", type=int, choices=[1, 2], default=1, help="2: exact best two-test policy")
    _whole_flag(n, "--top", default=10, help="rows to show in the table, >= 1 (default 10)")
    n.add_argument("--plot", metavar="FILE.png", help="also draw the expected information gain as bars")
    n.add_argument("--force", action="store_true", help="replace the --plot file if it exists")
    common(n)
    n.set_defaults(func=cmd_next_test)

    pl = sub.add_parser("plan", help="a work-up plan: test -> outcome -> next test, until a stopping rule")
    one_case(pl)
    pl.add_argument("--format", choices=["tree", "json"], default="tree")
    _whole_flag(pl, "--max-depth", high=MAX_PLAN_DEPTH, default=3,
                help=f"tests along any path, 1 to {MAX_PLAN_DEPTH} (default 3; each level multiplies the work "
                     f"about fourfold, so depth {MAX_PLAN_DEPTH} can take a minute or two)")
    pl.add_argument("--stop-probability", type=probability, default=0.9,
                    help="stop when the leading cause reaches this probability (default 0.9)")
    pl.add_argument("--min-gain", type=nonneg, default=0.05, help="stop when no test gains this many bits")
    pl.add_argument("--budget", type=nonneg, default=None, help="stop when the next test would exceed it")
    pl.add_argument("--cost-weight", type=nonneg, default=0.0, metavar="L")
    common(pl)
    pl.set_defaults(func=cmd_plan)

    w = sub.add_parser("what-if", help="change findings and compare every cause before and after")
    one_case(w)
    w.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="set a case value, e.g. --set labs.ggt=\"300 U/L\" (repeatable; not --param)")
    w.add_argument("--unset", action="append", metavar="KEY", help="remove a case value (repeatable)")
    w.add_argument("--scenarios", metavar="FILE", help="YAML/JSON file of named scenarios to compare")
    w.add_argument("--format", choices=["table", "json"], default="table")
    w.add_argument("--plot", metavar="FILE.png", help="also draw before/after bars (.png, .svg or .pdf)")
    w.add_argument("--force", action="store_true", help="replace the --plot file if it exists")
    common(w)
    w.set_defaults(func=cmd_what_if)

    x = sub.add_parser("explain", help="weights of evidence: how much each finding moved the leading causes")
    one_case(x)
    x.add_argument("--cause", metavar="X", help="explain this cause (default: the leading causes)")
    x.add_argument("--versus", metavar="Y", help="pairwise: which findings favour X and which Y")
    _whole_flag(x, "--top", default=3, help="leading causes to explain without --cause, >= 1 (default 3)")
    x.add_argument("--method", choices=["chain", "shapley"], default="chain",
                   help="split the shift by the chain rule in a fixed order (default) or by Shapley values")
    x.add_argument("--format", choices=["table", "json"], default="table")
    x.add_argument("--plot", metavar="FILE.png", help="also draw the evidence waterfall (.png, .svg or .pdf)")
    x.add_argument("--force", action="store_true", help="replace the --plot file if it exists")
    common(x)
    x.set_defaults(func=cmd_explain)

    pr = sub.add_parser("priors", help="inspect and validate a prior set")
    prs = pr.add_subparsers(dest="priors_command", parser_class=_Parser)
    r = prs.add_parser("report", help="every parameter with value, range and source, and totals")
    r.add_argument("--format", choices=["table", "json"], default="table")
    common(r, params=False)
    r.set_defaults(func=cmd_priors_report)
    v = prs.add_parser("validate", help="check a prior set and report its hash")
    common(v, params=False)
    v.set_defaults(func=cmd_priors_validate)

    e = sub.add_parser("export", help="write the network for pgmpy, pyAgrum, GeNIe and other tools")
    e.add_argument("out", metavar="OUT")
    e.add_argument("--format", choices=["bif", "xmlbif"], required=True)
    e.add_argument("--force", action="store_true", help="replace OUT if it exists")
    common(e)
    e.set_defaults(func=cmd_export)

    s = sub.add_parser("schema", help="print the JSON Schema of a case file")
    s.add_argument("-o", "--output", metavar="FILE")
    s.add_argument("--force", action="store_true")
    common(s, params=False)
    s.set_defaults(func=cmd_schema)

    sc = sub.add_parser("score", help="score a CSV or Parquet file of cases (one row per case), streaming")
    sc.add_argument("input", metavar="INPUT", help="CSV or Parquet in the batch layout (case-format.md section 5)")
    sc.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="CSV or Parquet (format from the extension)")
    sc.add_argument("--next-test", action="store_true", help="add the best next test and its gain in bits")
    sc.add_argument("--errors", metavar="FILE", help="where bad rows are listed (default: OUTPUT stem + .errors.csv)")
    sc.add_argument("--allow-errors", action="store_true", help="exit 0 even when some rows failed")
    sc.add_argument("--quiet", action="store_true", help="no progress bar and no notes on stderr")
    _whole_flag(sc, "--chunk-size", default=None, metavar="N",  # None: batch_file.DEFAULT_CHUNK_SIZE
                help="rows per chunk, >= 1 (default 10000)")
    sc.add_argument("--force", action="store_true", help="replace OUTPUT and the errors file if they exist")
    sc.add_argument("--engine", choices=["local", "dask"], default="local",
                    help="local (default) or dask (needs alpnet[dask])")
    sc.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (default: a LocalCluster)")
    uncertainty_flags(sc)
    common(sc)
    sc.set_defaults(func=cmd_score)

    sm = sub.add_parser("simulate", help="synthetic patients sampled from the network, with their true causes")
    _whole_flag(sm, "-n", low=0, required=True, metavar="N", help="number of patients, >= 0")
    _whole_flag(sm, "--seed", low=0, metavar="S", help="random seed, >= 0 (same seed, same file)")
    sm.add_argument("-o", "--output", required=True, metavar="FILE", help="CSV or Parquet")
    sm.add_argument("--missing", type=float, default=0.0, metavar="FRACTION",
                    help="probability that each finding or history item is left empty (default 0)")
    sm.add_argument("--force", action="store_true", help="replace FILE if it exists")
    common(sm)
    sm.set_defaults(func=cmd_simulate)

    from .cli_analysts import register as register_analysts  # evaluate, calibrate, priors diff

    register_analysts(sub, prs, common)

    c = sub.add_parser("cases", help="list the bundled teaching cases with their teaching points")
    c.add_argument("name", nargs="?", metavar="NAME", help="show one case: narrative, teaching point, reasoning")
    c.add_argument("--format", choices=["table", "json"], default="table")
    c.set_defaults(func=cmd_cases)

    from .cli_analysts import register_sensitivity as register_analysis

    register_analysis(sub, common, one_case)
    sv = sub.add_parser("serve", help="the classroom explorer: a local web page and its HTTP API (needs alpnet[serve])")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    common(sv)
    sv.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        if args.command == "priors":
            parser.parse_args(["priors", "--help"])
        parser.print_help()
        return EXIT_INPUT
    try:
        _check_flags(args)
        return int(args.func(args))
    except AlpnetError as exc:
        sys.stderr.write(f"alpnet: error: {exc}\n")
        return EXIT_INPUT
    except KeyboardInterrupt:  # pragma: no cover
        sys.stderr.write("alpnet: interrupted\n")
        return 130
    except BrokenPipeError:  # pragma: no cover - e.g. `alpnet ... | head`
        return EXIT_OK
    except Exception as exc:  # pragma: no cover - a bug: one line, not a traceback
        if os.environ.get("ALPNET_DEBUG"):
            raise
        sys.stderr.write(f"alpnet: internal error ({type(exc).__name__}: {exc}); "
                         "please report it (ALPNET_DEBUG=1 shows the traceback)\n")
        return EXIT_PARTIAL


def entry_point() -> None:  # pragma: no cover - console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()

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
from typing import Any, Sequence

from . import __version__
from .errors import AlpnetError

EXIT_OK, EXIT_PARTIAL, EXIT_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump noise
        self.print_usage(sys.stderr)
        sys.stderr.write(f"alpnet: error: {message}\n")
        sys.exit(EXIT_INPUT)


def _parse_params(items: Sequence[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        pid, sep, value = item.partition("=")
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
    if path.exists() and not force:
        raise AlpnetError(f"{path}: already exists; use --force to replace it")
    if path.is_dir():
        raise AlpnetError(f"{path}: is a folder")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise AlpnetError(f"{path}: the folder {parent} does not exist")
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- diagnose


def _pct(p: float) -> str:
    if p >= 0.9995:
        return ">99.9%"
    if p < 0.0005:
        return "<0.1%" if p > 0 else "0%"
    return f"{100 * p:.1f}%"


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
            print(f"    {m.key:28s} {m.input!s:>18s}  {val:>16s} -> {' | '.join(m.states)}{ref}{note}", file=out)
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
    print(file=out)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .evidence import read_case
    from .examples import example_path
    from .model import DISCLAIMER

    paths = list(args.cases) + [str(example_path(n)) for n in args.example or []]
    if not paths:
        raise AlpnetError("diagnose: give one or more case files (or --example NAME)")
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
    out = sys.stdout
    if args.format == "json":
        for case, table, mappings in prepared:
            print(json.dumps(_diagnose_record(model, case, table, mappings, args.show_states)), file=out)
    else:
        for case, table, mappings in prepared:
            _print_table(model, case, table, mappings, args.show_states, out)
        print(DISCLAIMER, file=out)
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
    from .evidence import read_case
    from .examples import example_path, list_examples

    for name in list_examples():
        about = read_case(example_path(name)).about
        print(f"{name:40s} {about.get('expected_cause', ''):32s} {about.get('title', '')}")
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

    p = sub.add_parser("diagnose", help="posterior probability of every cause for one or more cases")
    p.add_argument("cases", nargs="*", metavar="CASE", help="case files (YAML or JSON)")
    p.add_argument("--example", action="append", metavar="NAME", help="a bundled example case (see `alpnet cases`)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--show-states", action="store_true", help="show how each input value became a model state")
    common(p)
    p.set_defaults(func=cmd_diagnose)

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

    c = sub.add_parser("cases", help="list the bundled example cases")
    c.set_defaults(func=cmd_cases)
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

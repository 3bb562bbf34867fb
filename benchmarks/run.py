"""Speed and memory of alpnet's exact engine, with pgmpy (and pyAgrum) as baselines in the same run.

Run: ``python benchmarks/run.py [--cases N] [--repeat R]``. Prints one Markdown table.
Medians over repetitions; the ratio is baseline time / alpnet time. Nothing here is a
unit test: timings depend on the machine, which the header names.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import alpnet  # noqa: E402
from alpnet.examples import examples_dir  # noqa: E402


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def sample_cases(model, n: int, rng: np.random.Generator) -> list[dict]:
    """Ancestral samples of the whole network, then about half of the observables hidden.

    Age, sex and ALP are always kept, as in a laboratory extract; every other context
    item and finding is hidden with probability 1/2, so nearly every case has its own
    pattern of what is known.
    """
    pset = model.priors
    names = list(pset.variables)
    values: dict[str, np.ndarray] = {}
    for name in names:
        var = pset.variables[name]
        table = model.cpts[name]
        idx = tuple(values[p] for p in var.parents)
        probs = table[(slice(None),) + idx] if idx else np.repeat(table[:, None], n, axis=1)
        cum = np.cumsum(probs, axis=0)
        u = rng.random(n)
        values[name] = np.minimum((u[None, :] > cum).sum(axis=0), len(var.states) - 1)
    observables = [n_ for n_, v in pset.variables.items() if v.kind in ("context", "finding")]
    cases = []
    for i in range(n):
        ev = {}
        for name in observables:
            if name in ("alp", "age", "sex") or rng.random() < 0.5:
                ev[name] = pset.variables[name].states[values[name][i]]
        cases.append(ev)
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=10_000, help="batch size (default 10,000)")
    ap.add_argument("--baseline-cases", type=int, default=300, help="cases the pgmpy batch loop is timed on")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--redraws", type=int, default=1000, help="parameter redraws (default 1,000)")
    args = ap.parse_args()

    from pgmpy.inference import VariableElimination

    rng = np.random.default_rng(1)
    tracemalloc.start()
    t0 = time.perf_counter()
    model = alpnet.load_model()
    ranker = model.ranker  # builds the stacked likelihood tables
    build_s = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    bn = model.to_pgmpy()
    ve = VariableElimination(bn)
    hidden = model.priors.hidden
    try:
        import pyagrum as gum

        from alpnet.network import write_network

        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "alpnet-benchmark.bifxml"
        tmp.write_text(write_network(bn, "xmlbif"))
        agrum_bn = gum.loadBN(str(tmp))
        agrum = gum.LazyPropagation(agrum_bn)
    except ImportError:
        agrum = None

    cases = [model.evidence_of(alpnet.read_case(p))[0] for p in sorted(examples_dir().glob("*.yaml"))]
    hard = [{k: v for k, v in ev.items() if not isinstance(v, list)} for ev in cases]

    rows = []

    # 1. posterior of every cause, one case
    for ev in hard:
        model.engine.posterior(ev)
    t_alp = statistics.median(median_time(lambda e=ev: model.engine.posterior(e), args.repeat) for ev in hard)
    t_ve = statistics.median(median_time(lambda e=ev: ve.query(variables=hidden, evidence=e, joint=False,
                                                                show_progress=False), 3) for ev in hard[:8])
    row = {"operation": "posterior of every cause, one case", "alpnet": t_alp, "pgmpy VE": t_ve}
    if agrum is not None:
        def agrum_once(e):
            agrum.eraseAllEvidence()
            agrum.setEvidence(e)
            agrum.makeInference()
            for c in hidden:
                agrum.posterior(c)
        row["pyAgrum LP"] = statistics.median(median_time(lambda e=ev: agrum_once(e), 3) for ev in hard[:8])
    rows.append(row)

    # 2. rank every candidate test (exact information gain about the joint of the causes)
    sel = hard[:3]
    t_rank = statistics.median(median_time(lambda e=ev: model.rank_tests(evidence=e), 3) for ev in sel)

    def pgmpy_rank(e):
        q0 = ve.query(variables=hidden, evidence=e, joint=True, show_progress=False)
        h0 = q0.values
        for t in ranker.tests + ranker.questions:  # the same candidates alpnet ranks
            if t in e:
                continue
            pt = ve.query(variables=[t], evidence=e, show_progress=False)
            for s, p in zip(pt.state_names[t], pt.values / pt.values.sum()):
                if p > 0:
                    ve.query(variables=hidden, evidence={**e, t: s}, joint=True, show_progress=False)
        return h0

    t_rank_ve = statistics.median(median_time(lambda e=ev: pgmpy_rank(e), 1) for ev in sel)
    rows.append({"operation": "rank every candidate test (exact gain)", "alpnet": t_rank, "pgmpy VE": t_rank_ve})

    # 3. two-step lookahead
    model.rank_tests(evidence=sel[0], lookahead=2)
    t_la = statistics.median(median_time(lambda e=ev: model.rank_tests(evidence=e, lookahead=2), 2) for ev in sel)
    rows.append({"operation": "two-step lookahead, every first test", "alpnet": t_la})

    # 4. batch
    batch = sample_cases(model, args.cases, rng)
    t = time.perf_counter()
    model.engine.posterior_many(batch)
    t_batch = time.perf_counter() - t
    sub = batch[: args.baseline_cases]
    t = time.perf_counter()
    for e in sub:
        try:
            ve.query(variables=hidden, evidence=e, joint=False, show_progress=False)
        except Exception:  # an impossible sample: pgmpy raises, alpnet gives NaN
            pass
    t_batch_ve = (time.perf_counter() - t) * len(batch) / len(sub)
    rows.append({"operation": f"{args.cases:,} cases, batch (pgmpy timed on {len(sub)}, scaled)",
                 "alpnet": t_batch, "pgmpy VE": t_batch_ve})

    # 5. parameter redraws for one case (posteriors under redrawn parameters)
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    from alpnet.parameters import assigned_values, tables_for
    from alpnet.uncertainty import draw_parameters, posterior_uncertainty

    ev = hard[0]
    n_alp = max(args.redraws // 10, 20)
    t = time.perf_counter()
    posterior_uncertainty(model, ev, draws=n_alp, seed=1, tests=0)
    t_redraw = (time.perf_counter() - t) * 1000 / n_alp
    n_pg = 5
    ids, values = draw_parameters(model.priors, n_pg, seed=1)
    pset = model.priors
    t = time.perf_counter()
    for d in range(n_pg):
        with assigned_values(pset, ids, values[d]):
            tables = tables_for(pset, list(pset.variables))
        net = DiscreteBayesianNetwork([(p_, v) for v in pset.variables for p_ in pset.variables[v].parents])
        cpds = []
        for name, var in pset.variables.items():
            tab = tables[name]
            cpds.append(TabularCPD(name, tab.shape[0], tab.reshape(tab.shape[0], -1),
                                   evidence=list(var.parents) or None,
                                   evidence_card=[len(pset.variables[p_].states) for p_ in var.parents] or None,
                                   state_names={name: var.states, **{p_: pset.variables[p_].states for p_ in var.parents}}))
        net.add_cpds(*cpds)
        VariableElimination(net).query(variables=hidden, evidence=ev, joint=False, show_progress=False)
    t_redraw_pg = (time.perf_counter() - t) * 1000 / n_pg
    rows.append({"operation": f"{args.redraws:,} parameter redraws for one case (alpnet timed on {n_alp}, "
                              f"pgmpy on {n_pg}, scaled)", "alpnet": t_redraw, "pgmpy VE": t_redraw_pg})

    # print
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}, pgmpy {__import__('pgmpy').__version__}"
          + (f", pyAgrum {gum.__version__}" if agrum is not None else ""))
    cols = ["alpnet", "pgmpy VE", "pyAgrum LP"]
    print("\n| operation | " + " | ".join(cols) + " | vs pgmpy | vs pyAgrum |")
    print("|---|" + "---|" * (len(cols) + 2))

    def fmt(x):
        if x is None:
            return "-"
        return f"{x * 1000:.2f} ms" if x < 1 else f"{x:.2f} s"

    for r in rows:
        if r["operation"].startswith(f"{args.redraws:,} parameter redraws"):  # per draw -> total
            r = {**r, "alpnet": r["alpnet"] * args.redraws / 1000, "pgmpy VE": r["pgmpy VE"] * args.redraws / 1000}
        ratio_ve = f"{r['pgmpy VE'] / r['alpnet']:.1f}x" if "pgmpy VE" in r else "-"
        ratio_ag = f"{r['pyAgrum LP'] / r['alpnet']:.1f}x" if "pyAgrum LP" in r else "-"
        print(f"| {r['operation']} | " + " | ".join(fmt(r.get(c)) for c in cols) + f" | {ratio_ve} | {ratio_ag} |")
    print(f"| compiled model memory (tracemalloc peak while loading) | {peak / 1024**2:.0f} MB | - | - | - | - |")
    print(f"| load and compile the bundled prior set | {fmt(build_s)} | - | - | - | - |")
    

if __name__ == "__main__":
    main()

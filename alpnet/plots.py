"""Plots that draw alpnet's answers (matplotlib).

Every function takes the data a computing function returned (a DataFrame from
:meth:`~alpnet.model.Model.diagnose`, :meth:`~alpnet.model.Model.rank_tests`,
:func:`~alpnet.whatif.what_if` or :func:`~alpnet.whatif.compare_scenarios`, an
:class:`~alpnet.explain.Explanation`, or the model and a case's evidence for the
network), draws on ``ax`` (a new figure when ``ax`` is None) and returns the Axes.
Nothing is computed here and nothing is shown: call ``plt.show()`` or
``fig.savefig()`` yourself. Labels are people's words (the prior set's labels),
never variable names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd

from .errors import AlpnetError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .explain import Explanation
    from .model import Model

__all__ = ["plot_posterior", "plot_next_test", "plot_what_if", "plot_waterfall", "plot_network", "short_label"]

_BLUE, _ORANGE, _GREY, _GREEN, _RED = "#3b75af", "#ef8636", "#9a9a9a", "#519e3e", "#c53a32"


def short_label(label: str, width: int = 38) -> str:
    """People's words, cut at a parenthesis and to ``width`` characters."""
    text = str(label).split(" (")[0]
    return text if len(text) <= width else text[: width - 1] + "…"


def _check_top(top: Any) -> int:
    """``top`` is a count of bars: a whole number >= 1 (a negative one would slice the table)."""
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise AlpnetError(f"top {top!r}: must be a whole number >= 1")
    return int(top)


def _axes(ax: "Axes | None", size: tuple[float, float]) -> "Axes":
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def plot_posterior(table: pd.DataFrame, *, ax: "Axes | None" = None, top: int = 10,
                   title: str | None = None) -> "Axes":
    """Posterior of the leading causes as bars, the prior marked on each bar.

    Parameters
    ----------
    table : pandas.DataFrame
        From :meth:`Model.diagnose` (columns ``label``, ``prior``, ``posterior``).
    ax : matplotlib Axes, optional
    top : int, default 10
        Number of causes (highest posterior first).
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
        One bar per cause (``ax.patches``) and the priors as one marker series labelled
        ``"prior"``.
    """
    df = table.sort_values("posterior", ascending=False).head(_check_top(top)).iloc[::-1]
    ax = _axes(ax, (7, 0.4 * len(df) + 1.2))
    y = np.arange(len(df))
    ax.barh(y, df["posterior"], color=_BLUE, label="posterior")
    ax.plot(df["prior"], y, linestyle="none", marker="|", markersize=16, markeredgewidth=2.5, color=_ORANGE,
            label="prior")
    ax.set_yticks(y, [short_label(s) for s in df["label"]])
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability the cause is present")
    for yi, p in zip(y, df["posterior"]):
        ax.text(min(p + 0.01, 0.9), yi, f"{p:.0%}" if p >= 0.01 else f"{p:.1%}", va="center", fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "Probability of each cause (prior marked)")
    return ax


def plot_next_test(ranking: pd.DataFrame, *, ax: "Axes | None" = None, top: int = 10,
                   title: str | None = None) -> "Axes":
    """Expected information gain of the best tests (and questions) as bars.

    Parameters
    ----------
    ranking : pandas.DataFrame
        From :meth:`Model.rank_tests` (columns ``label``, ``kind``,
        ``expected_information_gain_bits``).
    ax : matplotlib Axes, optional
    top : int, default 10

    Returns
    -------
    matplotlib.axes.Axes
        One bar per test, best at the top; questions (free) in a second colour.
    """
    df = ranking.sort_values("expected_information_gain_bits", ascending=False).head(_check_top(top)).iloc[::-1]
    ax = _axes(ax, (7, 0.4 * len(df) + 1.2))
    y = np.arange(len(df))
    colours = [_GREEN if k == "question" else _BLUE for k in df["kind"]]
    ax.barh(y, df["expected_information_gain_bits"], color=colours)
    ax.set_yticks(y, [short_label(s) + (" (question)" if k == "question" else "")
                      for s, k in zip(df["label"], df["kind"])])
    ax.set_xlabel("expected information gain about the causes (bits)")
    ax.set_title(title or "Which test next")
    return ax


def plot_what_if(df: pd.DataFrame, *, ax: "Axes | None" = None, top: int = 8, title: str | None = None) -> "Axes":
    """Before and after: every cause's posterior with and without the change.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`alpnet.whatif.what_if` (``before``, ``after``) or
        :func:`alpnet.whatif.compare_scenarios` (``before`` and one column per scenario).
    ax : matplotlib Axes, optional
    top : int, default 8
        Causes with the highest probability in any column.

    Returns
    -------
    matplotlib.axes.Axes
        For each cause a group of bars: ``before`` and then each scenario (``after`` for
        one what-if); the legend names them.
    """
    top = _check_top(top)
    columns = ["before"] + [c for c in df.columns if c not in ("cause", "label", "before", "change")]
    order = df[columns].max(axis=1).sort_values(ascending=False).index[:top]
    sub = df.loc[order].iloc[::-1]
    ax = _axes(ax, (7.5, 0.55 * len(sub) * max(1, len(columns) / 2) + 1.4))
    n = len(columns)
    h = 0.8 / n
    y = np.arange(len(sub))
    palette = [_GREY, _BLUE, _ORANGE, _GREEN, _RED, "#8c63b3", "#8b5a4a", "#d57fbe"]
    for j, col in enumerate(columns):
        ax.barh(y + (n - 1 - j) * h - 0.4 + h / 2, sub[col], height=h, color=palette[j % len(palette)], label=col)
    ax.set_yticks(y, [short_label(s) for s in sub["label"]])
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability the cause is present")
    ax.legend(loc="lower right", fontsize=8)
    changes = df.attrs.get("changes")
    default = "What if " + ", ".join(f"{c['key']} = {c['after'] if c['after'] is not None else 'not known'}"
                                     for c in changes) if changes else "Scenarios compared"
    ax.set_title(title or short_label(default, 90))
    return ax


def plot_waterfall(explanation: "Explanation", *, cause: str | None = None, ax: "Axes | None" = None,
                   title: str | None = None) -> "Axes":
    """Evidence waterfall: from the prior log-odds, finding by finding, to the posterior.

    Parameters
    ----------
    explanation : Explanation
        From :func:`alpnet.explain.explain`.
    cause : str, optional
        Which explained cause (default: the first, the leading one).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One bar for the prior, one per finding (its chain-rule contribution in bits, green
        for, red against) and one for the posterior; they meet exactly because the
        contributions add up to the shift.
    """
    summary = explanation.summary.set_index("cause")
    cause = cause or str(explanation.summary["cause"].iloc[0])
    rows = explanation.for_cause(cause)
    prior = float(summary.loc[cause, "prior_log_odds_bits"])
    post = float(summary.loc[cause, "posterior_log_odds_bits"])
    if not (np.isfinite(prior) and np.isfinite(post)):
        prior, post = np.nan_to_num(prior, posinf=40, neginf=-40), np.nan_to_num(post, posinf=40, neginf=-40)
    labels = ["prior (patient and history)"]
    lefts, widths, colours = [0.0], [prior], [_GREY]
    level = prior
    for r in rows.itertuples():
        c = float(np.nan_to_num(r.contribution_bits, posinf=40, neginf=-40))
        labels.append(f"{short_label(r.finding, 30)}: {r.state}")
        lefts.append(level)
        widths.append(c)
        colours.append(_GREEN if c >= 0 else _RED)
        level += c
    labels.append("posterior (all the evidence)")
    lefts.append(0.0)
    widths.append(post)
    colours.append(_BLUE)
    ax = _axes(ax, (8, 0.32 * len(labels) + 1.5))
    y = np.arange(len(labels))[::-1]
    ax.barh(y, widths, left=lefts, color=colours)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, labels)
    ax.set_xlabel("log-odds of the cause (bits); 0 = even odds")
    label = summary.loc[cause, "label"]
    ax.set_title(title or f"Why {short_label(label)}: {summary.loc[cause, 'prior']:.1%} -> "
                           f"{summary.loc[cause, 'posterior']:.1%}")
    return ax


def plot_network(model: "Model", evidence: Mapping[str, Any] | None = None, *, ax: "Axes | None" = None,
                 posterior: Mapping[str, float] | None = None, show: str = "evidence",
                 title: str | None = None) -> "Axes":
    """The network, causes shaded by their posterior, observed variables marked.

    Parameters
    ----------
    model : Model
    evidence : mapping, optional
        Variable -> state(s) (``model.evidence_of(case)[0]``). Posteriors are computed from
        it when ``posterior`` is not given.
    ax : matplotlib Axes, optional
    posterior : mapping, optional
        Cause -> probability (e.g. ``dict(zip(table.cause, table.posterior))``).
    show : {"evidence", "all"}, default "evidence"
        ``"evidence"`` draws the causes and the observed context and findings only;
        ``"all"`` draws every variable.

    Returns
    -------
    matplotlib.axes.Axes
        Nodes laid out in three layers (context, causes, findings) with networkx; the
        node labels are people's words.
    """
    import networkx as nx
    from matplotlib import colormaps

    evidence = dict(evidence or {})
    pset = model.priors
    if posterior is None:
        posterior = model.engine.posterior(evidence)
    if show not in ("evidence", "all"):
        raise AlpnetError(f"show must be 'evidence' or 'all'; got {show!r}")
    hidden = list(pset.hidden)
    keep_ctx = [v for v in pset.context if show == "all" or v in evidence]
    keep_find = [v for v in pset.findings if show == "all" or v in evidence]
    nodes = keep_ctx + hidden + keep_find
    g = nx.DiGraph()
    layer = {**{v: 0 for v in keep_ctx}, **{v: 1 for v in hidden}, **{v: 2 for v in keep_find}}
    for v in nodes:
        g.add_node(v, layer=layer[v])
    for v in nodes:
        for p in pset.variables[v].parents:
            if p in layer:
                g.add_edge(p, v)
    pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal", scale=1.0)
    # networkx spreads each layer along x; the layers go one unit apart: context on top,
    # causes in the middle, findings at the bottom
    span = max(abs(float(x)) for x, _ in pos.values()) or 1.0
    pos = {v: (float(x) / span, 1.0 - float(layer[v])) for v, (x, _) in pos.items()}
    ax = _axes(ax, (14, 9))
    cmap = colormaps["Blues"]
    colours = []
    for v in nodes:
        if v in hidden:
            colours.append(cmap(0.1 + 0.9 * float(posterior.get(v, 0.0))))
        else:
            colours.append("#f3d9a4" if v in evidence else "#eeeeee")
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.12, arrows=False)
    nx.draw_networkx_nodes(g, pos, ax=ax, nodelist=nodes, node_color=colours, node_size=420, edgecolors="#555555")
    for v in nodes:
        x, y = pos[v]
        label = short_label(model.label(v), 26)
        if v in hidden:
            label += f" {float(posterior.get(v, 0.0)):.0%}"
        elif v in evidence:
            state = evidence[v]
            label += ": " + (" | ".join(map(str, state)) if isinstance(state, (list, tuple)) else str(state))
        if layer[v] == 0:
            ax.text(x, y + 0.06, label, fontsize=7, ha="left", va="bottom", rotation=30, rotation_mode="anchor")
        else:
            ax.text(x, y - 0.06, label, fontsize=7, ha="right", va="top", rotation=30, rotation_mode="anchor")
    ys = [y for _, y in pos.values()]
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.45)
    ax.set_xlim(-1.25, 1.1)
    ax.set_axis_off()
    ax.set_title(title or "The network: context (top), causes shaded by probability, findings (bottom)")
    return ax


#: File types ``--plot`` writes, by suffix.
PLOT_FORMATS = ("png", "svg", "pdf")


def figure_bytes(ax: "Axes", fmt: str = "png", dpi: int = 120) -> bytes:
    """The figure of ``ax`` as bytes in ``fmt`` (for writing atomically); closes the figure."""
    import io

    import matplotlib.pyplot as plt

    fig = ax.figure
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figure_png(ax: "Axes", dpi: int = 120) -> bytes:
    """The figure of ``ax`` as PNG bytes; closes the figure."""
    return figure_bytes(ax, "png", dpi)

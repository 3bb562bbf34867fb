"""Tornado plot of a sensitivity analysis (matplotlib)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_tornado"]


def plot_tornado(result: Any, ax: Any = None, *, top: int = 15, cause_label: str | None = None) -> Any:
    """Horizontal bars: the posterior at the low and high end of each parameter's range.

    Parameters
    ----------
    result : alpnet.sensitivity.SensitivityResult
    ax : matplotlib Axes, optional
        Drawn on a new figure when None.
    top : int
        The most influential parameters shown.
    cause_label : str, optional
        People's words for the cause (the axis title); its variable name otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        One bar per parameter, labelled ``id [source]``; the current posterior is the
        vertical line.
    """
    import matplotlib.pyplot as plt

    df = result.table
    df = df[df["effect"] == "yes"].head(top).iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.42 * max(len(df), 3) + 1.4))
    y = np.arange(len(df))
    lo = np.minimum(df["posterior_low"], df["posterior_high"]).to_numpy()
    hi = np.maximum(df["posterior_low"], df["posterior_high"]).to_numpy()
    ax.barh(y, hi - lo, left=lo, color="#4a7ab5", edgecolor="#1f3b5c", height=0.6)
    ax.axvline(result.posterior, color="#b5452c", lw=1.5, label=f"current value {result.posterior:.6g}")
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    span = float(hi.max() - lo.min()) if len(df) else 0.0
    digits = int(min(max(np.ceil(-np.log10(span)) + 1 if span > 0 else 3, 2), 9))
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FormatStrFormatter(f"%.{digits}f"))
    ax.set_yticks(y)
    ax.set_yticklabels([f"{p} [{s}]" for p, s in zip(df["parameter"], df["source"])], fontsize=8)
    name = cause_label or result.cause
    ax.set_xlabel(f"P({name} | evidence) over each parameter's literature range")
    ax.set_title(f"What moves the posterior of {name} most")
    ax.legend(loc="lower right", fontsize=8)
    ax.figure.tight_layout()
    return ax

"""Reliability diagrams: predicted probability against observed frequency (draws only)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_reliability", "reliability_grid"]


def plot_reliability(calibration: pd.DataFrame, cause: str, *, ax: "Axes | None" = None,
                     title: str | None = None) -> "Axes":
    """Draw one cause's reliability diagram from a calibration table.

    Parameters
    ----------
    calibration : DataFrame
        ``EvaluationResult.calibration`` (``cause, mean_predicted, observed, n``).
    cause : str
    ax : matplotlib Axes, optional
        Drawn into this Axes, or a new figure's.
    title : str, optional
        Defaults to the cause name.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    rows = calibration[calibration["cause"] == cause]
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="perfect")
    if len(rows):
        sizes = 15 + 60 * (rows["n"] / rows["n"].max()) ** 0.5  # area grows with the bin's rows
        ax.plot(rows["mean_predicted"], rows["observed"], color="C0", lw=1)
        ax.scatter(rows["mean_predicted"], rows["observed"], s=sizes, color="C0", zorder=3, label="bins",
                   clip_on=False)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title(title or cause, fontsize=9)
    return ax


def reliability_grid(calibration: pd.DataFrame, causes: list[str], *,
                     labels: dict[str, str] | None = None, footer: str | None = None) -> "Figure":
    """One figure with a reliability diagram per cause (a grid), for saving to PNG.

    Panels are titled by cause name (``labels`` is accepted for callers that want
    people's words in their own plots); marker area grows with the rows in each bin.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = max(len(causes), 1)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(causes):
            c = causes[k]
            mine = calibration[calibration["cause"] == c]
            present = int(round(float((mine["observed"] * mine["n"]).sum())))
            plot_reliability(calibration, c, ax=ax, title=f"{c} ({present} of {int(mine['n'].sum())} present)")
            if k % cols:
                ax.set_ylabel("")
        else:
            ax.set_visible(False)
    if footer:
        fig.text(0.5, 0.005, footer, ha="center", va="bottom", fontsize=7)
    fig.tight_layout(rect=(0, 0.03 if footer else 0, 1, 1))
    return fig

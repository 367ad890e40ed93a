"""The strip plot of a grid's data set: every seed's value and difference from the baseline."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import atomic_path

if TYPE_CHECKING:
    from .results import SettingResult


def _column(ax, x: int, points: dict[int, float], interval: tuple, colour: str, seeds: dict) -> None:
    """A hollow point per seed (``seeds`` maps a seed to its marker and offset), and the bar and line
    of ``interval`` = (centre, low, high)."""
    for seed, value in points.items():
        marker, offset = seeds[seed]
        ax.scatter(x + offset, value, marker=marker, facecolors="none", edgecolors=colour, zorder=5)
    centre, low, high = interval
    if centre is not None:
        ax.hlines(centre, x - 0.3, x + 0.3, colors="black", linewidth=2, zorder=4)
    if low is not None:
        ax.vlines(x, low, high, colors="black", linewidth=1, zorder=3)


def strip_plot(path: Path, settings: Sequence[SettingResult], title: str) -> None:
    """Two panels, one column per setting, a point per seed: above, the metric with its mean and 95%
    t-interval; below, each seed's difference from the baseline with the mean difference and its
    bootstrap interval (the numbers the verdict rests on). A PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    order = sorted({seed for s in settings for seed in s.values})
    spread = 0.4 / max(1, len(order) - 1)
    seeds = {
        seed: (marker, (i - (len(order) - 1) / 2) * spread)
        for i, (seed, marker) in enumerate(zip(order, itertools.cycle("osD^v<>ph*X"), strict=False))
    }
    by_id = {s.cell.setting_id: s for s in settings}
    width = max(4.0, 1.1 * len(settings) + 1.5)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(width, 6.4), layout="constrained")
    for x, setting in enumerate(settings):
        colour = "tab:gray" if setting.cell.is_baseline else "tab:blue"
        s, p = setting.summary, setting.paired
        _column(top, x, setting.values, (s.mean, s.ci_low, s.ci_high), colour, seeds)
        baseline = by_id.get(setting.cell.baseline_id)
        if p is not None and baseline is not None:
            diffs = {k: v - baseline.values[k] for k, v in setting.values.items() if k in baseline.values}
            _column(bottom, x, diffs, (p.mean_diff, p.ci_low, p.ci_high), colour, seeds)
    bottom.axhline(0, color="tab:gray", linestyle="--", linewidth=0.8, zorder=1)
    bottom.set_xticks(range(len(settings)), [s.label for s in settings], rotation=20, ha="right", fontsize=8)
    top.set_ylabel(settings[0].cell.data.metric)
    bottom.set_ylabel("Δ vs baseline, same seed")
    caption = "bar: mean; line: 95% t-interval (above),\nbootstrap interval (below)"
    top.set_title(f"{title}\n{caption}", fontsize=9)
    keys = [
        Line2D(
            [], [], marker=marker, linestyle="", markerfacecolor="none", color="black", label=f"seed {seed}"
        )
        for seed, (marker, _) in seeds.items()
    ]
    fig.legend(handles=keys, fontsize=7, loc="outside right upper")  # beside the panels, over no point
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)

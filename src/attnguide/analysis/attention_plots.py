"""Figures of attention diagnostics, written as PNG files.

Figures are built on ``matplotlib.figure.Figure`` directly, without pyplot: no GUI backend is
involved and nothing changes in the caller's matplotlib state. Models keep one colour (``C0``,
``C1``, ... in the order given) in every figure that compares them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from ..guiding.registry import GUIDES
from .diagnostics import Diagnostics

DPI = 100
SPECIAL_COLOR = "tab:red"

# The per-layer diagnostics drawn as bars: (panel title, axis label).
LAYER_BARS = {
    "special_token_share": ("attention received by special tokens", "share of attention"),
    "max_on_special": ("heads whose peak is a special token", "share of heads"),
    "effective_positions": ("effective attended positions, exp(entropy)", "positions"),
    "head_similarity": ("similarity of the layer's heads", "mean pairwise cosine"),
}


@dataclass
class ExampleProfiles:
    """One example's head profiles [layers·heads, tokens] under one model, with its tokens."""

    name: str
    tokens: list[str]
    special: list[bool]
    profiles: np.ndarray
    heads: int


def _grid(count: int, columns: int = 3) -> tuple[int, int]:
    """(rows, columns) of a grid of ``count`` panels, at most ``columns`` wide."""
    columns = min(count, columns)
    return math.ceil(count / columns), columns


def _mark_layers(ax: Axes, rows: int, heads: int, both: bool = False) -> None:
    """Label each block of ``heads`` rows (and columns) with its layer and draw lines between layers."""
    ticks = [start + (heads - 1) / 2 for start in range(0, rows, heads)]
    labels = [f"L{i}" for i in range(len(ticks))]
    ax.set_yticks(ticks, labels)
    for edge in range(heads, rows, heads):
        ax.axhline(edge - 0.5, color="white", linewidth=0.8)
        if both:
            ax.axvline(edge - 0.5, color="white", linewidth=0.8)
    if both:
        ax.set_xticks(ticks, labels)


def _save(figure: Figure, path: str | Path) -> None:
    figure.savefig(path, dpi=DPI, bbox_inches="tight")


def profile_heatmaps(examples: Sequence[ExampleProfiles], title: str, path: str | Path) -> None:
    """Heads × positions heatmap of one example's profiles, one panel per model (square-root colour scale)."""
    rows, columns = _grid(len(examples))
    longest = max(len(e.tokens) for e in examples)
    fontsize = max(4.0, min(8.0, 320 / longest))  # long examples: smaller labels, not wider figures
    figure = Figure(figsize=(columns * (1.6 + min(longest, 60) * 0.17), rows * 5.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    norm = PowerNorm(0.5, vmin=0.0, vmax=1.0)
    image = None
    for ax, example in zip(axes, examples, strict=False):
        image = ax.imshow(example.profiles, aspect="auto", cmap="magma", norm=norm, interpolation="nearest")
        tokens = [token.replace("$", r"\$") for token in example.tokens]  # no mathtext
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=fontsize)
        for label, special in zip(ax.get_xticklabels(), example.special, strict=True):
            if special:
                label.set_color(SPECIAL_COLOR)
                label.set_fontweight("bold")
        _mark_layers(ax, example.profiles.shape[0], example.heads)
        ax.set_title(example.name)
        ax.set_xlabel("token receiving attention (special tokens in red)")
        ax.set_ylabel("head, grouped by layer")
    scale = "attention received, mean over queries (√ scale)"
    _finish_panels(figure, axes, len(examples), image, scale, title, path)


def _finish_panels(
    figure: Figure, axes: np.ndarray, used: int, image: Any, scale: str, title: str, path: str | Path
) -> None:
    """Blank the unused panels, add one colour bar for all panels and the title, and save."""
    for ax in axes[used:]:
        ax.set_axis_off()
    figure.colorbar(image, ax=axes.tolist(), label=scale)
    figure.suptitle(title)
    _save(figure, path)


def similarity_matrices(models: Sequence[tuple[str, Diagnostics]], title: str, path: str | Path) -> None:
    """The mean head-by-head cosine similarity matrix of each model, one panel per model."""
    rows, columns = _grid(len(models))
    figure = Figure(figsize=(columns * 4.4, rows * 4.2), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    image = None
    for ax, (name, diagnostics) in zip(axes, models, strict=False):
        matrix = np.asarray(diagnostics.similarity)
        image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        _mark_layers(ax, matrix.shape[0], diagnostics.heads, both=True)
        ax.set_title(f"{name}\nmean similarity {diagnostics.summary['head_similarity']:.3f}")
        ax.set_xlabel("head, grouped by layer")
        ax.set_ylabel("head, grouped by layer")
    _finish_panels(figure, axes, len(models), image, "cosine similarity of attention profiles", title, path)


def layer_bars(models: Sequence[tuple[str, Diagnostics]], title: str, path: str | Path) -> None:
    """Per-layer bars of ``LAYER_BARS``, one bar per model in each layer."""
    figure = Figure(figsize=(10, 6.4), layout="constrained")
    axes = figure.subplots(2, 2).ravel()
    width = 0.8 / len(models)
    for ax, (metric, (panel, label)) in zip(axes, LAYER_BARS.items(), strict=True):
        for i, (name, diagnostics) in enumerate(models):
            values = diagnostics.per_layer[metric]
            x = np.arange(len(values)) + (i - (len(models) - 1) / 2) * width
            ax.bar(x, values, width, color=f"C{i}", label=name)
        ax.set_xticks(range(len(values)), [f"L{i}" for i in range(len(values))])
        ax.set_title(panel)
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(title)
    _save(figure, path)


def _series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of one logged quantity."""
    points = [(entry["step"], entry[key]) for entry in history if key in entry and "step" in entry]
    return [s for s, _ in points], [v for _, v in points]


def training_curves(runs: Sequence[tuple[str, list[dict] | None]], title: str, path: str | Path) -> None:
    """Task loss (train and eval) and the guiding losses against the step, from Trainer log histories.

    A run whose history is None keeps its colour but draws nothing. The training task loss is
    ``task_loss`` where guiding logged it, else ``loss`` (the task loss of an unguided run).
    """
    titles = {
        "task": "task loss",
        **{f"{n}_loss": f"{g.title.split(',')[0]} loss" for n, g in GUIDES.items()},
    }
    panels = ["task"] + [key for key in list(titles)[1:] if any(h and _series(h, key)[0] for _, h in runs)]
    figure = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False).ravel()
    for i, (name, history) in enumerate(runs):
        if not history:
            continue
        task_key = "task_loss" if _series(history, "task_loss")[0] else "loss"
        axes[0].plot(*_series(history, task_key), color=f"C{i}", label=f"{name} (train)")
        steps, values = _series(history, "eval_loss")
        if steps:
            axes[0].plot(steps, values, "o--", color=f"C{i}", label=f"{name} (eval)")
        for ax, key in zip(axes[1:], panels[1:], strict=True):
            steps, values = _series(history, key)
            if steps:
                ax.plot(steps, values, color=f"C{i}", label=name)
    for ax, panel in zip(axes, panels, strict=True):
        ax.set_title(titles[panel])
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(title)
    _save(figure, path)

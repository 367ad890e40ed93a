"""The results of a grid: per-setting statistics, the choice on dev, and the tables (Markdown, CSV, JSON)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import AttnguideError
from .grid import Cell, Grid
from .io import write_json, write_text
from .stats import METHODS, Paired, Summary, paired_difference, summarize

FINISHED, FAILED, PENDING = "finished", "failed", "pending"


@dataclass
class CellResult:
    """One cell after the grid ran: ``finished`` (metrics), ``failed`` (error) or ``pending``."""

    cell: Cell
    status: str
    metrics: dict[str, float] | None = None
    error: str | None = None
    seconds: float | None = None
    location: str | None = None  # the run directory, or for a failure its log


@dataclass
class SettingResult:
    """One setting of one data set on one split: its seeds' values and their statistics."""

    split: str
    cells: list[CellResult]
    label: str
    values: dict[int, float]
    summary: Summary
    paired: Paired | None = None  # None for the baseline itself or where the baseline has no values
    failed: int = field(default=0)

    @property
    def cell(self) -> Cell:
        return self.cells[0].cell


def _value(result: CellResult) -> float:
    metric = result.cell.data.metric
    if metric not in result.metrics:
        known = ", ".join(k for k, v in result.metrics.items() if isinstance(v, (int, float)))
        raise AttnguideError(
            f"{result.location}: metrics.json has no {metric!r} (it has {known}); set metric: in the grid"
        )
    return float(result.metrics[metric])


def _labels(cells: Sequence[Cell]) -> dict[str, str]:
    """A label per setting of one data set: its guide setting, and model or training where they vary."""
    parts = {c.setting_id: c.setting_id.split("/")[1:] for c in cells}
    varies = [len({p[i] for p in parts.values()}) > 1 for i in range(2)] + [True]
    return {
        key: " ".join(p for p, shown in zip(value, varies, strict=True) if shown)
        for key, value in parts.items()
    }


def analyse(results: Sequence[CellResult], split: str = "dev") -> list[SettingResult]:
    """Group cells into settings (grid order) and compare each with its baseline seed by seed."""
    groups: dict[str, list[CellResult]] = {}
    for result in results:
        groups.setdefault(result.cell.setting_id, []).append(result)
    labels: dict[str, str] = {}
    for name in dict.fromkeys(r.cell.data.name for r in results):
        labels.update(_labels([r.cell for r in results if r.cell.data.name == name]))
    settings = {}
    for key, group in groups.items():
        values = {r.cell.seed: _value(r) for r in group if r.status == FINISHED}
        failed = sum(r.status == FAILED for r in group)
        settings[key] = SettingResult(
            split, group, labels[key], values, summarize(list(values.values())), None, failed
        )
    for setting in settings.values():
        baseline = settings.get(setting.cell.baseline_id)
        if not setting.cell.is_baseline and baseline is not None and baseline.values:
            setting.paired = paired_difference(setting.values, baseline.values)
    return list(settings.values())


def best_on_dev(settings: Sequence[SettingResult], seeds: int) -> dict[str, SettingResult]:
    """Per data set, the setting with the highest mean among those with every seed finished; of
    means equal up to rounding (the same number of correct answers summed in another order), the
    earlier setting."""
    best: dict[str, SettingResult] = {}
    for setting in settings:
        name = setting.cell.data.name
        if setting.summary.n != seeds:
            continue
        mean = setting.summary.mean
        if name not in best or (
            mean > best[name].summary.mean and not math.isclose(mean, best[name].summary.mean)
        ):
            best[name] = setting
    return best


# --- formatting ---------------------------------------------------------------------------------


def _num(value: float | None, signed: bool = False) -> str:
    return "–" if value is None else f"{value:+.4f}" if signed else f"{value:.4f}"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _interval(low: float | None, high: float | None, signed: bool = False) -> str:
    return "–" if low is None else f"[{_num(low, signed)}, {_num(high, signed)}]"


def _row(setting: SettingResult, seeds: int) -> list[str]:
    s, p = setting.summary, setting.paired
    spread = _num(s.mean) + (f" ± {_num(s.std)}" if s.std is not None else "")
    verdict = "baseline" if setting.cell.is_baseline else p.verdict if p else "no baseline values"
    return [
        setting.label,
        f"{s.n}/{seeds}" + (f" ({setting.failed} failed)" if setting.failed else ""),
        spread,
        _interval(s.ci_low, s.ci_high),
        _num(p.mean_diff, True) if p else "",
        _interval(p.ci_low, p.ci_high, True) if p else "",
        _p(p.t_p) if p else "",
        _p(p.wilcoxon_p) if p else "",
        verdict,
    ]


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


_HEADER = ["setting", "seeds", "mean ± std", "95% CI", "Δ vs baseline", "Δ 95% CI (bootstrap)", "t-test p"]
_HEADER += ["Wilcoxon p", "verdict"]


def markdown(grid: Grid, dev: Sequence[SettingResult], test: Sequence[SettingResult]) -> str:
    """The results as Markdown: one dev table per data set, the test table, and the failed cells."""
    seeds = len(grid.seeds)
    cells = [r for s in dev for r in s.cells]
    counts = {status: sum(r.status == status for r in cells) for status in (FINISHED, FAILED, PENDING)}
    lines = [
        f"# attnguide compare: {grid.source}",
        "",
        f"{len(cells)} cells: {counts[FINISHED]} finished, {counts[FAILED]} failed, {counts[PENDING]} "
        f"not run; seeds {', '.join(map(str, grid.seeds))}.",
    ]
    best = best_on_dev(dev, seeds)
    for data in grid.datasets:
        settings = [s for s in dev if s.cell.data.name == data.name]
        lines += ["", f"## {data.name}: dev {data.metric}", ""]
        lines += _table([_row(s, seeds) for s in settings], _HEADER)
        chosen = best.get(data.name)
        lines += [
            "",
            f"Best on dev: **{chosen.label}** ({_num(chosen.summary.mean)}, mean of {seeds} seed(s))."
            if chosen
            else "Best on dev: none yet (no setting has every seed finished).",
        ]
    if test:
        lines += ["", "## Test: the setting chosen on dev, and its baseline", ""]
        rows = [[s.cell.data.name + f" ({s.cell.data.metric})", *_row(s, seeds)] for s in test]
        lines += _table(rows, ["data", *_HEADER])
    failures = [
        [s.split, r.cell.path, r.error or "", r.location or ""]
        for s in [*dev, *test]
        for r in s.cells
        if r.status == FAILED
    ]
    if failures:
        lines += ["", "## Failed cells", ""]
        lines += _table(failures, ["split", "cell", "error", "log"])
    lines += ["", "## Method", "", METHODS, ""]
    return "\n".join(lines)


_CSV_FIELDS = [
    "split", "data", "setting", "model", "guides", "mdg_weight", "pdg_weight", "pattern_weight",
    "disagreement_weight", "temperature", "layers",
    "scope", "epochs", "batch_size", "max_length", "lr", "metric", "n", "failed", "mean", "std", "ci_low",
    "ci_high", "diff", "diff_ci_low", "diff_ci_high", "t_test_p", "wilcoxon_p", "verdict", "seeds", "values",
]  # fmt: skip


def _csv_row(setting: SettingResult) -> dict:
    cell, s, p = setting.cell, setting.summary, setting.paired
    row = {"split": setting.split, "data": cell.data.name, "setting": setting.label, "model": cell.model}
    row.update({**cell.guide, **cell.training, "metric": cell.data.metric, "failed": setting.failed})
    row.update(asdict(s))
    if p is not None:
        row.update(diff=p.mean_diff, diff_ci_low=p.ci_low, diff_ci_high=p.ci_high, t_test_p=p.t_p)
        row.update(wilcoxon_p=p.wilcoxon_p, verdict=p.verdict)
    elif cell.is_baseline:
        row["verdict"] = "baseline"
    row["seeds"] = ";".join(map(str, setting.values))
    row["values"] = ";".join(repr(v) for v in setting.values.values())
    return row


def _csv(settings: Sequence[SettingResult]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, _CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_csv_row(s) for s in settings)
    return buffer.getvalue()


def _setting_json(setting: SettingResult) -> dict:
    return {
        "split": setting.split,
        "data": setting.cell.data.name,
        "setting": setting.label,
        "id": setting.cell.setting_id,
        "model": setting.cell.model,
        "guide": dict(setting.cell.guide),
        "training": dict(setting.cell.training),
        "metric": setting.cell.data.metric,
        "values": {str(k): v for k, v in setting.values.items()},
        "failed": setting.failed,
        **asdict(setting.summary),
        "baseline": None if setting.cell.is_baseline else setting.cell.baseline_id,
        "vs_baseline": asdict(setting.paired) if setting.paired else None,
    }


def write_report(
    grid: Grid,
    results: Sequence[CellResult],
    test_results: Sequence[CellResult] = (),
) -> list[SettingResult]:
    """Write results.md, .csv and .json and a strip plot per data set; returns the dev settings."""
    from .compare_plots import strip_plot

    out = grid.output_dir
    dev = analyse(results, "dev")
    test = analyse(test_results, "test")
    best = best_on_dev(dev, len(grid.seeds))
    write_text(out / "results.md", markdown(grid, dev, test))
    write_text(out / "results.csv", _csv([*dev, *test]))
    write_json(
        out / "results.json",
        {
            "source": grid.source,
            "seeds": list(grid.seeds),
            "datasets": [asdict(d) for d in grid.datasets],
            "settings": [_setting_json(s) for s in dev],
            "best_on_dev": {name: s.cell.setting_id for name, s in best.items()},
            "test": [_setting_json(s) for s in test],
            "cells": [
                {
                    "path": r.cell.path,
                    "data": r.cell.data.name,
                    "setting": r.cell.setting_id,
                    "seed": r.cell.seed,
                    "status": r.status,
                    "error": r.error,
                    "location": r.location,
                    "seconds": r.seconds,
                    "metrics": r.metrics,
                }
                for r in results
            ],
            "method": METHODS,
        },
    )
    for data in grid.datasets:
        settings = [s for s in dev if s.cell.data.name == data.name and s.values]
        if settings:
            strip_plot(Path(out / "plots" / f"{data.name}.png"), settings, f"{data.name}: dev {data.metric}")
    return dev

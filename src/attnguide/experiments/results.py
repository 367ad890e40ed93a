"""The results of a grid: each cell's outcome, per-setting statistics over seeds against the
baseline, and the setting chosen on dev."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import AttnguideError
from .grid import Cell
from .stats import Paired, Summary, paired_difference, summarize

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
    revision: str | None = None  # the attnguide source that made the run, where it recorded one


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

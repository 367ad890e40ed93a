"""The report of a grid: the tables (Markdown, CSV, JSON) and a strip plot per data set."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..files import write_json, write_text
from .grid import ADAPTER_KEYS, TRAINING_KEYS, Grid, guide_keys
from .results import FAILED, FINISHED, PENDING, CellResult, SettingResult, analyse, best_on_dev
from .stats import METHODS


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


def _csv_fields() -> list[str]:
    """The columns of results.csv: a setting's identity (with every guide setting of the registry that
    a grid sweeps), then its statistics."""
    return [
        "split", "data", "setting", "model", *guide_keys(), *TRAINING_KEYS, *ADAPTER_KEYS, "metric", "n",
        "failed", "mean", "std", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "t_test_p",
        "wilcoxon_p", "verdict", "seeds", "values",
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
    writer = csv.DictWriter(buffer, _csv_fields(), lineterminator="\n")
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
    from .comparison_plots import strip_plot

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
            "test_all": grid.test_all,
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
                    "revision": r.revision,
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

"""What ``attnguide tune`` writes: ``trials.csv``, ``results.json``, Optuna's figures and
``report.md`` with the search, the confirmation and the verdict."""

from __future__ import annotations

import csv
import io
import logging
import math
import warnings
from pathlib import Path
from typing import Any

from ..files import write_json, write_text
from .stats import METHODS
from .tuning_trials import TuneSettings, best_trial, describe_setting

logger = logging.getLogger("attnguide")


def write_results(
    settings: TuneSettings, study: Any, confirmation: dict[str, Any] | None, unconfirmed: str = ""
) -> str:
    """``trials.csv``, ``results.json``, the figures and ``report.md`` in the output directory; returns
    the verdict line (without a confirmation, ``unconfirmed`` says why)."""
    out = settings.output_dir
    trials = study.get_trials(deepcopy=False)
    retried = {
        t.user_attrs["retry_of"]: t.user_attrs.get("retry_reason")
        for t in trials
        if "retry_of" in t.user_attrs
    }
    rows = [_trial_row(t, settings.metric, retried.get(t.number)) for t in trials]
    buffer = io.StringIO()
    keys = {key for row in rows for key in row}
    names = [*(k for k in _FIRST if k in keys), *sorted(keys - set(_FIRST))]
    writer = csv.DictWriter(buffer, names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "trials.csv", buffer.getvalue())
    best = best_trial(study)
    baseline = next((t for t in trials if t.user_attrs.get("baseline") and t.state.name == "COMPLETE"), None)
    verdict = _verdict(confirmation, settings.metric) if confirmation else f"no confirmation: {unconfirmed}"
    figures = _figures(study, out / "figures", settings.metric)
    write_json(
        out / "results.json",
        {
            "study": settings.study_name,
            "metric": settings.metric,
            "identity": settings.identity,
            "space": settings.space.to_dict(),
            "trials": rows,
            "baseline_trial": _trial_row(baseline, settings.metric) if baseline else None,
            "best_trial": _trial_row(best, settings.metric) if best else None,
            "confirmation": confirmation,
            "verdict": verdict,
            "method": METHODS,
        },
    )
    write_text(out / "report.md", _report(settings, rows, best, baseline, confirmation, verdict, figures))
    return verdict


_FIRST = ("trial", "state", "value", "baseline", "guides", "reason")


def _trial_row(trial: Any, metric: str, reason: str | None = None) -> dict[str, Any]:
    """A trial as a row of trials.csv; ``reason``: why its retry runs (after the trial's own reason,
    where it has one: a pruned baseline's, say)."""
    guide = trial.user_attrs.get("guide", {})
    return {
        "trial": trial.number,
        "state": trial.state.name.lower(),
        "value": trial.value,
        "baseline": bool(trial.user_attrs.get("baseline")),
        **guide,
        "reason": "; ".join(r for r in (trial.user_attrs.get("reason"), reason) if r),
        "seconds": round(trial.duration.total_seconds(), 1) if trial.duration else None,
        **{k: v for k, v in trial.user_attrs.items() if k.startswith(f"dev_{metric}_epoch")},
    }


def _verdict(confirmation: dict[str, Any], metric: str) -> str:
    paired = confirmation["paired"]
    seeds = paired["n"]
    diff = paired["mean_diff"]
    shown = f"{diff:+.4f}" if isinstance(diff, float) else "–"
    return (
        f"{paired['verdict']}: the best setting against the unguided baseline over {seeds} fresh seeds, "
        f"mean difference in dev {metric} {shown} (95% bootstrap interval "
        f"[{_n(paired['ci_low'])}, {_n(paired['ci_high'])}], paired t-test p {_n(paired['t_p'], '.3g')})"
    )


def _n(value: Any, spec: str = "+.4f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "–"


def _figures(study: Any, folder: Path, metric: str) -> list[str]:
    """Optimisation history, parameter importances and the metric against each weight, as PNGs
    drawn by Optuna's matplotlib visualisations; a figure Optuna cannot draw yet is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as views
    from matplotlib.ticker import NullFormatter

    from ..files import atomic_path

    drawn = []
    weights = sorted({p for t in study.get_trials(deepcopy=False) for p in t.params if p.endswith("_weight")})
    plots = {
        "history.png": lambda: views.plot_optimization_history(study, target_name=f"dev {metric}"),
        "importances.png": lambda: views.plot_param_importances(study),
        **(
            {"weights.png": lambda: views.plot_slice(study, params=weights, target_name=f"dev {metric}")}
            if weights
            else {}
        ),
    }
    verbosity = optuna.logging.get_verbosity()
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # Optuna's notes on its experimental plots and few trials
                warnings.simplefilter("ignore")
                optuna.logging.set_verbosity(optuna.logging.ERROR)  # and its "no complete trials"
                axes = plot()
        except (ValueError, RuntimeError) as error:  # too few finished trials for this figure
            logger.info("figure %s left out: %s", name, str(error).splitlines()[0])
            continue
        finally:
            optuna.logging.set_verbosity(verbosity)
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
        for axis in figure.axes:  # a narrow log range labels every minor tick, one over the other
            axis.xaxis.set_minor_formatter(NullFormatter())
        figure.set_size_inches(max(6.0, 3.2 * len(weights)) if name == "weights.png" else 7.0, 4.5)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / name) as tmp:
            figure.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(figure)
        drawn.append(name)
    return drawn


def _report(
    settings: TuneSettings,
    rows: list[dict[str, Any]],
    best: Any,
    baseline: Any,
    confirmation: dict[str, Any] | None,
    verdict: str,
    figures: list[str],
) -> str:
    metric = settings.metric
    counts = {
        state: sum(r["state"] == state for r in rows) for state in ("complete", "pruned", "fail", "running")
    }
    lines = [
        f"# attnguide tune: {settings.study_name}",
        "",
        f"{len(rows)} trials: {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['fail']} failed, {counts['running']} running; dev {metric}, higher is better; trial 0 is "
        "the unguided baseline (its retries too).",
        "",
        f"**Verdict:** {verdict}.",
        "",
        "## The search",
        "",
        f"Baseline (trial {baseline.number}): {_n(baseline.value, '.4f')}."
        if baseline
        else "Baseline: not finished.",
        _best_line(best),
        "",
        "| trial | state | dev " + metric + " | settings | note |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for row in rows:
        setting = {
            k: v for k, v in row.items() if k not in _FIRST and k != "seconds" and not k.startswith("dev_")
        }
        described = (
            "baseline" if row["baseline"] else describe_setting({"guides": row.get("guides"), **setting})
        )
        lines.append(
            f"| {row['trial']} | {row['state']} | {_n(row['value'], '.4f')} | {described} | {row['reason']} |"
        )
    if confirmation is not None:
        lines += [
            "",
            f"## Confirmation over {len(settings.seeds)} fresh seeds ({', '.join(map(str, settings.seeds))})",
            "",
        ]
        lines += _confirmation_table(confirmation, "dev")
        if "test" in confirmation:
            lines += ["", "Test, evaluated once after the choice on dev:", ""]
            lines += _confirmation_table(confirmation, "test")
    lines += [
        "",
        "## Figures",
        "",
        *(f"![{name}](figures/{name})\n" for name in figures),
        "## Method",
        "",
        METHODS,
        "",
    ]
    return "\n".join(lines)


def _best_line(best: Any) -> str:
    if best is None:
        return "Best guided trial: none finished."
    setting = describe_setting(best.user_attrs["guide"])
    return f"Best guided trial: trial {best.number}, {_n(best.value, '.4f')}, with {setting}."


def _confirmation_table(confirmation: dict[str, Any], split: str) -> list[str]:
    paired = confirmation["paired" if split == "dev" else "test_paired"]
    rows = [
        "| setting | values by seed | mean ± std | Δ vs baseline | Δ 95% CI | t-test p | verdict |",
        "|" + " --- |" * 7,
    ]
    for name, summary in confirmation[split].items():
        values = ", ".join(f"{v:.4f}" for v in summary["values"].values())
        spread = f"{_n(summary['mean'], '.4f')} ± {_n(summary['std'], '.4f')}"
        if name == "baseline":
            rows.append(f"| {name} | {values} | {spread} | | | | |")
        else:
            interval = f"[{_n(paired['ci_low'])}, {_n(paired['ci_high'])}]"
            diff, p_value = _n(paired["mean_diff"]), _n(paired["t_p"], ".3g")
            rows.append(
                f"| {name} | {values} | {spread} | {diff} | {interval} | {p_value} | {paired['verdict']} |"
            )
    return rows

"""``attnguide forest``: one table and one forest plot over the outputs of several grids.

Each row is a guided setting of one data set and model in one grid (``compare`` or the study), with
its paired difference from the unguided baseline over seeds, the difference's 95% interval, the
paired t-test's p-value and, because a study makes many comparisons, that p-value corrected by
Holm's method over every row of the table. The seed-noise band of a row is ± one standard deviation
of the baseline's own values over seeds: a difference inside it is no larger than what a change of
seed does. A study grid's setting that a tune chose (``tuned.json`` beside its results) is the arm
``tuned (<setting>)``. Written as Markdown, CSV, LaTeX and a PNG, for a paper.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import AttnguideError
from ..files import atomic_path, write_text
from .stats import ALPHA, BETTER, NO_DIFFERENCE, TOO_FEW, WORSE

MODEL_NAMES = {"default": "MiniLM-L6", "minilm-l6": "MiniLM-L6", "mpnet-base": "MPNet-base"}
ATTENTION_MEASURES = ("head_similarity", "special_token_share")


@dataclass(frozen=True)
class Row:
    """One guided setting against its baseline."""

    grid: str
    data: str
    model: str
    arm: str
    split: str
    metric: str
    n: int
    baseline_mean: float | None
    baseline_std: float | None
    mean: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    p_holm: float | None
    verdict: str
    verdict_holm: str
    head_similarity: tuple[float | None, float | None]  # baseline, guided (means over seeds)
    special_token_share: tuple[float | None, float | None]
    seconds: float | None  # median seconds a guided run took


def _mean(values: Sequence[float]) -> float | None:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def _median(values: Sequence[float]) -> float | None:
    values = sorted(v for v in values if isinstance(v, (int, float)))
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def _read(path: Path) -> dict:
    """A grid's results.json (given the file or the grid's output directory)."""
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise AttnguideError(f"{path}: expected a grid's output directory or its results.json")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AttnguideError(f"{file}: not a results.json of attnguide compare ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), list):
        raise AttnguideError(f"{file}: not a results.json of attnguide compare (no settings list)")
    for split in ("settings", "test"):
        entries = data.get(split, [])
        if not isinstance(entries, list):
            raise AttnguideError(f"{file}: {split}: expected a list of settings")
        for index, entry in enumerate(entries):
            _check_setting(file, f"{split}[{index}]", entry)
    _check_cells(file, data.get("cells", []))
    return data


SETTING_KEYS = ("id", "data", "setting", "metric", "baseline", "vs_baseline")
PAIRED_KEYS = ("n", "mean_diff", "ci_low", "ci_high", "t_p", "verdict")

_NUMBER = (int, float, type(None))
SETTING_TYPES = {"data": (str,), "setting": (str,), "metric": (str,), "baseline": (str, type(None))}
SETTING_TYPES |= {"mean": _NUMBER, "std": _NUMBER}
PAIRED_TYPES = {key: _NUMBER for key in ("mean_diff", "ci_low", "ci_high", "t_p")}
PAIRED_TYPES |= {"n": (int,), "verdict": (str,)}
CELL_TYPES = {"metrics": (dict, type(None)), "seconds": _NUMBER}


def _check_setting(file: Path, where: str, entry: object) -> None:
    """One setting of a results.json has what the forest reads, or a one-line error names it."""
    if not isinstance(entry, dict):
        raise AttnguideError(f"{file}: {where}: expected a mapping, got {type(entry).__name__}")
    missing = [k for k in SETTING_KEYS if k not in entry]
    if not missing and isinstance(entry["vs_baseline"], dict):
        missing = [f"vs_baseline.{k}" for k in PAIRED_KEYS if k not in entry["vs_baseline"]]
    elif not missing and entry["vs_baseline"] is not None:
        missing = ["vs_baseline (a mapping or null)"]
    if missing:
        raise AttnguideError(
            f"{file}: {where}: missing {', '.join(missing)}; not a results.json of attnguide compare"
        )
    if not isinstance(entry["id"], str) or entry["id"].count("/") < 3:
        raise AttnguideError(
            f"{file}: {where}: id {entry['id']!r} is not a setting id DATA/MODEL/TRAINING/GUIDE"
        )
    for holder, prefix, types in (
        (entry, "", SETTING_TYPES),
        (entry["vs_baseline"] or {}, "vs_baseline.", PAIRED_TYPES),
    ):
        for key, allowed in types.items():
            if key in holder and not _is(holder[key], allowed):
                raise AttnguideError(
                    f"{file}: {where}: {prefix}{key}: expected {_kind(allowed)}, got {holder[key]!r}"
                )


def _is(value: object, types: tuple[type, ...]) -> bool:
    """``isinstance``, with booleans counted as no number (JSON true is not a p-value)."""
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def _kind(types: tuple[type, ...]) -> str:
    names = {str: "text", int: "a whole number", float: "a number", dict: "a mapping", type(None): "null"}
    shown = [t for t in types if not (t is int and float in types)]  # "a number" covers whole ones
    return " or ".join(names[t] for t in shown)


def _check_cells(file: Path, cells: object) -> None:
    """The ``cells`` list of a results.json has what the forest reads, or a one-line error names it."""
    if not isinstance(cells, list):
        raise AttnguideError(f"{file}: cells: expected a list of cells")
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise AttnguideError(f"{file}: cells[{index}]: expected a mapping, got {cell!r}")
        types = {"setting": (str,)} | CELL_TYPES if cell.get("status") == "finished" else CELL_TYPES
        for key, allowed in types.items():
            if not _is(cell.get(key), allowed):
                raise AttnguideError(
                    f"{file}: cells[{index}]: {key}: expected {_kind(allowed)}, got {cell.get(key)!r}"
                )


TUNED_FILE = "tuned.json"
"""Beside a study grid's results.json: the setting ids that the study's tunes added to the grid
(each with its tune and guide setting), shown as the arm ``tuned (<setting>)``."""


def read_tuned(file: Path) -> dict[str, dict[str, Any]]:
    """A grid folder's ``TUNED_FILE``: setting id -> its tune's name and guide setting (empty
    without one), or a one-line error naming the file."""
    if not file.is_file():
        return {}
    try:
        tuned = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AttnguideError(f"{file}: not a {TUNED_FILE} of attnguide study ({error})") from None
    if not isinstance(tuned, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("tune"), str) and isinstance(v.get("guide"), dict)
        for v in tuned.values()
    ):
        raise AttnguideError(
            f"{file}: not a {TUNED_FILE} of attnguide study (expected setting id: {{tune, guide}} entries)"
        )
    return tuned


def _tuned(path: Path) -> set[str]:
    """The setting ids of a grid's tuned arms (``TUNED_FILE``; none without one)."""
    return set(read_tuned((path if path.is_dir() else path.parent) / TUNED_FILE))


def _grid_rows(name: str, data: dict, split: str, tuned: set[str]) -> list[dict]:
    """The rows of one grid: its guided settings on ``split`` (``test``: the test evaluations;
    ``auto``: those of a grid that evaluates every cell on test, else dev); a setting ``tuned``
    names is shown as ``tuned (setting)``."""
    if split == "auto":
        split = "test" if data.get("test_all") else "dev"
    settings = data.get("test", []) if split == "test" else data["settings"]
    by_id = {s["id"]: s for s in settings}
    cells: dict[str, list[dict]] = {}
    for cell in data.get("cells", []):
        if cell.get("status") == "finished":
            cells.setdefault(cell["setting"], []).append(cell)
    rows = []
    for setting in settings:
        paired = setting.get("vs_baseline")
        if setting.get("baseline") is None or paired is None:
            continue
        baseline = by_id.get(setting["baseline"], {})
        measures = {
            m: tuple(
                _mean([(c.get("metrics") or {}).get(m) for c in cells.get(sid, [])])
                for sid in (setting["baseline"], setting["id"])
            )
            for m in ATTENTION_MEASURES
        }
        slug = setting["id"].split("/")[1]
        rows.append(
            {
                "grid": name,
                "data": setting["data"],
                "model": MODEL_NAMES.get(slug, slug),
                "arm": f"tuned ({setting['setting']})" if setting["id"] in tuned else setting["setting"],
                "split": split,
                "metric": setting["metric"],
                "n": paired["n"],
                "baseline_mean": baseline.get("mean"),
                "baseline_std": baseline.get("std"),
                "mean": setting.get("mean"),
                "diff": paired["mean_diff"],
                "ci_low": paired["ci_low"],
                "ci_high": paired["ci_high"],
                "p": paired["t_p"],
                "verdict": paired["verdict"],
                **measures,
                "seconds": _median([c.get("seconds") for c in cells.get(setting["id"], [])]),
            }
        )
    return rows


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (``None`` stays ``None`` and is not counted)."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[index] = running
    return adjusted


def collect(paths: Sequence[Path], split: str = "auto", names: Sequence[str] | None = None) -> list[Row]:
    """Every guided setting of the grids at ``paths``, with Holm-corrected verdicts over all rows."""
    raw: list[dict] = []
    for index, path in enumerate(paths):
        name = names[index] if names else (path.name if path.is_dir() else path.parent.name)
        raw += _grid_rows(name, _read(path), split, _tuned(path))
    adjusted = holm([r["p"] for r in raw])
    rows = []
    for row, p_holm in zip(raw, adjusted, strict=True):
        verdict = row["verdict"]
        if verdict in (BETTER, WORSE) and (p_holm is None or p_holm >= ALPHA):
            verdict_holm = NO_DIFFERENCE
        else:
            verdict_holm = verdict
        rows.append(Row(**row, p_holm=p_holm, verdict_holm=verdict_holm))
    return rows


def _number(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "–" if value is None else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")


def _pair(values: tuple[float | None, float | None]) -> str:
    return f"{_number(values[0], 2)} → {_number(values[1], 2)}"


COLUMNS = (
    "grid", "data", "model", "arm", "metric", "n", "unguided", "guided", "Δ", "95% CI", "p", "p (Holm)",
    "verdict (Holm)", "head similarity", "[CLS]/[SEP] share", "s/run",
)  # fmt: skip


def _cells(row: Row) -> list[str]:
    return [
        row.grid, row.data, row.model, row.arm, row.metric, str(row.n),
        f"{_number(row.baseline_mean)} ± {_number(row.baseline_std)}", _number(row.mean),
        ("+" if (row.diff or 0) > 0 else "") + _number(row.diff),
        f"[{_number(row.ci_low)}, {_number(row.ci_high)}]", _p(row.p), _p(row.p_holm), row.verdict_holm,
        _pair(row.head_similarity), _pair(row.special_token_share),
        "–" if row.seconds is None else f"{row.seconds:.0f}",
    ]  # fmt: skip


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    fields = [f for f in Row.__dataclass_fields__ if f not in ATTENTION_MEASURES]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*fields, "head_similarity_unguided", "head_similarity_guided",
                     "special_token_share_unguided", "special_token_share_guided"])  # fmt: skip
    for row in rows:
        record = asdict(row)
        writer.writerow([record[f] for f in fields] + [*row.head_similarity, *row.special_token_share])
    return buffer.getvalue()


def _latex_escape(text: str) -> str:
    for plain, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                           ("#", r"\#"), ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("→", r"$\to$"),
                           ("–", "--")):  # fmt: skip
        text = text.replace(plain, escaped)
    return text


def latex(rows: Sequence[Row]) -> str:
    """A booktabs table (``\\usepackage{booktabs}``)."""
    columns = COLUMNS[:13]
    lines = [r"\begin{tabular}{" + "l" * 5 + "r" * (len(columns) - 5) + "}", r"\toprule"]
    lines.append(" & ".join(_latex_escape(c) for c in columns) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(_latex_escape(c) for c in _cells(r)[:13]) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


_COLOURS = {BETTER: "#1a7f37", WORSE: "#cf222e", NO_DIFFERENCE: "#57606a", TOO_FEW: "#8c959f"}


def forest_plot(path: Path, rows: Sequence[Row], title: str) -> None:
    """Paired difference and 95% interval per row, the zero line, the seed-noise band per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(12, 0.45 * len(rows) + 1.8))
    for y, row in enumerate(reversed(rows)):
        if row.baseline_std is not None:
            ax.fill_betweenx([y - 0.4, y + 0.4], -row.baseline_std, row.baseline_std,
                             color="#d0d7de", alpha=0.6, linewidth=0)  # fmt: skip
        if row.diff is None:
            continue
        colour = _COLOURS.get(row.verdict_holm, "#57606a")
        if row.ci_low is not None and row.ci_high is not None:
            ax.plot([row.ci_low, row.ci_high], [y, y], color=colour, linewidth=2)
        ax.plot([row.diff], [y], "o", color=colour)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)))
    labels = [f"{r.grid}: {r.data} · {r.model} · {r.arm} ({r.metric}, n={r.n})" for r in reversed(rows)]
    ax.set_yticklabels(labels, fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.set_xlabel(
        "guided − unguided, paired by seed: mean and 95% bootstrap CI\ngrey band: ± 1 sd of the unguided runs"
    )
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)


def write_forest(rows: Sequence[Row], out: Path, title: str) -> None:
    """``forest.md``, ``forest.csv``, ``forest.tex`` and ``forest.png`` in ``out``."""
    if not rows:
        raise AttnguideError("no guided setting with a baseline in these grids: nothing to plot yet")
    out.mkdir(parents=True, exist_ok=True)
    note = (
        f"Δ: guided − unguided, paired by seed; 95% CI: percentile bootstrap; p: paired t-test; "
        f"p (Holm): corrected over the {len(rows)} rows; verdict: better/worse only where the CI "
        f"excludes 0 and the Holm-corrected p < {ALPHA:.2f}. Attention columns: unguided → guided, "
        "means over seeds.\n"
    )
    write_text(out / "forest.md", markdown(rows) + "\n" + note)
    write_text(out / "forest.csv", csv_text(rows))
    write_text(out / "forest.tex", latex(rows))
    forest_plot(out / "forest.png", rows, title)

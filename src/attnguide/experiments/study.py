"""``attnguide study``: several grids run as one designed study, and one report over them.

A study file names its output directory and its grids (``compare`` grid files); each grid runs into
``OUTPUT/<grid file's stem>/`` with ``compare``'s resumability (finished cells are kept, an
interrupted one resumes from its checkpoint), and after every grid the study's forest table and plot
are made again from every grid's results on disk. Several workers share a study as ``compare`` and
``tune`` share their work: started alike, they take each grid's cells and each tune's trials
between them (a worker that runs out of cells to take waits for the others' last ones before the
grid's report); ``--only`` sends a worker to chosen grids and tunes.

A study may also list ``tunes:``, each an ``attnguide tune`` that chooses a guide setting for one of
its grids on a selection split (the grid's model, data layout and training settings, the entry's
train and selection files). A tune runs, resumably (``tune`` continues its own storage), into
``OUTPUT/tune-<name>/`` before its grid, or alone (``--only tune-<name>``); once all its trials have
ended, its best setting, its numbers rounded to 3 significant digits, joins the grid as one more
guide setting: trained on the grid's own train file with the grid's seeds and reported on its dev
split like every other arm, and labelled ``tuned (<setting>)`` in the report. Its cells are keyed by
that setting, like every cell, so a tune whose best setting changes later gives new cells and never
mixes with the old ones.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import AttnguideError
from ..files import load_yaml, write_json
from ..guiding.config import GuideConfig
from ..rundir import file_sha256
from ..tasks import TASKS, get_task
from ..tasks.readers import Columns
from .forest import TUNED_FILE, collect, read_tuned, write_forest
from .grid import ADAPTER_KEYS, TRAINING_KEYS, Cell, Grid, build_grid, guide_keys, swept_guide_settings
from .runner import check_writable_dir

logger = logging.getLogger("attnguide")

STUDY_KEYS = ("output_dir", "title", "grids", "split", "tunes")
TUNE_KEYS = ("name", "grid", "train", "dev", "trials", "seeds", "no_confirm", "space", "options")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Tune:
    """One ``tunes:`` entry: an ``attnguide tune`` choosing a guide setting for one grid."""

    name: str
    grid: str  # the grid's name (its file's stem)
    train: Path
    dev: Path  # the selection split: nothing is reported on it
    trials: int
    seeds: int | None  # seeds of tune's confirmation; None: --no-confirm
    space: Path
    options: tuple[str, ...]  # further tune flags (--prune-after 2, --pruner none, ...)
    where: str  # "STUDY FILE: tunes[i] (name)", for messages

    @property
    def label(self) -> str:
        """Its name for ``--only`` and its output folder's name."""
        return f"tune-{self.name}"


@dataclass(frozen=True)
class Study:
    source: Path
    output_dir: Path
    title: str
    grids: tuple[Path, ...]
    split: str  # the split the report compares on: auto (per grid), dev or test
    tunes: tuple[Tune, ...] = ()

    def grid_dir(self, grid: Path) -> Path:
        return self.output_dir / grid.stem

    def tune_dir(self, tune: Tune) -> Path:
        return self.output_dir / tune.label


def read_study(path: str | Path) -> Study:
    """A validated study file; its paths, like those of a grid file, are relative to the working
    directory."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AttnguideError(f"{path}: study file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError, IsADirectoryError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise AttnguideError(f"{where}: not a readable YAML file ({problem})") from None
    if not isinstance(data, dict):
        raise AttnguideError(f"{path}: expected a mapping with keys {', '.join(STUDY_KEYS)}")
    unknown = sorted(set(data) - set(STUDY_KEYS), key=str)
    if unknown:
        raise AttnguideError(f"{path}: unknown key {unknown[0]!r}; expected {', '.join(STUDY_KEYS)}")
    output_dir, grids = data.get("output_dir"), data.get("grids")
    if not isinstance(output_dir, str) or not output_dir.strip():
        raise AttnguideError(f"{path}: output_dir: expected a directory name")
    if not isinstance(grids, list) or not grids or not all(isinstance(g, str) for g in grids):
        raise AttnguideError(f"{path}: grids: expected a list of grid files")
    files = tuple(Path(g) for g in grids)
    for file in files:
        if not file.is_file():
            raise AttnguideError(f"{path}: grids: no such grid file: {file}")
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        raise AttnguideError(f"{path}: grids: two grid files share a name; each needs its own folder")
    check_writable_dir(Path(output_dir), f"{path}: output_dir:")
    title = data.get("title")
    if title is not None and not isinstance(title, (str, int, float)):
        raise AttnguideError(f"{path}: title: expected text, got {title!r}")
    split = data.get("split", "auto")
    if split not in ("auto", "dev", "test"):
        raise AttnguideError(f"{path}: split: expected auto, dev or test, got {split!r}")
    tunes = _read_tunes(path, data.get("tunes", []), stems)
    return Study(path, Path(output_dir), str(title or path.stem), files, split, tunes)


def _read_tunes(path: Path, entries: Any, grids: Sequence[str]) -> tuple[Tune, ...]:
    """The ``tunes:`` entries, each checked; at most one per grid, names distinct from the grids'."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AttnguideError(f"{path}: tunes: expected a list of mappings with keys {', '.join(TUNE_KEYS)}")
    tunes = [_read_tune(f"{path}: tunes[{index}]", entry, grids) for index, entry in enumerate(entries)]
    for index, tune in enumerate(tunes):
        earlier = tunes[:index]
        if tune.name in (t.name for t in earlier):
            raise AttnguideError(f"{tune.where}: name: another tune is named {tune.name!r}")
        if tune.grid in (t.grid for t in earlier):
            raise AttnguideError(f"{tune.where}: grid: grid {tune.grid} already has a tune (one per grid)")
        if tune.label in grids:
            raise AttnguideError(f"{tune.where}: name: {tune.label} is also a grid's name")
    return tuple(tunes)


def _read_tune(where: str, entry: dict[str, Any], grids: Sequence[str]) -> Tune:
    """One ``tunes:`` entry, or a one-line error naming it, the key and what was expected."""
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AttnguideError(f"{where}: name: expected a plain file-name-safe name, got {name!r}")
    where = f"{where} ({name})"
    unknown = sorted(set(entry) - set(TUNE_KEYS), key=str)
    if unknown:
        raise AttnguideError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(TUNE_KEYS)}")

    def fail(key: str, expected: str) -> AttnguideError:
        return AttnguideError(f"{where}: {key}: expected {expected}, got {entry.get(key)!r}")

    if entry.get("grid") not in grids:
        raise fail("grid", f"the name of one of the study's grids ({', '.join(grids)})")
    for key in ("train", "dev", "space"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise fail(key, "a file name")

    def whole(key: str, why: str, required: bool = False) -> int | None:
        value = entry.get(key)
        if (value is not None or required) and (
            not isinstance(value, int) or isinstance(value, bool) or value < 2
        ):
            raise fail(key, f"a whole number >= 2 ({why})")
        return value

    trials = whole("trials", "trial 0 is the unguided baseline", required=True)
    seeds = whole("seeds", "the runs that confirm the best setting")
    no_confirm = entry.get("no_confirm", False)
    if not isinstance(no_confirm, bool):
        raise fail("no_confirm", "true or false")
    if (seeds is None) != no_confirm:
        raise AttnguideError(
            f"{where}: expected either seeds: N (tune confirms its best setting over N seeds) "
            "or no_confirm: true"
        )
    options = entry.get("options", [])
    if not isinstance(options, list) or not all(
        isinstance(o, (str, int, float)) and not isinstance(o, bool) for o in options
    ):
        raise fail("options", "a list of tune flags and values")
    taken = next((str(o) for o in options if str(o).split("=", 1)[0] in _set_by_study()), None)
    if taken is not None:
        raise AttnguideError(
            f"{where}: options: {taken} is set by the study (from the grid, or this entry's keys)"
        )
    space = Path(entry["space"])
    _check_space(where, space)
    return Tune(
        name, entry["grid"], Path(entry["train"]), Path(entry["dev"]), trials, seeds, space,
        tuple(str(o) for o in options), where,
    )  # fmt: skip


def _set_by_study() -> set[str]:
    """The tune flags a study sets itself: the data and the training settings come from the grid,
    the guide settings are what the tune searches (its best trained as the grid trains its arms)."""
    keys = (*guide_keys()[1:], "guide_warmup_steps", *TRAINING_KEYS, *ADAPTER_KEYS, *Columns.names())
    flags = {"--" + k.replace("_", "-") for k in keys}
    flags |= {"--" + get_task(t).format_option.replace("_", "-") for t in TASKS}
    return flags | {
        "--model", "--train", "--dev", "--task", "--guide", "--metric", "--trials", "--seeds",
        "--no-confirm", "--space", "--output-dir", "--overwrite", "--test",
    }  # fmt: skip


def _check_space(where: str, space: Path) -> None:
    """The search space must be one ``tune`` reads and fix the guide warm-up at 0 steps: a grid's
    guide setting has none."""
    from .tuning_space import SearchSpace

    if space.is_dir():
        raise AttnguideError(f"{where}: space: {space} is a directory, not a search-space file")
    if not space.exists():
        raise AttnguideError(f"{where}: space: no such search-space file: {space}")
    try:
        loaded = SearchSpace.from_file(space)
    except AttnguideError as error:
        raise AttnguideError(f"{where}: space: {error}") from None
    warmup = loaded.params["guide_warmup_steps"] if "guide_warmup_steps" in loaded.given else None
    if warmup != [0]:
        raise AttnguideError(
            f"{where}: space: {space} must fix guide_warmup_steps: 0 (a grid's guide setting has no "
            f"warm-up), got {warmup!r}"
        )


def run_study(
    study: Study,
    only: Sequence[str] = (),
    report_only: bool = False,
    check_tune: Callable[[Tune, list[str]], None] | None = None,
) -> int:
    """Run the study's tunes and grids (those named in ``only``, else all; each tune before its
    grid), then write its report; returns the number of cells and tunes not finished. Every grid
    file and tune command is checked first (``check_tune``: the command line's own check, which
    raises on a flag ``tune`` would refuse), so bad input stops the study before anything runs."""
    from .results import FINISHED
    from .runner import run_grid

    names = [*(g.stem for g in study.grids), *(t.label for t in study.tunes)]
    missing = sorted(set(only) - set(names))
    if missing:
        raise AttnguideError(
            f"--only {missing[0]}: not a grid or tune of {study.source}; they are " + ", ".join(names)
        )
    if report_only:
        write_study_report(study)
        return 0
    grids = [g for g in study.grids if not only or g.stem in only]
    tunes = [t for t in study.tunes if not only or t.label in only]
    for grid_file in grids:  # every grid file checked before anything runs, not at its turn
        _study_grid(study, grid_file)
    commands = {t.name: tune_args(study, t) for t in tunes}
    for tune in tunes:
        if check_tune is not None:
            check_tune(tune, commands[tune.name])
    unfinished = 0
    for grid_file in study.grids:
        tune = next((t for t in study.tunes if t.grid == grid_file.stem), None)
        if tune in tunes:
            _run_tune(study, tune, commands[tune.name])
        guide, why = tuned_guide(study, tune) if tune else (None, "")
        unfinished += bool(why) and (tune in tunes or grid_file in grids)
        if tune in tunes and why:
            logger.warning("tune %s has not finished: %s", tune.name, why)
        if grid_file not in grids:
            continue
        if why:
            logger.warning(
                "grid %s runs without its tuned arm: tune %s %s (attnguide study --config %s --only %s)",
                grid_file.stem, tune.name, why, study.source, tune.label,
            )  # fmt: skip
        grid = _study_grid(study, grid_file)
        if guide is not None:
            grid = _with_tuned_arm(study, grid, grid_file, tune, guide)
        logger.info("grid %s: %d cells", grid_file.stem, len(grid.cells))
        results = run_grid(grid)
        unfinished += sum(r.status != FINISHED for r in results)
        write_study_report(study)
    return unfinished


def _study_grid(study: Study, grid_file: Path, overrides: dict[str, tuple[Any, str]] | None = None) -> Grid:
    """A grid of the study, writing into its folder of the study's output directory."""
    return build_grid(
        grid_file, {"output_dir": (str(study.grid_dir(grid_file)), str(study.source)), **(overrides or {})}
    )


def _grid_file(study: Study, name: str) -> Path:
    return next(g for g in study.grids if g.stem == name)


def tune_args(study: Study, tune: Tune) -> list[str]:
    """The ``attnguide tune`` arguments of an entry: its grid's model, data layout, metric and
    training settings, with the entry's train and selection files; raises where the files are
    missing or the grid has more than one data set, model or training setting to choose for."""
    from ..models import default_model_path

    for key in ("train", "dev"):
        if not getattr(tune, key).is_file():
            raise AttnguideError(f"{tune.where}: {key}: no such data file: {getattr(tune, key)}")
    grid = _study_grid(study, _grid_file(study, tune.grid))
    cell: Cell = grid.cells[0]
    kinds = {(c.data.name, c.model, tuple(c.training.items())) for c in grid.cells}
    if len(kinds) > 1:
        raise AttnguideError(
            f"{tune.where}: grid: {grid.source} has {len(kinds)} data sets, models or training settings; "
            "a tune chooses for a grid of one of each"
        )
    model = [] if cell.model == default_model_path() else ["--model", cell.model]  # tune's default too
    args = ["tune", *model, "--train", str(tune.train), "--dev", str(tune.dev)]
    args += [*cell.data.data_args(), *cell.data.train_options]
    for key, value in cell.training.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    args += ["--metric", cell.data.metric, "--trials", str(tune.trials), "--space", str(tune.space)]
    args += ["--no-confirm"] if tune.seeds is None else ["--seeds", str(tune.seeds)]
    return [*args, *tune.options, "--output-dir", str(study.tune_dir(tune))]


def _run_tune(study: Study, tune: Tune, args: list[str]) -> None:
    """Run (or continue) a tune as ``attnguide -q tune``, its output appended to ``tune.log``."""
    from .runner import ATTNGUIDE

    folder = study.tune_dir(tune)
    made = folder  # the outermost folder this call creates, removed again if the tune refuses its input
    while not made.parent.exists():
        made = made.parent
    new = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "tune.log"
    logger.info("tune %s: %d trials for grid %s (log: %s)", tune.name, tune.trials, tune.grid, log)
    with open(log, "a", encoding="utf-8") as handle:
        code = subprocess.run(
            [*ATTNGUIDE, "-q", *args], stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT
        ).returncode
    if code == 0:
        return
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    last = lines[-1].removeprefix("attnguide: error: ") if lines else f"exit code {code}"
    if code == 2:  # refused its input (up front, or after every trial failed on it): the study stops
        if new and [p.name for p in folder.iterdir()] == ["tune.log"]:
            shutil.rmtree(made)
        raise AttnguideError(f"{tune.where}: tune refused its input: {last}")
    logger.warning("tune %s stopped: %s (log: %s)", tune.name, last, log)


def tuned_guide(study: Study, tune: Tune) -> tuple[dict[str, Any] | None, str]:
    """The best guide setting of a tune whose trials (and confirmation, if asked for) have all ended,
    from its ``results.json``; else ``None`` and why not."""
    file = study.tune_dir(tune) / "results.json"
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "has not run"
    except (OSError, ValueError) as error:
        return None, f"left an unreadable {file} ({error})"
    if not isinstance(results, dict) or not isinstance(results.get("trials"), list):
        return None, f"left a {file} that is not tune's (no trials list)"
    trials = [t for t in results["trials"] if isinstance(t, dict)]
    ended = [t for t in trials if t.get("state") not in ("running", "waiting")]
    if len(ended) < len(trials) or len(trials) < tune.trials:
        return None, f"has {len(ended)} of its {tune.trials} trials ended"
    if tune.seeds is not None and not results.get("confirmation"):
        return None, "has not confirmed its best setting"
    identity = results.get("identity") or {}
    for split in ("train", "dev"):
        path = getattr(tune, split)
        if not path.is_file():
            return None, f"cannot be checked: its {split} file {path} is missing"
        if identity.get(f"{split}_sha256") != file_sha256(path):
            return None, f"chose on another {split} file than {path} (move {study.tune_dir(tune)} away)"
    best = results.get("best_trial")
    if not best:
        return None, "finished no guided trial"
    return {k: v for k, v in best.items() if k in (*guide_keys(), "warmup_steps")}, ""


def _with_tuned_arm(study: Study, grid: Grid, grid_file: Path, tune: Tune, guide: dict[str, Any]) -> Grid:
    """``grid`` with the tune's best setting as one more guide setting (numbers to 3 significant
    digits), recorded in the grid folder's ``tuned.json`` for the report's label."""
    if guide.get("warmup_steps"):
        raise AttnguideError(
            f"{tune.where}: its best setting warms the guides up over {guide['warmup_steps']} steps, "
            "which a grid cannot train; fix guide_warmup_steps: 0 in its space and tune again"
        )
    origin = f"{tune.where}: best setting"
    numbers = {s.name for s in swept_guide_settings()}
    settings = {k: float(f"{v:.3g}") if k in numbers else v for k, v in guide.items() if k in guide_keys()}
    overrides = {k: (v, origin) for k, v in {**settings, "profile": GuideConfig().profile}.items()}
    arms = [c for c in _study_grid(study, grid_file, overrides).cells if not c.is_baseline]
    arm, known = arms[0], {c.path for c in grid.cells}
    cells = [*grid.cells, *(c for c in arms if c.path not in known)]
    record = study.grid_dir(grid_file) / TUNED_FILE
    tuned = read_tuned(record)
    earlier = [sid for sid, t in tuned.items() if t["tune"] == tune.name]  # the latest last
    if earlier and earlier[-1] != arm.setting_id:
        logger.warning(
            "tune %s's best setting is now %s; the runs of %s stay in %s but leave the report",
            tune.name, arm.setting_id, earlier[-1], study.grid_dir(grid_file),
        )  # fmt: skip
    tuned.pop(arm.setting_id, None)
    write_json(record, {**tuned, arm.setting_id: {"tune": tune.name, "guide": arm.guide}})
    logger.info("grid %s: tuned arm %s (tune %s)", grid_file.stem, arm.setting_id, tune.name)
    return replace(grid, cells=tuple(sorted(cells, key=lambda c: grid.seeds.index(c.seed))))


def write_study_report(study: Study) -> None:
    """The forest table and plot over every grid of the study that has results on disk."""
    done = [study.grid_dir(g) for g in study.grids if (study.grid_dir(g) / "results.json").is_file()]
    rows = collect(done, study.split) if done else []
    if rows:
        write_forest(rows, study.output_dir, study.title)
    else:
        logger.info("%s: no grid has a guided setting with its baseline yet: no report", study.output_dir)

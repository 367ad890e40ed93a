"""``attnguide study``: several grids run as one designed study, and one report over them.

A study file names its output directory and its grids (``compare`` grid files); each grid runs into
``OUTPUT/<grid file's stem>/`` with ``compare``'s resumability (finished cells are kept, an
interrupted one resumes from its checkpoint), and after every grid the study's forest table and plot
are made again from every grid's results on disk. Workers share a study by taking different grids
(``--only``); two on one grid wait for each other through the grid's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import AttnguideError
from .forest import collect, write_forest
from .grid import build_grid

logger = logging.getLogger("attnguide")

STUDY_KEYS = ("output_dir", "title", "grids", "split")


@dataclass(frozen=True)
class Study:
    source: Path
    output_dir: Path
    title: str
    grids: tuple[Path, ...]
    split: str  # the split the report compares on: auto (per grid), dev or test

    def grid_dir(self, grid: Path) -> Path:
        return self.output_dir / grid.stem


def read_study(path: str | Path) -> Study:
    """A validated study file; its paths, like those of a grid file, are relative to the working
    directory."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AttnguideError(f"{path}: study file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError, IsADirectoryError) as error:
        raise AttnguideError(f"{path}: not a readable YAML file ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise AttnguideError(f"{path}: expected a mapping with keys {', '.join(STUDY_KEYS)}")
    unknown = sorted(set(data) - set(STUDY_KEYS))
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
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise AttnguideError(f"{path}: output_dir: {output_dir} exists and is not a directory")
    split = data.get("split", "auto")
    if split not in ("auto", "dev", "test"):
        raise AttnguideError(f"{path}: split: expected auto, dev or test, got {split!r}")
    return Study(path, Path(output_dir), str(data.get("title") or path.stem), files, split)


def run_study(study: Study, only: Sequence[str] = (), report_only: bool = False) -> int:
    """Run the study's grids (those named in ``only``, else all), then write its report; returns the
    number of cells not finished."""
    from .results import FINISHED
    from .runner import run_grid

    chosen = [g for g in study.grids if not only or g.stem in only]
    missing = sorted(set(only) - {g.stem for g in study.grids})
    if missing:
        raise AttnguideError(
            f"--only {missing[0]}: not a grid of {study.source}; its grids are "
            + ", ".join(g.stem for g in study.grids)
        )
    unfinished = 0
    for grid_file in [] if report_only else chosen:
        grid = build_grid(grid_file, {"output_dir": (str(study.grid_dir(grid_file)), str(study.source))})
        logger.info("grid %s: %d cells", grid_file.stem, len(grid.cells))
        results = run_grid(grid)
        unfinished += sum(r.status != FINISHED for r in results)
        write_study_report(study)
    if report_only:
        write_study_report(study)
    return unfinished


def write_study_report(study: Study) -> None:
    """The forest table and plot over every grid of the study that has results on disk."""
    done = [study.grid_dir(g) for g in study.grids if (study.grid_dir(g) / "results.json").is_file()]
    rows = collect(done, study.split) if done else []
    if rows:
        write_forest(rows, study.output_dir, study.title)
    else:
        logger.info("%s: no grid has a guided setting with its baseline yet: no report", study.output_dir)

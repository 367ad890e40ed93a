"""``attnguide study`` and ``attnguide forest``: the study file, Holm's correction, the report files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from test_compare import fake_run, nli, write_grid  # noqa: F401 (nli: a fixture)

from attnguide.cli import main
from attnguide.experiments.forest import collect, holm
from attnguide.experiments.grid import build_grid


def test_holm_matches_the_step_down_rule() -> None:
    # sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (kept monotone); None is not counted
    assert holm([0.04, None, 0.01, 0.02]) == [pytest.approx(0.04), None, pytest.approx(0.03),
                                              pytest.approx(0.04)]  # fmt: skip
    assert holm([0.9, 0.8]) == [1.0, 1.0]


@pytest.fixture
def study(nli, tmp_path) -> Path:
    """A study of two grids whose runs are finished on disk: one where guiding adds 0.01 in every
    seed, one where it adds nothing."""
    for name, shift in (("helps", 0.01), ("noise", 0.0)):
        config = write_grid(
            tmp_path / f"{name}.yaml", train=nli["train"], dev=nli["dev"], models=["default"],
            guides=["none", "mdg+pdg"], seeds=[1, 2, 3, 4, 5, 6], output_dir="unused",
        )  # fmt: skip
        grid = build_grid(config, {"output_dir": (str(tmp_path / "out" / name), "test")})
        rng = np.random.default_rng(1)
        baseline = dict(zip(grid.seeds, rng.normal(0.8, 0.01, 6), strict=True))
        for cell in grid.cells:
            guided = 0.0 if cell.is_baseline else shift + rng.normal(0, 0.001)
            fake_run(grid, cell, float(baseline[cell.seed] + guided))
    (tmp_path / "study.yaml").write_text(
        f"output_dir: {tmp_path / 'out'}\ntitle: two grids\n"
        f"grids: [{tmp_path / 'helps.yaml'}, {tmp_path / 'noise.yaml'}]\n",
        encoding="utf-8",
    )
    return tmp_path / "study.yaml"


def test_a_finished_study_runs_nothing_and_writes_its_report(study, capsys) -> None:
    assert main(["-q", "study", "--config", str(study)]) == 0
    out = study.parent / "out"
    assert "helps" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "forest.csv").open(encoding="utf-8")))
    assert [r["grid"] for r in rows] == ["helps", "noise"]
    assert rows[0]["verdict_holm"] == "better" and rows[1]["verdict_holm"] == "no detectable difference"
    assert float(rows[0]["diff"]) == pytest.approx(0.01, abs=0.002)
    assert float(rows[0]["p_holm"]) >= float(rows[0]["p"])
    assert "\\toprule" in (out / "forest.tex").read_text(encoding="utf-8")
    assert (out / "forest.png").stat().st_size > 0
    # forest over the same grids by hand gives the same table
    assert main(["-q", "forest", str(out / "helps"), str(out / "noise"), "--output-dir", str(out / "f")]) == 0
    assert (out / "f" / "forest.csv").read_text() == (out / "forest.csv").read_text()


def test_the_seed_noise_band_is_the_baselines_spread(study) -> None:
    main(["-q", "study", "--config", str(study)])
    out = study.parent / "out"
    row = collect([out / "helps"])[0]
    baseline = json.loads((out / "helps" / "results.json").read_text())["settings"][0]
    assert row.baseline_std == baseline["std"] and row.n == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grids: [a.yaml]\n", "output_dir: expected a directory name"),
        ("output_dir: o\ngrids: []\n", "grids: expected a list of grid files"),
        ("output_dir: o\ngrids: [missing.yaml]\n", "no such grid file"),
        ("output_dir: o\ngrids: [a.yaml]\nseeds: 3\n", "unknown key 'seeds'"),
        ("output_dir: o\ngrids: [a.yaml]\nsplit: train\n", "split: expected auto, dev or test"),
        ("- a\n", "expected a mapping"),
        ("output_dir: o\ngrids: [a.yaml]\n1: x\n", "unknown key 1;"),
        ("output_dir: o\ngrids: [a.yaml]\ntitle: {a: 1}\n", "title: expected text, got {'a': 1}"),
        ("output_dir: o\noutput_dir: p\ngrids: [a.yaml]\n", "s.yaml:2: not a readable YAML file (repeated"),
        ("output_dir: afile/sub\ngrids: [a.yaml]\n", "afile is a file, not a directory"),
        ('output_dir: o\ngrids: ["a\\0b.yaml"]\n', "no such grid file: a\\x00b.yaml"),
    ],
)
def test_bad_study_files_are_one_line(text, message, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text("output_dir: x\n", encoding="utf-8")
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    (tmp_path / "s.yaml").write_text(text, encoding="utf-8")
    assert main(["study", "--config", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "afile", "s.yaml"]  # nothing written


def test_forest_refuses_what_is_not_a_grid_output(tmp_path, capsys) -> None:
    assert main(["forest", str(tmp_path), "--output-dir", str(tmp_path / "f")]) == 2
    assert "expected a grid's output directory or its results.json" in capsys.readouterr().err
    (tmp_path / "results.json").write_text("[1]", encoding="utf-8")
    assert main(["forest", str(tmp_path), "--output-dir", str(tmp_path / "f")]) == 2
    assert "no settings list" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


def test_only_names_a_grid_of_the_study(study, capsys) -> None:
    assert main(["study", "--config", str(study), "--only", "nope"]) == 2
    assert "--only nope: not a grid or tune of" in capsys.readouterr().err


SETTING = {"id": "d/m/t/g", "data": "d", "setting": "g", "metric": "accuracy", "baseline": "d/m/t/none"}
PAIRED = {"n": 2, "mean_diff": 0.01, "ci_low": 0.0, "ci_high": 0.02, "t_p": 0.5, "verdict": "tie"}
SETTING = {**SETTING, "mean": 0.8, "std": 0.01, "vs_baseline": PAIRED}


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({"settings": [{"foo": 1}]}, "settings[0]: missing id, data, setting, metric"),
        ({"settings": ["a", "b"]}, "settings[0]: expected a mapping, got str"),
        ({"settings": [], "test": {}}, "test: expected a list of settings"),
        (
            {"settings": [{"id": "d/m/t/g", "data": "d", "setting": "g", "metric": "accuracy",
                           "baseline": "d/m/t/none", "vs_baseline": {"n": 2}}]},
            "settings[0]: missing vs_baseline.mean_diff",
        ),
        (
            {"settings": [{"id": "x", "data": "d", "setting": "g", "metric": "m", "baseline": None,
                           "vs_baseline": None}]},
            "id 'x' is not a setting id",
        ),
        ({"settings": [{**SETTING, "data": ["d"]}]}, "settings[0]: data: expected text, got ['d']"),
        ({"settings": [{**SETTING, "baseline": ["x"]}]}, "settings[0]: baseline: expected text or null"),
        (
            {"settings": [{**SETTING, "vs_baseline": {**PAIRED, "t_p": "x"}}]},
            "settings[0]: vs_baseline.t_p: expected a number or null, got 'x'",
        ),
        (
            {"settings": [{**SETTING, "vs_baseline": {**PAIRED, "mean_diff": True}}]},
            "vs_baseline.mean_diff: expected a number or null, got True",
        ),
        ({"settings": [SETTING], "cells": 5}, "cells: expected a list of cells"),
        ({"settings": [SETTING], "cells": ["x"]}, "cells[0]: expected a mapping, got 'x'"),
        ({"settings": [SETTING], "cells": [{"setting": "g", "seconds": "1"}]}, "cells[0]: seconds: expected"),
    ],
)  # fmt: skip
def test_forest_refuses_a_results_file_of_the_wrong_shape(results, message, tmp_path, capsys) -> None:
    (tmp_path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    assert main(["forest", str(tmp_path), "--output-dir", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f").exists()


def test_a_study_whose_output_dir_is_a_file_is_refused_before_any_grid(study, capsys) -> None:
    text = study.read_text(encoding="utf-8")
    (study.parent / "afile").write_text("x")
    study.write_text(
        text.replace(f"output_dir: {study.parent / 'out'}", f"output_dir: {study.parent / 'afile'}")
    )
    assert main(["-q", "study", "--config", str(study)]) == 2
    assert "output_dir: " in capsys.readouterr().err
    assert main(["forest", str(study.parent / "out"), "--output-dir", str(study.parent / "afile" / "x")]) == 2
    assert "--output-dir " in capsys.readouterr().err

"""``attnguide study`` with ``tunes:``: a tune run before its grid (or alone with ``--only``), its best
setting joining the grid as the arm ``tuned``, an unfinished tune leaving the grid without it, a
changed best setting getting cells of its own, and bad entries refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from test_compare import fake_run, nli, write_grid  # noqa: F401 (nli: a fixture)

from attnguide.cli import main
from attnguide.experiments.grid import build_grid
from attnguide.experiments.offline_demo import make_dataset
from attnguide.files import write_json, write_jsonl
from attnguide.rundir import file_sha256


@pytest.fixture
def selection(tmp_path) -> str:
    """The tune's selection split: another file than the grid's dev."""
    path = tmp_path / "selection.jsonl"
    write_jsonl(path, make_dataset(12, 4))
    return str(path)


def write_study(tmp_path: Path, nli: dict[str, str], selection: str, model: str, **tune) -> Path:
    """A study of one grid (``g``: the baseline only, seeds 1 and 2) with one tune (``t``)."""
    write_grid(
        tmp_path / "g.yaml", train=nli["train"], dev=nli["dev"], models=[model], guides=["none"],
        epochs=1, batch_size=8, max_length=32, seeds=[1, 2], output_dir="unused",
    )  # fmt: skip
    (tmp_path / "space.yaml").write_text("guides: [pdg]\nguide_warmup_steps: 0\n", encoding="utf-8")
    entry = {
        "name": "t", "grid": "g", "train": nli["train"], "dev": selection, "trials": 2, "no_confirm": True,
        "space": str(tmp_path / "space.yaml"), "options": ["--pruner", "none"], **tune,
    }  # fmt: skip
    study = {"output_dir": str(tmp_path / "out"), "grids": [str(tmp_path / "g.yaml")], "tunes": [entry]}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study), encoding="utf-8")
    return tmp_path / "study.yaml"


def grid_of(tmp_path: Path, **guide):
    """The study's grid ``g``, with a guide setting in place of its own where ``guide`` is given."""
    overrides = {k: (v, "test") for k, v in guide.items()}
    return build_grid(tmp_path / "g.yaml", {"output_dir": (str(tmp_path / "out" / "g"), "test"), **overrides})


def fake_grid_runs(tmp_path: Path, **guide) -> None:
    """Finished runs of the grid's cells (those of ``guide`` too): the tuned arm 0.02 above."""
    for grid in (grid_of(tmp_path), *([grid_of(tmp_path, **guide)] if guide else [])):
        for cell in grid.cells:
            fake_run(grid, cell, 0.8 + 0.01 * cell.seed + (0.0 if cell.is_baseline else 0.02))


def fake_tune(
    tmp_path: Path, nli: dict[str, str], selection: str, best: dict, states=("complete",) * 2
) -> None:
    """The results.json ``attnguide tune`` writes, with trial 1 (``best``) the best guided trial."""
    trials = [
        {"trial": 0, "state": states[0], "value": 0.8, "baseline": True, "guides": "none"},
        {"trial": 1, "state": states[1], "value": 0.81, "baseline": False, **best, "reason": ""},
    ]
    identity = {"train_sha256": file_sha256(nli["train"]), "dev_sha256": file_sha256(selection)}
    results = {"trials": trials, "best_trial": trials[1], "confirmation": None, "identity": identity}
    write_json(tmp_path / "out" / "tune-t" / "results.json", results)


def forest_arms(tmp_path: Path) -> list[str]:
    return [r["arm"] for r in csv.DictReader((tmp_path / "out" / "forest.csv").open(encoding="utf-8"))]


PDG = {"guides": "pdg", "pdg_weight": 0.00123456, "layers": "all", "scope": "joint", "warmup_steps": 0}


def test_a_study_runs_its_tune_then_trains_the_best_setting_as_the_tuned_arm(
    tiny_model_dir, nli, selection, tmp_path, capsys
) -> None:
    study = write_study(tmp_path, nli, selection, tiny_model_dir)
    for cell in grid_of(tmp_path).cells:  # the unguided runs are done: only the tuned arm trains
        fake_run(grid_of(tmp_path), cell, 0.3)
    assert main(["-q", "study", "--config", str(study), "--only", "tune-t"]) == 0
    results = json.loads((tmp_path / "out" / "tune-t" / "results.json").read_text(encoding="utf-8"))
    assert [t["state"] for t in results["trials"]] == ["complete", "complete"]
    # chosen on the selection split, with the grid's training settings; the grid itself did not run
    assert results["identity"]["dev_sha256"] == file_sha256(selection)
    assert results["identity"]["settings"]["max_length"] == 32
    assert not (tmp_path / "out" / "g" / "results.json").exists()

    assert main(["-q", "study", "--config", str(study)]) == 0
    best = results["best_trial"]
    runs = tmp_path / "out" / "g" / "runs" / "nli"
    trained = sorted(p.relative_to(runs).as_posix() for p in runs.glob("*/*/pdg-*/seed*"))
    weight = float(f"{best['pdg_weight']:.3g}")
    assert best["guides"] == "pdg" and len(trained) == 2 and trained[0].endswith(f"/pdg-b{weight!r}/seed1")
    run = json.loads((runs / trained[0] / "run.json").read_text(encoding="utf-8"))
    assert run["data"]["dev"]["sha256"] == file_sha256(nli["dev"])  # reported on the grid's dev split
    assert run["data"]["train"]["sha256"] == file_sha256(nli["train"])
    assert forest_arms(tmp_path) == [f"tuned (pdg-b{weight!r})"]
    assert f"tuned (pdg-b{weight!r})" in capsys.readouterr().out


def test_a_finished_tune_joins_its_grid_and_a_changed_best_gets_cells_of_its_own(
    nli, selection, tmp_path, caplog
) -> None:
    study = write_study(tmp_path, nli, selection, "default")
    fake_tune(tmp_path, nli, selection, PDG)
    rounded = {"guides": "pdg", "pdg_weight": 0.00123}  # 3 significant digits
    fake_grid_runs(tmp_path, **rounded)
    assert main(["study", "--config", str(study), "--only", "g"]) == 0  # the tune is read, not run
    assert forest_arms(tmp_path) == ["tuned (pdg-b0.00123)"]
    assert not (tmp_path / "out" / "tune-t" / "tune.log").exists()

    fake_tune(tmp_path, nli, selection, {**PDG, "pdg_weight": 0.002})  # more trials found another
    fake_grid_runs(tmp_path, guides="pdg", pdg_weight=0.002)
    assert main(["study", "--config", str(study), "--only", "g"]) == 0
    assert "best setting is now nli/default/e1-bs8-len32-lr5e-05/pdg-b0.002" in caplog.text
    assert forest_arms(tmp_path) == ["tuned (pdg-b0.002)"]  # the old arm's runs stay, out of the report
    assert (
        tmp_path / "out" / "g" / "runs" / "nli" / "default" / "e1-bs8-len32-lr5e-05" / "pdg-b0.00123"
    ).is_dir()
    caplog.clear()
    assert main(["study", "--config", str(study), "--only", "g"]) == 0
    assert "best setting is now" not in caplog.text  # said once, when it changed
    assert main(["-q", "study", "--config", str(study), "--report-only"]) == 0
    assert forest_arms(tmp_path) == ["tuned (pdg-b0.002)"]
    out = tmp_path / "out"  # forest over the study's grids by hand labels the arm alike
    assert main(["-q", "forest", str(out / "g"), "--output-dir", str(out / "f")]) == 0
    assert (out / "f" / "forest.csv").read_text() == (out / "forest.csv").read_text()


@pytest.mark.parametrize(
    ("states", "why"),
    [
        (("complete", "running"), "has 1 of its 2 trials ended"),
        (None, "has not run"),
        ("carve", "cannot be checked: its dev file"),  # the selection split is not there (yet)
    ],
)
def test_an_unfinished_tune_leaves_its_grid_without_the_tuned_arm(
    states, why, nli, selection, tmp_path, caplog
) -> None:
    study = write_study(tmp_path, nli, selection, "default")
    if states:
        fake_tune(tmp_path, nli, selection, PDG, ("complete",) * 2 if states == "carve" else states)
    if states == "carve":
        Path(selection).unlink()
    fake_grid_runs(tmp_path)
    assert main(["study", "--config", str(study), "--only", "g"]) == 1  # the study is not finished
    assert (
        f"grid g runs without its tuned arm: tune t {why}" in caplog.text and "--only tune-t" in caplog.text
    )
    assert [p.name for p in (tmp_path / "out" / "g" / "runs" / "nli" / "default").glob("*/*")] == ["none"]
    assert not (tmp_path / "out" / "g" / "tuned.json").exists()


def test_a_tune_made_on_other_data_is_not_used(nli, selection, tmp_path, caplog) -> None:
    study = write_study(tmp_path, nli, selection, "default")
    fake_tune(tmp_path, nli, nli["dev"], PDG)  # it chose on the grid's dev split, not the selection
    fake_grid_runs(tmp_path)
    assert main(["study", "--config", str(study), "--only", "g"]) == 1
    assert f"chose on another dev file than {selection}" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tunes": 3}, "tunes: expected a list of mappings with keys name, grid"),
        ({"name": "a b"}, "tunes[0]: name: expected a plain file-name-safe name, got 'a b'"),
        ({"trails": 3}, "tunes[0] (t): unknown key 'trails'"),
        ({"grid": "h"}, "tunes[0] (t): grid: expected the name of one of the study's grids (g), got 'h'"),
        ({"trials": 1}, "tunes[0] (t): trials: expected a whole number >= 2"),
        ({"trials": None}, "tunes[0] (t): trials: expected a whole number >= 2"),
        ({"seeds": 3}, "expected either seeds: N"),
        ({"no_confirm": False}, "expected either seeds: N"),
        ({"no_confirm": False, "seeds": 1}, "tunes[0] (t): seeds: expected a whole number >= 2"),
        ({"dev": None}, "tunes[0] (t): dev: expected a file name, got None"),
        ({"space": "nope.yaml"}, "tunes[0] (t): space: no such search-space file: nope.yaml"),
        ({"space": "g.yaml"}, "tunes[0] (t): space: g.yaml: guides: 'none' is the baseline"),
        ({"space_text": "guides: [pdg]\n"}, "space: space.yaml must fix guide_warmup_steps: 0"),
        ({"options": ["--epochs", "2"]}, "tunes[0] (t): options: --epochs is set by the study"),
        ({"options": "--pruner"}, "tunes[0] (t): options: expected a list of tune flags"),
        ({"train": "missing.jsonl"}, "tunes[0] (t): train: no such data file: missing.jsonl"),
        ({"second": {"name": "u"}}, "tunes[1] (u): grid: grid g already has a tune (one per grid)"),
        ({"second": {"grid": "h"}}, "tunes[1] (t): name: another tune is named 't'"),
        ({"options": ["--bogus-flag", "1"]}, "tunes[0] (t): options: unrecognized arguments: --bogus-flag 1"),
        ({"options": ["--trial", "5"]}, "tunes[0] (t): options: unrecognized arguments: --trial 5"),
        ({"options": ["--pruner", "sometimes"]}, "tunes[0] (t): options: argument --pruner: invalid choice"),
        ({"space_text": "guides: [pdg]\nbogus: 1\nguide_warmup_steps: 0\n"}, "unknown parameter 'bogus'"),
        (
            {"space_text": "guides: [pdg]\nguide_warmup_steps: false\n"},
            "guide_warmup_steps: expected a whole",
        ),
        ({"space_text": "- pdg\n"}, "space: space.yaml: expected a mapping of parameters"),
    ],
)
def test_bad_tune_entries_are_one_line_and_nothing_is_written(
    change, message, nli, selection, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    study = write_study(tmp_path, nli, selection, "default")
    data = yaml.safe_load(study.read_text(encoding="utf-8"))
    if "second" in change:
        write_grid(tmp_path / "h.yaml", train=nli["train"], dev=nli["dev"], output_dir="unused")
        data["grids"].append(str(tmp_path / "h.yaml"))
        data["tunes"].append({**data["tunes"][0], **change.pop("second")})
    if "space_text" in change:
        (tmp_path / "space.yaml").write_text(change.pop("space_text"), encoding="utf-8")
        data["tunes"][0]["space"] = "space.yaml"
    if "tunes" in change:
        data["tunes"] = change["tunes"]
    else:
        data["tunes"][0] = {k: v for k, v in {**data["tunes"][0], **change}.items() if v is not None}
    study.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["study", "--config", str(study)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(study) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_tune_refusing_its_data_stops_the_study_before_any_trial_or_grid(
    nli, selection, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.jsonl").write_text("not json\n", encoding="utf-8")
    study = write_study(tmp_path, nli, str(tmp_path / "garbage.jsonl"), "default")
    assert main(["-q", "study", "--config", str(study)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"attnguide: error: {study}: tunes[0] (t): tune refused its input: ")
    assert "garbage.jsonl:1" in err[-1] and not (tmp_path / "out").exists()  # no trial, no grid


def test_every_grid_file_is_checked_before_the_first_grid_runs(nli, selection, tmp_path, capsys) -> None:
    study = write_study(tmp_path, nli, selection, "default")
    (tmp_path / "bad.yaml").write_text("sedes: [1]\n", encoding="utf-8")
    data = yaml.safe_load(study.read_text(encoding="utf-8"))
    study.write_text(yaml.safe_dump({**data, "grids": [*data["grids"], str(tmp_path / "bad.yaml")]}))
    assert main(["-q", "study", "--config", str(study)]) == 2
    assert "bad.yaml: unknown key 'sedes'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_only_names_a_grid_or_a_tune(nli, selection, tmp_path, capsys) -> None:
    study = write_study(tmp_path, nli, selection, "default")
    assert main(["study", "--config", str(study), "--only", "tune-x"]) == 2
    assert "--only tune-x: not a grid or tune of" in capsys.readouterr().err


def test_forest_refuses_a_tuned_file_that_is_not_the_studys(nli, selection, tmp_path, capsys) -> None:
    study = write_study(tmp_path, nli, selection, "default")
    fake_tune(tmp_path, nli, selection, PDG)
    fake_grid_runs(tmp_path, guides="pdg", pdg_weight=0.00123)
    assert main(["-q", "study", "--config", str(study), "--only", "g"]) == 0
    (tmp_path / "out" / "g" / "tuned.json").write_text("[1]", encoding="utf-8")
    assert main(["forest", str(tmp_path / "out" / "g"), "--output-dir", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "tuned.json: not a tuned.json of attnguide study" in err and len(err.strip().splitlines()) == 1
    for text in ("[1]", '{"a":', '{"x": "str"}'):  # the study itself reads it as carefully
        (tmp_path / "out" / "g" / "tuned.json").write_text(text, encoding="utf-8")
        assert main(["-q", "study", "--config", str(study), "--only", "g"]) == 2
        err = capsys.readouterr().err
        assert "tuned.json: not a tuned.json of attnguide study" in err and len(err.strip().splitlines()) == 1

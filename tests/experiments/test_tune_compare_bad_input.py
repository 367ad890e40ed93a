"""``tune`` and ``compare`` on bad input: one line on stderr, exit code 2, nothing half-written; and
their storage (the study's journal, the ``.partial`` directories of interrupted runs) kept sound."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage
from test_tune import nli, tune_args  # noqa: F401 (nli: a fixture shared with the tune tests)

from attnguide.cli import main
from attnguide.errors import AttnguideError
from attnguide.experiments import tuning_space, tuning_trials
from attnguide.experiments.grid import build_grid
from attnguide.experiments.offline_demo import make_dataset
from attnguide.experiments.runner import run_dir, run_grid
from attnguide.experiments.tuning_space import SearchSpace
from attnguide.experiments.tuning_storage import repair_journal
from attnguide.files import write_jsonl

KILLER = str(Path(__file__).parents[1] / "killer.py")
UNWRITABLE = "/proc/attnguide-out"  # no one may create a directory there, root included


def one_line(capsys, *parts: str) -> str:
    """The error line on stderr, checked to be the only line and to say each of ``parts``."""
    err = capsys.readouterr().err
    assert err.startswith("attnguide: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err
    return err


def study_of(out: Path) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name="attnguide", storage=storage)


# --- tune's numeric flags (1) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--trials", "2", "--timeout", "-5"], "argument --timeout: expected a number of seconds > 0"),
        (["--trials", "2", "--timeout", "0"], "argument --timeout: expected a number of seconds > 0"),
        (["--trials", "2", "--timeout", "nan"], "argument --timeout: expected a number of seconds > 0"),
        (["--trials", "2", "--timeout", "inf"], "argument --timeout: expected a number of seconds > 0"),
        (["--trials", "0"], "argument --trials: expected a whole number >= 1, got '0'"),
        (["--trials", "-3"], "argument --trials: expected a whole number >= 1"),
        (["--trials", "2.5"], "argument --trials: expected a whole number >= 1, got '2.5'"),
        (["--trials", "2", "--seeds", "1"], "argument --seeds: expected a whole number >= 2"),
        (["--trials", "2", "--seeds", "-2"], "argument --seeds: expected a whole number >= 2"),
        (["--trials", "2", "--prune-after", "0"], "argument --prune-after: expected a whole number >= 1"),
    ],
)
def test_bad_numeric_flags_are_refused(tmp_path, nli, capsys, flags, message) -> None:
    assert main(tune_args("unused", nli, tmp_path / "out", *flags)) == 2
    one_line(capsys, message)
    assert not (tmp_path / "out").exists()


# --- the search space file (2 and more) ------------------------------------------------------------


def test_numbers_yaml_reads_as_text_are_numbers(tmp_path) -> None:
    space_file = tmp_path / "space.yaml"
    space_file.write_text("mdg_weight: {low: 1e-4, high: 1e-2}\npdg_weight: [1e-4, 3e-4]\n")
    assert yaml.safe_load(space_file.read_text())["mdg_weight"]["low"] == "1e-4"  # YAML 1.1's reading
    space = SearchSpace.from_file(space_file)
    assert space.params["mdg_weight"] == tuning_space.Range(1e-4, 1e-2, True)
    assert space.params["pdg_weight"] == [1e-4, 3e-4]
    trial = optuna.create_study(direction="maximize").ask()
    assert isinstance(space._choose(trial, "pdg_weight"), float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mdg_weight: {low: abc, high: 1e-2}", "mdg_weight: low: expected a finite number, got 'abc'"),
        ("mdg_weight: {low: true, high: 2}", "mdg_weight: low: expected a finite number, got True"),
        ("mdg_weight: {low: 1e-4, high: .inf}", "mdg_weight: high: expected a finite number, got inf"),
        ("mdg_weight: {low: 1e-2, high: 1e-4}", "empty range: low '1e-2' must be below high '1e-4'"),
        ("mdg_weight: {low: 0, high: 1}", "mdg_weight: a log range needs low > 0, got 0"),
        ("mdg_weight: {low: 1e-4, high: 1e-2, log: maybe}", "log: expected true or false, got 'maybe'"),
        ("pdg_weight: [1e-4, lots]", "space.yaml: pdg_weight: expected a finite number, got 'lots'"),
        ("guide_warmup_steps: [true]", "guide_warmup_steps: expected a whole number, got True"),
        ("guide_warmup_steps: [1.5]", "guide_warmup_steps: expected a whole number, got 1.5"),
        ("- mdg_weight\n- pdg_weight", "space.yaml: expected a mapping of parameters"),
        ("guides: []", "space.yaml: guides: empty list of choices"),
        ("scope: [everywhere]", "space.yaml: scope: expected one of"),
        ("mdg_wieght: [0.1]", "space.yaml: unknown parameter 'mdg_wieght'"),
    ],
)  # fmt: skip
def test_bad_search_spaces_name_file_and_key(tmp_path, nli, capsys, text, message) -> None:
    (tmp_path / "space.yaml").write_text(text + "\n")
    argv = tune_args(
        "unused", nli, tmp_path / "out", "--trials", "2", "--space", str(tmp_path / "space.yaml")
    )
    assert main(argv) == 2
    one_line(capsys, message)
    assert not (tmp_path / "out").exists()


# --- a study continued, failed trials, unexpected errors (3, 4, 5) --------------------------------------


def test_a_larger_trials_continues_the_study(tiny_model_dir, nli, tmp_path) -> None:
    out = tmp_path / "study"
    assert main(tune_args(tiny_model_dir, nli, out, "--trials", "1", "--no-confirm")) == 0
    assert main(tune_args(tiny_model_dir, nli, out, "--trials", "3", "--no-confirm")) == 0
    trials = study_of(out).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert [t.user_attrs.get("slot") for t in trials] == [None, 1, 2]
    assert len(json.loads((out / "results.json").read_text())["trials"]) == 3
    assert main(tune_args(tiny_model_dir, nli, out, "--trials", "2", "--no-confirm")) == 0
    assert len(study_of(out).trials) == 3  # a smaller number leaves the study as it is


def test_a_slot_two_workers_enqueued_runs_once(tmp_path) -> None:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({})
    tuning_trials._extend(study, 2)
    tuning_trials._extend(study, 2)  # the study has its two trials: nothing more
    study.enqueue_trial({}, user_attrs={"slot": 1})  # a second worker extending it at the same time
    assert tuning_trials.planned_trials(study) == 2
    trials = [optuna.Trial(study, study._pop_waiting_trial_id()) for _ in range(3)]
    assert [tuning_trials._duplicate_of(t) for t in trials] == [None, None, 1]
    settings = tuning_trials.TuneSettings(tmp_path, 2, "accuracy", {})
    tuning_trials._run_trial(trials[2], settings, None, None, 1)  # not run: nothing to train with
    [twin] = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert twin.number == 2 and twin.user_attrs["reason"] == "not run: trial 1 has its place in the plan"


def test_bad_data_is_refused_once_before_the_search(tiny_model_dir, nli, tmp_path, capsys) -> None:
    rows = make_dataset(24, 1)
    write_jsonl(tmp_path / "bad.jsonl", [*rows[:5], {"premise": "x"}, *rows[5:]])
    argv = tune_args(tiny_model_dir, {**nli, "train": str(tmp_path / "bad.jsonl")}, tmp_path / "out")
    assert main([*argv, "--trials", "2"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"attnguide: error: {tmp_path / 'bad.jsonl'}:6: missing key 'sentence1' (record has: premise)"
    ]
    assert not (tmp_path / "out").exists()  # no trial ran, nothing written


def test_an_unexpected_error_in_a_trial_fails_it(tiny_model_dir, nli, tmp_path, monkeypatch, capsys) -> None:
    import attnguide.training.pipeline as pipeline

    def broken(options, run, callbacks=()):
        raise IndexError("list index out of range")

    monkeypatch.setattr(pipeline, "run_training", broken)
    out = tmp_path / "out"
    assert main(tune_args(tiny_model_dir, nli, out, "--trials", "2", "--no-confirm")) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "attnguide: error: no trial finished; trial 0 failed: IndexError: list index out of range"
    )
    trials = study_of(out).trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]  # not left running
    assert trials[0].user_attrs["reason"] == "IndexError: list index out of range"


def test_an_interrupted_trial_is_failed_and_run_again(tiny_model_dir, nli, tmp_path, monkeypatch) -> None:
    import attnguide.training.pipeline as pipeline

    real = pipeline.run_training

    def interrupted(options, run, callbacks=()):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_training", interrupted)
    out = tmp_path / "out"
    argv = tune_args(tiny_model_dir, nli, out, "--trials", "1", "--no-confirm")
    assert main(argv) == 130
    assert [(t.state.name, t.user_attrs.get("reason")) for t in study_of(out).trials] == [
        ("FAIL", "interrupted: run again"),
        ("WAITING", None),
    ]
    monkeypatch.setattr(pipeline, "run_training", real)
    assert main(argv) == 0
    trials = study_of(out).trials
    assert trials[1].state.name == "COMPLETE" and trials[1].user_attrs["retry_of"] == 0
    assert trials[1].user_attrs["baseline"]


# --- leftovers of killed runs (6) ---------------------------------------------------------------------


def test_a_killed_trials_partial_directory_goes_once_its_retry_ran(tiny_model_dir, nli, tmp_path) -> None:
    out = tmp_path / "study"
    argv = tune_args(tiny_model_dir, nli, out, "--trials", "2", "--no-confirm", "--pruner", "none")
    env = {**os.environ, "KILL_STEP": "2", "KILL_ONLY_IN": "trial-1"}
    killed = subprocess.run([sys.executable, KILLER, *argv], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert (out / "trials" / ".trial-1.partial").is_dir()
    assert main(argv) == 0
    assert [t.state.name for t in study_of(out).trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-0", "trial-2"]


def test_a_finished_grid_keeps_no_leftovers_of_interrupted_attempts(nli, tmp_path) -> None:
    from test_compare import fake_run

    config = tmp_path / "grid.yaml"
    config.write_text(
        yaml.safe_dump(
            {"train": nli["train"], "dev": nli["dev"], "guides": ["none", "pdg"], "seeds": [1, 2],
             "output_dir": str(tmp_path / "out")}
        )
    )  # fmt: skip
    grid = build_grid(config)
    for number, cell in enumerate(grid.cells):
        fake_run(grid, cell, 0.8 + number / 100)
    first = run_dir(grid, grid.cells[0])
    leftovers = [first.parent / f".{first.name}.partial", first.parent / f".{first.name}.old"]
    for leftover in leftovers:
        (leftover / "checkpoint-2").mkdir(parents=True)
    run_grid(grid, dry_run=True)
    assert all(leftover.is_dir() for leftover in leftovers)  # a dry run changes nothing
    run_grid(grid)
    assert not any(leftover.exists() for leftover in leftovers)
    assert (first / "run.json").is_file()


# --- the journal file (7) -----------------------------------------------------------------------------


def make_journal(path: Path) -> None:
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="attnguide", direction="maximize")
    study.enqueue_trial({})
    study.enqueue_trial({})


def test_a_torn_last_journal_line_is_cut_off_with_a_warning(tmp_path, caplog) -> None:
    journal = tmp_path / "study.journal"
    make_journal(journal)
    whole = journal.read_bytes()
    torn = b'{"op_code":5,"worker_id":"x","study_id":0,"datetime_sta'  # the power went here
    with journal.open("ab") as handle:
        handle.write(torn)
    with caplog.at_level(logging.WARNING, logger="attnguide"):
        repair_journal(journal)
    assert journal.read_bytes() == whole
    assert "last line was cut off" in caplog.text and f"dropped its {len(torn)} bytes" in caplog.text
    study = study_of(tmp_path)
    study.enqueue_trial({})  # appending is safe again, and the file stays readable
    assert len(study_of(tmp_path).trials) == 3


def test_a_torn_journal_line_is_repaired_when_tune_opens_it(tiny_model_dir, nli, tmp_path, caplog) -> None:
    out = tmp_path / "study"
    argv = tune_args(tiny_model_dir, nli, out, "--trials", "1", "--no-confirm")
    assert main(argv) == 0
    with (out / "study.journal").open("ab") as handle:
        handle.write(b'{"op_code":')
    assert main(argv) == 0
    assert (out / "study.journal").read_bytes().endswith(b"}\n")
    assert "dropped its 11 bytes" in caplog.text
    assert [t.state.name for t in study_of(out).trials] == ["COMPLETE"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda j: j.write_bytes(j.read_bytes().replace(b"\n", b"\n@@\n", 1)), "journal:2: not a record"),
        (lambda j: (j.unlink(), j.mkdir()), "study.journal: is a directory"),
    ],
)  # fmt: skip
def test_a_damaged_journal_is_refused_in_one_line(
    tiny_model_dir, nli, tmp_path, capsys, damage, message
) -> None:
    out = tmp_path / "study"
    out.mkdir()
    make_journal(out / "study.journal")
    damage(out / "study.journal")
    before = sorted(p.name for p in out.iterdir())
    assert main(tune_args(tiny_model_dir, nli, out, "--trials", "2", "--no-confirm")) == 2
    one_line(capsys, message)
    assert sorted(p.name for p in out.iterdir()) == before


# --- output directories and storages (8 and more) -----------------------------------------------------


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (lambda t: _file(t / "taken"), "exists and is not a directory"),
        (lambda t: _file(t / "taken") / "sub", "is a file, not a directory"),
        (lambda t: Path(UNWRITABLE), "cannot write in /proc"),
    ],
)
def test_tune_refuses_an_output_dir_it_cannot_write(
    tiny_model_dir, nli, tmp_path, capsys, where, message
) -> None:
    out = where(tmp_path)
    assert main(tune_args(tiny_model_dir, nli, out, "--trials", "2")) == 2
    one_line(capsys, f"--output-dir {out}", message)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (lambda t: _file(t / "taken"), "exists and is not a directory"),
        (lambda t: _file(t / "taken") / "sub", "is a file, not a directory"),
        (lambda t: Path(UNWRITABLE), "cannot write in /proc"),
    ],
)
def test_compare_refuses_an_output_dir_it_cannot_write(nli, tmp_path, capsys, where, message) -> None:
    out = where(tmp_path)
    argv = ["-q", "compare", "--train", nli["train"], "--dev", nli["dev"], "--output-dir", str(out)]
    assert main(argv) == 2
    one_line(capsys, f"output_dir {out}", message)


def _file(path: Path) -> Path:
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("foo://somewhere", "--storage foo://somewhere: cannot open the study"),
        ("sqlite:////no/such/folder/study.db", "--storage sqlite:////no/such/folder/study.db: cannot open"),
    ],
)
def test_a_storage_that_cannot_be_opened_is_one_line(
    tiny_model_dir, nli, tmp_path, capsys, storage, message
) -> None:
    assert main(tune_args(tiny_model_dir, nli, tmp_path / "out", "--trials", "2", "--storage", storage)) == 2
    one_line(capsys, message)


def test_a_missing_test_file_is_refused_before_the_search(tiny_model_dir, nli, tmp_path, capsys) -> None:
    argv = tune_args(
        tiny_model_dir, nli, tmp_path / "out", "--trials", "2", "--test", str(tmp_path / "no.jsonl")
    )
    assert main(argv) == 2
    one_line(capsys, f"--test {tmp_path / 'no.jsonl'}: no such file")
    assert not (tmp_path / "out").exists()


# --- compare's grid ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"seeds": [1, 1, 2]}, "grid.yaml: seeds: seed 1 is given twice"),
        ({"seeds": [-1, 2]}, "grid.yaml: seeds: expected whole numbers >= 0 (got -1)"),
        ({"guides": []}, "grid.yaml: guides: needs at least one value"),
        ({"profile": "bogus"}, "grid.yaml: profile: expected one of"),
        ({"test": "/no/such/test.jsonl"}, "grid.yaml: test: no such data file: /no/such/test.jsonl"),
        ({"lr": "fast"}, "grid.yaml: lr: expected numbers > 0 (got 'fast')"),
    ],
)
def test_bad_grids_are_one_line(nli, tmp_path, capsys, keys, message) -> None:
    grid = {"train": nli["train"], "dev": nli["dev"], "output_dir": str(tmp_path / "out"), **keys}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    assert main(["-q", "compare", "--config", str(tmp_path / "grid.yaml")]) == 2
    one_line(capsys, message)
    assert not (tmp_path / "out").exists()


def test_a_grid_file_that_is_not_a_mapping_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "grid.yaml").write_text("- train\n- dev\n")
    assert main(["-q", "compare", "--config", str(tmp_path / "grid.yaml")]) == 2
    one_line(capsys, "grid.yaml: expected a mapping of grid keys")


def test_negative_seeds_as_a_flag_are_one_line(nli, tmp_path, capsys) -> None:
    argv = [
        "-q",
        "compare",
        "--train",
        nli["train"],
        "--dev",
        nli["dev"],
        "--output-dir",
        str(tmp_path / "o"),
    ]
    assert main([*argv, "--seeds", "1", "-5"]) == 2
    one_line(capsys, "--seeds: expected whole numbers >= 0 (got '-5')")


def test_number_errors_name_the_space_file(tmp_path) -> None:
    (tmp_path / "space.yaml").write_text("temperature: {low: '', high: 2}\n")
    with pytest.raises(AttnguideError, match=r"space\.yaml: temperature: low: expected a finite number"):
        SearchSpace.from_file(tmp_path / "space.yaml")

"""``attnguide tune``: the search space, a study end to end on a tiny model, kill and resume, several
workers on one storage (a journal file, and a real PostgreSQL server), pruning, and bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from tiny import tiny_bert
from transformers import TrainerState

from attnguide.cli import main
from attnguide.errors import AttnguideError
from attnguide.experiments import tuning_report, tuning_storage, tuning_trials
from attnguide.experiments.offline_demo import make_dataset
from attnguide.experiments.tuning_space import SearchSpace
from attnguide.experiments.tuning_storage import heartbeat
from attnguide.experiments.tuning_trials import report_evaluation
from attnguide.files import write_jsonl

KILLER = str(Path(__file__).parents[1] / "killer.py")


@pytest.fixture(scope="module")
def nli(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("tune-data")
    for split, (size, seed) in {"train": (24, 1), "dev": (12, 2), "test": (12, 3)}.items():
        write_jsonl(folder / f"{split}.jsonl", make_dataset(size, seed))
    return {split: str(folder / f"{split}.jsonl") for split in ("train", "dev", "test")}


def tune_args(model: str, nli: dict[str, str], out: Path, *extra: str) -> list[str]:
    return [
        "-q", "tune", "--model", model, "--train", nli["train"], "--dev", nli["dev"], "--epochs", "1",
        "--batch-size", "8", "--max-length", "32", "--seed", "3", "--output-dir", str(out), *extra,
    ]  # fmt: skip


def study_of(out: Path, storage: str | None = None) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    store = storage or JournalStorage(JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name="attnguide", storage=store)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mdg_wieght: [0.1]", "unknown parameter 'mdg_wieght'"),
        (
            "pdg_weight: {low: 0.01, high: 0.001}",
            "pdg_weight: empty range: low 0.01 must be below high 0.001",
        ),
        ("layers: []", "layers: empty list of choices"),
        ("guides: [none]", "'none' is the baseline"),
        ("temperature: [-1]", "temperature must be a finite number > 0"),
    ],
)
def test_bad_search_spaces_are_one_line(tmp_path, nli, capsys, text, message) -> None:
    (tmp_path / "space.yaml").write_text(text + "\n")
    argv = tune_args(
        "unused", nli, tmp_path / "out", "--trials", "2", "--space", str(tmp_path / "space.yaml")
    )
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_the_default_space_searches_every_registered_guide_the_capture_serves(nli, tmp_path, capsys) -> None:
    assert SearchSpace.from_file(None).params["guides"] == [
        "mdg",
        "pdg",
        "pattern",
        "disagreement",
        "mdg+pdg",
    ]
    assert SearchSpace.from_file(None, "efficient").params["guides"] == ["mdg", "pdg", "mdg+pdg"]
    (tmp_path / "space.yaml").write_text("guides: [mdg, mdg+disagreement]\n")
    argv = ["--capture", "efficient", "--trials", "2", "--space", str(tmp_path / "space.yaml")]
    assert main(tune_args("unused", nli, tmp_path / "out", *argv)) == 2
    err = capsys.readouterr().err
    assert "guides: 'mdg+disagreement' needs full attention maps, which --capture efficient" in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_layer_choices_fit_the_model(tiny_model_dir, nli, tmp_path, capsys) -> None:
    assert SearchSpace.from_file(None).fitted_to(2).params["layers"] == ["all"]
    assert SearchSpace.from_file(None).fitted_to(6).params["layers"] == ["all", "last:2", "last:4"]
    (tmp_path / "space.yaml").write_text("layers: [all, 'last:4']\n")
    argv = tune_args(
        tiny_model_dir, nli, tmp_path / "out", "--trials", "2", "--space", str(tmp_path / "space.yaml")
    )
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "space.yaml: layers: the model has 2 layers (got 'last:4')" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    (tmp_path / "space.yaml").write_text("layers: ['last:6']\n")  # the default model: the packaged MiniLM
    default_model = [a for a in argv if a not in ("--model", tiny_model_dir)]
    assert main(default_model) == 2
    assert "layers: the model has 6 layers (got 'last:6')" in capsys.readouterr().err


def test_the_space_suggests_only_the_settings_its_guides_use() -> None:
    space = SearchSpace.from_file(None)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    suggested = [space.suggest(study.ask()) for _ in range(12)]
    for guide in suggested:
        assert ("mdg_weight" in guide) == ("mdg" in guide["guides"].split("+"))
        assert ("temperature" in guide) == ("mdg_weight" in guide)
        assert guide["layers"] in ("all", "last:2", "last:4") and guide["warmup_steps"] in (0, 100)
        assert 1e-5 <= guide.get("pdg_weight", 1e-3) <= 3e-3


def test_a_study_end_to_end(tiny_model_dir, nli, tmp_path, capsys) -> None:
    out = tmp_path / "study"
    assert (
        main(tune_args(tiny_model_dir, nli, out, "--trials", "3", "--seeds", "2", "--test", nli["test"])) == 0
    )
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["trials"][0]["baseline"] and results["trials"][0]["guides"] == "none"
    assert [t["state"] for t in results["trials"]] == ["complete"] * 3
    assert set(results["confirmation"]["dev"]) == {"baseline", "best"}
    assert set(results["confirmation"]["test"]["best"]["values"]) == {"4", "5"}  # fresh seeds after --seed 3
    assert results["verdict"].split(":")[0] in ("better", "worse", "no detectable difference")
    assert results["verdict"] in printed and "**Verdict:**" in (out / "report.md").read_text()
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["trial"] for r in rows] == ["0", "1", "2"] and rows[1]["dev_accuracy_epoch1"]
    assert (out / "figures" / "history.png").read_bytes()[:4] == b"\x89PNG"
    first = (out / "trials" / "trial-0" / "run.json").stat().st_mtime_ns
    assert (
        main(tune_args(tiny_model_dir, nli, out, "--trials", "3", "--seeds", "2", "--test", nli["test"])) == 0
    )
    assert (out / "trials" / "trial-0" / "run.json").stat().st_mtime_ns == first  # nothing is run again
    assert len(study_of(out).trials) == 3


def test_a_killed_study_marks_the_interrupted_trial_failed_and_runs_it_again(
    tiny_model_dir, nli, tmp_path
) -> None:
    out = tmp_path / "study"
    env = {**os.environ, "KILL_STEP": "2", "KILL_ONLY_IN": "trial-1"}
    argv = tune_args(tiny_model_dir, nli, out, "--trials", "2", "--no-confirm")
    killed = subprocess.run([sys.executable, KILLER, *argv], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert main(argv) == 0
    trials = study_of(out).trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"] and trials[2].user_attrs["retry_of"] == 1
    assert trials[1].user_attrs["reason"] == "its worker stopped: run again"
    assert trials[2].params == trials[1].params


def test_another_commands_study_is_refused(tiny_model_dir, nli, tmp_path, capsys) -> None:
    out = tmp_path / "study"
    assert main(tune_args(tiny_model_dir, nli, out, "--trials", "1", "--no-confirm")) == 0
    journal = (out / "study.journal").read_bytes()
    other = tune_args(tiny_model_dir, {**nli, "dev": nli["test"]}, out, "--trials", "1", "--no-confirm")
    assert main(other) == 2
    assert "study 'attnguide': its dev_sha256 differs from this command's" in capsys.readouterr().err
    assert (out / "study.journal").read_bytes() == journal  # nothing lost, nothing added


def test_a_timeout_stops_starting_trials_and_says_so(tiny_model_dir, nli, tmp_path, capsys) -> None:
    out = tmp_path / "study"
    assert main(tune_args(tiny_model_dir, nli, out, "--trials", "2", "--timeout", "1e-6")) == 0
    assert [t.state.name for t in study_of(out).trials] == ["WAITING", "WAITING"]
    verdict = "no confirmation: 2 trials still run or wait (--timeout): run the command again"
    assert verdict in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["verdict"] == verdict


def run_workers(argv: list[str], count: int = 2) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "attnguide", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(count)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=900)
        assert worker.returncode == 0, err.decode()[-2000:]


def assert_exactly(trials: list, count: int) -> None:
    assert len(trials) == count and [t.number for t in trials] == list(range(count))
    assert [t.state.name for t in trials] == ["COMPLETE"] * count, [
        (t.state.name, t.user_attrs) for t in trials
    ]
    assert sum(t.user_attrs.get("baseline", False) for t in trials) == 1


def test_two_workers_share_one_study_file(tiny_model_dir, nli, tmp_path) -> None:
    out = tmp_path / "study"
    run_workers(tune_args(tiny_model_dir, nli, out, "--trials", "4", "--no-confirm", "--pruner", "none"))
    assert_exactly(study_of(out).trials, 4)
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"trial-{i}" for i in range(4)]


def confirmation_of(out: Path, seeds: str) -> list:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name=f"attnguide-confirmation-seeds-{seeds}", storage=storage).trials


def test_two_workers_share_the_confirmation_and_each_run_is_trained_once(
    tiny_model_dir, nli, tmp_path
) -> None:
    out = tmp_path / "study"
    run_workers(tune_args(tiny_model_dir, nli, out, "--trials", "2", "--seeds", "2", "--pruner", "none"))
    assert_exactly(study_of(out).trials, 2)
    runs = confirmation_of(out, "4-5")
    assert [t.state.name for t in runs] == ["COMPLETE"] * 4
    assert sorted((t.user_attrs["setting"], t.user_attrs["seed"]) for t in runs) == [
        ("baseline", 4), ("baseline", 5), ("best", 4), ("best", 5)
    ]  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["confirmation"]["dev"]["best"]["values"] == {"4": runs[2].value, "5": runs[3].value}


def test_a_killed_confirmation_run_is_run_again_and_the_others_are_kept(
    tiny_model_dir, nli, tmp_path
) -> None:
    out = tmp_path / "study"
    argv = tune_args(tiny_model_dir, nli, out, "--trials", "2", "--seeds", "2")
    env = {**os.environ, "KILL_STEP": "2", "KILL_ONLY_IN": "seed5"}
    killed = subprocess.run([sys.executable, KILLER, *argv], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    finished = (out / "confirm" / "baseline" / "seed4" / "run.json").stat().st_mtime_ns
    assert main(argv) == 0
    runs = confirmation_of(out, "4-5")
    assert [(t.user_attrs["setting"], t.user_attrs["seed"], t.state.name) for t in runs] == [
        ("baseline", 4, "COMPLETE"), ("baseline", 5, "FAIL"), ("best", 4, "COMPLETE"),
        ("best", 5, "COMPLETE"), ("baseline", 5, "COMPLETE"),
    ]  # fmt: skip
    assert (
        runs[1].user_attrs["reason"] == "its worker stopped: run again"
        and runs[4].user_attrs["retry_of"] == 1
    )
    assert (out / "confirm" / "baseline" / "seed4" / "run.json").stat().st_mtime_ns == finished
    assert json.loads((out / "results.json").read_text())["confirmation"]["paired"]["n"] == 2


def test_a_failed_confirmation_run_stops_the_worker_and_runs_next_time(
    tiny_model_dir, nli, tmp_path, monkeypatch, capsys
) -> None:
    import attnguide.training.pipeline as pipeline

    out = tmp_path / "study"
    argv = tune_args(tiny_model_dir, nli, out, "--trials", "2", "--seeds", "2")
    real = pipeline.run_training

    def full_disk(options, run, callbacks=()):
        if options.output_dir.endswith("best/seed4"):
            raise AttnguideError("no space left on device")
        return real(options, run, callbacks)

    monkeypatch.setattr(pipeline, "run_training", full_disk)
    assert main(argv) == 2
    assert "no space left on device" in capsys.readouterr().err
    monkeypatch.setattr(pipeline, "run_training", real)
    assert main(argv) == 0
    runs = confirmation_of(out, "4-5")
    failed = [t for t in runs if t.state.name == "FAIL"]
    assert len(failed) == 1 and failed[0].user_attrs["reason"] == "no space left on device"
    assert [t.user_attrs["retry_of"] for t in runs if "retry_of" in t.user_attrs] == [failed[0].number]
    assert sum(t.state.name == "COMPLETE" for t in runs) == 4


@pytest.fixture
def postgres() -> str:
    """A PostgreSQL server of Debian's package, started for this test as the postgres user, in a
    folder of its own that that user can reach (pytest's are the test user's alone)."""
    binaries = Path("/usr/lib/postgresql")
    if not binaries.is_dir() or not shutil.which("runuser"):
        pytest.skip("no PostgreSQL server here (Debian's postgresql package and runuser are needed)")
    bin_dir = sorted(binaries.glob("*/bin"))[-1]
    home = Path(tempfile.mkdtemp(prefix="attnguide-pg-"))
    home.chmod(0o777)
    data = home / "pgdata"
    data.mkdir()
    shutil.chown(data, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def as_postgres(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True)

    init = as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    if init.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"cannot create a PostgreSQL cluster: {init.stderr.strip()[-300:]}")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    start = as_postgres(
        str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "start", "-l", str(data / "log")
    )
    if start.returncode != 0:
        pytest.skip(f"cannot start PostgreSQL: {start.stderr.strip()[-300:]}")
    try:
        as_postgres(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "optuna")
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(tiny_model_dir, nli, tmp_path, postgres) -> None:
    out = tmp_path / "study"
    run_workers(
        tune_args(
            tiny_model_dir,
            nli,
            out,
            "--trials",
            "3",
            "--no-confirm",
            "--pruner",
            "none",
            "--storage",
            postgres,
        )
    )
    assert_exactly(study_of(out, postgres).trials, 3)


def test_a_trial_whose_worker_elsewhere_went_silent_is_failed_and_run_again(
    tiny_model_dir, nli, tmp_path, monkeypatch
) -> None:
    """On a database shared by several machines, a worker's death cannot be seen from another
    machine; its trial is taken for dead once it sends no heartbeat for the grace period."""
    out, storage = tmp_path / "study", f"sqlite:///{tmp_path / 'study.db'}"
    argv = tune_args(tiny_model_dir, nli, out, "--trials", "2", "--no-confirm", "--storage", storage)
    env = {**os.environ, "KILL_STEP": "2", "KILL_ONLY_IN": "trial-1"}
    killed = subprocess.run([sys.executable, KILLER, *argv], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    study = study_of(out, storage)
    [running] = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    # as if it ran on another machine, where this one cannot look for its process
    study._storage.set_trial_user_attr(running._trial_id, "worker", {"host": "elsewhere", "pid": 1})
    monkeypatch.setattr(tuning_storage, "GRACE_SECONDS", 2)
    time.sleep(2.5)  # its one heartbeat, at the start of the trial, is now older than the grace period
    assert main(argv) == 0
    trials = study_of(out, storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params == trials[1].params
    reason = json.loads((out / "results.json").read_text())["trials"][1]["reason"]
    assert reason == "its worker on elsewhere sent no heartbeat for 2 s: run again"


# Optuna's heartbeat API used bare, outside `optimize`: its experimental-API warnings are expected
@pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning"
)
def test_a_running_trial_keeps_its_heartbeat(tmp_path) -> None:
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=2
    )
    study = optuna.create_study(storage=storage)
    alive, silent = study.ask(), study.ask()
    for trial in (alive, silent):  # both beat once; then only the alive one's worker goes on
        storage.record_heartbeat(trial._trial_id)
    with heartbeat(study, alive._trial_id):
        time.sleep(3)
        optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {alive.number: "RUNNING", silent.number: "FAIL"}


def test_an_unreachable_storage_is_one_line(tiny_model_dir, nli, tmp_path, capsys) -> None:
    argv = tune_args(
        tiny_model_dir,
        nli,
        tmp_path / "out",
        "--trials",
        "2",
        "--storage",
        "postgresql://nobody@127.0.0.1:9/x",
    )
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "--storage postgresql://nobody@127.0.0.1:9/x: cannot open the study" in err and err.count("\n") == 1
    )


class StubRun:
    """A task run whose dev metric is given."""

    def __init__(self, value: float) -> None:
        self.value = value

    def evaluate(self, model, tokenizer, log_history, run_dir) -> dict[str, float]:
        return {"accuracy": self.value}


def test_a_trial_behind_the_others_is_pruned_after_its_evaluation() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for value in (0.8, 0.9, 0.85):
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                intermediate_values={1: value},
                params={},
                distributions={},
            )
        )
    model = tiny_bert()
    model.set_attn_implementation("sdpa")
    state = TrainerState(epoch=1.0, global_step=10, max_steps=30)
    good, bad = study.ask(), study.ask()
    report_evaluation(good, StubRun(0.95), "accuracy").on_evaluate(None, state, None, model=model)
    assert model.config._attn_implementation == "sdpa" and model.training  # left as training needs it
    with pytest.raises(optuna.TrialPruned):
        report_evaluation(bad, StubRun(0.1), "accuracy").on_evaluate(None, state, None, model=model)
    assert bad.user_attrs["reason"] == "pruned after epoch 1: dev accuracy 0.1000"
    study.enqueue_trial({}, user_attrs={"baseline": True})  # the reference, run after the others
    baseline = study.ask()
    report_evaluation(baseline, StubRun(0.1), "accuracy").on_evaluate(None, state, None, model=model)
    last = TrainerState(epoch=3.0, global_step=30, max_steps=30)
    report_evaluation(study.ask(), StubRun(0.1), "accuracy").on_evaluate(None, last, None, model=model)


def test_a_baseline_an_earlier_attnguide_pruned_is_run_again_once() -> None:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({}, user_attrs={"baseline": True})
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    study.tell(study.ask({}), 0.8)
    tuning_trials._rerun_a_pruned_baseline(study)
    tuning_trials._rerun_a_pruned_baseline(study)  # its retry waits: nothing more
    [retry] = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert retry.user_attrs["baseline"] and retry.user_attrs["retry_of"] == 0
    assert "pruned" in retry.user_attrs["retry_reason"]
    pruned = study.trials[0]
    pruned.user_attrs["reason"] = "pruned after epoch 2: dev accuracy 0.7263"
    row = tuning_report._trial_row(pruned, "accuracy", retry.user_attrs["retry_reason"])
    assert row["reason"] == f"pruned after epoch 2: dev accuracy 0.7263; {retry.user_attrs['retry_reason']}"
    study.enqueue_trial({}, user_attrs=dict(retry.user_attrs))  # a second worker opening it at the same time
    first, twin = (optuna.Trial(study, study._pop_waiting_trial_id()) for _ in range(2))
    assert tuning_trials._duplicate_of(first) is None and tuning_trials._duplicate_of(twin) == first.number
    assert tuning_trials.planned_trials(study) == 2  # a retry is no trial of the plan
    study.tell(first, 0.7)
    tuning_trials._rerun_a_pruned_baseline(study)
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


@pytest.mark.parametrize("name", ["median", "halving"])
def test_prune_after_keeps_a_trial_through_its_first_evaluations(name) -> None:
    study = optuna.create_study(direction="maximize", pruner=tuning_trials.make_pruner(name, prune_after=2))
    for value in (0.8, 0.9, 0.85, 0.95):  # trials that went through the pruner at each evaluation
        ahead = study.ask()
        for epoch in (1, 2):
            ahead.report(value, epoch)
            ahead.should_prune()  # successive halving records each trial's rung here
        study.tell(ahead, value)
    behind = study.ask()
    behind.report(0.1, 1)
    assert not behind.should_prune()
    behind.report(0.1, 2)
    assert behind.should_prune()


def test_a_missing_space_file_is_named(tmp_path) -> None:
    with pytest.raises(AttnguideError, match="missing.yaml: cannot read the search space"):
        SearchSpace.from_file(tmp_path / "missing.yaml")

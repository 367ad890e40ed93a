"""``attnguide compare``: the grid file, cells, resume, the report, and real grids on a tiny model."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from attnguide.cli import main
from attnguide.errors import AttnguideError
from attnguide.experiments import runner
from attnguide.experiments.grid import build_grid
from attnguide.experiments.offline_demo import make_dataset
from attnguide.experiments.runner import data_hashes, finished_result, run_dir, run_grid
from attnguide.files import write_json, write_jsonl
from attnguide.guiding.config import GuideConfig
from attnguide.rundir import file_sha256, is_complete_run, partial_path


@pytest.fixture(scope="module")
def nli(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("data") / "nli"  # the data set is named after its folder
    files = {"train": (32, 1), "dev": (16, 2), "test": (16, 3)}
    for split, (size, seed) in files.items():
        write_jsonl(folder / f"{split}.jsonl", make_dataset(size, seed))
    return {split: str(folder / f"{split}.jsonl") for split in files}


def write_grid(path: Path, **keys) -> str:
    path.write_text(yaml.safe_dump(keys), encoding="utf-8")
    return str(path)


# --- the grid file and its cells ------------------------------------------------------------------


def test_grid_expands_every_key_without_duplicate_cells(nli, tmp_path) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text(
        f"train: {nli['train']}\ndev: {nli['dev']}\nformat: multinli\n"
        "models: [default, ./x/bert-base, other/bert-base]\n"
        "guides: [mdg+pdg, pdg]\nmdg_weight: [0.001, 1e-2]\ntemperature: 2\nlayers: [all, 'last:1']\n"
        "seeds: [1, 2]\nepochs: 1\nbatch_size: 8\nmax_length: 48\nlr: 5e-5\n"
        f"output_dir: {tmp_path / 'out'}\n",
        encoding="utf-8",
    )
    grid = build_grid(config)
    guides = [c.guide for c in grid.cells if c.seed == 1 and c.model_slug.startswith("default")]
    # the baseline is added and comes first; a PDG-only setting does not depend on the MDG weight
    assert guides[0] == {"guides": "none"}
    assert (
        len(guides) == 1 + 4 + 2
        and {"guides": "pdg", "pdg_weight": 0.001, "layers": "all", "scope": "joint", "profile": "received"}
        in guides
    )
    assert len(grid.cells) == 3 * 7 * 2 and [c.seed for c in grid.cells[:21]] == [1] * 21  # seed-major
    assert len({c.path for c in grid.cells}) == len(grid.cells)
    slugs = sorted({c.model_slug for c in grid.cells})
    assert (
        slugs[0] == "bert-base-" + slugs[0][-8:]
        and slugs[1].startswith("bert-base-")
        and slugs[2] == "default"
    )
    cell = next(
        c for c in grid.cells if c.guide.get("layers") == "last:1" and c.guide.get("mdg_weight") == 0.01
    )
    assert cell.path.startswith("nli/") and cell.path.endswith(
        "/e1-bs8-len48-lr5e-05/mdg+pdg-a0.01-b0.001-t2-Llast1/seed1"
    )
    assert cell.baseline_id == cell.setting_id.rsplit("/", 1)[0] + "/none"
    args = cell.train_args(Path("o"))
    pairs = dict(zip(args[1::2], args[2::2], strict=False))
    assert pairs["--guide"] == "mdg+pdg" and pairs["--mdg-weight"] == "0.01" and pairs["--layers"] == "last:1"
    assert pairs["--lr"] == "5e-05" and pairs["--format"] == "multinli" and pairs["--seed"] == "1"
    assert grid.datasets[0].metric == "accuracy"


def test_datasets_list_and_ranking_task(nli, tmp_path) -> None:
    config = write_grid(
        tmp_path / "grid.yaml",
        datasets=[
            {"name": "nli-a", "train": nli["train"], "dev": nli["dev"], "test": nli["test"]},
            {"name": "qa", "train": nli["train"], "dev": nli["dev"], "task": "ranking"},
            {"name": "qa-mrr", "train": nli["train"], "dev": nli["dev"], "task": "ranking", "metric": "mrr"},
            {
                "name": "qa-bi",
                "train": nli["train"],
                "dev": nli["dev"],
                "task": "ranking",
                "train_options": ["--encoder", "bi"],
            },
        ],
        guides="none",
        seeds=[3],
        output_dir=str(tmp_path / "out"),
    )
    grid = build_grid(config)
    assert [(d.name, d.task, d.metric) for d in grid.datasets] == [
        ("nli-a", None, "accuracy"),
        ("qa", "ranking", "map"),
        ("qa-mrr", "ranking", "mrr"),
        ("qa-bi", "ranking", "map"),
    ]
    assert len(grid.cells) == 4 and grid.datasets[0].test == nli["test"]
    args = grid.cells[1].train_args(Path("o"))
    assert args[args.index("--task") + 1] == "ranking" and "--task" not in grid.cells[0].train_args(Path("o"))
    bi = grid.cells[3].train_args(Path("o"))
    assert bi[bi.index("--encoder") + 1] == "bi" and "--encoder" not in args


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: [1, 2]", "unknown key 'seed' (did you mean 'seeds'?)"),
        ("lr: fast", "lr: expected numbers > 0 (got 'fast')"),
        ("guides: [none, mdg+xyz]", "guides: unknown guide 'xyz'"),
        ("layers: 'last:0'", "layers: --layers 'last:0'"),
        ("scope: wide", "scope: expected one of joint, per-layer"),
        ("seeds: []", "seeds: needs at least one value"),
        ("dev: [DEV, DEV]", "dev: has 2 values; train has 1"),
        ("datasets: [{train: TRAIN, dev: DEV}]", "train: give data sets either under datasets:"),
        ("test: nowhere.jsonl", "test: no such data file: nowhere.jsonl"),
        ("task: speech", "task: unknown task 'speech'"),
        ("guides: [mdg", "not valid YAML"),
        ("train_options: --encoder bi", "train_options: expected a list of train flags"),
        ("train_options: [--seed, 3]", "train_options: --seed is set by the grid itself"),
    ],
)
def test_bad_grid_is_one_line_exit_2(nli, tmp_path, capsys, monkeypatch, text, message) -> None:
    monkeypatch.chdir(tmp_path)  # output_dir: out is relative: nothing may appear there
    config = tmp_path / "grid.yaml"
    lines = {"train": f"train: {nli['train']}", "dev": f"dev: {nli['dev']}", "output_dir": "output_dir: out"}
    key = text.split(":")[0]
    lines[key] = text.replace("TRAIN", nli["train"]).replace("DEV", nli["dev"])
    config.write_text("\n".join(lines.values()) + "\n", encoding="utf-8")
    assert main(["compare", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"attnguide: error: {config}") and message in err, err
    assert not (tmp_path / "out").exists()


def test_flags_alone_make_a_grid_and_override_the_file(nli, tmp_path, capsys) -> None:
    flags = ["--train", nli["train"], "--dev", nli["dev"], "--guides", "none", "pdg", "--seeds", "1", "2"]
    assert main(["compare", *flags, "--output-dir", str(tmp_path / "a"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 cells in") and out.count("\nto run ") == 4 and "/pdg-b0.001/seed2" in out
    config = write_grid(
        tmp_path / "g.yaml", train=nli["train"], dev=nli["dev"], seeds=[1, 2, 3], output_dir="x"
    )
    assert (
        main(
            ["compare", "--config", config, "--seeds", "7", "--output-dir", str(tmp_path / "b"), "--dry-run"]
        )
        == 0
    )
    assert "/seed7" in capsys.readouterr().out
    assert main(["compare", "--config", config, "--lr", "-1"]) == 2
    assert "attnguide: error: --lr: expected numbers > 0" in capsys.readouterr().err


# --- resume and the report, on finished runs written here ------------------------------------------


def fake_run(grid, cell, accuracy: float, seconds: float = 2.0, **changed) -> None:
    """A finished run directory as ``attnguide train`` writes it, with a chosen dev accuracy."""
    options = {"model": cell.model, "format": cell.data.format, **cell.training, "seed": cell.seed}
    options["guide"] = GuideConfig(**cell.guide).to_dict()
    options.update(changed)
    data = {split: {"sha256": file_sha256(getattr(cell.data, split))} for split in ("train", "dev")}
    write_json(run_dir(grid, cell) / "run.json", {"options": options, "data": data, "seconds": seconds})
    write_json(run_dir(grid, cell) / "metrics.json", {"accuracy": accuracy, "macro_f1": 0.5})


@pytest.fixture
def finished_grid(nli, tmp_path):
    """Six seeds of a baseline, a clearly better setting and a noise-only one, every run finished."""
    config = write_grid(
        tmp_path / "grid.yaml",
        train=nli["train"],
        dev=nli["dev"],
        models=["default"],
        guides=["none", "mdg+pdg", "pdg"],
        seeds=[1, 2, 3, 4, 5, 6],
        output_dir=str(tmp_path / "out"),
    )
    grid = build_grid(config)
    rng = np.random.default_rng(0)
    baseline = dict(zip(grid.seeds, rng.normal(0.80, 0.01, 6), strict=True))
    shift = {"none": 0.0, "mdg+pdg": 0.01, "pdg": 0.0}
    values = {}
    for cell in grid.cells:
        noise = 0.0 if cell.is_baseline else rng.normal(0, 0.002)
        values[cell.path] = float(baseline[cell.seed] + shift[cell.guide["guides"]] + noise)
        fake_run(grid, cell, values[cell.path])
    return grid, values


def test_finished_grid_runs_nothing_and_reports(finished_grid) -> None:
    grid, values = finished_grid
    results = run_grid(grid)
    assert [r.status for r in results] == ["finished"] * 18
    assert not (grid.output_dir / "logs").exists()  # no cell was run
    report = json.loads((grid.output_dir / "results.json").read_text())
    settings = {s["setting"]: s for s in report["settings"]}
    assert list(settings) == ["none", "mdg+pdg-a0.001-b0.001-t2", "pdg-b0.001"]
    guided = settings["mdg+pdg-a0.001-b0.001-t2"]
    by_seed = [values[f"{guided['id']}/seed{s}"] for s in grid.seeds]
    assert guided["mean"] == pytest.approx(np.mean(by_seed)) and guided["std"] == pytest.approx(
        np.std(by_seed, ddof=1)
    )
    base = [values[f"{settings['none']['id']}/seed{s}"] for s in grid.seeds]
    assert guided["vs_baseline"]["mean_diff"] == pytest.approx(np.mean(np.subtract(by_seed, base)))
    assert guided["vs_baseline"]["verdict"] == "better" and guided["vs_baseline"]["wilcoxon_p"] is not None
    assert settings["pdg-b0.001"]["vs_baseline"]["verdict"] == "no detectable difference"
    assert settings["none"]["vs_baseline"] is None
    assert report["best_on_dev"] == {"nli": guided["id"]} and report["test"] == []
    markdown = (grid.output_dir / "results.md").read_text()
    assert (
        "| mdg+pdg-a0.001-b0.001-t2 | 6/6 |" in markdown
        and "Best on dev: **mdg+pdg-a0.001-b0.001-t2**" in markdown
    )
    assert "paired t-test" in markdown
    rows = (grid.output_dir / "results.csv").read_text().splitlines()
    assert (
        len(rows) == 4 and rows[0].startswith("split,data,setting,") and rows[2].startswith("dev,nli,mdg+pdg")
    )
    assert (grid.output_dir / "plots" / "nli.png").read_bytes()[:4] == b"\x89PNG"


def test_cells_made_by_other_source_are_named_but_count(finished_grid, monkeypatch, caplog, capsys) -> None:
    grid, _ = finished_grid
    monkeypatch.setattr(runner, "source_revision", lambda: "abc1234")
    run_grid(grid, dry_run=True)
    assert (
        "18 finished cells may come from other attnguide source than this one (abc1234): 18 made before"
        in (capsys.readouterr().out)
    )
    for cell in grid.cells:
        run = json.loads((run_dir(grid, cell) / "run.json").read_text())
        revision = "abc1234" if cell.seed < 6 else "0ld0ld0"
        write_json(run_dir(grid, cell) / "run.json", {**run, "versions": {"attnguide revision": revision}})
    results = run_grid(grid)
    assert [r.status for r in results] == ["finished"] * 18  # counted as they are
    assert "3 finished cells may come from other attnguide source than this one (abc1234): 3 by 0ld0ld0" in (
        caplog.text
    )
    cells = json.loads((grid.output_dir / "results.json").read_text())["cells"]
    assert {c["revision"] for c in cells} == {"abc1234", "0ld0ld0"}
    for cell in grid.cells[15:]:
        fake_run(grid, cell, 0.8)
        run = json.loads((run_dir(grid, cell) / "run.json").read_text())
        write_json(run_dir(grid, cell) / "run.json", {**run, "versions": {"attnguide revision": "abc1234"}})
    caplog.clear()
    run_grid(grid)
    assert "may come from other" not in caplog.text
    monkeypatch.setattr(runner, "source_revision", lambda: None)  # an installed wheel: nothing to compare
    assert runner.other_revisions(results) is None


def test_a_run_with_other_settings_stops_the_grid(finished_grid) -> None:
    grid, _ = finished_grid
    cell = grid.cells[4]
    fake_run(grid, cell, 0.8, epochs=1.0)
    with pytest.raises(AttnguideError, match=r"epochs: the run has 1\.0, the grid asks for 3\.0"):
        run_grid(grid)
    fake_run(grid, cell, 0.8, seed=99)
    with pytest.raises(AttnguideError, match="seed: the run has 99"):
        run_grid(grid)


def test_a_metric_the_task_does_not_measure_is_refused_before_anything_runs(finished_grid, capsys) -> None:
    grid, _ = finished_grid
    config = Path(grid.source)
    text = config.read_text()
    for metric in ("f1", "mdg_loss"):  # a typo; a loss, where lower would be better
        config.write_text(text + f"metric: {metric}\n")
        assert main(["-q", "compare", "--config", str(config), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert f"metric: expected one of accuracy, macro_f1 (higher is better), got '{metric}'" in err


def test_metric_missing_from_a_run_is_one_line(finished_grid, capsys) -> None:
    grid, _ = finished_grid
    config = Path(grid.source)
    config.write_text(config.read_text() + "metric: macro_f1\n")
    write_json(run_dir(grid, grid.cells[0]) / "metrics.json", {"accuracy": 0.8})
    assert main(["-q", "compare", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "metrics.json has no 'macro_f1' (it has accuracy); set metric: in the grid" in err


def test_the_plot_gets_the_permissions_of_a_new_file(finished_grid) -> None:
    grid, _ = finished_grid
    run_grid(grid)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("plots/nli.png", "results.md"):
        assert (grid.output_dir / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_means_equal_up_to_rounding_go_to_the_earlier_setting(finished_grid) -> None:
    grid, _ = finished_grid
    # the same total of correct answers, summed in another order: 0.8319999999999999 vs 0.8320000000000001
    values = {
        "none": [0.822, 0.824, 0.84, 0.852, 0.822, 0.83],
        "pdg": [0.822, 0.824, 0.842, 0.85, 0.822, 0.83],
    }
    values["mdg+pdg"] = [v - 0.01 for v in values["none"]]
    for cell in grid.cells:
        fake_run(grid, cell, values[cell.guide["guides"]][grid.seeds.index(cell.seed)])
    run_grid(grid)
    report = json.loads((grid.output_dir / "results.json").read_text())
    assert report["best_on_dev"] == {"nli": next(c.setting_id for c in grid.cells if c.is_baseline)}


def eval_stub(monkeypatch, fail: bool = False) -> list[list[str]]:
    """Replace the evaluation subprocess: record its arguments and write metrics (or fail)."""
    calls: list[list[str]] = []

    def run(args: list[str], log: Path, lock, what: str) -> str | None:
        calls.append(args)
        if fail:
            return "the model cannot be read"
        output = Path(args[args.index("--output") + 1])
        write_json(output.with_suffix(".metrics.json"), {"accuracy": 0.5 + len(calls) / 100})
        return None

    monkeypatch.setattr("attnguide.experiments.runner._run_attnguide", run)
    return calls


def test_test_metrics_are_reused_only_for_the_same_test_file_and_run(finished_grid, nli, monkeypatch) -> None:
    grid, _ = finished_grid
    config = Path(grid.source)
    test = Path(grid.source).parent / "test.jsonl"
    test.write_bytes(Path(nli["test"]).read_bytes())
    config.write_text(config.read_text() + f"test: {test}\n")
    grid = build_grid(config)
    calls = eval_stub(monkeypatch)
    run_grid(grid)
    assert len(calls) == 12  # the best setting and the baseline, six seeds each
    run_grid(grid)
    assert len(calls) == 12  # nothing changed: the kept metrics serve
    test.write_text(test.read_text().splitlines(keepends=True)[0])  # the test file is edited in place
    run_grid(grid)
    assert len(calls) == 24
    baseline = next(c for c in grid.cells if c.is_baseline)
    fake_run(grid, baseline, 0.79, seconds=3.0)  # one run is trained again
    run_grid(grid)
    assert len(calls) == 25 and run_dir(grid, baseline).as_posix() in calls[-1]


def test_test_all_evaluates_every_cell_and_forest_compares_on_test(finished_grid, nli, monkeypatch) -> None:
    """``test_all: true`` (dev: a selection split, test: the split reported on) evaluates all 18
    cells on test, and the forest table of such a grid compares the test figures."""
    from attnguide.experiments.forest import collect

    grid, _ = finished_grid
    config = Path(grid.source)
    config.write_text(config.read_text() + f"test: {nli['test']}\ntest_all: true\n")
    grid = build_grid(config)
    calls = eval_stub(monkeypatch)
    run_grid(grid)
    assert len(calls) == 18
    rows = collect([grid.output_dir])
    assert {r.split for r in rows} == {"test"} and len(rows) == 2
    assert {r.split for r in collect([grid.output_dir], "dev")} == {"dev"}
    config.write_text(config.read_text().replace("test_all: true", "test_all: maybe"))
    with pytest.raises(AttnguideError, match="test_all: expected true or false"):
        build_grid(config)


def test_failed_test_evaluations_give_exit_code_1(finished_grid, nli, monkeypatch, capsys) -> None:
    grid, _ = finished_grid
    config = Path(grid.source)
    config.write_text(config.read_text() + f"test: {nli['test']}\n")
    eval_stub(monkeypatch, fail=True)
    assert main(["-q", "compare", "--config", str(config)]) == 1
    assert "0/6 (6 failed)" in capsys.readouterr().out


def train_stub(monkeypatch, grid, seconds: float = 0.0) -> list[tuple[str, str]]:
    """Replace the training subprocess: record (thread, cell) and write the finished run after
    ``seconds``, as ``attnguide train`` would."""
    cells = {str(run_dir(grid, cell)): cell for cell in grid.cells}
    calls: list[tuple[str, str]] = []

    def run(args: list[str], log: Path, lock, what: str) -> str | None:
        cell = cells[args[args.index("--output-dir") + 1]]
        calls.append((threading.current_thread().name, cell.path))
        time.sleep(seconds)
        fake_run(grid, cell, 0.8)
        return None

    monkeypatch.setattr("attnguide.experiments.runner._run_attnguide", run)
    return calls


def test_workers_share_a_grid_each_cell_trained_once(finished_grid, monkeypatch) -> None:
    """Two compares on one grid (one per GPU, say) take the cells nobody holds, each cell is trained
    by one of them, and both end with the complete report."""
    grid, _ = finished_grid
    for cell in grid.cells[::2]:  # 9 cells to run
        shutil.rmtree(run_dir(grid, cell))
    calls = train_stub(monkeypatch, grid, seconds=0.2)
    ended: dict[str, list[str]] = {}

    def worker() -> None:
        ended[threading.current_thread().name] = [r.status for r in run_grid(grid)]

    threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trained = [path for _, path in calls]
    assert sorted(trained) == sorted(c.path for c in grid.cells[::2])  # each once
    assert {name for name, _ in calls} == {"worker-0", "worker-1"}  # both did some
    assert ended == {name: ["finished"] * 18 for name in ("worker-0", "worker-1")}
    report = json.loads((grid.output_dir / "results.json").read_text())
    assert [c["status"] for c in report["cells"]] == ["finished"] * 18


HOLDER = """
import fcntl, json, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
holder = {"pid": int(sys.argv[2]), "host": socket.gethostname()}
holder.update(worker=os.getpid(), doing="training x/seed1")
os.pwrite(fd, json.dumps(holder).encode(), 0)
print("locked", flush=True)
for _ in range(600):  # until the test says so (at most a minute)
    if os.path.exists(sys.argv[3]):
        break
    time.sleep(0.1)
"""


class ReleaseWhenWaiting(logging.Handler):
    """Create ``release`` (which ends HOLDER) once compare says it waits: the wait is then certain."""

    def __init__(self, release: Path) -> None:
        super().__init__()
        self.trigger = release

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting for" in record.getMessage():
            self.trigger.touch()


def test_a_compare_run_again_after_a_kill_waits_for_what_the_killed_one_left_running(
    finished_grid, monkeypatch, caplog
) -> None:
    """The compare that claimed a cell is gone, a run it started still holds the claim: the other
    cells go on, then the compare waits for that run instead of racing it, and trains the cell only
    if the run left it unfinished."""
    grid, _ = finished_grid
    left, other = grid.cells[0], grid.cells[1]
    shutil.rmtree(run_dir(grid, left))
    shutil.rmtree(run_dir(grid, other))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(gone.stdout)
    release = Path(grid.source).parent / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(runner.claim_path(grid, left)), str(dead_pid), str(release)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "locked\n"
    calls = train_stub(monkeypatch, grid)
    caplog.set_level(logging.INFO, logger="attnguide")
    handler = ReleaseWhenWaiting(release)
    logging.getLogger("attnguide").addHandler(handler)
    try:
        results = run_grid(grid)
    finally:
        logging.getLogger("attnguide").removeHandler(handler)
        release.touch()
    assert holder.poll() is not None  # the claim came only once the holder had ended
    assert [path for _, path in calls] == [other.path, left.path]  # the free cell first
    assert [r.status for r in results] == ["finished"] * 18
    assert f"waiting for attnguide compare pid {dead_pid} on" in caplog.text
    assert f"process {holder.pid}: training x/seed1" in caplog.text


# --- real grids: training subprocesses on the tiny model -------------------------------------------


KILLER = str(Path(__file__).parents[1] / "killer.py")


@pytest.fixture(scope="module")
def resumed_grid(nli, tiny_model_dir, tmp_path_factory):
    """2 settings × 2 seeds with a test file, 2 epochs of 4 steps: the grid and the training run it
    started are killed together at step 5 of the second cell, just past its epoch-1 checkpoint, like
    a lost machine; then the same command runs again at once."""
    folder = tmp_path_factory.mktemp("grid")
    config = write_grid(
        folder / "grid.yaml",
        train=nli["train"],
        dev=nli["dev"],
        test=nli["test"],
        models=[tiny_model_dir],
        guides=["none", "mdg+pdg"],
        mdg_weight=0.5,
        seeds=[1, 2],
        epochs=2,
        batch_size=8,
        max_length=48,
        output_dir=str(folder / "out"),
    )
    grid = build_grid(config)
    killed = grid.cells[1]
    assert killed.path.endswith("mdg+pdg-a0.5-b0.001-t2/seed1")
    env = {**os.environ, "KILL_STEP": "5", "KILL_GROUP": "1", "KILL_ONLY_IN": killed.path}
    with open(folder / "first.log", "w") as log:
        first = subprocess.run(
            [sys.executable, KILLER, "-q", "compare", "--config", config],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, which the kill takes down
            env=env,
        )
    assert first.returncode == -signal.SIGKILL, (folder / "first.log").read_text()
    finished = run_dir(grid, grid.cells[0])
    assert is_complete_run(finished) and not run_dir(grid, killed).exists()
    assert (partial_path(run_dir(grid, killed)) / "checkpoint-4").is_dir()
    kept = [*finished.glob("*.json"), grid.output_dir / "logs" / f"{grid.cells[0].path}.log"]
    before = {p: p.stat().st_mtime_ns for p in kept}
    # run again at once: the killed training process may still be exiting and holding the lock
    code = main(["-q", "compare", "--config", config])
    return grid, before, code


def test_killed_grid_resumes_and_reruns_nothing_finished(resumed_grid) -> None:
    grid, before, code = resumed_grid
    out = grid.output_dir
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the finished cell's files are untouched
    assert all(is_complete_run(run_dir(grid, cell)) for cell in grid.cells)
    assert not list(out.glob("runs/**/.*.partial"))
    resumed = json.loads((run_dir(grid, grid.cells[1]) / "run.json").read_text())
    assert resumed["resumed_from"].endswith("checkpoint-4")  # the killed cell went on from its checkpoint
    report = json.loads((out / "results.json").read_text())
    assert [c["status"] for c in report["cells"]] == ["finished"] * 4


def test_grid_results_and_test_report(resumed_grid) -> None:
    grid, _, _ = resumed_grid
    out = grid.output_dir
    report = json.loads((out / "results.json").read_text())
    for cell in report["cells"]:
        metrics = json.loads((out / "runs" / cell["path"] / "metrics.json").read_text())
        assert cell["metrics"]["accuracy"] == metrics["accuracy"]
    assert [s["setting"] for s in report["settings"]] == ["none", "mdg+pdg-a0.5-b0.001-t2"]
    assert all(s["n"] == 2 and set(s["values"]) == {"1", "2"} for s in report["settings"])
    best = report["best_on_dev"]["nli"]
    tested = {s["id"] for s in report["test"]}
    assert best in tested and any(i.endswith("/none") for i in tested)
    assert all(s["split"] == "test" and s["n"] == 2 for s in report["test"])
    seed1 = next(p for p in (out / "test").glob("**/seed1/predictions.metrics.json"))
    assert len((seed1.parent / "predictions.jsonl").read_text().splitlines()) == 16
    markdown = (out / "results.md").read_text()
    assert "## nli: dev accuracy" in markdown and "## Test: the setting chosen on dev" in markdown
    assert (out / "plots" / "nli.png").is_file()


def write_ranking_files(folder: Path) -> dict[str, str]:
    """An answer-selection train and dev CSV: 6 questions, 4 candidate sentences each, one correct."""
    rows = [
        f"what is item {q}?,{int(a == q % 4)},item {q} is thing {a} of the list."
        for q in range(6)
        for a in range(4)
    ]
    for split in ("train", "dev"):
        (folder / f"{split}.csv").write_text("qtext,label,atext\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return {"train": str(folder / "train.csv"), "dev": str(folder / "dev.csv")}


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tiny_model_dir, tmp_path) -> None:
    """The first model cannot load; the second trains a reranker (``--task ranking``, compared on MAP)."""
    files = write_ranking_files(tmp_path)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    config = write_grid(
        tmp_path / "grid.yaml",
        datasets=[
            {
                "name": "qa",
                **files,
                "task": "ranking",
            }
        ],
        models=[str(broken), tiny_model_dir],
        guides="none",
        seeds=1,
        epochs=1,
        batch_size=8,
        max_length=32,
        output_dir=str(tmp_path / "out"),
    )
    assert main(["-q", "compare", "--config", config]) == 1
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    failed, finished = report["cells"]
    assert failed["status"] == "failed" and "expected a model directory with a config.json" in failed["error"]
    assert (
        failed["location"].endswith("seed1.log")
        and "## Failed cells" in (tmp_path / "out" / "results.md").read_text()
    )
    assert (
        finished["status"] == "finished"
        and report["settings"][1]["values"]["1"] == finished["metrics"]["map"]
    )
    run = json.loads((tmp_path / "out" / "runs" / finished["path"] / "run.json").read_text())
    assert run["task"] == "ranking"
    grid = build_grid(config)
    assert finished_result(grid, grid.cells[1], data_hashes(grid)).status == "finished"  # would not run again


def test_a_killed_ranking_cell_resumes_from_its_checkpoint(tiny_model_dir, tmp_path) -> None:
    """24 pairs in batches of 8, 2 epochs: the grid dies with its training run at step 4, one step
    past the epoch-1 checkpoint; run again, the cell goes on from there."""
    config = write_grid(
        tmp_path / "grid.yaml",
        datasets=[{"name": "qa", **write_ranking_files(tmp_path), "task": "ranking"}],
        models=[tiny_model_dir],
        guides="mdg+pdg",
        seeds=1,
        epochs=2,
        batch_size=8,
        max_length=32,
        output_dir=str(tmp_path / "out"),
    )
    grid = build_grid(config)
    cell = next(c for c in grid.cells if not c.is_baseline)
    env = {**os.environ, "KILL_STEP": "4", "KILL_GROUP": "1", "KILL_ONLY_IN": cell.path}
    first = subprocess.run(
        [sys.executable, KILLER, "-q", "compare", "--config", config],
        capture_output=True,
        start_new_session=True,
        env=env,
    )
    assert first.returncode == -signal.SIGKILL, first.stdout[-2000:]
    assert (partial_path(run_dir(grid, cell)) / "checkpoint-3").is_dir()
    assert main(["-q", "compare", "--config", config]) == 0
    run = json.loads((run_dir(grid, cell) / "run.json").read_text())
    assert run["task"] == "ranking" and run["resumed_from"].endswith("checkpoint-3")


def test_the_released_code_profile_is_an_arm_of_its_own(nli, tmp_path) -> None:
    """``profile: [received, released-code]``: the released code's guiding beside the correct one,
    named apart, passed to train, while a default-profile cell keeps the name it always had."""
    config = write_grid(
        tmp_path / "grid.yaml", train=nli["train"], dev=nli["dev"], guides=["none", "mdg+pdg"],
        profile=["received", "released-code"], seeds=[1], output_dir=str(tmp_path / "out"),
    )  # fmt: skip
    names = [c.setting_id.rsplit("/", 1)[-1] for c in build_grid(config).cells]
    assert names == ["none", "mdg+pdg-a0.001-b0.001-t2", "mdg+pdg-a0.001-b0.001-t2-released-code"]
    released = build_grid(config).cells[2].train_args(Path("o"))
    assert released[released.index("--profile") + 1] == "released-code"

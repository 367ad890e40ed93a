"""The guide registry: a guide added in this file alone is picked up by GuideConfig, GuidedTrainer,
the command line, a compare grid and its report, with no other edit."""

from __future__ import annotations

import csv
import json
import random
from types import SimpleNamespace

import pytest
import torch
from tiny import tiny_bert, train

from attnguide import GuideConfig, GuidedTrainer
from attnguide.cli import build_parser, main
from attnguide.errors import AttnguideError, ConfigError
from attnguide.experiments.grid import build_grid
from attnguide.experiments.offline_demo import make_dataset
from attnguide.experiments.runner import run_dir, run_grid
from attnguide.files import write_json, write_jsonl
from attnguide.guiding.builtin_guides import MapInputs
from attnguide.guiding.registry import (
    GUIDES,
    Guide,
    GuideSetting,
    register_guide,
    unregister_guide,
    weight_setting,
)
from attnguide.rundir import file_sha256


def concentration(profiles: torch.Tensor, mask: torch.Tensor, config: GuideConfig) -> torch.Tensor:
    """A toy guide: the sum of squares of each head's profile (1 / the number of positions it spreads
    over), sharpened by a setting of its own; lower when attention spreads."""
    return (profiles.float() * mask[:, None, :]).pow(2).sum(-1).mean() * config.sharpness


@pytest.fixture
def toy_guide():
    guide = register_guide(
        Guide(
            "spread",
            "toy spreading guide",
            concentration,
            weight_setting("spread", 0.5, "s", "the toy guide"),
            settings=(
                GuideSetting("sharpness", 1.0, "sharpness of the toy guide", inclusive=False, short="k"),
            ),
        )
    )
    yield guide
    unregister_guide(guide.name)


def test_a_registered_guide_is_a_setting_of_guide_config(toy_guide) -> None:
    config = GuideConfig(guides="mdg+spread", sharpness=3)
    assert config.guides == ("mdg", "spread") and config.spread_weight == 0.5 and config.sharpness == 3.0
    assert config.to_dict()["spread_weight"] == 0.5 and GuideConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="sharpness must be a finite number > 0, got 0"):
        GuideConfig(sharpness=0)


def test_names_and_settings_of_a_new_guide_must_be_free(toy_guide) -> None:
    with pytest.raises(ConfigError, match="the name is taken"):
        register_guide(toy_guide)
    taken = Guide(
        "other", "other", concentration, weight_setting("other", 1.0, "o", "x"), settings=(toy_guide.settings)
    )
    with pytest.raises(ConfigError, match="setting 'sharpness' is taken"):
        register_guide(taken)
    with pytest.raises(ConfigError, match="unknown guide setting 'sharpnes'"):
        GuideConfig(sharpnes=2)
    assert "other" not in GUIDES


def test_a_registered_guide_trains(toy_guide, tmp_path) -> None:
    config = GuideConfig(guides="spread", spread_weight=5.0)
    trainer, guided = train(tmp_path / "a", GuidedTrainer, tiny_bert(), guide_config=config)
    _, plain = train(tmp_path / "b", GuidedTrainer, tiny_bert(), guide_config=GuideConfig(guides="none"))
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert "spread_loss" in logged[-1] and "mdg_loss" not in logged[-1]
    assert not torch.equal(guided, plain)  # its gradient reached the weights


def attention_to_marked(inputs: MapInputs, mask: torch.Tensor, config: GuideConfig) -> torch.Tensor:
    """A toy map guide: minus the attention that the tokens its tokenizer inputs name receive."""
    marked = torch.isin(inputs.input_ids, torch.tensor(inputs.tokens)) & mask.bool()
    return -torch.stack(
        [(layer.float() * marked[:, None, None, :]).sum(-1).mean() for layer in inputs.maps]
    ).mean()


def test_a_map_guide_gets_what_its_row_makes_of_the_tokenizer(tmp_path) -> None:
    guide = Guide(
        "marked",
        "toy map guide",
        attention_to_marked,
        weight_setting("marked", 1.0, "m", "the toy map guide"),
        needs_maps=True,
        from_tokenizer=lambda tokenizer: tokenizer.marked_ids,
    )
    register_guide(guide)
    try:
        config = GuideConfig(guides="marked")
        with pytest.raises(AttnguideError, match="toy map guide needs the tokenizer: pass processing_class"):
            train(tmp_path / "a", GuidedTrainer, tiny_bert(), guide_config=config)
        tokenizer = SimpleNamespace(marked_ids=[5, 6, 7, 8, 9])
        trainer, _ = train(
            tmp_path / "b", GuidedTrainer, tiny_bert(), guide_config=config, processing_class=tokenizer
        )
        assert trainer.capture.route == "output-attentions" and trainer.guided.tokens == {
            "marked": [5, 6, 7, 8, 9]
        }
        logged = [entry for entry in trainer.state.log_history if "loss" in entry]
        assert all(entry["marked_loss"] < 0 for entry in logged)
    finally:
        unregister_guide(guide.name)


def test_a_registered_guide_has_its_flags_and_run_settings(toy_guide, tiny_model_dir, tmp_path) -> None:
    args = build_parser().parse_args(
        ["train", "--guide", "spread", "--spread-weight", "0.2", "--output-dir", "x"]
    )
    assert (args.spread_weight, args.sharpness) == (0.2, 1.0)
    write_jsonl(tmp_path / "train.jsonl", make_dataset(16, seed=1))
    out = tmp_path / "run"
    argv = ["-q", "train", "--model", tiny_model_dir, "--train", str(tmp_path / "train.jsonl")]
    argv += ["--dev", str(tmp_path / "train.jsonl"), "--guide", "mdg+spread", "--sharpness", "2"]
    argv += ["--epochs", "1", "--batch-size", "8", "--max-length", "32", "--output-dir", str(out)]
    assert main(argv) == 0
    guide = json.loads((out / "run.json").read_text())["options"]["guide"]
    assert (guide["guides"], guide["spread_weight"], guide["sharpness"]) == ("mdg+spread", 0.5, 2.0)
    assert "spread_loss" in json.loads((out / "metrics.json").read_text())  # eval measures it too


def test_a_registered_guide_is_a_grid_key_and_a_report_column(toy_guide, tmp_path) -> None:
    for split in ("train", "dev"):
        write_jsonl(tmp_path / "nli" / f"{split}.jsonl", make_dataset(8, seed=1))
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(
        f"train: {tmp_path / 'nli' / 'train.jsonl'}\ndev: {tmp_path / 'nli' / 'dev.jsonl'}\n"
        f"guides: [none, spread, mdg]\nspread_weight: [0.1, 1]\nsharpness: 2\nseeds: [1, 2]\n"
        f"output_dir: {tmp_path / 'out'}\n",
        encoding="utf-8",
    )
    grid = build_grid(grid_file)
    settings = sorted({c.setting_id.rsplit("/", 1)[1] for c in grid.cells})
    assert settings == ["mdg-a0.001-t2", "none", "spread-s0.1-k2", "spread-s1-k2"]  # mdg takes no toy setting
    cell = next(c for c in grid.cells if c.setting_id.endswith("spread-s1-k2"))
    args = cell.train_args(tmp_path / "run")
    assert args[args.index("--spread-weight") + 1] == "1.0" and args[args.index("--sharpness") + 1] == "2.0"
    rng = random.Random(0)
    for cell in grid.cells:  # finished runs, as attnguide train writes them
        options = {"model": cell.model, "format": "auto", **cell.training, "seed": cell.seed}
        options["guide"] = GuideConfig(**cell.guide).to_dict()
        data = {s: {"sha256": file_sha256(getattr(cell.data, s))} for s in ("train", "dev")}
        write_json(run_dir(grid, cell) / "run.json", {"options": options, "data": data, "seconds": 1.0})
        write_json(run_dir(grid, cell) / "metrics.json", {"accuracy": rng.random(), "macro_f1": 0.5})
    run_grid(grid)
    rows = list(csv.DictReader((grid.output_dir / "results.csv").open()))
    toy = next(r for r in rows if r["setting"] == "spread-s1-k2")
    assert (toy["spread_weight"], toy["sharpness"], toy["n"]) == ("1.0", "2.0", "2")
    assert "| spread-s1-k2 | 2/2 |" in (grid.output_dir / "results.md").read_text()

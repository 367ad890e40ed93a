"""The README's Python snippet runs as written (on a tiny model instead of the packaged MiniLM)."""

from __future__ import annotations

import re
from pathlib import Path

import attnguide.models

README = Path(__file__).resolve().parents[1] / "README.md"


def python_snippet(heading: str = "Python") -> str:
    section = README.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, f"the {heading} section has one snippet"
    return blocks[0]


def test_the_python_snippet_runs_as_written(tiny_model_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(attnguide.models, "default_model_path", lambda: tiny_model_dir)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_snippet(), str(README), "exec"), namespace)
    trainer = namespace["trainer"]
    logged = [entry for entry in trainer.state.log_history if "train_loss" in entry]
    assert trainer.state.global_step == 1 and logged  # one epoch of 4 pairs, batch 8: one step
    assert trainer.capture is not None and trainer.guide_config.guides == ("mdg", "pdg")  # guided
    assert (tmp_path / "runs" / "python-guided").is_dir()


def test_the_sentence_transformers_snippet_runs_as_written(tiny_model_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(attnguide.models, "default_model_path", lambda: tiny_model_dir)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_snippet("sentence-transformers"), str(README), "exec"), namespace)
    trainer = namespace["trainer"]
    assert trainer.state.global_step == 1 and namespace["loss"].capture is not None  # guided
    assert (tmp_path / "runs" / "st-guided").is_dir()

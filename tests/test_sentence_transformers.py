"""GuidedLoss: attention guiding as a sentence-transformers loss, for bi-encoders and cross-encoders,
with the library's own trainers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.cross_encoder import CrossEncoder
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from sentence_transformers.sentence_transformer import losses
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

from attnguide import GuideConfig
from attnguide.errors import AttnguideError
from attnguide.sentence_transformers import GuidedLoss, underlying_transformer

PAIRS = {
    "sentence1": ["A man plays a guitar.", "A dog runs.", "A girl reads a book.", "Two men cook."],
    "sentence2": ["A man plays music.", "A cat sleeps.", "A child reads.", "Nobody is cooking."],
    "score": [0.9, 0.1, 0.8, 0.2],
}


def bi_encoder(path: str) -> SentenceTransformer:
    """A bi-encoder without dropout, so that two passes over the same input agree."""
    torch.manual_seed(0)
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    transformer = Transformer(path, max_seq_length=32, config_kwargs=no_dropout)
    return SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension())])


def features(model, column: str) -> dict:
    return model.preprocess(PAIRS[column])


def test_one_forward_per_column_and_the_parts_as_a_dict(tiny_model_dir) -> None:
    model = bi_encoder(tiny_model_dir)
    loss = GuidedLoss(model, losses.CoSENTLoss(model), GuideConfig(mdg_weight=1.0, pdg_weight=0.5))
    assert loss.capture.route == "efficient"
    transformer = underlying_transformer(model)
    calls = []
    transformer.embeddings.register_forward_hook(lambda *_: calls.append(1))  # once per forward pass
    model.train()
    labels = torch.tensor(PAIRS["score"])
    parts = loss([features(model, "sentence1"), features(model, "sentence2")], labels)
    assert list(parts) == ["task", "mdg", "pdg"] and len(calls) == 2  # no second forward pass
    plain = losses.CoSENTLoss(model)([features(model, "sentence1"), features(model, "sentence2")], labels)
    assert torch.allclose(parts["task"], plain)
    assert "forward" not in transformer.__dict__  # the decoration is gone after the call
    model.zero_grad()
    parts["mdg"].backward()
    assert transformer.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0  # guiding's gradient
    model.eval()
    assert list(loss([features(model, "sentence1"), features(model, "sentence2")], labels)) == ["task"]


def test_gradient_cached_losses_are_refused(tiny_model_dir) -> None:
    model = bi_encoder(tiny_model_dir)
    with pytest.raises(AttnguideError, match="CachedMultipleNegativesRankingLoss embeds without gradient"):
        GuidedLoss(model, losses.CachedMultipleNegativesRankingLoss(model))


def test_a_cross_encoder_trains_with_its_own_loss_and_guiding(tiny_model_dir) -> None:
    torch.manual_seed(0)
    model = CrossEncoder(tiny_model_dir, num_labels=1, max_length=32)
    loss = GuidedLoss(model, BinaryCrossEntropyLoss(model), GuideConfig(mdg_weight=1.0))
    model.train()
    pairs = [list(zip(PAIRS["sentence1"], PAIRS["sentence2"], strict=True))]
    parts = loss([[p[0] for p in pairs[0]], [p[1] for p in pairs[0]]], torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert list(parts) == ["task", "mdg", "pdg"] and all(torch.isfinite(v) for v in parts.values())


def test_the_library_trainer_logs_each_part_and_the_card_cites_guiding(tiny_model_dir, tmp_path) -> None:
    model = bi_encoder(tiny_model_dir)
    loss = GuidedLoss(model, losses.CosineSimilarityLoss(model), GuideConfig(guides="mdg+pdg"))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=1, per_device_train_batch_size=2, logging_steps=1,
        report_to="none", use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict(PAIRS), loss=loss
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert {"task", "mdg", "pdg"} <= set(logged[0])
    model.save(str(tmp_path / "saved"))
    card = (tmp_path / "saved" / "README.md").read_text()
    assert "wang2022attentionguiding" in card and "GuidedLoss" in card
    assert len(SentenceTransformer(str(tmp_path / "saved")).encode(["a test"])[0]) == 32


def test_a_warm_up_longer_than_the_run_is_warned_about(tiny_model_dir, tmp_path, caplog) -> None:
    from types import SimpleNamespace

    from attnguide.training.sentence_transformers import sentence_transformer_trainer

    model = bi_encoder(tiny_model_dir)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=1, per_device_train_batch_size=2,
        report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no",
    )  # fmt: skip
    setup = SimpleNamespace(dataset=Dataset.from_dict(PAIRS), eval_dataset=None)
    for warmup, warned in ((1000, True), (2, False)):
        caplog.clear()
        config = GuideConfig(guides="mdg", warmup_steps=warmup)
        sentence_transformer_trainer(model, args, setup, losses.CosineSimilarityLoss(model), config).train()
        messages = [r.getMessage() for r in caplog.records if "guide warm-up" in r.getMessage()]
        assert messages == (["the guide warm-up (1000 steps) is longer than this run (2 steps): the guide "
                             "weights reach only 0.2% of their values"] if warned else [])  # fmt: skip


DDP = textwrap.dedent(
    """
    import sys
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from attnguide import GuideConfig
    from attnguide.sentence_transformers import GuidedLoss

    path, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    transformer = Transformer(path, max_seq_length=32, config_kwargs={"hidden_dropout_prob": 0.0,
                              "attention_probs_dropout_prob": 0.0})
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension())])
    words = ["a dog runs", "a cat sleeps", "men cook food", "a girl reads", "rain falls", "birds sing"]
    data = Dataset.from_dict({"a": words + words[::-1], "b": words[1:] + words[:1] + words,
                              "score": [i / 11 for i in range(12)]})
    loss = GuidedLoss(model, losses.CosineSimilarityLoss(model), GuideConfig(mdg_weight=0.5, pdg_weight=0.5))
    args = SentenceTransformerTrainingArguments(output_dir=out, num_train_epochs=1,
        per_device_train_batch_size=batch, learning_rate=1e-3, report_to="none", use_cpu=True,
        disable_tqdm=True, save_strategy="no", seed=0, train_sampling_strategy="sequential")
    SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    if args.process_index == 0:
        model.save(out + "/model")
    if torch.distributed.is_initialized():  # as PyTorch asks: left to exit, gloo may abort the process
        torch.distributed.destroy_process_group()
    """
)


def test_two_processes_train_as_one_with_twice_the_batch(tiny_model_dir, tmp_path) -> None:
    script = tmp_path / "train.py"
    script.write_text(DDP)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, str(script), tiny_model_dir, str(tmp_path / "one"), "4"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = subprocess.run(
        [*torchrun, str(script), tiny_model_dir, str(tmp_path / "two"), "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    weights = [load_file(Path(tmp_path / run / "model" / "model.safetensors")) for run in ("one", "two")]
    initial = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert max((weights[0][k] - initial[k]).abs().max().item() for k in initial if k in weights[0]) > 1e-4
    for key in weights[0]:
        assert torch.allclose(weights[0][key], weights[1][key], atol=1e-5), key

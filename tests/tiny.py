"""Tiny randomly initialised encoders of every covered family, toy data, and a few-step training
loop: the fixtures the unit tests share."""

from __future__ import annotations

import torch
import transformers
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

SIZES = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "vocab_size": 99,
    "max_position_embeddings": 64,
}

CONFIGS = {
    "bert": lambda: transformers.BertConfig(**SIZES),
    "albert": lambda: transformers.AlbertConfig(**SIZES, embedding_size=16),
    "roberta": lambda: transformers.RobertaConfig(**SIZES),
    "distilbert": lambda: transformers.DistilBertConfig(
        vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64
    ),
    "electra": lambda: transformers.ElectraConfig(**SIZES, embedding_size=16),
    "deberta-v2": lambda: transformers.DebertaV2Config(
        **SIZES, relative_attention=True, position_buckets=8, pos_att_type=["p2c", "c2p"]
    ),
    "mpnet": lambda: transformers.MPNetConfig(**SIZES),
    "xlm-roberta": lambda: transformers.XLMRobertaConfig(**SIZES),
}


def batch(size: int = 4, length: int = 10) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 99, (size, length), generator=g)
    mask = torch.ones(size, length, dtype=torch.long)
    mask[1, 7:] = 0
    mask[3, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 0])}


def tiny_bert(dropout: float = 0.1) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        vocab_size=99,
        num_labels=2,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertForSequenceClassification(config)


def toy_data(size: int = 16, length: int = 10) -> Dataset:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 99, (size, length), generator=g).tolist()
    mask = [[1] * length if i % 3 else [1] * (length - 3) + [0] * 3 for i in range(size)]
    return Dataset.from_dict(
        {"input_ids": ids, "attention_mask": mask, "labels": [i % 2 for i in range(size)]}
    )


def train(tmp_path, trainer_class, model, batch_size=4, accumulation=1, optim=None, reentrant=None, **kwargs):
    """Train 4 steps; ``reentrant`` True or False: with activation checkpointing of that kind."""
    extra = {} if optim is None else {"optim": optim}
    if reentrant is not None:
        extra.update(
            activation_checkpointing=True, activation_checkpointing_kwargs={"use_reentrant": reentrant}
        )
    args = TrainingArguments(
        **extra,
        output_dir=str(tmp_path),
        report_to="none",
        max_steps=4,
        seed=0,
        save_strategy="no",
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        logging_steps=2,
        disable_tqdm=True,
        learning_rate=1e-3,
    )
    trainer = trainer_class(model=model, args=args, train_dataset=toy_data(), **kwargs)
    trainer.train()
    return trainer, torch.cat([p.detach().flatten() for p in model.parameters()])

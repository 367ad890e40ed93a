"""One pass of a model over a tokenised data set in eval mode, shared by every task's evaluation:
its logits batch by batch, and in the same forward calls the attention measures that ``eval``
reports (``analysis.diagnostics.EvalMeasures``); and those measures of a bi-encoder's texts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ..analysis.diagnostics import EvalMeasures
from ..capture.routes import use_eager_attention
from ..guiding.config import GuideConfig

logger = logging.getLogger("attnguide")


def bi_encoder_measures(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int,
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """The attention measures of a sentence-transformers model's transformer over ``texts``, each on
    its own as a bi-encoder reads them; the model is left in eval mode."""
    from ..models import underlying_transformer

    encoded = Dataset.from_dict(dict(tokenizer(texts, truncation=True, max_length=max_length)))
    measures: dict[str, float] = {}
    for _ in eval_pass(underlying_transformer(model), tokenizer, encoded, measures, guide_config, batch_size):
        pass
    model.train(False)
    return measures


@torch.no_grad()
def eval_pass(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    measures: dict[str, float],
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
    collator: Callable | None = None,
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Yield ``(logits, batch)`` for each batch in dataset order (``batch`` holds its ``labels``
    where the data set has them); when the pass is over, ``measures`` holds the attention measures.

    The model runs in eval mode with the eager kernel, which returns the attention maps; afterwards it
    has its kernel and mode back, so that training can go on after an evaluation between epochs (the
    efficient capture's kernel records the guided layers' profiles; the eager one would not).
    """
    kernel, was_training = model.config._attn_implementation, model.training
    model.eval()
    use_eager_attention(model)
    try:
        device = next(model.parameters()).device
        counter = EvalMeasures(model, tokenizer, guide_config)
        loader = DataLoader(
            dataset, batch_size=batch_size, collate_fn=collator or DataCollatorWithPadding(tokenizer)
        )
        quiet = not logger.isEnabledFor(logging.INFO)
        for batch in tqdm(loader, desc="evaluating", leave=False, disable=quiet):
            batch = {k: v.to(device) for k, v in batch.items()}
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            outputs = model(**inputs, output_attentions=True)
            counter.add(outputs.attentions, inputs)
            logits = getattr(outputs, "logits", None)  # an encoder without a head has none
            yield (logits.float() if logits is not None else None), batch
        measures.update(counter.result())
    finally:
        if model.config._attn_implementation != kernel:
            model.set_attn_implementation(kernel)
        model.train(was_training)

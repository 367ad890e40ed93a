"""One pass over a data set in eval mode: predictions, task metrics and attention diagnostics."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from .capture import model_shape, use_eager_attention
from .config import GUIDES, GuideConfig
from .diagnostics import attention_share, head_similarity, special_token_mask
from .guide import MapInputs, guide_losses
from .metrics import classification_metrics
from .patterns import PatternTokens
from .profiles import attention_profiles


@dataclass
class Evaluation:
    """Per-example predicted label ids and class probabilities, and the metrics over the data set."""

    predictions: list[int]
    probabilities: list[list[float]]
    metrics: dict[str, float]


@torch.no_grad()
def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
) -> Evaluation:
    """Predict every example; with labels, ``accuracy`` and ``macro_f1``.

    Also measured, in eval mode over the whole data set: each guiding loss of ``GUIDES`` on the
    config's guided layers and scope (``mdg_loss``, ``pdg_loss``, ``pattern_loss``,
    ``disagreement_loss``), and over all heads of all layers
    the mean pairwise cosine similarity of head profiles (``head_similarity``) and the share of
    attention received by special tokens such as [CLS] and [SEP] (``special_token_share``).
    """
    config = guide_config if guide_config is not None else GuideConfig()
    model.eval()
    use_eager_attention(model)
    device = next(model.parameters()).device
    num_layers, heads = model_shape(model)
    layers = config.layer_indices(num_layers)
    pattern_tokens = PatternTokens.from_tokenizer(tokenizer)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=DataCollatorWithPadding(tokenizer))
    predictions: list[int] = []
    probabilities: list[list[float]] = []
    labels: list[int] = []
    sums: dict[str, float] = {}
    for batch in tqdm(loader, desc="evaluating", leave=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        if "labels" in batch:
            labels += batch.pop("labels").tolist()
        outputs = model(**batch, output_attentions=True)
        probabilities += torch.softmax(outputs.logits.float(), -1).tolist()
        predictions += outputs.logits.argmax(-1).tolist()
        mask = batch["attention_mask"]
        all_heads = attention_profiles(outputs.attentions, mask)
        guided = attention_profiles(outputs.attentions, mask, layers, config.profile)
        maps = MapInputs([outputs.attentions[i] for i in layers], batch["input_ids"], pattern_tokens)
        losses = guide_losses(guided, mask, config, heads, GUIDES, maps=maps)
        values = {name: loss.item() for name, loss in losses.items()}
        values["head_similarity"] = head_similarity(all_heads, mask).mean().item()
        special = special_token_mask(batch["input_ids"], tokenizer) & (mask > 0)
        values["special_token_share"] = attention_share(all_heads, special).mean().item()
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value * len(mask)
    metrics = classification_metrics(labels, predictions) if labels else {}
    metrics.update({(f"{k}_loss" if k in GUIDES else k): v / len(predictions) for k, v in sums.items()})
    return Evaluation(predictions, probabilities, metrics)

"""One pass over a data set in eval mode: predictions, task metrics and attention diagnostics."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ...analysis.diagnostics import EvalMeasures
from ...capture.routes import use_eager_attention
from ...guiding.config import GuideConfig
from .data import PairData
from .metrics import classification_metrics


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
    """Predict every example; with labels, ``accuracy`` and ``macro_f1``; and in the same pass the
    attention measures of ``analysis.diagnostics.EvalMeasures`` (each guide's loss on the config's
    guided layers and scope, ``head_similarity``, ``special_token_share``)."""
    model.eval()
    use_eager_attention(model)
    device = next(model.parameters()).device
    measures = EvalMeasures(model, tokenizer, guide_config)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=DataCollatorWithPadding(tokenizer))
    predictions: list[int] = []
    probabilities: list[list[float]] = []
    labels: list[int] = []
    for batch in tqdm(loader, desc="evaluating", leave=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        if "labels" in batch:
            labels += batch.pop("labels").tolist()
        outputs = model(**batch, output_attentions=True)
        probabilities += torch.softmax(outputs.logits.float(), -1).tolist()
        predictions += outputs.logits.argmax(-1).tolist()
        measures.add(outputs.attentions, batch)
    metrics = classification_metrics(labels, predictions) if labels else {}
    metrics.update(measures.result())
    return Evaluation(predictions, probabilities, metrics)


def prediction_rows(data: PairData, evaluation: Evaluation, id2label: dict[int, str]) -> list[dict]:
    """One JSON-ready row per example: its texts, gold label, predicted label and class probabilities."""
    rows = []
    for i, (pred, probs) in enumerate(zip(evaluation.predictions, evaluation.probabilities, strict=True)):
        rows.append(
            {
                "index": i,
                "text_a": data.text_a[i],
                "text_b": data.text_b[i] if data.text_b is not None else None,
                "label": data.labels[i] if data.labels else None,
                "prediction": id2label[pred],
                "probabilities": {id2label[j]: round(p, 6) for j, p in enumerate(probs)},
            }
        )
    return rows

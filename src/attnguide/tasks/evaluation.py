"""One pass of a model over a tokenised data set in eval mode, shared by every task's evaluation:
its logits batch by batch, and in the same forward calls the attention measures that ``eval``
reports (``analysis.diagnostics.EvalMeasures``)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ..analysis.diagnostics import EvalMeasures
from ..capture.routes import use_eager_attention
from ..files import check_output_files, predictions_path, write_json
from ..guiding.config import GuideConfig
from ..rundir import check_writable_location, read_run

logger = logging.getLogger("attnguide")


@dataclass(frozen=True)
class EvalFiles:
    """What ``attnguide eval`` writes for ``--data``: the predictions (``--output``, default
    ``<data>.predictions<suffix>``), the metrics beside them, and any further outputs of the task."""

    predictions: Path
    metrics: Path

    @classmethod
    def checked(
        cls,
        args: argparse.Namespace,
        suffix: str = ".jsonl",
        more: Callable[[Path], dict[str, Path]] | None = None,
        inputs: dict[str, str | None] | None = None,
    ) -> EvalFiles:
        """The files, refused before any work where one is a directory or the same as another file or
        as an input; ``more`` names further outputs from the predictions' path."""
        predictions = predictions_path(args.output, args.data, suffix)
        files = cls(predictions, predictions.with_suffix(".metrics.json"))
        outputs = {"the predictions": predictions, "the metrics": files.metrics}
        outputs.update(more(predictions) if more else {})
        check_output_files(outputs, {"--data": args.data, **(inputs or {})})
        for what, path in outputs.items():
            check_writable_location(path, what)
        return files

    def write_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Write the metrics (the predictions written) and say where the predictions are."""
        write_json(self.metrics, metrics)
        logger.info("predictions written to %s", self.predictions)
        return metrics


def trained_options(model: str) -> dict:
    """The options a model directory of ``attnguide train`` was trained with (empty for other models)."""
    return (read_run(model) or {}).get("options", {})


def trained_guide(model: str) -> GuideConfig:
    """The guide settings a model was trained with: the guiding losses ``eval`` reports are those."""
    return GuideConfig.from_dict(trained_options(model).get("guide", {}))


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

    The model runs in eval mode with the eager kernel, which returns the attention maps.
    """
    model.eval()
    use_eager_attention(model)
    device = next(model.parameters()).device
    counter = EvalMeasures(model, tokenizer, guide_config)
    loader = DataLoader(
        dataset, batch_size=batch_size, collate_fn=collator or DataCollatorWithPadding(tokenizer)
    )
    for batch in tqdm(loader, desc="evaluating", leave=False, disable=not logger.isEnabledFor(logging.INFO)):
        batch = {k: v.to(device) for k, v in batch.items()}
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        outputs = model(**inputs, output_attentions=True)
        counter.add(outputs.attentions, inputs)
        logits = getattr(outputs, "logits", None)  # an encoder without a head has none
        yield (logits.float() if logits is not None else None), batch
    measures.update(counter.result())

"""A regression training run: the ``TaskRun`` that ``run_training`` drives."""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ...files import write_jsonl
from ...models import load_model
from ...rundir import file_sha256
from ...training.pipeline import TrainSetup, final_train_losses
from ..pairs.encoding import encode_pairs
from .data import ScoredPairs, check_scores_vary, load_hf_scored, read_scored
from .evaluation import evaluate_scores, prediction_rows
from .options import RegressionOptions, outputs_logits
from .similarity import zero_shot_similarity

logger = logging.getLogger("attnguide")


def bce_on_scores(outputs, labels, num_items_in_batch=None):
    """Binary cross-entropy of the one output's sigmoid against scores scaled to 0-1 (the Trainer's
    ``compute_loss_func``)."""
    logits = outputs.logits[:, 0]
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class RegressionRun:
    """Scores: a one-output head trained with mean squared error (transformers' regression problem
    type), on scores scaled to 0-1 where ``--label-range`` gives their bounds; or, with
    ``--regression-loss bce``, with binary cross-entropy of its sigmoid against those scaled scores."""

    name = "regression"
    adapter_task_type = "SEQ_CLS"

    def __init__(self, options: RegressionOptions) -> None:
        self.options = options
        self.range_from_train = False
        self.model_name = ""

    def _read(
        self, path: str | None, split: str | None, label_range: tuple[float, float] | None
    ) -> ScoredPairs | None:
        """Scored pairs from a file or a split of ``--dataset``; scores outside ``label_range`` refused."""
        options = self.options
        if path is not None:
            return read_scored(path, options.format, options.columns, label_range)
        if options.dataset is not None and split is not None:
            return load_hf_scored(options.dataset, split, options.columns, label_range)
        return None

    def read(self) -> list[str]:
        options = self.options
        given = options.label_range  # a range taken from the training scores scales, refuses nothing
        self.train_data = self._read(options.train, options.train_split, given)
        if outputs_logits(options.regression_loss) and given is None:
            check_scores_vary(self.train_data)
            options.label_range = (min(self.train_data.scores), max(self.train_data.scores))
            self.range_from_train = True
            logger.info(
                "scores scaled to 0-1 by the training data's range %g to %g (--label-range sets it)",
                *options.label_range,
            )
        self.dev_data = self._read(options.dev, options.dev_split, given)
        if self.dev_data is not None:
            check_scores_vary(self.dev_data)
        scores = self.train_data.scores
        logger.info(
            "training data: %s, %d pairs, layout %s, scores from %g to %g",
            self.train_data.pairs.source,
            len(scores),
            self.train_data.pairs.layout,
            min(scores),
            max(scores),
        )
        return ["score"]

    def load_model(self, name: str, labels: list[str]) -> PreTrainedModel:
        self.model_name = name
        return load_model(name, labels, problem_type="regression")

    @cached_property
    def _zero_shot(self) -> dict[str, float]:
        """The starting model as a bi-encoder, untrained (sentence-transformers models only)."""
        o = self.options
        return zero_shot_similarity(self.model_name, self.dev_data, o.max_length, o.eval_batch_size)

    def _targets(self, data: ScoredPairs) -> list[float]:
        low_high = self.options.label_range
        if low_high is None:
            return data.scores
        low, high = low_high
        return [(score - low) / (high - low) for score in data.scores]

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        options = self.options
        train_set = encode_pairs(self.train_data.pairs, tokenizer, options.max_length)
        train_set = train_set.add_column("labels", self._targets(self.train_data))
        dev_set = None
        if self.dev_data is not None:
            dev_set = encode_pairs(self.dev_data.pairs, tokenizer, options.max_length)
            dev_set = dev_set.add_column("labels", self._targets(self.dev_data))
        return TrainSetup(
            dataset=train_set,
            collator=DataCollatorWithPadding(tokenizer),
            batch_size=options.batch_size,
            eval_dataset=dev_set,
            compute_loss=bce_on_scores if outputs_logits(options.regression_loss) else None,
        )

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        log_history: list[dict],
        run_dir: Path,
    ) -> dict[str, float]:
        if self.dev_data is None:
            return final_train_losses(log_history)
        options = self.options
        evaluation = evaluate_scores(
            model,
            tokenizer,
            self.dev_data,
            options.max_length,
            options.label_range,
            options.guide,
            options.eval_batch_size,
            sigmoid=outputs_logits(options.regression_loss),
        )
        write_jsonl(run_dir / "dev_predictions.jsonl", prediction_rows(self.dev_data, evaluation))
        metrics = {**evaluation.metrics, **self._zero_shot}
        if "zero_shot_pearson" in metrics:
            logger.info(
                "dev Pearson %.4f fine-tuned, %.4f the starting model untrained (cosine of its embeddings)",
                metrics["pearson"], metrics["zero_shot_pearson"],
            )  # fmt: skip
        return metrics

    def record(self) -> dict:
        return {
            "label_range_from": "training data"
            if self.range_from_train
            else ("options" if self.options.label_range else None),
            "data": {
                name: {
                    "source": data.pairs.source,
                    "layout": data.pairs.layout,
                    "examples": len(data),
                    "dropped": data.pairs.dropped,
                    "sha256": file_sha256(data.pairs.source) if Path(data.pairs.source).is_file() else None,
                }
                for name, data in (("train", self.train_data), ("dev", self.dev_data))
                if data is not None
            },
        }

    def versions(self) -> dict[str, str]:
        return {}

"""A regression training run (the ``TrainingRun`` that ``run_training`` drives) and evaluating a
regression model: a score per pair, correlations (SciPy's; the squared error scikit-learn's), and
the attention measures."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ...files import write_jsonl
from ...guiding.config import GuideConfig
from ...models import load_model
from ...training.training_run import TrainingRun, TrainSetup, source_sha256
from ..eval_pass import eval_pass
from ..pairs.cosine_similarity import zero_shot_similarity
from ..pairs.encoding import encode_pairs
from ..pairs.scored_pairs import ScoredPairs, check_scores_vary, load_hf_scored, read_scored

if TYPE_CHECKING:
    from .task import RegressionOptions

logger = logging.getLogger("attnguide")


def outputs_logits(regression_loss: str | None) -> bool:
    """Whether a model trained with ``regression_loss`` outputs a logit whose sigmoid is the scaled
    score (``bce``), rather than the score itself (``mse``)."""
    return regression_loss == "bce"


def regression_metrics(gold: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    """``pearson``, ``spearman`` and ``mse`` of the predictions against the gold scores."""
    from scipy.stats import ConstantInputWarning, pearsonr, spearmanr
    from sklearn.metrics import mean_squared_error

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConstantInputWarning)
        metrics = {
            "pearson": float(pearsonr(gold, predicted).statistic),
            "spearman": float(spearmanr(gold, predicted).statistic),
            "mse": float(mean_squared_error(gold, predicted)),
        }
    if any(issubclass(w.category, ConstantInputWarning) for w in caught):
        logger.warning("every prediction is the same score: the correlations are undefined (NaN)")
    return metrics


@dataclass
class ScoreEvaluation:
    """The predicted score of every pair (on the data's own scale) and the metrics."""

    predictions: list[float]
    metrics: dict[str, float]


def unscale(value: float, label_range: tuple[float, float] | None) -> float:
    """A prediction on the data's scale from the model's 0-1 output (as is without a range)."""
    return value if label_range is None else label_range[0] + value * (label_range[1] - label_range[0])


def evaluate_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: ScoredPairs,
    max_length: int,
    label_range: tuple[float, float] | None = None,
    guide_config: GuideConfig | None = None,
    batch_size: int = 64,
    sigmoid: bool = False,
) -> ScoreEvaluation:
    """Score every pair and measure the scores against the gold ones (``regression_metrics``), with
    the attention measures of the same pass. ``sigmoid``: the model was trained with
    ``--regression-loss bce``, so its output is the logit of the scaled score."""
    dataset = encode_pairs(data.pairs, tokenizer, max_length)
    predictions: list[float] = []
    measures: dict[str, float] = {}
    for logits, _ in eval_pass(model, tokenizer, dataset, measures, guide_config, batch_size):
        outputs = logits[:, 0].sigmoid() if sigmoid else logits[:, 0]
        predictions += [unscale(v, label_range) for v in outputs.tolist()]
    metrics = regression_metrics(data.scores, predictions)
    metrics.update(measures)
    return ScoreEvaluation(predictions, metrics)


def prediction_rows(data: ScoredPairs, evaluation: ScoreEvaluation) -> list[dict]:
    """One JSON-ready row per pair: its texts, gold score and predicted score."""
    pairs = data.pairs
    return [
        {
            "index": i,
            "text_a": pairs.text_a[i],
            "text_b": pairs.text_b[i] if pairs.text_b is not None else None,
            "label": data.scores[i],
            "prediction": round(prediction, 6),
        }
        for i, prediction in enumerate(evaluation.predictions)
    ]


def bce_on_scores(outputs, labels, num_items_in_batch=None):
    """Binary cross-entropy of the one output's sigmoid against scores scaled to 0-1 (the Trainer's
    ``compute_loss_func``)."""
    logits = outputs.logits[:, 0]
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class RegressionRun(TrainingRun):
    """Scores: a one-output head trained with mean squared error (transformers' regression problem
    type), on scores scaled to 0-1 where ``--label-range`` gives their bounds; or, with
    ``--regression-loss bce``, with binary cross-entropy of its sigmoid against those scaled scores."""

    name = "regression"
    adapter_task_type = "SEQ_CLS"

    options: RegressionOptions

    def __init__(self, options: RegressionOptions) -> None:
        super().__init__(options)
        self.range_from_train = False
        self.model_name = ""

    def read_file(self, path: str, label_range: tuple[float, float] | None) -> ScoredPairs:
        """Scored pairs; scores outside ``label_range`` refused."""
        return read_scored(path, self.options.format, self.options.columns, label_range)

    def read_dataset(self, name: str, split: str, label_range: tuple[float, float] | None) -> ScoredPairs:
        return load_hf_scored(name, split, self.options.columns, label_range)

    def read(self) -> list[str]:
        options = self.options
        given = options.label_range  # a range taken from the training scores scales, refuses nothing
        self.train_data = self.read_split(options.train, options.train_split, label_range=given)
        if outputs_logits(options.regression_loss) and given is None:
            check_scores_vary(self.train_data)
            options.label_range = (min(self.train_data.scores), max(self.train_data.scores))
            self.range_from_train = True
            logger.info(
                "scores scaled to 0-1 by the training data's range %g to %g (--label-range sets it)",
                *options.label_range,
            )
        self.dev_data = self.read_split(options.dev, options.dev_split, label_range=given)
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

    def evaluate_dev(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, run_dir: Path
    ) -> dict[str, float]:
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
        label_range_from = "options" if self.options.label_range else None
        return {
            "label_range_from": "training data" if self.range_from_train else label_range_from,
            **super().record(),
        }

    def data_record(self, split: str, data: ScoredPairs) -> dict:
        return {
            "source": data.pairs.source,
            "layout": data.pairs.layout,
            "examples": len(data),
            "dropped": data.pairs.dropped,
            "sha256": source_sha256(data.pairs.source),
        }

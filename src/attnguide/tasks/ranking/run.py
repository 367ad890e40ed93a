"""A ranking training run: the ``TaskRun`` of a cross-encoder reranker that ``run_training`` drives.

``run_training(options, RankingRun(options))`` fine-tunes the reranker, guided or not; beside the
files of a classification run, its directory holds ``dev.run`` (TREC run of the dev ranking) and
``dev_predictions.jsonl`` (every dev candidate with its rank and score).
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

import ir_measures
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ...errors import AttnguideError, DataError
from ...files import write_jsonl, write_text
from ...models import load_model
from ...rundir import file_sha256
from ...training.pipeline import TrainSetup, final_train_losses
from . import losses
from .bi_encoder import report_against_zero_shot, zero_shot_metrics
from .data import RankingData, read_ranking
from .encoding import encode_candidates
from .evaluation import RankingEvaluation, evaluate_ranking
from .grouping import ListwiseCollator, ListwiseGroups
from .options import RankingOptions
from .scoring import prediction_rows, trec_run_text

logger = logging.getLogger("attnguide")


def _read(options: RankingOptions, path: str | None, run: str | None) -> RankingData | None:
    if path is None:
        return None
    return read_ranking(path, options.ranking_format, options.queries, options.docs, run)


def _data_record(data: RankingData, truncated: int) -> dict:
    """What run.json says about one data set."""
    return {
        "source": data.source,
        "layout": data.layout,
        **data.summary(),
        "truncated_pairs": truncated,
        "sha256": {path: file_sha256(path) for path in data.files},
    }


class RankerRun:
    """What the cross- and the bi-encoder ranker share: the train and dev data, and the dev results
    beside the starting model's zero-shot figures, which are measured once per run (``tune``
    evaluates after every epoch)."""

    name = "ranking"

    def __init__(self, options: RankingOptions) -> None:
        self.options = options

    @cached_property
    def _zero_shot(self) -> dict[str, float]:
        options = self.options
        return zero_shot_metrics(
            self.model_name,
            self.dev_data,
            options.max_length,
            options.eval_batch_size,
            options.keep_unanswerable,
        )

    def _read_data(self) -> None:
        """Read the data and refuse, before any training, data no ranker can learn from or be
        measured on: training data without a relevant candidate, dev data without a query to
        evaluate."""
        options = self.options
        self.train_data = _read(options, options.train, options.train_run)
        self.dev_data = _read(options, options.dev, options.dev_run)
        if not any(self.train_data.relevance(c) > 0 for c in self.train_data.candidates):
            raise DataError(
                self.train_data.source, "no query has a relevant candidate to train on (every label is 0)"
            )
        dev = self.dev_data
        if dev is not None and not options.keep_unanswerable and len(dev.unanswerable) == len(dev.queries):
            raise DataError(
                dev.source,
                "no query has a relevant candidate, so none can be evaluated (--keep-unanswerable "
                "counts such queries as 0)",
            )

    def _dev_results(self, evaluation: RankingEvaluation, run_dir: Path) -> dict[str, float]:
        """The dev metrics and those of the starting model (``model_name``) used zero-shot where it is a
        bi-encoder (said in the log); writes the dev predictions and TREC run into ``run_dir``."""
        options, dev_data = self.options, self.dev_data
        write_jsonl(run_dir / "dev_predictions.jsonl", prediction_rows(dev_data, evaluation.run))
        write_text(run_dir / "dev.run", trec_run_text(evaluation.run, options.run_tag))
        metrics = {**evaluation.metrics, **self._zero_shot}
        report_against_zero_shot(metrics)
        return metrics


class RankingRun(RankerRun):
    """Reranking: (query, document) pairs scored by one output, trained pointwise or listwise.

    Listwise negatives are drawn per epoch (``ListwiseGroups``), so a resumed run of either kind
    matches an uninterrupted one.
    """

    adapter_task_type = "SEQ_CLS"

    def read(self) -> list[str]:
        self._read_data()
        train_data = self.train_data
        if all(train_data.relevance(c) > 0 for c in train_data.candidates):
            raise DataError(
                train_data.source,
                "every candidate is relevant, so a reranker has nothing to rank them above; give "
                "irrelevant candidates too (with the trec layout, a candidate run: --train-run)",
            )
        return ["relevance"]  # one output: the pair's score

    def load_model(self, name: str, labels: list[str]) -> PreTrainedModel:
        self.model_name = name  # the starting model, measured zero-shot where it is a bi-encoder
        return load_model(name, labels)

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        options, train_data = self.options, self.train_data
        listwise = options.ranking_loss == "listwise"
        self.train_pairs = encode_candidates(
            train_data, tokenizer, options.max_length, with_labels=not listwise
        )
        self.dev_pairs = (
            encode_candidates(self.dev_data, tokenizer, options.max_length)
            if self.dev_data is not None
            else None
        )
        setup = TrainSetup(
            dataset=self.train_pairs.dataset,
            collator=DataCollatorWithPadding(tokenizer),
            batch_size=options.batch_size,
            compute_loss=getattr(losses, f"{options.ranking_loss}_loss"),
            arguments={
                "remove_unused_columns": False,  # listwise items are groups, not model inputs
                "average_tokens_across_devices": False,  # the ranking losses are per-batch means
            },
        )
        if listwise:
            setup.dataset = ListwiseGroups(
                self.train_pairs.dataset, train_data, options.negatives, options.seed
            )
            if len(setup.dataset) == 0:
                raise AttnguideError(
                    f"{train_data.source}: no query has both relevant and irrelevant candidates"
                )
            setup.collator = ListwiseCollator(tokenizer)
            setup.batch_size = max(1, options.batch_size // (1 + options.negatives))
            logger.info(
                "listwise batches of %d groups (%d pairs)",
                setup.batch_size,
                setup.batch_size * (1 + options.negatives),
            )
        return setup

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        log_history: list[dict],
        run_dir: Path,
    ) -> dict[str, float]:
        options, dev_data = self.options, self.dev_data
        metrics: dict[str, float] = {}
        if dev_data is not None:
            evaluation = evaluate_ranking(
                model,
                tokenizer,
                dev_data,
                self.dev_pairs,
                options.guide,
                options.eval_batch_size,
                options.keep_unanswerable,
            )
            metrics.update(self._dev_results(evaluation, run_dir))
        metrics.update(final_train_losses(log_history))
        return metrics

    def record(self) -> dict:
        data = {"train": _data_record(self.train_data, self.train_pairs.truncated)}
        if self.dev_data is not None:
            data["dev"] = _data_record(self.dev_data, self.dev_pairs.truncated)
        return {"data": data}

    def versions(self) -> dict[str, str]:
        return {"ir-measures": ir_measures.__version__}

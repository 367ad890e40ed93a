"""``RankingRun``: what the cross- and the bi-encoder ranking runs share (``CrossEncoderRankingRun``,
``BiEncoderRankingRun``): the train and dev data, and the dev results beside the starting model's
zero-shot figures. Beside the files of a classification run, a ranking run's directory holds
``dev.run`` (TREC run of the dev ranking) and ``dev_predictions.jsonl`` (every dev candidate with its
rank and score).
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import PreTrainedTokenizerBase

from ...errors import DataError
from ...files import write_jsonl, write_text
from ...rundir import file_sha256
from ...training.training_run import TrainingRun
from .cosine_ranking import report_against_zero_shot, zero_shot_metrics
from .data import RankingData, read_ranking
from .trec_runs import RankingEvaluation, prediction_rows, trec_run_text

if TYPE_CHECKING:
    from .task import RankingOptions

logger = logging.getLogger("attnguide")


class RankingRun(TrainingRun):
    """What the cross- and the bi-encoder ranking runs share: the train and dev data, and the dev
    results beside the starting model's zero-shot figures, which are measured once per run (``tune``
    evaluates after every epoch). The dev metrics come with the last training losses."""

    name = "ranking"
    train_losses_with_dev = True
    options: RankingOptions

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

    def read_file(self, path: str, run: str | None) -> RankingData:
        """A ranking data file; ``run``: the candidates to rank (a TREC run, the trec layout)."""
        options = self.options
        return read_ranking(path, options.ranking_format, options.queries, options.docs, run)

    def _read_data(self) -> None:
        """Read the data and refuse, before any training, data no ranker can learn from or be
        measured on: training data without a relevant candidate, dev data without a query to
        evaluate."""
        options = self.options
        self.train_data = self.read_split(options.train, None, run=options.train_run)
        self.dev_data = self.read_split(options.dev, None, run=options.dev_run)
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

    def rank_dev(self, model: Any, tokenizer: PreTrainedTokenizerBase) -> RankingEvaluation:
        """The dev ranking and its metrics."""
        raise NotImplementedError

    def evaluate_dev(self, model: Any, tokenizer: PreTrainedTokenizerBase, run_dir: Path) -> dict[str, float]:
        """The dev metrics (``rank_dev``) and those of the starting model (``model_name``) used
        zero-shot where it is a bi-encoder (said in the log); writes the dev predictions and TREC run
        into ``run_dir``."""
        evaluation = self.rank_dev(model, tokenizer)
        options, dev_data = self.options, self.dev_data
        write_jsonl(run_dir / "dev_predictions.jsonl", prediction_rows(dev_data, evaluation.run))
        write_text(run_dir / "dev.run", trec_run_text(evaluation.run, options.run_tag))
        metrics = {**evaluation.metrics, **self._zero_shot}
        report_against_zero_shot(metrics)
        return metrics

    def truncated_pairs(self, split: str) -> int:
        """How many of a split's (query, document) pairs were truncated."""
        return 0

    def data_record(self, split: str, data: RankingData) -> dict:
        return {
            "source": data.source,
            "layout": data.layout,
            **data.summary(),
            "truncated_pairs": self.truncated_pairs(split),
            "sha256": {path: file_sha256(path) for path in data.files},
        }

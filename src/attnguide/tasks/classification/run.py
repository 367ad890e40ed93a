"""A classification training run: the ``TaskRun`` that ``training.pipeline.run_training`` drives."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ...files import write_jsonl
from ...models import load_model
from ...rundir import file_sha256
from ...training.pipeline import TrainSetup, final_train_losses
from ..pairs.data import PairData, label_list, load_hf_dataset, read_pairs
from ..pairs.encoding import encode_pairs
from .evaluation import evaluate, prediction_rows
from .options import ClassificationOptions

logger = logging.getLogger("attnguide")


class ClassificationRun:
    """Pair classification: labelled pairs in, accuracy and the attention diagnostics out."""

    name = "classification"
    adapter_task_type = "SEQ_CLS"

    def __init__(self, options: ClassificationOptions) -> None:
        self.options = options

    def _read(self, path: str | None, split: str | None) -> PairData | None:
        """A data file (``path``), else a split of ``--dataset``, else None."""
        options = self.options
        if path is not None:
            return read_pairs(path, options.format, options.columns)
        if options.dataset is not None and split is not None:
            return load_hf_dataset(options.dataset, split, options.columns)
        return None

    def read(self) -> list[str]:
        options = self.options
        self.train_data = self._read(options.train, options.train_split)
        self.dev_data = self._read(options.dev, options.dev_split)
        self.labels = label_list(self.train_data, self.dev_data)
        logger.info(
            "training data: %s, %d examples, layout %s, labels %s",
            self.train_data.source,
            len(self.train_data),
            self.train_data.layout,
            ", ".join(self.labels),
        )
        return self.labels

    def load_model(self, name: str, labels: list[str]) -> PreTrainedModel:
        return load_model(name, labels)

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        max_length = self.options.max_length
        train_set = encode_pairs(self.train_data, tokenizer, max_length, label2id)
        dev_data = self.dev_data
        self.dev_set = (
            encode_pairs(dev_data, tokenizer, max_length, label2id) if dev_data is not None else None
        )
        return TrainSetup(
            dataset=train_set,
            collator=DataCollatorWithPadding(tokenizer),
            batch_size=self.options.batch_size,
            eval_dataset=self.dev_set,
        )

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        log_history: list[dict],
        run_dir: Path,
    ) -> dict[str, float]:
        if self.dev_set is None:  # no dev data: the last logged training losses are all there is to report
            return final_train_losses(log_history)
        options = self.options
        evaluation = evaluate(model, tokenizer, self.dev_set, options.guide, options.eval_batch_size)
        write_jsonl(
            run_dir / "dev_predictions.jsonl",
            prediction_rows(self.dev_data, evaluation, model.config.id2label),
        )
        return evaluation.metrics

    def record(self) -> dict:
        return {
            "data": {
                name: {
                    "source": data.source,
                    "layout": data.layout,
                    "examples": len(data),
                    "dropped": data.dropped,
                    "sha256": file_sha256(data.source) if Path(data.source).is_file() else None,
                }
                for name, data in (("train", self.train_data), ("dev", self.dev_data))
                if data is not None
            },
        }

    def versions(self) -> dict[str, str]:
        return {}

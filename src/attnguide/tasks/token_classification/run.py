"""A token classification training run: the ``TaskRun`` that ``run_training`` drives."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import DataCollatorForTokenClassification, PreTrainedModel, PreTrainedTokenizerBase

from ...models import load_model
from ...rundir import file_sha256
from ...training.pipeline import TrainSetup, final_train_losses
from .data import TaggedSentences, load_hf_tagged, read_tagged, tag_list, write_predictions
from .encoding import EncodedWindows, encode_windows
from .evaluation import evaluate_tags
from .options import TokenClassificationOptions

logger = logging.getLogger("attnguide")


class TokenClassificationRun:
    """Tagging: a tag per word from the tag of its first sub-token; entity F1 on dev."""

    name = "token-classification"
    adapter_task_type = "TOKEN_CLS"

    def __init__(self, options: TokenClassificationOptions) -> None:
        self.options = options

    def _read(self, path: str | None, split: str | None) -> TaggedSentences | None:
        options = self.options
        if path is not None:
            return read_tagged(path, options.format, options.columns)
        if options.dataset is not None and split is not None:
            return load_hf_tagged(options.dataset, split, options.columns)
        return None

    def read(self) -> list[str]:
        options = self.options
        self.train_data = self._read(options.train, options.train_split)
        self.dev_data = self._read(options.dev, options.dev_split)
        self.labels = tag_list(self.train_data, self.dev_data)
        logger.info(
            "training data: %s, %d sentences, %d words, layout %s, tags %s",
            self.train_data.source,
            len(self.train_data),
            self.train_data.word_count,
            self.train_data.layout,
            ", ".join(self.labels),
        )
        return self.labels

    def load_model(self, name: str, labels: list[str]) -> PreTrainedModel:
        return load_model(name, labels, head="token")

    def _windows(self, data: TaggedSentences, tokenizer, label2id) -> EncodedWindows:
        options = self.options
        return encode_windows(data, tokenizer, options.max_length, label2id, options.stride)

    def encode(self, tokenizer: PreTrainedTokenizerBase, label2id: dict[str, int]) -> TrainSetup:
        self.train_windows = self._windows(self.train_data, tokenizer, label2id)
        self.dev_windows = self._windows(self.dev_data, tokenizer, label2id) if self.dev_data else None
        return TrainSetup(
            dataset=self.train_windows.dataset,
            collator=DataCollatorForTokenClassification(tokenizer),
            batch_size=self.options.batch_size,
            eval_dataset=self.dev_windows.dataset if self.dev_windows else None,
        )

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        log_history: list[dict],
        run_dir: Path,
    ) -> dict:
        if self.dev_data is None:
            return final_train_losses(log_history)
        options = self.options
        evaluation = evaluate_tags(
            model, tokenizer, self.dev_data, self.dev_windows, options.guide, options.eval_batch_size
        )
        suffix = Path(self.dev_data.source).suffix if self.dev_data.layout != "hf" else ".jsonl"
        write_predictions(
            self.dev_data, evaluation.predictions, run_dir / f"dev_predictions{suffix or '.txt'}"
        )
        return evaluation.metrics

    def record(self) -> dict:
        data = {}
        for name, tagged, windows in (
            ("train", self.train_data, self.train_windows),
            ("dev", self.dev_data, self.dev_windows),
        ):
            if tagged is not None:
                data[name] = {
                    "source": tagged.source,
                    "layout": tagged.layout,
                    "sentences": len(tagged),
                    "words": tagged.word_count,
                    "sentences_split": windows.split_sentences,
                    "words_without_subwords": windows.words_without_subwords,
                    "sha256": file_sha256(tagged.source) if Path(tagged.source).is_file() else None,
                }
        return {"data": data}

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"seqeval": version("seqeval")}

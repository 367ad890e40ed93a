"""Numbers that describe how attention is spread, from head profiles [batch, heads, positions].

This module is the one place where the diagnostics are defined: ``attnguide eval`` reports some of
them per data set (``EvalMeasures``), ``attnguide analyze`` all of them per head, per layer and per
model (``diagnose``). A profile is the received profile of docs/METHOD.md: the attention each key
position receives, averaged over the valid queries, so each head's row sums to 1 over the valid
positions and is 0 on padding.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from typing import Any

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from ..capture.routes import model_shape, use_eager_attention
from ..guiding.attention_losses import normalize_rows
from ..guiding.batch_losses import guide_losses, tokenizer_inputs
from ..guiding.builtin_guides import MapInputs
from ..guiding.config import GuideConfig
from ..guiding.profiles import attention_profiles
from ..guiding.registry import GUIDES

# What each measure of a head's profile says, in the order reports show them (``descriptions``).
MEASURES: dict[str, str] = {
    "entropy": "entropy of a head's profile, in nats",
    "effective_positions": "exp(entropy): how many positions a head effectively attends to",
    "special_token_share": "share of attention received by special tokens ([CLS], [SEP], <s>, </s>, ...)",
    "punctuation_share": "share of attention received by punctuation tokens",
    "max_on_special": "share of heads whose most attended position is a special token",
}

HEAD_SIMILARITY = "mean pairwise cosine similarity of head profiles (1: all heads alike)"

_SUBWORD_MARKERS = ("##", "Ġ", "▁")


def descriptions() -> dict[str, str]:
    """What each diagnostic measures, in the order reports show them: head_similarity, every
    registered guide's loss (``<guide>_loss``, described by its row), then ``MEASURES``."""
    guides = {f"{name}_loss": guide.description or guide.title for name, guide in GUIDES.items()}
    return {"head_similarity": HEAD_SIMILARITY, **guides, **MEASURES}


def is_punctuation(token: str) -> bool:
    """Whether a vocabulary token is punctuation only (``.``, ``##?``, ``Ġ,``), subword marker aside."""
    for marker in _SUBWORD_MARKERS:
        if token.startswith(marker):
            token = token[len(marker) :]
            break
    return bool(token) and all(unicodedata.category(c).startswith("P") for c in token)


def special_token_mask(input_ids: torch.Tensor, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """True where a token is one of the tokenizer's special tokens ([CLS], [SEP], <s>, </s>, ...)."""
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), device=input_ids.device)
    return torch.isin(input_ids, special)


def punctuation_mask(input_ids: torch.Tensor, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """True where a token is punctuation (and not a special token)."""
    unique = input_ids.unique().tolist()
    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(unique)
    marked = [i for i, t in zip(unique, tokens, strict=True) if i not in special and is_punctuation(t or "")]
    return torch.isin(input_ids, torch.tensor(marked, dtype=input_ids.dtype, device=input_ids.device))


def similarity_matrix(profiles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of heads' profiles, per sequence: [batch, heads, heads]."""
    unit = normalize_rows(profiles.float() * mask[:, None, :].float())
    return unit @ unit.transpose(1, 2)


def _off_diagonal_mean(gram: torch.Tensor) -> torch.Tensor:
    """Per row, the mean of a [batch, heads, heads] matrix over the other heads: [batch, heads]."""
    heads = gram.shape[-1]
    return (gram.sum(-1) - torch.diagonal(gram, dim1=1, dim2=2)) / (heads - 1)


def head_similarity(profiles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over all pairs of distinct heads, per sequence: [batch]."""
    return _off_diagonal_mean(similarity_matrix(profiles, mask)).mean(-1)


def mdg_per_head(profiles: torch.Tensor, mask: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """Each head's term of MDG, ``-log softmax(S_b[i])[i]``: [batch, heads]; its mean is the MDG loss."""
    logits = similarity_matrix(profiles, mask) / temperature
    return -torch.diagonal(torch.log_softmax(logits, dim=-1), dim1=1, dim2=2)


def head_shares(profiles: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Share of each head's attention that goes to the marked positions: [batch, heads]."""
    return (profiles.float() * positions[:, None, :].float()).sum(-1)


def attention_share(profiles: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Share of each sequence's attention that goes to the marked positions, averaged over heads: [batch]."""
    return head_shares(profiles, positions).mean(-1)


def profile_entropy(profiles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each head's profile: [batch, heads].

    0 when one position receives all the attention, log n when n positions receive the same; its
    exponential is the effective number of attended positions.
    """
    a = profiles.float() * mask[:, None, :].float()
    return -torch.special.xlogy(a, a).sum(-1)


def max_on(profiles: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Whether each head's most attended valid position is a marked one: [batch, heads] in [0, 1].

    Ties are split evenly (the expected value of breaking them at random): a head with uniform
    attention over n positions, k of them marked, scores k/n.
    """
    a = profiles.float().masked_fill(mask[:, None, :] == 0, float("-inf"))
    top = a >= a.amax(-1, keepdim=True) - 1e-6
    return (top & positions[:, None, :].bool()).sum(-1) / top.sum(-1)


@dataclass
class Diagnostics:
    """Attention diagnostics of one model over a data set, averaged over its sequences.

    ``per_head[name]`` has one value per head, head ``i`` of layer ``l`` at ``l * heads + i``
    (the guides' losses other than MDG have none: they are properties of a set of heads);
    ``per_layer[name]`` one per layer; ``summary[name]`` one for the model. ``head_similarity`` and
    every registered guide's loss (``mdg_loss``, ``pdg_loss``, ``pattern_loss``, ...) are
    measured per layer on that layer's heads alone (the per-layer scope), for the model on all
    heads of all layers jointly; the others are means over heads. Per head, ``head_similarity`` and
    ``mdg_loss`` are the head's mean similarity to every other head and its term of the joint MDG
    loss, so their means over heads are the summary.
    ``similarity`` is the mean head-by-head cosine similarity matrix; ``positions`` the mean number
    of valid tokens per sequence.
    """

    layers: int
    heads: int
    examples: int
    positions: float
    per_head: dict[str, list[float]]
    per_layer: dict[str, list[float]]
    summary: dict[str, float]
    similarity: list[list[float]]


def _batch_sums(
    profiles: torch.Tensor,
    mask: torch.Tensor,
    special: torch.Tensor,
    punctuation: torch.Tensor,
    heads_per_layer: int,
    temperature: float = 2.0,
    maps: MapInputs | None = None,
    tokens: dict[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Every diagnostic of a batch, summed over its sequences (``head:``, ``layer:`` and ``model:`` keys).

    ``maps`` holds every layer's maps and the batch's token ids, ``tokens`` what the guides make of
    the tokenizer (``tokenizer_inputs``); without ``maps`` the guides that need maps are left out.
    """
    batch = profiles.shape[0]
    gram = similarity_matrix(profiles, mask)
    entropy = profile_entropy(profiles, mask)
    per_head = {
        "head_similarity": _off_diagonal_mean(gram),
        "mdg_loss": mdg_per_head(profiles, mask, temperature),
        "entropy": entropy,
        "effective_positions": entropy.exp(),
        "special_token_share": head_shares(profiles, special),
        "punctuation_share": head_shares(profiles, punctuation),
        "max_on_special": max_on(profiles, mask, special),
    }
    sums = {f"head:{k}": v.sum(0) for k, v in per_head.items()}
    layers = [profiles[:, i : i + heads_per_layer] for i in range(0, profiles.shape[1], heads_per_layer)]
    sums["layer:head_similarity"] = torch.stack([head_similarity(p, mask).sum() for p in layers])
    names = [name for name, guide in GUIDES.items() if maps is not None or not guide.needs_maps]
    config = GuideConfig(guides=names, temperature=temperature)
    layer_maps = [None] * len(layers) if maps is None else [replace(maps, maps=[m]) for m in maps.maps]
    per_layer = [
        guide_losses(p, mask, config, heads_per_layer, names, m, tokens)
        for p, m in zip(layers, layer_maps, strict=True)
    ]
    for name in names:
        sums[f"layer:{name}_loss"] = torch.stack([losses[name] for losses in per_layer]) * batch
    jointly = [name for name in names if f"{name}_loss" not in per_head]  # MDG: the mean of its heads' terms
    for name, loss in guide_losses(profiles, mask, config, heads_per_layer, jointly, maps, tokens).items():
        sums[f"model:{name}_loss"] = loss * batch
    sums["model:similarity"] = gram.sum(0)
    sums["model:positions"] = mask.float().sum()
    return sums


def _finish(sums: dict[str, torch.Tensor], examples: int, layers: int, heads: int) -> Diagnostics:
    """Means over sequences, then over the heads of each layer and of the model."""
    mean = {k: v.double().cpu() / examples for k, v in sums.items()}
    per_head = {k.split(":")[1]: v for k, v in mean.items() if k.startswith("head:")}
    per_layer = {k: v.reshape(layers, heads).mean(-1) for k, v in per_head.items()}
    per_layer.update({k.split(":")[1]: v for k, v in mean.items() if k.startswith("layer:")})
    described = descriptions()
    summary = {name: float(per_head[name].mean()) for name in described if name in per_head}
    summary.update(
        {k.split(":")[1]: float(v) for k, v in mean.items() if k.startswith("model:") and k.endswith("_loss")}
    )
    return Diagnostics(
        layers=layers,
        heads=heads,
        examples=examples,
        positions=float(mean["model:positions"]),
        per_head={k: v.tolist() for k, v in per_head.items()},
        per_layer={name: per_layer[name].tolist() for name in described},
        summary={name: summary[name] for name in described},
        similarity=mean["model:similarity"].tolist(),
    )


@torch.no_grad()
def diagnose(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    batch_size: int = 32,
    temperature: float = 2.0,
    description: str = "diagnosing",
    progress: bool = True,
) -> Diagnostics:
    """Run ``model`` in eval mode over ``dataset`` (tokenised, e.g. by ``encoding.encode_pairs``).

    Every head of every layer is measured; with ``progress``, a progress bar labelled
    ``description`` follows the pass.
    """
    if len(dataset) == 0:
        raise ValueError("no examples to diagnose")
    model.eval()
    use_eager_attention(model)
    device = next(model.parameters()).device
    layers, heads = model_shape(model)
    columns = [c for c in dataset.column_names if c in ("input_ids", "attention_mask", "token_type_ids")]
    loader = DataLoader(
        dataset.select_columns(columns), batch_size=batch_size, collate_fn=DataCollatorWithPadding(tokenizer)
    )
    tokens = tokenizer_inputs(GUIDES, tokenizer)
    sums: dict[str, torch.Tensor] = {}
    for batch in tqdm(loader, desc=description, leave=False, disable=not progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        mask = batch["attention_mask"]
        outputs = model(**batch, output_attentions=True)
        ids = batch["input_ids"]
        part = _batch_sums(
            attention_profiles(outputs.attentions, mask),
            mask,
            special_token_mask(ids, tokenizer) & (mask > 0),
            punctuation_mask(ids, tokenizer) & (mask > 0),
            heads,
            temperature,
            MapInputs(outputs.attentions, ids),
            tokens,
        )
        sums = {k: sums[k] + v if k in sums else v for k, v in part.items()}
    return _finish(sums, len(dataset), layers, heads)


class EvalMeasures:
    """The attention numbers ``eval`` reports for a data set, summed batch by batch in eval mode:
    every registered guide's loss on the config's guided layers and scope (``mdg_loss``,
    ``pdg_loss``, ``pattern_loss``, ``disagreement_loss``), and over all heads of all layers the mean
    pairwise cosine similarity of head profiles (``head_similarity``) and the share of attention
    received by special tokens such as [CLS] and [SEP] (``special_token_share``)."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: GuideConfig | None
    ) -> None:
        self.config = config if config is not None else GuideConfig()
        self.tokenizer = tokenizer
        num_layers, self.heads = model_shape(model)
        self.layers = self.config.layer_indices(num_layers)
        self.tokens = tokenizer_inputs(GUIDES, tokenizer)
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, attentions: tuple[torch.Tensor, ...], batch: dict[str, torch.Tensor]) -> None:
        """One batch's eager attention maps (``output_attentions=True``) and its inputs."""
        mask, ids = batch["attention_mask"], batch["input_ids"]
        all_heads = attention_profiles(attentions, mask)
        guided = attention_profiles(attentions, mask, self.layers, self.config.profile)
        maps = MapInputs([attentions[i] for i in self.layers], ids)
        losses = guide_losses(guided, mask, self.config, self.heads, GUIDES, maps, self.tokens)
        values = {f"{name}_loss": loss.item() for name, loss in losses.items()}
        values["head_similarity"] = head_similarity(all_heads, mask).mean().item()
        special = special_token_mask(ids, self.tokenizer) & (mask > 0)
        values["special_token_share"] = attention_share(all_heads, special).mean().item()
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value * len(mask)
        self.count += len(mask)

    def result(self) -> dict[str, float]:
        """Means over the sequences added."""
        return {name: value / self.count for name, value in self.sums.items()}

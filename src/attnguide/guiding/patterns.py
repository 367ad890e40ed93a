"""Target attention patterns for pattern guidance (Deshpande and Narasimhan, Findings of EMNLP 2020).

Five patterns: attend to the first token, the previous token, the next token, the delimiter tokens
(``[SEP]``, ``</s>``) or the periods of the sequence. Which heads follow which is the spread
(``pattern_spread``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class PatternTokens:
    """Token ids of a tokenizer's delimiters (``[SEP]``, ``</s>``) and periods."""

    delimiters: list[int]
    periods: list[int]

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> PatternTokens:
        """The separator and end-of-sequence tokens, and every token that is a period on its own."""
        delimiters = {tokenizer.sep_token_id, tokenizer.eos_token_id} - {None}
        periods = {
            token
            for text in (".", " .")
            for token in tokenizer(text, add_special_tokens=False)["input_ids"]
            if tokenizer.decode([token]).strip() == "."
        }
        return cls(sorted(delimiters), sorted(periods))


def _uniform_over(marked: torch.Tensor) -> torch.Tensor:
    """[batch, n] 0/1 marks -> [batch, n] distribution uniform over the marked positions (0 if none)."""
    marked = marked.float()
    return marked / marked.sum(-1, keepdim=True).clamp(min=1)


def pattern_targets(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    delimiter_ids: list[int],
    period_ids: list[int],
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each pattern's target maps [batch, n, n] and the query rows [batch, n] where it applies.

    Rows are the valid queries; for ``previous`` the first token and for ``next`` the last valid
    token have no neighbour and attend to themselves; ``delimiter`` and ``period`` spread the row
    uniformly over those tokens and do not apply to sequences that have none.
    """
    valid = attention_mask.bool()
    batch, n = input_ids.shape
    device = input_ids.device
    eye = torch.eye(n, device=device).expand(batch, n, n)
    lengths = valid.sum(-1)
    positions = torch.arange(n, device=device)
    first = torch.zeros(batch, n, n, device=device)
    first[:, :, 0] = 1.0
    previous = torch.diag_embed(torch.ones(n - 1, device=device), offset=-1).expand(batch, n, n).clone()
    previous[:, 0, 0] = 1.0
    following = torch.diag_embed(torch.ones(n - 1, device=device), offset=1).expand(batch, n, n).clone()
    last = (positions[None, :] == (lengths - 1)[:, None]).float()  # [batch, n]: the last valid query
    following = following * (1 - last[:, :, None]) + eye * last[:, :, None]
    targets = {"first": (first, valid), "previous": (previous, valid), "next": (following, valid)}
    for name, ids in (("delimiter", delimiter_ids), ("period", period_ids)):
        marked = torch.isin(input_ids, torch.tensor(ids, device=device, dtype=input_ids.dtype)) & valid
        spread = _uniform_over(marked)[:, None, :].expand(batch, n, n)
        targets[name] = (spread, valid & marked.any(-1, keepdim=True))
    return targets

"""Guiding losses on attention profiles and maps, as ``docs/METHOD.md`` defines them.

Every loss takes ``profiles`` of shape [batch, heads, positions] (one row per guided head: the
attention each key position receives) and an optional ``mask`` [batch, positions] with 1 for real
tokens. Losses are computed in float32 whatever the input dtype, and padding positions change
nothing: profiles are zeroed there before anything else.
"""

from __future__ import annotations

import torch

NORM_EPS = 1e-12


def _masked_float(profiles: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Profiles in float32 with padding columns zeroed, and the float mask (all ones if none)."""
    if profiles.dim() != 3:
        raise ValueError(f"profiles must be [batch, heads, positions], got shape {tuple(profiles.shape)}")
    a = profiles.float()
    if mask is None:
        return a, a.new_ones(a.shape[0], a.shape[2])
    if mask.shape != (a.shape[0], a.shape[2]):
        raise ValueError(
            f"mask must be [batch, positions] = {(a.shape[0], a.shape[2])}, got {tuple(mask.shape)}"
        )
    m = mask.to(device=a.device, dtype=torch.float32)
    return a * m[:, None, :], m


def normalize_rows(profiles: torch.Tensor) -> torch.Tensor:
    """Divide each head's profile by its L2 norm, with ``NORM_EPS`` inside the square root."""
    return profiles * torch.rsqrt(profiles.pow(2).sum(-1, keepdim=True) + NORM_EPS)


def map_discrimination_loss(
    profiles: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 2.0
) -> torch.Tensor:
    """MDG: instance discrimination over heads, each head's profile being its own class.

    ``S_b = Â_b Â_bᵀ / τ`` and the loss is the mean over sequences and heads of
    ``-log softmax(S_b[i])[i]``: log(heads) when every head is the same, lower as heads differ.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    a, _ = _masked_float(profiles, mask)
    unit = normalize_rows(a)
    logits = unit @ unit.transpose(1, 2) / temperature
    return -torch.diagonal(torch.log_softmax(logits, dim=-1), dim1=1, dim2=2).mean()


def pattern_decorrelation_loss(profiles: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PDG: decorrelate the attention that different positions receive across heads.

    With ``C_b = Â_bᵀ Â_b`` over the n_b valid positions, the loss is the mean over sequences of
    ``(1/n_b) Σ_pq (C_b[p,q] - δ_pq)²``. It is computed through the heads × heads Gram matrix,
    ``‖ÂᵀÂ‖² = ‖ÂÂᵀ‖²`` and ``trace(ÂᵀÂ) = trace(ÂÂᵀ)``, which avoids a positions × positions matrix.
    """
    a, m = _masked_float(profiles, mask)
    unit = normalize_rows(a)
    gram = unit @ unit.transpose(1, 2)
    valid = m.sum(-1)
    trace = torch.diagonal(gram, dim1=1, dim2=2).sum(-1)
    per_sequence = (gram.pow(2).sum((1, 2)) - 2 * trace + valid) / valid
    return per_sequence.mean()


def disagreement_loss(attention: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Disagreement on attended positions (Li et al., EMNLP 2018), as a loss to minimise.

    ``attention`` is one layer's maps [batch, heads, query, key]. Each head's map over the valid
    (query, key) pairs is one vector; the loss is the mean cosine similarity over all pairs of
    distinct heads, averaged over sequences: 1 when every head attends alike, 0 when no two heads
    attend to the same positions.
    """
    if attention.dim() != 4:
        raise ValueError(f"attention must be [batch, heads, query, key], got shape {tuple(attention.shape)}")
    maps = attention.float()
    if mask is not None:
        m = mask.to(device=maps.device, dtype=torch.float32)
        maps = maps * (m[:, None, :, None] * m[:, None, None, :])
    unit = normalize_rows(maps.flatten(2))
    heads = unit.shape[1]
    if heads < 2:
        raise ValueError("disagreement needs at least two heads")
    gram = unit @ unit.transpose(1, 2)
    off_diagonal = gram.sum((1, 2)) - torch.diagonal(gram, dim1=1, dim2=2).sum(-1)
    return (off_diagonal / (heads * (heads - 1))).mean()


def pattern_loss(
    attention: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor, keys: torch.Tensor | None = None
) -> torch.Tensor:
    """Pattern guidance (Deshpande and Narasimhan, Findings of EMNLP 2020): mean squared error.

    ``attention`` holds the guided heads' maps [batch, heads, query, key], ``targets`` the pattern
    each head should follow [batch, heads, query, key] (rows sum to 1), ``rows`` [batch, heads,
    query] marks the query rows that count (valid queries that have the pattern), and ``keys``
    [batch, key] the valid keys (default: all). The loss is the mean of the squared differences over
    the counted rows and their sequence's valid keys, so padding does not change it.
    """
    if attention.shape != targets.shape or rows.shape != attention.shape[:3]:
        raise ValueError(
            f"attention {tuple(attention.shape)}, targets {tuple(targets.shape)} and rows "
            f"{tuple(rows.shape)} do not match"
        )
    if keys is None:
        keys = torch.ones(attention.shape[0], attention.shape[-1], device=attention.device)
    keys = keys.to(device=attention.device, dtype=torch.float32)
    counted = rows.float()
    squared = ((attention.float() - targets.float()).pow(2) * keys[:, None, None, :]).sum(-1) * counted
    return squared.sum() / (counted * keys.sum(-1)[:, None, None]).sum().clamp(min=1)

"""The guiding part of a training step, shared by ``GuidedTrainer`` and sentence-transformers'
``GuidedLoss``: the capture's arguments for the model's forward call, the guides' losses of that
pass's attention, and their weighting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from transformers import PreTrainedModel

from ..errors import AttentionCaptureError, AttnguideError
from ..guiding.batch_losses import guide_losses, tokenizer_inputs, weighted_sum
from ..guiding.builtin_guides import MapInputs
from ..guiding.config import GuideConfig
from ..guiding.registry import GUIDES, Guide
from .routes import Capture, make_capture


def batch_mask(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The batch's attention mask [batch, positions]; all ones where the inputs have none."""
    mask = inputs.get("attention_mask")
    return torch.ones_like(inputs["input_ids"]) if mask is None else mask


class GuidedForward:
    """The guiding of ``config`` (which must be active) on ``model``: the capture route, chosen
    once, and what the trained guides need of ``tokenizer`` (their rows' ``from_tokenizer``); where
    one needs it and ``tokenizer`` is None, the error says ``missing_tokenizer(guide)``.

    Per forward call: ``forward_kwargs(mask)`` goes into the call, ``losses`` takes its outputs.
    With ``require_gradient``, ``losses`` refuses profiles that carry no gradient while autograd
    records (``GuidedTrainer``'s check: guiding would change no weight).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        config: GuideConfig,
        tokenizer: Any = None,
        *,
        missing_tokenizer: Callable[[Guide], str],
        require_gradient: bool = False,
    ) -> None:
        self.config = config
        self.capture: Capture = make_capture(model, config)
        self.require_gradient = require_gradient
        needing = next((GUIDES[n] for n in config.trained_guides if GUIDES[n].from_tokenizer), None)
        if needing is not None and tokenizer is None:
            raise AttnguideError(missing_tokenizer(needing))
        self.tokens = tokenizer_inputs(config.trained_guides, tokenizer)

    def forward_kwargs(self, mask: torch.Tensor) -> dict:
        """Extra arguments for the model's forward call on a batch with this attention mask."""
        return self.capture.forward_kwargs(mask)

    def losses(
        self, outputs: Any, mask: torch.Tensor, input_ids: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """Each trained guide's loss of the forward call that gave ``outputs``; drops the outputs'
        attention maps, which the task's loss does not need."""
        config = self.config
        profiles = self.capture.profiles(outputs, mask)
        if self.require_gradient and torch.is_grad_enabled() and not profiles.requires_grad:
            raise AttentionCaptureError(
                "the guided layers' attention carries no gradient, so guiding would change no weight: "
                "reentrant activation checkpointing runs layers without autograd (use use_reentrant=False), "
                "or the guided layers are frozen"
            )
        maps = MapInputs(self.capture.maps(outputs), input_ids) if config.needs_maps else None
        parts = guide_losses(
            profiles, mask, config, self.capture.heads_per_layer, config.trained_guides, maps, self.tokens
        )
        outputs.attentions = None
        return parts

    def weighted_sum(self, losses: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        """``ramp(step) · Σ weight(g) · loss(g)``: what the step adds to the task loss."""
        return weighted_sum(losses, self.config, step)

    def terms(self, sums: dict[str, torch.Tensor], count: int, step: int) -> dict[str, torch.Tensor]:
        """Each guide's term as added to the total, ``weight(g) · ramp(step) · loss(g)``, from losses
        summed over ``count`` sequences (their mean)."""
        ramp = self.config.ramp(step)
        return {name: self.config.weight(name) * ramp * value / count for name, value in sums.items()}

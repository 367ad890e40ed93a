"""Getting attention profiles out of a model during the forward pass.

The route here asks the model for ``output_attentions=True``, which needs the eager attention
kernel: the model is switched to it when guiding starts, and checked once to really return maps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from .config import GuideConfig
from .errors import AttentionCaptureError
from .profiles import attention_profiles

logger = logging.getLogger("attnguide")


def model_shape(model: PreTrainedModel) -> tuple[int, int]:
    """(layers, heads per layer) from the model's config."""
    config = model.config
    try:
        return int(config.num_hidden_layers), int(config.num_attention_heads)
    except AttributeError:
        raise AttentionCaptureError(
            f"{type(model).__name__}: its config gives no num_hidden_layers/num_attention_heads, "
            "so its attention heads cannot be guided"
        ) from None


def use_eager_attention(model: PreTrainedModel) -> None:
    """Switch a model to the eager attention kernel, the one that can return attention maps."""
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.set_attn_implementation("eager")


def check_returns_attentions(model: PreTrainedModel) -> None:
    """Run a 4-token input through the model and fail clearly if it returns no attention maps."""
    vocab = int(getattr(model.config, "vocab_size", 8) or 8)
    device = next(model.parameters()).device
    ids = torch.full((1, 4), min(5, vocab - 1), dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    except TypeError as error:
        raise AttentionCaptureError(
            f"{type(model).__name__} cannot return attention maps ({error}); attention guiding needs them"
        ) from None
    finally:
        model.train(was_training)
    if not getattr(outputs, "attentions", None):
        raise AttentionCaptureError(
            f"{type(model).__name__} returned no attention maps with output_attentions=True; "
            "attention guiding needs a model with attention heads that can return them"
        )


class OutputAttentionsCapture:
    """Profiles from the full maps the model returns with ``output_attentions=True``."""

    route = "output-attentions"

    def __init__(self, model: PreTrainedModel, config: GuideConfig) -> None:
        num_layers, self.heads_per_layer = model_shape(model)
        self.layers: Sequence[int] = config.layer_indices(num_layers)
        self.kind = config.profile
        use_eager_attention(model)
        check_returns_attentions(model)
        logger.info("attention capture: %s route, layers %s", self.route, list(self.layers))

    def forward_kwargs(self) -> dict:
        """Extra arguments for the model's forward call."""
        return {"output_attentions": True}

    def profiles(self, outputs, attention_mask: torch.Tensor) -> torch.Tensor:
        """[batch, guided heads, positions] from the forward call's outputs."""
        attentions = getattr(outputs, "attentions", None)
        if not attentions:
            raise AttentionCaptureError("the model returned no attention maps during training")
        return attention_profiles(attentions, attention_mask, self.layers, self.kind)

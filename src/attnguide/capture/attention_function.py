"""The attention function that attnguide registers with transformers' attention interface.

``guided_sdpa_attention`` is registered under ``ATTENTION_NAME``: it returns PyTorch SDPA's output
exactly as the ``sdpa`` implementation does and, when the model's forward call carries a
``ProfileRecorder`` (keyword ``RECORDER_KWARG``), also hands the guided layers' queries and keys to
the profile computations (``sdpa_profiles``, ``received_profiles``). Attention calls are numbered in
the order they happen, which is the layer order of an encoder; ALBERT and DistilBERT modules have no
layer index.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from ..errors import AttentionCaptureError
from .received_profiles import query_weights, received_attention
from .score_blocks import call_settings
from .sdpa_profiles import attention_with_profile, cpu_flash_available, math_attention_with_profile

ATTENTION_NAME = "attnguide"
RECORDER_KWARG = "attnguide_recorder"


_UNSUPPORTED_KWARGS = ("position_bias", "softcap", "sliding_window", "s_aux")


class ProfileRecorder:
    """Collects the received-attention profiles of the guided layers during one forward call.

    Give it to the model's forward call as ``RECORDER_KWARG``; ``calls`` counts every attention
    call, so that a model whose attention calls do not match its layers can be detected. Given the
    model's ``num_layers``, calls beyond them are recomputations: activation checkpointing reruns a
    layer's forward in the backward pass, and that call must take the same route as the first, so
    its layer is the one the same attention module served in the forward pass.
    """

    def __init__(
        self,
        layers: Sequence[int],
        attention_mask: torch.Tensor | None = None,
        chunk_elements: int | None = None,
        num_layers: int | None = None,
    ) -> None:
        self.layers = frozenset(layers)
        self.attention_mask = attention_mask
        self.chunk_elements = chunk_elements
        self.num_layers = num_layers
        self.calls = 0
        self.profiles: list[torch.Tensor] = []
        self._weights: torch.Tensor | None = None
        self._layers_of: dict[torch.nn.Module, list[int]] = {}

    @property
    def recomputing(self) -> bool:
        """Whether the last call was a recomputation (see the class docstring)."""
        return self.num_layers is not None and self.calls > self.num_layers

    def next_layer_is_guided(
        self, module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, kwargs: dict
    ) -> bool:
        """Count one attention call; True if its layer is guided (checked to be one this route handles)."""
        self.calls += 1
        if self.recomputing:
            served = self._layers_of.get(module, [])
            guided = {layer in self.layers for layer in served}
            if len(guided) != 1:
                raise AttentionCaptureError(
                    f"{type(module).__name__} served layers {served} in the forward pass, guided and not, "
                    "and activation checkpointing reruns it: guide all of them or none, or use "
                    "capture='output-attentions'"
                )
            return guided.pop()
        layer = self.calls - 1
        self._layers_of.setdefault(module, []).append(layer)
        if layer not in self.layers:
            return False
        unsupported = [name for name in _UNSUPPORTED_KWARGS if kwargs.get(name) is not None]
        if unsupported or getattr(module, "is_causal", False) or query.shape[1] != key.shape[1]:
            raise AttentionCaptureError(
                f"{type(module).__name__}: the efficient capture handles plain bidirectional "
                f"multi-head attention only (found {unsupported or 'causal or grouped attention'}); "
                "use capture='output-attentions'"
            )
        return True

    def record(self, profile: torch.Tensor) -> None:
        """Keep a guided layer's profile; a recomputation's repeats the forward pass's and is dropped."""
        if not self.recomputing:
            self.profiles.append(profile)

    def query_weights(self, query: torch.Tensor) -> torch.Tensor:
        """The weight of each query in the profile average [batch, queries], computed once per forward."""
        if self._weights is None:
            valid = self.attention_mask
            if valid is None:
                valid = torch.ones(query.shape[0], query.shape[-2])
            self._weights = query_weights(valid.to(query.device))
        return self._weights


def guided_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """The ``sdpa`` attention function, plus profiles for the recorder the forward call carries.

    A guided layer's output and profile come from ``SdpaWithProfile`` without attention dropout; with
    it, from ``math_attention_with_profile`` on the CPU (SDPA's math kernel there keeps the map
    anyway), else from SDPA beside ``received_attention`` (widening the heads cannot be combined with
    dropout, which would drop the profile's gradient column too). A mask that needs a gradient (MPNet's
    learned position bias) takes the same two routes as dropout, as the fused kernels give no mask
    gradient: on the CPU, where SDPA then runs its math kernel, ``math_attention_with_profile``
    (outside ``portable_route``), else SDPA, whose kernel gives it, beside ``received_attention``.
    """
    recorder: ProfileRecorder | None = kwargs.pop(RECORDER_KWARG, None)
    if recorder is None or not recorder.next_layer_is_guided(module, query, key, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    scaling, chunk = call_settings(query, kwargs.get("scaling"), recorder.chunk_elements)
    weights = recorder.query_weights(query)
    dropout = kwargs.get("dropout", 0.0)
    learned_mask = attention_mask is not None and attention_mask.requires_grad and torch.is_grad_enabled()
    if dropout == 0 and not learned_mask:
        output, profile = attention_with_profile(
            query, key, value, attention_mask, weights, scaling, chunk, module, kwargs
        )
    elif query.device.type == "cpu" and (dropout != 0 or cpu_flash_available()):
        output, profile = math_attention_with_profile(
            query, key, value, attention_mask, weights, scaling, dropout
        )
    else:
        profile = received_attention(query, key, attention_mask, weights, scaling, chunk)
        output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    recorder.record(profile)
    return output, None


AttentionInterface.register(ATTENTION_NAME, guided_sdpa_attention)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)

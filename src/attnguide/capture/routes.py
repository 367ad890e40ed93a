"""Getting attention profiles out of a model during the forward pass.

Two routes, chosen by ``make_capture`` from ``GuideConfig.capture``:

- ``efficient``: the model runs the attention function of ``attention_function`` (PyTorch SDPA for
  the output) and the guided layers' profiles are computed beside it from the same queries and
  keys, chunk by chunk, without any n × n map kept for the backward pass (on the CPU with dropout,
  where SDPA runs its math kernel and keeps the map anyway, from that map). It needs a model whose
  attention goes through transformers' attention interface (BERT, RoBERTa, XLM-R, ELECTRA, ALBERT,
  DistilBERT in transformers 5), checked with one small forward call, or an MPNet, whose
  self-attention ``models.use_mpnet_sdpa`` puts on that interface (its relative position bias joins
  the padding mask as an additive float mask; the recorder reaches its modules through their
  ``attention_kwargs``, as MPNet's forward drops extra arguments).
- ``output-attentions``: the model is switched to the eager kernel and asked for
  ``output_attentions=True``; every layer's full map is kept until the backward pass. It serves
  every model that can return maps, and the ``released-code`` profile, which reproduces the released
  code's post-dropout maps and is not computed by the efficient route.

``auto`` takes the efficient route where the model supports it and says which route it took.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from ..errors import AttentionCaptureError
from ..guiding.config import GuideConfig
from ..guiding.profiles import attention_profiles
from ..guiding.registry import GUIDES
from ..models import MPNetSdpaSelfAttention, use_mpnet_sdpa
from .attention_function import ATTENTION_NAME, RECORDER_KWARG, ProfileRecorder

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


def _probe(model: PreTrainedModel, **kwargs):
    """The model's outputs, in eval mode without gradients, for one 4-token sequence."""
    vocab = int(getattr(model.config, "vocab_size", 8) or 8)
    device = next(model.parameters()).device
    ids = torch.full((1, 4), min(5, vocab - 1), dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    finally:
        model.train(was_training)


def check_returns_attentions(model: PreTrainedModel) -> None:
    """Run a 4-token input through the model and fail clearly if it returns no attention maps."""
    try:
        outputs = _probe(model, output_attentions=True)
    except TypeError as error:
        raise AttentionCaptureError(
            f"{type(model).__name__} cannot return attention maps ({error}); attention guiding needs them"
        ) from None
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

    def forward_kwargs(self, attention_mask: torch.Tensor | None = None) -> dict:
        """Extra arguments for the model's forward call."""
        return {"output_attentions": True}

    def profiles(self, outputs, attention_mask: torch.Tensor) -> torch.Tensor:
        """[batch, guided heads, positions] from the forward call's outputs."""
        attentions = getattr(outputs, "attentions", None)
        if not attentions:
            raise AttentionCaptureError("the model returned no attention maps during training")
        return attention_profiles(attentions, attention_mask, self.layers, self.kind)

    def maps(self, outputs) -> list[torch.Tensor]:
        """The guided layers' full attention maps [batch, heads, query, key] from the outputs."""
        return [outputs.attentions[i] for i in self.layers]


def _hand_over(modules: Sequence[MPNetSdpaSelfAttention], recorder: ProfileRecorder | None) -> None:
    """Give ``recorder`` to MPNet's attention modules for the next forward call (None: take it back)."""
    for module in modules:
        if recorder is None:
            module.__dict__.pop("attention_kwargs", None)
        else:
            module.attention_kwargs = {RECORDER_KWARG: recorder}


def efficient_capture_problem(model: PreTrainedModel) -> str | None:
    """Why the efficient route cannot serve ``model`` (None if it can); leaves it on the route's kernel.

    The model is switched to the ``efficient_attention`` function (MPNet: its self-attention modules,
    ``use_mpnet_sdpa``) and one small forward call must go through it exactly once per layer;
    otherwise its previous attention kernel is restored.
    """
    num_layers, _ = model_shape(model)
    previous = model.config._attn_implementation
    kernels = [(m, type(m), m.__dict__.get("attention_function")) for m in model.modules()]
    mpnet = use_mpnet_sdpa(model, ATTENTION_NAME)
    if not mpnet:
        model.set_attn_implementation(ATTENTION_NAME)
        if model.config._attn_implementation != ATTENTION_NAME:
            return f"{type(model).__name__} does not use transformers' attention interface"
    recorder = ProfileRecorder(layers=())
    _hand_over(mpnet, recorder)
    try:
        _probe(model, **{RECORDER_KWARG: recorder})
    except TypeError as error:
        problem = f"{type(model).__name__} does not pass attention arguments through ({error})"
    else:
        problem = (
            None
            if recorder.calls == num_layers
            else f"{type(model).__name__} made {recorder.calls} attention calls for {num_layers} layers"
        )
    finally:
        _hand_over(mpnet, None)
    if problem is not None:
        model.set_attn_implementation(previous)
        for module, kind, function in kernels:
            if isinstance(module, MPNetSdpaSelfAttention):
                module.__class__ = kind
                module.__dict__.pop("attention_function", None)
                if function is not None:
                    module.attention_function = function
    return problem


class EfficientCapture:
    """Profiles computed beside the SDPA kernel, from the guided layers' queries and keys only."""

    route = "efficient"

    def __init__(self, model: PreTrainedModel, config: GuideConfig) -> None:
        if config.profile != "received":
            raise AttentionCaptureError(
                f"the efficient capture computes the 'received' profile only, not {config.profile!r}"
            )
        self.num_layers, self.heads_per_layer = model_shape(model)
        self.layers: Sequence[int] = config.layer_indices(self.num_layers)
        problem = efficient_capture_problem(model)
        if problem is not None:
            raise AttentionCaptureError(f"the efficient capture cannot serve this model: {problem}")
        self._recorder: ProfileRecorder | None = None
        self._mpnet = [m for m in model.modules() if isinstance(m, MPNetSdpaSelfAttention)]
        logger.info("attention capture: %s route, layers %s", self.route, list(self.layers))

    def forward_kwargs(self, attention_mask: torch.Tensor | None = None) -> dict:
        """Extra arguments for the model's forward call: a fresh recorder of its guided layers.

        ``attention_mask`` [batch, positions] says which queries are averaged (all when None).
        """
        self._recorder = ProfileRecorder(self.layers, attention_mask, num_layers=self.num_layers)
        _hand_over(self._mpnet, self._recorder)
        return {RECORDER_KWARG: self._recorder}

    def profiles(self, outputs, attention_mask: torch.Tensor) -> torch.Tensor:
        """[batch, guided heads, positions] recorded during the last forward call, zero on padding."""
        recorder, self._recorder = self._recorder, None
        _hand_over(self._mpnet, None)
        if recorder is None or recorder.calls != self.num_layers:
            calls = 0 if recorder is None else recorder.calls
            raise AttentionCaptureError(
                f"the model made {calls} attention calls through the efficient capture for "
                f"{self.num_layers} layers: call forward_kwargs() before each forward call"
            )
        profiles = torch.cat(recorder.profiles, dim=1)
        return profiles * attention_mask.to(device=profiles.device, dtype=profiles.dtype)[:, None, :]


Capture = EfficientCapture | OutputAttentionsCapture


def make_capture(model: PreTrainedModel, config: GuideConfig) -> Capture:
    """The capture ``config.capture`` asks for; ``auto`` is efficient wherever the model allows it."""
    if config.capture == "output-attentions":
        return OutputAttentionsCapture(model, config)
    if config.capture == "efficient":
        return EfficientCapture(model, config)
    if config.needs_maps:
        maps = ", ".join(g for g in config.guides if GUIDES[g].needs_maps and config.weight(g) > 0)
        logger.info(
            "attention capture: the guides that need attention maps (%s) take the output-attentions route",
            maps,
        )
        return OutputAttentionsCapture(model, config)
    if config.profile != "received":
        logger.info("attention capture: the %r profile takes the output-attentions route", config.profile)
        return OutputAttentionsCapture(model, config)
    try:
        return EfficientCapture(model, config)
    except AttentionCaptureError as error:
        logger.info("attention capture: %s; using the output-attentions route", error)
        return OutputAttentionsCapture(model, config)

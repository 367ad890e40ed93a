"""Attention guiding as a sentence-transformers loss: ``GuidedLoss`` wraps any loss of a
``SentenceTransformer`` (bi-encoder) or a ``CrossEncoder`` and adds the guiding losses, in the
library's own idiom, so that a training script of ``SentenceTransformerTrainer`` or
``CrossEncoderTrainer`` gains guiding by wrapping its loss::

    loss = GuidedLoss(model, CoSENTLoss(model), guide_config=GuideConfig(guides="mdg+pdg"))
    trainer = SentenceTransformerTrainer(model=model, train_dataset=..., loss=loss)

Like the library's ``MatryoshkaLoss``, it works by decorating the underlying transformer's forward
call while the wrapped loss runs: each call the wrapped loss makes (one per text column for a
bi-encoder) takes the guiding capture's arguments and gives its guided heads' profiles, so the
guiding losses come from the same forward passes as the loss itself, with no second pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ..capture.guided_forward import GuidedForward, batch_mask
from ..errors import AttnguideError, ConfigError
from ..guiding.config import GuideConfig
from ..models import underlying_transformer

CITATION = """
@misc{wang2022attentionguiding,
    title={Paying More Attention to Self-attention:
           Improving Pre-trained Language Models via Attention Guiding},
    author={Shanshan Wang and Zhumin Chen and Zhaochun Ren and Huasheng Liang and Qiang Yan and Pengjie Ren},
    year={2022},
    eprint={2204.02922},
    archivePrefix={arXiv},
    primaryClass={cs.CL}
}
"""


class GuidedLoss(nn.Module):
    """``loss`` plus the guiding losses of ``guide_config`` on ``model``'s attention.

    Returns a dict, which the sentence-transformers trainers sum into the training loss and log
    part by part: the wrapped loss under ``task`` (or its own parts, where it returns a dict) and
    each guide's term as added to the total (``mdg``: α · L_MDG, ...; ramped by ``warmup_steps``,
    counted in training batches). In eval mode only the wrapped loss is computed. Losses that embed
    without gradient first and back-propagate later (the Cached… / GradCache family) are refused:
    their gradient would bypass the guided forward.
    """

    def __init__(self, model: nn.Module, loss: nn.Module, guide_config: GuideConfig | None = None) -> None:
        super().__init__()
        from sentence_transformers.base.losses.gradcache import uses_gradient_cache

        _check_arguments(model, loss, guide_config)
        if uses_gradient_cache(loss):
            raise AttnguideError(
                f"{type(loss).__name__} embeds without gradient and back-propagates later, past the guided "
                "forward pass; wrap a loss without gradient caching (MultipleNegativesRankingLoss, ...)"
            )
        self.model = model
        self.loss = loss
        self.guide_config = guide_config if guide_config is not None else GuideConfig()
        self._transformer = [underlying_transformer(model)]  # a list: not a sub-module of the loss
        self.guided = None
        if self.guide_config.active:
            self.guided = GuidedForward(
                self._transformer[0],
                self.guide_config,
                getattr(model, "tokenizer", None),
                missing_tokenizer=lambda guide: (
                    f"GuidedLoss: the {guide.name} guide finds its tokens with the model's tokenizer, and "
                    f"{type(model).__name__} has none (model.tokenizer); pass the SentenceTransformer "
                    "or CrossEncoder itself"
                ),
            )
        self.capture = self.guided.capture if self.guided is not None else None
        self.steps = 0

    def forward(self, sentence_features: Iterable[dict[str, torch.Tensor]], labels: torch.Tensor) -> dict:
        transformer = self._transformer[0]
        guided = self.guided
        if guided is None or not transformer.training:
            return self._parts(self.loss(sentence_features, labels))
        sums: dict[str, torch.Tensor] = {}
        sequences = 0
        original = transformer.forward
        patched = "forward" in transformer.__dict__

        def guided_forward(*args: Any, **kwargs: Any):
            nonlocal sequences
            mask = batch_mask(kwargs)
            outputs = original(*args, **kwargs, **guided.forward_kwargs(mask))
            parts = guided.losses(outputs, mask, kwargs.get("input_ids"))
            for name, value in parts.items():  # weighted by sequences: a mean over every sequence embedded
                sums[name] = sums.get(name, 0.0) + value * len(mask)
            sequences += len(mask)
            return outputs

        transformer.forward = guided_forward
        try:
            task = self.loss(sentence_features, labels)
        finally:
            if patched:
                transformer.forward = original
            else:
                del transformer.forward
        if not sequences:
            raise AttnguideError(
                f"{type(self.loss).__name__} made no forward call through the model's transformer"
            )
        terms = guided.terms(sums, sequences, self.steps)
        self.steps += 1
        parts = self._parts(task)
        clash = next((name for name in parts if name in terms), None)
        if clash is not None:
            raise AttnguideError(
                f"{type(self.loss).__name__} returns a part named {clash!r}, which is the name of a guide's "
                "term: the sum would lose one of them; rename the wrapped loss's part"
            )
        return {**parts, **terms}

    def _parts(self, task: Any) -> dict:
        """The wrapped loss's parts: its dict as it is, a tensor as ``task``."""
        if isinstance(task, Mapping):
            return dict(task)
        if isinstance(task, torch.Tensor):
            return {"task": task}
        raise AttnguideError(
            f"{type(self.loss).__name__} returned {type(task).__name__}; a loss must return a tensor "
            "or a dict of tensors"
        )

    def get_config_dict(self) -> dict[str, Any]:
        """For the model card: the wrapped loss and the guiding settings."""
        return {"loss": type(self.loss).__name__, **self.guide_config.to_dict()}

    @property
    def citation(self) -> str:
        """Attention guiding's citation, and the wrapped loss's."""
        return CITATION + getattr(self.loss, "citation", "")


def _check_arguments(model: Any, loss: Any, guide_config: Any) -> None:
    """Refuse, naming the argument, what ``GuidedLoss`` cannot wrap: a model or loss that is no
    torch module, a loss class instead of a loss, a loss built for another model, settings that
    are no ``GuideConfig``."""
    if not isinstance(model, nn.Module):
        raise AttnguideError(
            f"GuidedLoss: model must be a SentenceTransformer or CrossEncoder, got {type(model).__name__}"
        )
    if isinstance(loss, type):
        raise AttnguideError(
            f"GuidedLoss: loss is the class {loss.__name__}; pass a loss made for the model, "
            f"{loss.__name__}(model)"
        )
    if not isinstance(loss, nn.Module):
        raise AttnguideError(
            f"GuidedLoss: loss must be a sentence-transformers loss (a torch module called with the "
            f"features and labels), got {type(loss).__name__}"
        )
    own = getattr(loss, "model", None)
    if isinstance(own, nn.Module) and own is not model:
        raise AttnguideError(
            f"GuidedLoss: the loss {type(loss).__name__} was made for another model than the "
            f"{type(model).__name__} given, so guiding would not see its forward passes; make the loss "
            f"with the model you wrap: {type(loss).__name__}(model)"
        )
    if guide_config is not None and not isinstance(guide_config, GuideConfig):
        raise ConfigError(
            f"GuidedLoss: guide_config must be a GuideConfig, got {type(guide_config).__name__} "
            "(GuideConfig(guides='mdg+pdg', ...), or GuideConfig.from_dict for a dict)"
        )


IN_BATCH_NEGATIVES = {"batch_sampler": "no_duplicates"}
"""Training arguments for losses that take the batch's other texts as negatives (multiple-negatives
ranking): no text twice in a batch, so that a question's second correct answer is never its negative."""


def sentence_transformer_trainer(
    model: nn.Module, args: Any, setup: Any, loss: nn.Module, guide_config: GuideConfig
) -> Any:
    """sentence-transformers' own trainer on a task's ``TrainSetup``, its loss wrapped in a
    ``GuidedLoss`` where guiding is on (with ``GuidedTrainer``'s warning where the guide warm-up
    outlasts the run); the trainer's ``capture`` is the loss's (None unguided)."""
    from sentence_transformers import SentenceTransformerTrainer

    from .trainer import WarmupOutlastsRun

    loss = GuidedLoss(model, loss, guide_config) if guide_config.active else loss
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=setup.dataset, eval_dataset=setup.eval_dataset, loss=loss
    )
    trainer.capture = getattr(loss, "capture", None)
    if guide_config.active and guide_config.warmup_steps:
        trainer.add_callback(WarmupOutlastsRun(guide_config.warmup_steps))
    return trainer

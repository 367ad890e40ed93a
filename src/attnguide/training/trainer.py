"""``GuidedTrainer``: a ``transformers.Trainer`` whose training loss adds attention guiding."""

from __future__ import annotations

import logging
import math

import torch
from transformers import Trainer, TrainerCallback

from ..capture.guided_forward import GuidedForward, batch_mask
from ..errors import AttnguideError
from ..guiding.config import GuideConfig
from .options import NONFINITE_POLICIES

logger = logging.getLogger("attnguide")


class NonFiniteLossError(AttnguideError):
    """A training loss became NaN or infinite."""


class WarmupOutlastsRun(TrainerCallback):
    """Warns when training starts if the guide weights' warm-up is longer than the run, so that they
    never reach the values the user set."""

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = warmup_steps

    def on_train_begin(self, args, state, control, **kwargs):
        if 0 < state.max_steps < self.warmup_steps:
            logger.warning(
                "the guide warm-up (%d steps) is longer than this run (%d steps): the guide weights "
                "reach only %.2g%% of their values",
                self.warmup_steps,
                state.max_steps,
                100 * state.max_steps / self.warmup_steps,
            )


class GuidedTrainer(Trainer):
    """Adds ``Σ weight·guide_loss`` to the task loss of every training step and logs each part.

    ``guide_config=None``, no guides, or all weights 0 leave the model as it is (its attention
    kernel too) and ``compute_loss`` is the Trainer's own. Evaluation loss is the task loss alone.
    The logs gain ``task_loss`` and one ``<guide>_loss`` per guide (``GuideConfig.trained_guides``),
    averaged over the logging interval (and over processes).

    Sequence-classification heads return a per-batch mean loss and ignore ``num_items_in_batch``;
    the Trainer is told so (``loss_is_scaled_for_ga = False``, ``model_accepts_loss_kwargs = False``),
    so that gradient accumulation and several processes average the task loss, like the guiding
    losses, over micro-batches. This holds with guiding off too, so that a baseline and a guided run
    scale their task loss alike. With one process and no accumulation it changes nothing; otherwise
    it differs from a plain ``Trainer``, which leaves such a loss undivided by the accumulation
    steps and multiplies it by the number of processes, so that its logged loss and gradient grow
    with both.

    A NaN or infinite task or guiding loss stops training with a ``NonFiniteLossError`` naming the
    step and the loss (``nonfinite="stop"``), or skips that batch: no gradient from it, counted in
    the logs as ``skipped_batches`` (``nonfinite="skip"``, one process only).
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self, *args, guide_config: GuideConfig | None = None, nonfinite: str = "stop", **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.skipped_batches = 0
        self.model_accepts_loss_kwargs = False
        self.guide_config = guide_config if guide_config is not None else GuideConfig(guides=())
        self.guided = None
        if self.guide_config.active:
            self.guided = GuidedForward(
                self.model,
                self.guide_config,
                self.processing_class,
                missing_tokenizer=lambda guide: (
                    f"{guide.title} needs the tokenizer: pass processing_class=tokenizer"
                ),
                require_gradient=True,
            )
        self.capture = self.guided.capture if self.guided is not None else None
        self._part_sums: dict[str, torch.Tensor] = {}
        self._part_steps = 0
        if self.capture is not None and self.guide_config.warmup_steps:
            self.add_callback(WarmupOutlastsRun(self.guide_config.warmup_steps))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.guided is None:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = result[0] if return_outputs else result
            if self._nonfinite({"task": loss}):
                loss = self._skip(loss)
                return (loss, result[1]) if return_outputs else loss
            return result
        mask = batch_mask(inputs)
        inputs = {**inputs, **self.guided.forward_kwargs(mask)}
        task_loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        parts = self.guided.losses(outputs, mask, inputs.get("input_ids"))
        loss = task_loss + self.guided.weighted_sum(parts, self.state.global_step)
        if self._nonfinite({"task": task_loss, **parts}):
            loss = self._skip(loss)
        else:
            self._record({"task": task_loss, **parts})
        return (loss, outputs) if return_outputs else loss

    def _nonfinite(self, losses: dict[str, torch.Tensor]) -> bool:
        """Whether any loss is NaN or infinite; raises instead under the ``stop`` policy."""
        values = torch.stack([v.detach().float() for v in losses.values()])
        if bool(torch.isfinite(values).all()):
            return False
        name, value = next(
            (n, float(v)) for n, v in zip(losses, values.tolist(), strict=True) if not math.isfinite(v)
        )
        step = self.state.global_step + 1
        if self.nonfinite == "skip" and self.args.world_size == 1:
            return True
        raise NonFiniteLossError(f"step {step}: the {name} loss is {value}; training stopped")

    def _skip(self, loss: torch.Tensor) -> torch.Tensor:
        """A zero loss that reaches no model weight, so this batch adds no gradient."""
        self.skipped_batches += 1
        return torch.zeros((), device=loss.device, requires_grad=True)

    def _record(self, parts: dict[str, torch.Tensor]) -> None:
        for name, value in parts.items():
            value = value.detach().float()
            self._part_sums[name] = self._part_sums[name] + value if name in self._part_sums else value
        self._part_steps += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self.skipped_batches:
            logs["skipped_batches"] = self.skipped_batches
        if "loss" in logs and self._part_steps:
            names = sorted(self._part_sums)
            means = torch.stack([self._part_sums[n] for n in names]) / self._part_steps
            means = self.accelerator.reduce(means, reduction="mean")
            logs.update({f"{n}_loss": round(float(v), 6) for n, v in zip(names, means.tolist(), strict=True)})
            self._part_sums, self._part_steps = {}, 0
        super().log(logs, start_time)

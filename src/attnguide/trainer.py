"""``GuidedTrainer``: a ``transformers.Trainer`` whose training loss adds attention guiding."""

from __future__ import annotations

import torch
from transformers import Trainer

from .capture import OutputAttentionsCapture
from .config import GuideConfig
from .guide import guide_losses, weighted_sum


class GuidedTrainer(Trainer):
    """Adds ``Σ weight·guide_loss`` to the task loss of every training step and logs each part.

    ``guide_config=None``, no guides, or all weights 0 leave the Trainer exactly as it is: the
    model keeps its attention kernel and ``compute_loss`` is the Trainer's own. Evaluation loss is
    the task loss alone. The logs gain ``task_loss`` and one ``<guide>_loss`` per guide, averaged
    over the logging interval (and over processes).

    Sequence-classification heads return a per-batch mean loss and ignore ``num_items_in_batch``;
    the Trainer is told so (``loss_is_scaled_for_ga = False``, ``model_accepts_loss_kwargs = False``),
    so that gradient accumulation and several processes average the task loss, like the guiding
    losses, over micro-batches. With one process and no accumulation this changes nothing.
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, guide_config: GuideConfig | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        self.guide_config = guide_config if guide_config is not None else GuideConfig(guides=())
        self.capture = (
            OutputAttentionsCapture(self.model, self.guide_config) if self.guide_config.active else None
        )
        self._part_sums: dict[str, torch.Tensor] = {}
        self._part_steps = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.capture is None or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = {**inputs, **self.capture.forward_kwargs()}
        task_loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(inputs["input_ids"])
        profiles = self.capture.profiles(outputs, mask)
        parts = guide_losses(profiles, mask, self.guide_config, self.capture.heads_per_layer)
        guiding = weighted_sum(parts, self.guide_config, self.state.global_step)
        self._record({"task": task_loss, **parts})
        outputs.attentions = None
        loss = task_loss + guiding
        return (loss, outputs) if return_outputs else loss

    def _record(self, parts: dict[str, torch.Tensor]) -> None:
        for name, value in parts.items():
            value = value.detach().float()
            self._part_sums[name] = self._part_sums[name] + value if name in self._part_sums else value
        self._part_steps += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._part_steps:
            names = sorted(self._part_sums)
            means = torch.stack([self._part_sums[n] for n in names]) / self._part_steps
            means = self.accelerator.reduce(means, reduction="mean")
            logs.update({f"{n}_loss": round(float(v), 6) for n, v in zip(names, means.tolist(), strict=True)})
            self._part_sums, self._part_steps = {}, 0
        super().log(logs, start_time)

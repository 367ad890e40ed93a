"""LoRA adapters (PEFT): train low-rank updates of chosen linear layers instead of every weight.

The adapted model is a ``peft.PeftModel``; the guided layers' attention still goes through the
model's attention function, so both capture routes work inside it and guiding's gradient reaches
the adapters. The task's head is trained in full (PEFT's ``modules_to_save`` for the task type).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from ..errors import AttnguideError
from ..models import quiet_peft
from .options import TrainOptions


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """The distinct last names of the model's linear layers (``query``, ``value``, ``dense``, ...)."""
    return sorted(
        {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    )


def add_lora(model: PreTrainedModel, options: TrainOptions, task_type: str) -> torch.nn.Module:
    """``model`` with LoRA adapters on the ``--lora-targets`` layers (every one must exist)."""
    from peft import LoraConfig, get_peft_model

    targets = [t.strip() for t in options.lora_targets.split(",") if t.strip()]
    names = linear_module_names(model)
    missing = [t for t in targets if t not in names]
    if missing:
        raise AttnguideError(
            f"--lora-targets: {type(model).__name__} has no linear module named {missing[0]!r} "
            f"(its linear modules: {', '.join(names)})"
        )
    config = LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=targets,
        task_type=task_type,
    )
    with quiet_peft():
        return get_peft_model(model, config)


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """``trainable_parameters`` and ``total_parameters`` (each shared tensor counted once)."""
    unique = {id(p): p for p in model.parameters()}.values()
    return {
        "trainable_parameters": sum(p.numel() for p in unique if p.requires_grad),
        "total_parameters": sum(p.numel() for p in unique),
    }

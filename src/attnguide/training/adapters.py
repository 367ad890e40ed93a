"""LoRA adapters (PEFT): train low-rank updates of chosen linear layers instead of every weight.

The adapted model is a ``peft.PeftModel``; the guided layers' attention still goes through the
model's attention function, so both capture routes work inside it and guiding's gradient reaches
the adapters. The task's head, every module outside the encoder, is trained in full (PEFT's
``modules_to_save``); ``--lora-targets`` names linear layers of the encoder only.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from ..errors import AttnguideError
from ..models import quiet_peft
from .options import TrainOptions


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """The distinct last names of the model's linear layers (``query``, ``value``, ``dense``, ...)."""
    return sorted({name.rsplit(".", 1)[-1] for name in _linear_paths(model)})


def _linear_paths(model: torch.nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def head_modules(model: PreTrainedModel) -> list[str]:
    """The top-level modules with weights outside the encoder (``classifier``, DistilBERT's
    ``pre_classifier``, DeBERTa's ``pooler``): the task's head, trained in full beside the adapters."""
    children = dict(model.named_children())
    encoder = getattr(model, "base_model_prefix", "")
    if encoder not in children:  # the encoder itself, without a head
        return []
    return [
        name for name, child in children.items() if name != encoder and any(True for _ in child.parameters())
    ]


def add_lora(model: PreTrainedModel, options: TrainOptions, task_type: str) -> torch.nn.Module:
    """``model`` with LoRA adapters on the ``--lora-targets`` layers of its encoder (each must
    name one: a layer's name, ``query``, or the end of its path, ``attention.self.query``); the
    head is trained in full."""
    from peft import LoraConfig, get_peft_model

    targets = [t.strip() for t in options.lora_targets.split(",") if t.strip()]
    head = head_modules(model)
    in_head = tuple(f"{h}." for h in head)
    paths = _linear_paths(model)
    encoder = [p for p in paths if p not in head and not p.startswith(in_head)]
    names = sorted({p.rsplit(".", 1)[-1] for p in encoder})
    for target in targets:
        if any(p == target or p.endswith("." + target) for p in encoder):
            continue
        where = f"{type(model).__name__} has no linear module named {target!r}"
        if any(p == target or p.endswith("." + target) for p in paths):
            where = f"{target!r} is in {type(model).__name__}'s task head, which is trained in full"
        raise AttnguideError(f"--lora-targets: {where}; its encoder's linear modules: {', '.join(names)}")
    config = LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=targets,
        modules_to_save=head or None,
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

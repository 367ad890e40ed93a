"""attnguide: fine-tune transformer encoders with attention guiding (MDG and PDG).

The public API is importable from here; each name loads its module (and torch) only when first
used, so that the command line starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "GuideConfig": "attnguide.guiding.config",
    "Guide": "attnguide.guiding.registry",
    "GuideSetting": "attnguide.guiding.registry",
    "register_guide": "attnguide.guiding.registry",
    "GuidedTrainer": "attnguide.training.trainer",
    "map_discrimination_loss": "attnguide.guiding.attention_losses",
    "pattern_decorrelation_loss": "attnguide.guiding.attention_losses",
    "disagreement_loss": "attnguide.guiding.attention_losses",
    "pattern_loss": "attnguide.guiding.attention_losses",
    "attention_profiles": "attnguide.guiding.profiles",
    "guide_losses": "attnguide.guiding.batch_losses",
    "diagnose": "attnguide.analysis.diagnostics",
    "make_capture": "attnguide.capture.routes",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'attnguide' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

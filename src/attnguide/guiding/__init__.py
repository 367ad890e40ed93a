"""The method core: guide settings, the guide registry, attention profiles and the guiding losses.

Nothing here knows about the Trainer, data sets or files: it maps attention (profiles or maps) to
losses. ``docs/METHOD.md`` defines every quantity. This package's own import is light (no torch);
``profiles``, ``attention_losses``, ``patterns``, ``builtin_guides`` and ``batch_losses`` import
torch.
"""

from .config import GuideConfig
from .registry import GUIDES, Guide, GuideSetting, register_guide, unregister_guide

__all__ = ["GUIDES", "Guide", "GuideConfig", "GuideSetting", "register_guide", "unregister_guide"]

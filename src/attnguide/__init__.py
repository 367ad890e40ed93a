"""attnguide: fine-tune transformer encoders with attention guiding (MDG and PDG)."""

from .config import GuideConfig
from .trainer import GuidedTrainer

__version__ = "0.1.0"

__all__ = ["GuideConfig", "GuidedTrainer", "__version__"]

"""What ``attnguide eval`` writes (``EvalFiles``: the predictions, the metrics, a task's further
outputs) and reads from a run directory besides the model (the options and guide it was trained with).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..files import check_output_files, predictions_path, write_json
from ..guiding.config import GuideConfig
from ..rundir import check_writable_location, read_run
from .protocol import EvalOptions

logger = logging.getLogger("attnguide")


@dataclass(frozen=True)
class EvalFiles:
    """What ``attnguide eval`` writes for ``--data``: the predictions (``--output``, default
    ``<data>.predictions<suffix>``), the metrics beside them, and any further outputs of the task."""

    predictions: Path
    metrics: Path

    @classmethod
    def checked(
        cls,
        options: EvalOptions,
        suffix: str = ".jsonl",
        more: Callable[[Path], dict[str, Path]] | None = None,
        inputs: dict[str, str | None] | None = None,
    ) -> EvalFiles:
        """The files, refused before any work where one is a directory or the same as another file or
        as an input; ``more`` names further outputs from the predictions' path."""
        predictions = predictions_path(options.output, options.data, suffix)
        files = cls(predictions, predictions.with_suffix(".metrics.json"))
        outputs = {"the predictions": predictions, "the metrics": files.metrics}
        outputs.update(more(predictions) if more else {})
        check_output_files(outputs, {"--data": options.data, **(inputs or {})})
        for what, path in outputs.items():
            check_writable_location(path, what)
        return files

    def write_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Write the metrics (the predictions written) and say where the predictions are."""
        write_json(self.metrics, metrics)
        logger.info("predictions written to %s", self.predictions)
        return metrics


def trained_options(model: str) -> dict:
    """The options a model directory of ``attnguide train`` was trained with (empty for other models)."""
    return (read_run(model) or {}).get("options", {})


def trained_guide(model: str) -> GuideConfig:
    """The guide settings a model was trained with: the guiding losses ``eval`` reports are those."""
    return GuideConfig.from_dict(trained_options(model).get("guide", {}))

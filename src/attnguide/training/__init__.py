"""The trainer glue: ``GuidedTrainer`` (the Trainer with guiding added to its loss), the run pipeline
of ``attnguide train`` (options, resume, checkpoints, run directory) and its callbacks."""

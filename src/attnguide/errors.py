"""User-facing errors: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class AttnguideError(Exception):
    """A problem with the user's input or settings, reported without a traceback."""


class ConfigError(AttnguideError, ValueError):
    """An invalid guiding setting."""


class DataError(AttnguideError):
    """Malformed data: names the file, the line (where there is one) and what was expected."""

    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class AttentionCaptureError(AttnguideError):
    """The model cannot give the attention maps that guiding needs."""

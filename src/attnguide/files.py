"""Files: result files written atomically (to a temporary name first, renamed when complete), and
local paths told from Hub names."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from .errors import AttnguideError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` (with the permissions the
    umask gives a new file) when the block ends without an error, else removed. Readers see either
    the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: object) -> None:
    """Pretty-printed JSON, written atomically."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """One JSON object per line, written atomically."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def names_a_local_path(name: str) -> bool:
    """Whether ``name``, which does not exist here, can only be meant as a local path (and so is a
    typo to report at once) rather than a Hub id such as ``org/name``."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith("/")


def predictions_path(output: str | None, data: str, suffix: str = ".jsonl") -> Path:
    """``eval``'s predictions file: ``output``, default ``<data name>.predictions<suffix>`` here; refused
    at once where it is a directory, from which no file names can be derived."""
    path = Path(output or f"{Path(data).stem}.predictions{suffix}")
    if path.is_dir():
        raise AttnguideError(f"{path}: is a directory; expected a file name for the predictions")
    return path


def check_output_files(outputs: dict[str, Path], inputs: dict[str, str | None]) -> None:
    """Refuse, before any work, outputs (what → path) where a path is a directory, or is the same file
    as another output or as one of the ``inputs`` (option → path, None where not given)."""
    taken = {Path(value).resolve(): f"the input {flag}" for flag, value in inputs.items() if value}
    for what, path in outputs.items():
        if path.is_dir():
            raise AttnguideError(f"{path}: is a directory; expected a file name for {what}")
        other = taken.setdefault(path.resolve(), what)
        if other != what:
            raise AttnguideError(
                f"{path}: {other} and {what} would be the same file; choose another --output"
            )


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with a repeated key instead of keeping its last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"repeated key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> object:
    """YAML read as ``yaml.safe_load`` reads it, except that a key repeated in one mapping raises a
    ``yaml.YAMLError`` at its line: two ``output_dir:`` lines are a mistake, not a choice."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)

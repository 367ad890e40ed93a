"""Short model names and the split-zip assembly of MPNet-base, on a small zip made here."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from attnguide.errors import AttnguideError
from attnguide.model_store import MARKER, MPNET_BASE, SplitZipModel, assemble, minilm_path, resolve_model_name


def split_zip(tmp: Path, pieces: int = 3) -> tuple[SplitZipModel, list[Path]]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("m/config.json", '{"model_type": "bert"}')
        archive.writestr("m/weights.bin", bytes(range(256)) * 64)
    data = buffer.getvalue()
    size = -(-len(data) // pieces)
    paths = []
    for i in range(pieces):
        paths.append(tmp / f"m.zip.{i + 1:03d}")
        paths[-1].write_bytes(data[i * size : (i + 1) * size])
    model = SplitZipModel("m", ("p1", "p2", "p3"), hashlib.sha256(data).hexdigest(), len(data), "x")
    return model, paths


def test_pieces_are_joined_checked_and_unpacked_once(tmp_path) -> None:
    model, pieces = split_zip(tmp_path)
    folder = assemble(model, tmp_path / "cache", pieces)
    assert (folder / "config.json").is_file() and (folder / MARKER).read_text().strip() == model.sha256
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["m"]  # no temporary folder left
    for piece in pieces:
        piece.unlink()
    assert assemble(model, tmp_path / "cache", pieces) == folder  # complete: not assembled again


def test_an_unfinished_assembly_is_redone_and_a_bad_piece_refused(tmp_path) -> None:
    model, pieces = split_zip(tmp_path)
    (tmp_path / "cache" / "m").mkdir(parents=True)
    (tmp_path / "cache" / "m" / "config.json").write_text("half")  # no marker: killed midway
    folder = assemble(model, tmp_path / "cache", pieces)
    assert (folder / MARKER).is_file() and "bert" in (folder / "config.json").read_text()
    pieces[1].write_bytes(b"x" + pieces[1].read_bytes()[1:])
    with pytest.raises(AttnguideError, match="the joined pieces have SHA-256"):
        assemble(model, tmp_path / "other", pieces)
    assert not any((tmp_path / "other").iterdir())


def test_a_missing_piece_names_the_install_command(monkeypatch) -> None:
    missing = SplitZipModel("m", ("attnguide-no-such-piece-001",), "0" * 64, 1, "mpnet")
    with pytest.raises(AttnguideError, match=r"pip install 'attnguide\[mpnet\]'"):
        assemble(missing, Path("/nonexistent-cache"))


def test_short_names() -> None:
    assert resolve_model_name("minilm-l6") == minilm_path()
    assert resolve_model_name("org/model") == "org/model"


def test_mpnet_base_by_its_short_name(capsys) -> None:
    from importlib import metadata

    try:
        metadata.distribution(MPNET_BASE.packages[0])
    except metadata.PackageNotFoundError:
        pytest.skip("MPNet-base is optional (pip install -e '.[mpnet]')")
    from attnguide.models import model_layers

    assert model_layers("mpnet-base") == 12


def test_a_cache_that_cannot_be_written_is_one_line(tmp_path) -> None:
    model, pieces = split_zip(tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(AttnguideError, match="ATTNGUIDE_CACHE"):
        assemble(model, tmp_path / "afile", pieces)

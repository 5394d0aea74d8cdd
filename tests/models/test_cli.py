"""`undertone models verify` on the real install and on a broken artifacts directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.assemble import setup_models
from service.config import Settings

UNDERTONE = [sys.executable, "-c", "from service.cli import main; main()"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [*UNDERTONE, *args], capture_output=True, text=True, env=full_env, timeout=900, check=False
    )


@pytest.mark.slow
class TestVerifyCommand:
    def test_real_install_verifies(self) -> None:
        """After setup, every model file of the configured install verifies (exit 0)."""
        settings = Settings()
        # Idempotent: instant when `make test` already ran `undertone models setup`.
        setup_models(settings.models, settings.artifacts_dir)
        result = _run("models", "verify")
        assert result.returncode == 0, result.stderr
        assert "All model files verified" in result.stdout

    def test_broken_artifacts_dir_fails_naming_the_file(self, tmp_path: Path) -> None:
        """A corrupted joined model.bin makes verify exit 1 and name the file and the fix."""
        artifacts = tmp_path / "artifacts"
        env = {
            "UNDERTONE_MODELS__ARTIFACTS_DIR": str(artifacts),
            "UNDERTONE_MODELS__ENCODER_RUNTIME": "torch",
        }
        built = _run("models", "setup", "--skip-verify", env=env)
        assert built.returncode == 0, built.stderr
        with (artifacts / "whisper-base" / "model.bin").open("r+b") as handle:
            handle.truncate(1024)

        result = _run("models", "verify", env=env)

        assert result.returncode == 1
        assert "whisper-base: model.bin" in result.stderr
        assert "undertone models setup" in result.stderr

    def test_missing_artifacts_fail(self, tmp_path: Path) -> None:
        """An artifacts directory never set up fails verification (ONNX encoder not built)."""
        result = _run("models", "verify", env={"UNDERTONE_MODELS__ARTIFACTS_DIR": str(tmp_path)})
        assert result.returncode == 1
        assert "encoder:" in result.stderr
        assert "whisper-base: model.bin is missing" in result.stderr

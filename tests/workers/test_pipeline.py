"""workers.pipeline: the analyzer built from Settings, once per process."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ModelSettings, Settings
from service.contract import validate_analysis


@pytest.mark.slow
class TestBuildTextAnalyzer:
    def test_built_once_and_analyses(self, tmp_path: Path) -> None:
        """Equal settings give the same analyzer object, and it produces contract results."""
        from workers.pipeline import build_text_analyzer

        # torch needs no set-up step (the ONNX export is `undertone models setup`'s job).
        settings = Settings(data_dir=tmp_path, models=ModelSettings(encoder_runtime="torch"))
        analyzer = build_text_analyzer(settings)
        assert build_text_analyzer(settings.model_copy(deep=True)) is analyzer
        (result,) = analyzer.analyze([{"id": "1", "text": "Awful support. Never again."}])
        assert validate_analysis(result).sentiment.label == "negative"
        assert result["model_versions"]["encoder"].endswith("/torch")

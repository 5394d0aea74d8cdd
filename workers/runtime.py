"""Per-process analysis runtime: models loaded once, shared by the stages and `analyze_now`."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

from service.config import Settings
from service.dispatch import DispatchUnavailable
from workers.stages import Analyzer, analyze_texts


def worker_id(role: str = "worker") -> str:
    """Who holds a lease: host, process and thread, readable in the jobs table."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


class AnalysisRuntime:
    """The text analyzer of this process, built lazily from Settings and used one call at a time.

    One lock serialises the calls: the encoder already uses every core it is given, so two
    concurrent calls would only contend, and it keeps non-thread-safe parts (spaCy) safe.
    """

    def __init__(self, settings: Settings, analyzer: Analyzer | None = None) -> None:
        self._settings = settings
        self._analyzer = analyzer
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the models are in memory."""
        return self._analyzer is not None

    def load(self) -> Analyzer:
        """Load the models (once); later calls return the same analyzer."""
        if self._analyzer is None:
            with self._load_lock:
                if self._analyzer is None:
                    # Imported here: the composition root of the ML libraries, kept out of
                    # anything that only sends tasks.
                    from workers.pipeline import build_text_analyzer

                    # TextAnalyzer types its items as a TypedDict; the stages pass plain dicts
                    # of the same shape (rows of the feedback table).
                    self._analyzer = cast(Analyzer, build_text_analyzer(self._settings))
        assert self._analyzer is not None
        return self._analyzer

    def analyze(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Analyse items (the stages' entry point); waits for any call in progress."""
        analyzer = self.load()
        with self._run_lock:
            return analyzer.analyze(items)

    def analyze_now(self, items: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Synchronous, validated analysis; `DispatchUnavailable` if busy longer than `timeout`."""
        if not self.loaded:
            raise DispatchUnavailable("the models are still loading")
        analyzer = self.load()
        if not self._run_lock.acquire(timeout=timeout):
            raise DispatchUnavailable(f"the analyzer stayed busy for {timeout:g} s")
        try:
            return analyze_texts(analyzer, items)
        finally:
            self._run_lock.release()

"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class _JobsCollector(Collector):
    """Jobs by status, read from the database at scrape time (the truth, not a guess)."""

    def __init__(self, count_jobs: Callable[[], dict[str, int]]) -> None:
        self._count_jobs = count_jobs

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("undertone_jobs", "Jobs by status.", labels=["status"])
        try:
            counts = self._count_jobs()
        except Exception:  # a scrape must not fail because the DB is down
            counts = {}
        for status in ("queued", "running", "done", "failed"):
            family.add_metric([status], counts.get(status, 0))
        yield family


class ApiMetrics:
    """The API's counters and histograms."""

    def __init__(self, count_jobs: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "undertone_http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "undertone_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route"],
            registry=self.registry,
        )
        self.items_accepted = Counter(
            "undertone_feedback_items_total",
            "Feedback items received, by outcome (created or duplicate).",
            ["outcome"],
            registry=self.registry,
        )
        self.registry.register(_JobsCollector(count_jobs))

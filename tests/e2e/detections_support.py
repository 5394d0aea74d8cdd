"""Helpers of the detection tests: a real local webhook receiver, a cursor poller, stand-in stages.

The analyzer and the detector here are small rule-based stand-ins: what the tests check is
storage, pull, push, retries and outcomes, not the models (covered by their own tests).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi.testclient import TestClient

from workers.stages_detect import DetectorOutput

NEGATIVE_WORDS = ("late", "never", "broken", "rude", "cancel")


class RuleAnalyzer:
    """Negative when the text holds a complaint word; a case type from the first such word."""

    def analyze(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            text = str(item["text"]).lower()
            hit = next((w for w in NEGATIVE_WORDS if w in text), None)
            label = "negative" if hit else "positive"
            scores = {
                "negative": 0.9 if hit else 0.05,
                "neutral": 0.05,
                "positive": 0.05 if hit else 0.9,
            }
            out.append(
                {
                    "id": item["id"],
                    "language": "en",
                    "sentiment": {"label": label, "scores": scores},
                    "sentences": [
                        {
                            "start": 0,
                            "end": len(item["text"]),
                            "text": item["text"],
                            "sentiment": {"label": label, "scores": scores},
                        }
                    ],
                    "model_versions": {"rules": "test"},
                    "case_types": [{"id": f"case.{hit}", "name": hit.title(), "confidence": 0.8}]
                    if hit
                    else [],
                }
            )
        return out


class RuleDetector:
    """One explicit detection per negative analysis; counts contacts in a baseline."""

    def prepare(self) -> None:
        """Nothing to fetch."""

    def evaluate(
        self,
        analysis: Mapping[str, Any],
        item: Mapping[str, Any],
        baseline: dict[str, Any] | None,
        recent: Sequence[Mapping[str, Any]],
        prepared: Any = None,
    ) -> DetectorOutput:
        state = {"contacts": int((baseline or {}).get("contacts", 0)) + 1}
        if analysis["sentiment"]["label"] != "negative":
            return DetectorOutput([], state)
        case_types = analysis.get("case_types") or []
        detection = {
            "case_type": (
                {"id": case_types[0]["id"], "name": case_types[0]["name"]} if case_types else None
            ),
            "kind": "explicit",
            "signals": [
                {"name": "negative_sentiment", "value": 0.9, "confidence": 0.9, "evidence": []}
            ],
            "confidence": 0.9,
            "evidence": [
                {"text": item.get("text", ""), "start": 0, "end": len(item.get("text", ""))}
            ],
            "priority": {"score": 0.5, "factors": {"severity": 0.5}},
            "recent_contacts": len(recent),
        }
        return DetectorOutput([detection], state)

    def merge(self, existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        merged = dict(existing)
        merged["evidence"] = list(existing.get("evidence", [])) + list(new.get("evidence", []))
        merged["signals"] = list(existing.get("signals", [])) + list(new.get("signals", []))
        return merged


@dataclass
class Receiver:
    """What the local receiver saw: every request (with its arrival, `time.monotonic()`, as
    ``at``), and the ones it accepted.

    Each message's first ``failures_per_message`` requests fail with ``failure_status``;
    request number ``hang_on_request`` (1-based, 0 for none) of each message, one of those
    failures, first stalls for ``hang_seconds`` (longer than the sender's timeout: a timeout
    on its side), and is listed in ``hanging`` meanwhile.
    """

    failures_per_message: int = 0
    always_fail: bool = False
    failure_status: int = 503
    hang_on_request: int = 0
    hang_seconds: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    hanging: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def attempts_of(self, message_id: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["headers"]["webhook-id"] == message_id)

    def accepted_ids(self) -> list[str]:
        with self.lock:
            return [r["headers"]["webhook-id"] for r in self.accepted]

    def hanging_ids(self) -> list[str]:
        with self.lock:
            return list(self.hanging)


@contextmanager
def webhook_receiver(receiver: Receiver) -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that fails each message's first N attempts."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            entry = {"headers": headers, "body": body, "at": time.monotonic()}
            with receiver.lock:
                receiver.requests.append(entry)
                seen = sum(
                    1
                    for r in receiver.requests
                    if r["headers"].get("webhook-id") == headers.get("webhook-id")
                )
                duplicate = any(
                    r["headers"].get("webhook-id") == headers.get("webhook-id")
                    for r in receiver.accepted
                )
                ok = not receiver.always_fail and seen > receiver.failures_per_message
                hang = not ok and seen == receiver.hang_on_request
                if ok and not duplicate:
                    # Deduplicate on webhook-id, as the docs tell receivers to.
                    receiver.accepted.append(entry)
                if hang:
                    receiver.hanging.append(headers.get("webhook-id", ""))
            if hang:
                receiver.released.wait(receiver.hang_seconds)
                with receiver.lock:
                    receiver.hanging.remove(headers.get("webhook-id", ""))
            try:
                self.send_response(200 if ok else receiver.failure_status)
                self.end_headers()
                self.wfile.write(json.dumps({"ok": ok}).encode())
            except OSError:
                return  # the sender gave up (timeout) or died meanwhile

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.released.set()  # no stalled handler outlives the test
        server.shutdown()
        server.server_close()


class CursorPoller:
    """A case system pulling `GET /v1/detections`: keeps its cursor, remembers every item."""

    def __init__(self, client: TestClient, limit: int = 2) -> None:
        self._client = client
        self._limit = limit
        self.cursor = "0"
        self.seen: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """Pull every page after the cursor; the new items (also kept in `seen`)."""
        new: list[dict[str, Any]] = []
        while True:
            page = self._client.get(
                "/v1/detections", params={"cursor": self.cursor, "limit": self._limit}
            )
            assert page.status_code == 200, page.text
            body = page.json()
            new.extend(body["items"])
            self.cursor = body["next_cursor"]
            if not body["has_more"]:
                break
        self.seen.extend(new)
        return new

"""The HTTP API, with a small fake dispatcher standing in for the analysis backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service import auth
from service.api.app import create_app
from service.config import ApiSettings, Settings
from service.db.engine import create_db_engine, create_session_factory
from service.db.models import FeedbackItem, Job
from service.db.repositories import analyses, api_keys, jobs
from service.dispatch import DispatchUnavailable


class FakeDispatcher:
    """Records what the API hands over; answers analysis with a fixed, valid contract object."""

    def __init__(self) -> None:
        self.notified: list[str] = []
        self.analysed: list[dict[str, Any]] = []
        self.started = self.stopped = False
        self.available = True
        self.ready = {"models": True}

    def notify(self, job_ids: Sequence[str]) -> None:
        self.notified.extend(job_ids)

    def analyze_now(self, items: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        if not self.available:
            raise DispatchUnavailable("the models are still loading")
        self.analysed.extend(items)
        return [_contract(item["id"], item["text"]) for item in items]

    def readiness(self) -> dict[str, bool]:
        return dict(self.ready)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


def _contract(id_: str, text: str) -> dict[str, Any]:
    sentiment = {
        "label": "negative",
        "scores": {"negative": 0.8, "neutral": 0.15, "positive": 0.05},
    }
    return {
        "id": id_,
        "language": "en",
        "sentiment": sentiment,
        "sentences": [{"start": 0, "end": len(text), "text": text, "sentiment": sentiment}],
        "model_versions": {"encoder": "fake", "sentiment": "fake"},
    }


ITEM = {"external_id": "r-1", "text": "Waited forty minutes on hold.", "channel": "call"}


@pytest.fixture
def session_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """API behaviour runs on SQLite; the races below run on both backends."""
    engine = create_db_engine(sqlite_url)
    yield create_session_factory(engine)
    engine.dispose()


@pytest.fixture
def dispatcher() -> FakeDispatcher:
    """A fresh fake dispatcher."""
    return FakeDispatcher()


def _settings(**api: Any) -> Settings:
    return Settings(api=ApiSettings(**api))


@pytest.fixture
def make_client(
    session_factory: sessionmaker[Session], dispatcher: FakeDispatcher
) -> Iterator[Any]:
    """Builds a started client for the given API settings."""
    clients: list[TestClient] = []

    def make(**api: Any) -> TestClient:
        client = TestClient(create_app(_settings(**api), dispatcher, session_factory))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any) -> TestClient:
    """A client with auth disabled (auth has its own tests)."""
    return make_client(auth_enabled=False)  # type: ignore[no-any-return]


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code
    assert body["message"]
    return body  # type: ignore[no-any-return]


class TestSubmitFeedback:
    """POST /v1/feedback."""

    def test_single_item_is_stored_queued_and_announced(
        self, client: TestClient, dispatcher: FakeDispatcher
    ) -> None:
        """A single item gets 202, an id, a queued status and its job announced after commit."""
        response = client.post("/v1/feedback", json=ITEM)
        assert response.status_code == 202
        body = response.json()
        assert body["created"] == 1
        [item] = body["items"]
        assert item["outcome"] == "created"
        assert item["status"] == "queued"
        assert len(dispatcher.notified) == 1
        read = client.get(f"/v1/feedback/{item['id']}").json()
        assert read["status"] == "queued"
        assert [h["status"] for h in read["history"]] == ["queued"]
        assert read["analysis"] is None

    def test_all_fields_round_trip(self, client: TestClient) -> None:
        """Every optional field comes back as sent."""
        full = {
            **ITEM,
            "external_id": "full",
            "score": 2,
            "scale": "csat_1_5",
            "customer_id": "c9",
            "occurred_at": "2026-01-02T03:04:05+00:00",
            "employee_id": "e1",
            "team": "billing",
            "location": "Lyon",
            "journey": "refund",
            "segment": "smb",
            "language": "en",
            "metadata": {"order": 42, "tags": ["late"]},
        }
        [item] = client.post("/v1/feedback", json=full).json()["items"]
        read = client.get(f"/v1/feedback/{item['id']}").json()
        for key, value in full.items():
            if key == "occurred_at":
                assert read[key].startswith("2026-01-02T03:04:05")
            else:
                assert read[key] == value, key

    def test_batch(self, client: TestClient, dispatcher: FakeDispatcher) -> None:
        """A batch returns one entry per item, in order."""
        batch = {"items": [{**ITEM, "external_id": f"b{i}"} for i in range(3)]}
        body = client.post("/v1/feedback", json=batch).json()
        assert [i["external_id"] for i in body["items"]] == ["b0", "b1", "b2"]
        assert len(dispatcher.notified) == 3

    def test_same_external_id_is_a_duplicate(
        self, client: TestClient, dispatcher: FakeDispatcher
    ) -> None:
        """Resending an item returns the same id as a duplicate and queues nothing new."""
        first = client.post("/v1/feedback", json=ITEM).json()["items"][0]
        again = client.post("/v1/feedback", json=ITEM)
        assert again.status_code == 202
        item = again.json()["items"][0]
        assert item["id"] == first["id"]
        assert item["outcome"] == "duplicate"
        assert len(dispatcher.notified) == 1

    def test_idempotency_key_replay(self, client: TestClient) -> None:
        """The same Idempotency-Key returns the first item even with a new external_id."""
        headers = {"Idempotency-Key": "k-123"}
        first = client.post("/v1/feedback", json=ITEM, headers=headers).json()["items"][0]
        other = {**ITEM, "external_id": "r-2"}
        again = client.post("/v1/feedback", json=other, headers=headers).json()["items"][0]
        assert again["id"] == first["id"]
        assert again["outcome"] == "duplicate"

    def test_idempotency_key_with_batch_is_refused(self, client: TestClient) -> None:
        """An Idempotency-Key on a batch is a 400 explaining per-item idempotency."""
        response = client.post(
            "/v1/feedback", json={"items": [ITEM]}, headers={"Idempotency-Key": "k"}
        )
        _error(response, 400, "idempotency_key_with_batch")

    def test_notify_failure_still_accepts(
        self, client: TestClient, dispatcher: FakeDispatcher
    ) -> None:
        """A broker outage after commit never loses the item: 202, job stays queued."""

        def broken(job_ids: Sequence[str]) -> None:
            raise ConnectionError("broker down")

        dispatcher.notify = broken  # type: ignore[method-assign]
        response = client.post("/v1/feedback", json=ITEM)
        assert response.status_code == 202


class TestConcurrentDuplicates:
    """Idempotency under concurrent requests, on SQLite and PostgreSQL."""

    @pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
    def test_racing_requests_store_one_item(
        self, backend: str, request: pytest.FixtureRequest, dispatcher: FakeDispatcher
    ) -> None:
        """Six simultaneous posts of one external_id: one created, all the same id."""
        engine = create_db_engine(request.getfixturevalue(backend))
        request.addfinalizer(engine.dispose)
        session_factory = create_session_factory(engine)
        app = create_app(_settings(auth_enabled=False), dispatcher, session_factory)
        barrier = threading.Barrier(6)
        answers: list[dict[str, Any]] = []

        def post() -> None:
            client = TestClient(app)
            barrier.wait()
            answers.append(client.post("/v1/feedback", json=ITEM).json()["items"][0])

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(answers) == 6
        assert [a["outcome"] for a in answers].count("created") == 1
        assert len({a["id"] for a in answers}) == 1
        with session_factory() as session:
            assert session.scalar(select(func.count()).select_from(FeedbackItem)) == 1
            assert session.scalar(select(func.count()).select_from(Job)) == 1


class TestBadInput:
    """Every malformed request is a 4xx naming the problem, never a 500."""

    def test_empty_text(self, client: TestClient) -> None:
        """Whitespace-only text is refused with the field named."""
        body = _error(
            client.post("/v1/feedback", json={**ITEM, "text": "  "}), 422, "validation_error"
        )
        assert body["details"][0]["field"] == "text"

    def test_oversized_text(self, make_client: Any) -> None:
        """Text over api.max_text_chars is refused with the numbers."""
        client = make_client(auth_enabled=False, max_text_chars=50)
        body = _error(
            client.post("/v1/feedback", json={**ITEM, "text": "x" * 51}), 422, "text_too_long"
        )
        assert "51" in body["message"]
        assert "50" in body["message"]

    def test_invalid_channel(self, client: TestClient) -> None:
        """An unknown channel names the field and the allowed values."""
        body = _error(
            client.post("/v1/feedback", json={**ITEM, "channel": "fax"}), 422, "validation_error"
        )
        assert body["details"][0]["field"] == "channel"
        assert "survey" in body["message"]

    def test_invalid_channel_inside_a_batch(self, client: TestClient) -> None:
        """In a batch the failing item's position is named."""
        batch = {"items": [ITEM, {**ITEM, "external_id": "x", "channel": "fax"}]}
        body = _error(client.post("/v1/feedback", json=batch), 422, "validation_error")
        assert body["details"][0]["field"] == "items.1.channel"

    @pytest.mark.parametrize(
        ("score", "scale"),
        [(11, "nps_0_10"), (0, "csat_1_5"), (3.5, "csat_1_5"), (5.5, "stars_1_5"), (4, None)],
    )
    def test_score_off_its_scale(self, client: TestClient, score: float, scale: str | None) -> None:
        """A score outside its scale (or without one) is refused."""
        response = client.post("/v1/feedback", json={**ITEM, "score": score, "scale": scale})
        _error(response, 422, "validation_error")

    def test_score_on_its_scale(self, client: TestClient) -> None:
        """Valid scores on each scale are accepted."""
        for i, (score, scale) in enumerate([(0, "nps_0_10"), (4.5, "stars_1_5"), (7, "ces_1_7")]):
            payload = {**ITEM, "external_id": f"s{i}", "score": score, "scale": scale}
            assert client.post("/v1/feedback", json=payload).status_code == 202

    def test_unknown_field(self, client: TestClient) -> None:
        """A misspelt field is named rather than silently dropped."""
        body = _error(
            client.post("/v1/feedback", json={**ITEM, "chanel": "x"}), 422, "validation_error"
        )
        assert any(d["field"] == "chanel" for d in body["details"])

    def test_malformed_json(self, client: TestClient) -> None:
        """Broken JSON is a 400 saying so."""
        response = client.post(
            "/v1/feedback", content=b'{"text": "a",', headers={"Content-Type": "application/json"}
        )
        assert "JSON" in _error(response, 400, "malformed_json")["message"]

    def test_wrong_content_type(self, client: TestClient) -> None:
        """A form or text body is a 415."""
        response = client.post(
            "/v1/feedback",
            content=b"text=hello",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        _error(response, 415, "unsupported_media_type")

    def test_missing_content_type(self, client: TestClient) -> None:
        """A body without a Content-Type is a 415."""
        response = client.post("/v1/feedback", content=b'{"a": 1}')
        _error(response, 415, "unsupported_media_type")

    def test_non_utf8_body(self, client: TestClient) -> None:
        """Latin-1 bytes are a 400 naming the encoding problem."""
        raw = '{"external_id": "e", "text": "café", "channel": "chat"}'.encode("latin-1")
        response = client.post(
            "/v1/feedback", content=raw, headers={"Content-Type": "application/json"}
        )
        assert "UTF-8" in _error(response, 400, "invalid_encoding")["message"]

    def test_too_many_items(self, make_client: Any) -> None:
        """A batch over api.max_batch_items is a 413 naming the maximum."""
        client = make_client(auth_enabled=False, max_batch_items=2)
        batch = {"items": [{**ITEM, "external_id": f"m{i}"} for i in range(3)]}
        assert (
            "2" in _error(client.post("/v1/feedback", json=batch), 413, "too_many_items")["message"]
        )

    def test_empty_batch(self, client: TestClient) -> None:
        """A batch with no items is refused."""
        _error(client.post("/v1/feedback", json={"items": []}), 422, "validation_error")

    def test_body_too_large(self, make_client: Any) -> None:
        """A body over api.max_request_bytes is a 413."""
        client = make_client(auth_enabled=False, max_request_bytes=2048)
        response = client.post("/v1/feedback", json={**ITEM, "text": "y" * 4000})
        _error(response, 413, "payload_too_large")

    def test_body_not_an_object(self, client: TestClient) -> None:
        """A JSON array or string is a 422, not a crash."""
        for payload in ([1, 2], "text", None):
            response = client.post("/v1/feedback", json=payload)
            assert 400 <= response.status_code < 500, response.text

    def test_unknown_feedback_id(self, client: TestClient) -> None:
        """Reading an unknown id is a 404."""
        _error(client.get("/v1/feedback/nope"), 404, "not_found")


class TestAuth:
    """API keys and scopes."""

    def _key(self, factory: sessionmaker[Session], scopes: list[str]) -> str:
        with factory() as session:
            issued = auth.create_key(session, "test", scopes)
            session.commit()
            return issued.token

    def test_missing_key_is_401(self, make_client: Any) -> None:
        """Without a key: 401 telling how to send one."""
        client = make_client()
        body = _error(client.post("/v1/feedback", json=ITEM), 401, "unauthenticated")
        assert "X-API-Key" in body["message"]

    def test_wrong_key_is_401(self, make_client: Any, session_factory: Any) -> None:
        """A forged secret with a real prefix is rejected."""
        client = make_client()
        token = self._key(session_factory, ["ingest"])
        forged = token[: token.rindex("_") + 1] + "forged"
        response = client.post("/v1/feedback", json=ITEM, headers={"X-API-Key": forged})
        _error(response, 401, "invalid_api_key")

    def test_missing_scope_is_403(self, make_client: Any, session_factory: Any) -> None:
        """A read-only key cannot ingest."""
        client = make_client()
        token = self._key(session_factory, ["read"])
        response = client.post(
            "/v1/feedback", json=ITEM, headers={"Authorization": f"Bearer {token}"}
        )
        assert "ingest" in _error(response, 403, "insufficient_scope")["message"]

    def test_scopes_grant_their_routes(self, make_client: Any, session_factory: Any) -> None:
        """An ingest key posts, a read key reads, via either header."""
        client = make_client()
        ingest = self._key(session_factory, ["ingest"])
        read = self._key(session_factory, ["read"])
        posted = client.post("/v1/feedback", json=ITEM, headers={"X-API-Key": ingest})
        assert posted.status_code == 202
        item_id = posted.json()["items"][0]["id"]
        ok = client.get(f"/v1/feedback/{item_id}", headers={"Authorization": f"Bearer {read}"})
        assert ok.status_code == 200
        denied = client.get(f"/v1/feedback/{item_id}", headers={"X-API-Key": ingest})
        _error(denied, 403, "insufficient_scope")

    def test_admin_grants_everything(self, make_client: Any, session_factory: Any) -> None:
        """The admin scope passes every scope check."""
        client = make_client()
        token = self._key(session_factory, ["admin"])
        assert (
            client.post("/v1/feedback", json=ITEM, headers={"X-API-Key": token}).status_code == 202
        )

    def test_revoked_key_is_401(self, make_client: Any, session_factory: Any) -> None:
        """A revoked key stops working."""
        client = make_client()
        token = self._key(session_factory, ["ingest"])
        with session_factory() as session:
            api_keys.revoke(session, token.split("_")[1])
            session.commit()
        response = client.post("/v1/feedback", json=ITEM, headers={"X-API-Key": token})
        _error(response, 401, "invalid_api_key")

    def test_stored_hash_only(self, session_factory: Any) -> None:
        """The secret is not stored, only its hash."""
        token = self._key(session_factory, ["read"])
        with session_factory() as session:
            [row] = api_keys.list_all(session)
            assert token.split("_", 2)[2] not in (row.secret_hash, row.prefix)
            assert row.secret_hash == auth.hash_secret(token.split("_", 2)[2])

    def test_health_needs_no_key(self, make_client: Any) -> None:
        """Probes and metrics are open."""
        client = make_client()
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200, path


class TestReadFeedback:
    """GET /v1/feedback/{id} after the analysis is stored."""

    def test_stored_analysis_is_returned(
        self, client: TestClient, session_factory: sessionmaker[Session]
    ) -> None:
        """Once a worker stores the analysis, the item reads done with the contract object."""
        item = client.post("/v1/feedback", json=ITEM).json()["items"][0]
        with session_factory() as session:
            job = jobs.claim_next(session, ["feedback.analyze"], "w", 30)
            assert job is not None
            analyses.complete_feedback_analysis(
                session, job.id, item["id"], _contract(item["id"], ITEM["text"]), {"encoder": "x"}
            )
        read = client.get(f"/v1/feedback/{item['id']}").json()
        assert read["status"] == "done"
        assert read["analysis"]["sentiment"]["label"] == "negative"
        assert [h["status"] for h in read["history"]] == ["queued", "running", "done"]


class TestAnalyze:
    """POST /v1/analyze."""

    def test_results_in_order(self, client: TestClient) -> None:
        """One contract object per text, ids defaulting to positions."""
        response = client.post(
            "/v1/analyze", json={"items": [{"text": "a"}, {"text": "b", "id": "x"}]}
        )
        assert response.status_code == 200
        assert [r["id"] for r in response.json()["results"]] == ["0", "x"]

    def test_feedback_fields_reach_the_analysis(
        self, client: TestClient, dispatcher: FakeDispatcher
    ) -> None:
        """Score, scale and customer travel with the text: the detections read them."""
        item = {"text": "fine", "score": 5, "scale": "csat_1_5", "customer_id": "c-1"}
        assert client.post("/v1/analyze", json={"items": [item]}).status_code == 200
        assert dispatcher.analysed[-1] == {**item, "id": "0"}

    def test_feedback_fields_are_validated_like_feedback(self, client: TestClient) -> None:
        """A score outside its scale is refused as it is for POST /v1/feedback."""
        item = {"text": "fine", "score": 11, "scale": "nps_0_10"}
        body = _error(client.post("/v1/analyze", json={"items": [item]}), 422, "validation_error")
        assert "nps_0_10" in body["message"]

    def test_unavailable_is_503(self, client: TestClient, dispatcher: FakeDispatcher) -> None:
        """When the backend cannot analyse, the caller gets a 503 saying why."""
        dispatcher.available = False
        response = client.post("/v1/analyze", json={"items": [{"text": "a"}]})
        assert "loading" in _error(response, 503, "analysis_unavailable")["message"]

    def test_limits(self, make_client: Any) -> None:
        """Too many or too long texts are refused with the limit."""
        client = make_client(auth_enabled=False, analyze_max_texts=2, analyze_max_chars=10)
        many = {"items": [{"text": "a"}] * 3}
        _error(client.post("/v1/analyze", json=many), 413, "too_many_items")
        long = {"items": [{"text": "a" * 11}]}
        _error(client.post("/v1/analyze", json=long), 422, "text_too_long")


class TestOperations:
    """Health, readiness, metrics, lifecycle."""

    def test_lifespan_starts_and_stops_the_dispatcher(
        self, session_factory: Any, dispatcher: FakeDispatcher
    ) -> None:
        """The dispatcher runs exactly while the app does."""
        with TestClient(create_app(_settings(), dispatcher, session_factory)):
            assert dispatcher.started
            assert not dispatcher.stopped
        assert dispatcher.stopped

    def test_readyz_reports_a_failing_component(
        self, client: TestClient, dispatcher: FakeDispatcher
    ) -> None:
        """A component that is not ready makes /readyz a 503 naming it."""
        assert client.get("/readyz").json()["checks"] == {"database": True, "models": True}
        dispatcher.ready = {"models": False}
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["models"] is False

    def test_metrics_count_requests_items_and_jobs(self, client: TestClient) -> None:
        """Requests by route, accepted items and jobs by status are exposed."""
        client.post("/v1/feedback", json=ITEM)
        client.post("/v1/feedback", json=ITEM)
        text = client.get("/metrics").text
        assert (
            'undertone_http_requests_total{method="POST",route="/v1/feedback",status="202"} 2.0'
            in text
        )
        assert 'undertone_feedback_items_total{outcome="duplicate"} 1.0' in text
        assert 'undertone_jobs{status="queued"} 1.0' in text

    def test_request_id_is_echoed(self, client: TestClient) -> None:
        """A caller's X-Request-ID comes back; otherwise one is made."""
        assert (
            client.get("/healthz", headers={"X-Request-ID": "abc-1"}).headers["x-request-id"]
            == "abc-1"
        )
        assert client.get("/healthz").headers["x-request-id"]

    def test_openapi_documents_the_routes(self, client: TestClient) -> None:
        """/docs and the schema list the v1 routes."""
        schema = client.get("/openapi.json").json()
        assert {"/v1/feedback", "/v1/feedback/{feedback_id}", "/v1/analyze"} <= set(schema["paths"])
        assert client.get("/docs").status_code == 200

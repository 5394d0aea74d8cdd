"""/v1/taxonomies on a real database: upload, validate, list, activate, roll back, scopes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service import auth
from service.api import routes_taxonomies
from service.api.app import create_app
from service.config import ApiSettings, Settings
from workers.taxonomy import TaxonomyTools

DEFAULT = Path(__file__).resolve().parents[2] / "taxonomies" / "service_recovery.yaml"
YAML = {"Content-Type": "application/yaml"}


class IdleDispatcher:
    """No analysis happens in these tests: the taxonomy routes never reach the dispatcher."""

    def notify(self, job_ids: Sequence[str], kind: str | None = None) -> None: ...

    def analyze_now(self, items: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        raise AssertionError("not used")

    def readiness(self) -> dict[str, bool]:
        return {}

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _client(factory: sessionmaker[Session], auth_enabled: bool) -> TestClient:
    settings = Settings(api=ApiSettings(auth_enabled=auth_enabled))
    app = create_app(settings, IdleDispatcher(), factory)
    # No encoder: like a scaled-out API process, the reports answer 503.
    routes_taxonomies.install(app, TaxonomyTools(factory, None))
    return TestClient(app)


@pytest.fixture
def client(session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    """Auth disabled (scopes have their own test)."""
    with _client(session_factory, auth_enabled=False) as c:
        yield c


def _version(text: str, version: str) -> str:
    return text.replace('version: "1.0.0"', f'version: "{version}"', 1)


class TestTaxonomyVersions:
    """Versions are immutable, validated, activated and rolled back."""

    def test_migration_seeds_the_default_taxonomy_as_active(self, client: TestClient) -> None:
        """A fresh database has service_recovery 1.0.0 active, with its YAML."""
        body = client.get("/v1/taxonomies/active").json()
        assert (body["name"], body["version"], body["active"]) == (
            "service_recovery",
            "1.0.0",
            True,
        )
        assert body["case_types"] >= 19
        assert body["content"] == DEFAULT.read_text("utf-8")

    def test_upload_is_immutable(self, client: TestClient) -> None:
        """201 when new, 200 for the same content again, 409 for changed content."""
        text = _version(DEFAULT.read_text("utf-8"), "1.1.0")
        first = client.post("/v1/taxonomies", content=text, headers=YAML)
        assert first.status_code == 201, first.text
        assert first.json()["version"] == "1.1.0"
        again = client.post("/v1/taxonomies", content="# a comment\n" + text, headers=YAML)
        assert again.status_code == 200
        changed = text.replace("name: Billing error", "name: Billing mistake")
        conflict = client.post("/v1/taxonomies", content=changed, headers=YAML)
        assert conflict.status_code == 409
        assert conflict.json()["error"]["code"] == "taxonomy_version_exists"
        versions = [v["version"] for v in client.get("/v1/taxonomies").json()]
        assert sorted(versions) == ["1.0.0", "1.1.0"]

    def test_invalid_taxonomy_is_422_with_lines_and_fields(self, client: TestClient) -> None:
        """Every problem names its line and field, and nothing is stored."""
        bad = 'name: x\nversion: "1"\ncase_types:\n  - id: a\n    nme: A\n'
        for path in ("/v1/taxonomies/validate", "/v1/taxonomies"):
            response = client.post(path, content=bad, headers=YAML)
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_taxonomy"
            found = {(d["line"], d["field"]) for d in error["details"]}
            assert (5, "case_types[0].nme") in found
            assert (4, "case_types[0].name") in found
        assert len(client.get("/v1/taxonomies").json()) == 1

    def test_validate_answers_the_summary(self, client: TestClient) -> None:
        """A valid file: name, version and case types, not stored."""
        text = _version(DEFAULT.read_text("utf-8"), "9.9.9")
        body = client.post("/v1/taxonomies/validate", content=text, headers=YAML).json()
        assert body["valid"] is True
        assert body["version"] == "9.9.9"
        assert "billing_error" in {c["id"] for c in body["case_types"]}
        assert client.get("/v1/taxonomies/service_recovery/9.9.9").status_code == 404

    def test_activate_and_roll_back(self, client: TestClient) -> None:
        """Activation switches the active version; rollback returns to the previous one."""
        assert client.post("/v1/taxonomies/rollback").status_code == 409
        text = _version(DEFAULT.read_text("utf-8"), "2.0.0")
        assert client.post("/v1/taxonomies", content=text, headers=YAML).status_code == 201
        assert client.get("/v1/taxonomies/active").json()["version"] == "1.0.0"
        assert client.post("/v1/taxonomies/service_recovery/2.0.0/activate").status_code == 200
        assert client.get("/v1/taxonomies/active").json()["version"] == "2.0.0"
        assert client.post("/v1/taxonomies/rollback").json()["version"] == "1.0.0"
        assert client.get("/v1/taxonomies/active").json()["version"] == "1.0.0"
        missing = client.post("/v1/taxonomies/service_recovery/7.0.0/activate")
        assert missing.status_code == 404

    def test_reports_need_the_encoder(self, client: TestClient) -> None:
        """Without a loaded encoder (scaled-out API) evaluate answers 503 with a pointer."""
        response = client.post("/v1/taxonomies/evaluate", json={"items": [{"text": "x"}]})
        assert response.status_code == 503
        assert "undertone taxonomy" in response.json()["error"]["message"]


class TestTaxonomyScope:
    """Only taxonomy-admin (or admin) keys change taxonomies."""

    def test_read_key_is_refused(self, session_factory: sessionmaker[Session]) -> None:
        """A read key gets 403; a taxonomy-admin key gets through."""
        with session_factory() as session:
            reader = auth.create_key(session, "reader", ["read"]).token
            owner = auth.create_key(session, "owner", ["taxonomy-admin"]).token
            session.commit()
        with _client(session_factory, auth_enabled=True) as client:
            refused = client.get("/v1/taxonomies", headers={"X-API-Key": reader})
            assert refused.status_code == 403
            allowed = client.get("/v1/taxonomies", headers={"X-API-Key": owner})
            assert allowed.status_code == 200

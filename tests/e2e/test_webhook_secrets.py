"""Webhook signing secrets encrypted at rest, end to end: real API, real delivery threads (and
a real `undertone worker` in Celery mode), a real local receiver, SQLite and PostgreSQL.

Every delivery is checked the way a receiver would: `verify` with the plaintext secret the API
returned once, at creation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker
from structlog.testing import CapturingLogger
from typer.testing import CliRunner

from service import secrets_at_rest
from service.api.app import create_app
from service.cli import app as cli
from service.config import ApiSettings, QueueSettings, Settings, WebhookSettings
from service.db.engine import create_db_engine, create_session_factory
from service.db.models import Job
from service.db.repositories import webhooks
from service.secrets_at_rest import ENCRYPTED_PREFIX, SecretCipher, generate_key
from service.webhooks import generate_secret, verify
from tests.conftest import _free_port
from tests.e2e.detections_support import Receiver, RuleAnalyzer, webhook_receiver
from tests.e2e.support import process_env, running, start_cli, wait_for
from workers.celery_dispatch import CeleryDispatcher
from workers.delivery import build_delivery_handlers
from workers.embedded import EmbeddedDispatcher
from workers.runtime import AnalysisRuntime

DEADLINE = 60.0
OLD, NEW, STRANGER = generate_key(), generate_key(), generate_key()
WARNING = "webhook_secrets_unencrypted"
UNDECRYPTABLE = "webhook_secrets_undecryptable"
runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database on each backend in turn."""
    url: str = request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "postgres_url"
    )
    return url


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test database."""
    engine = create_db_engine(db_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


def _webhooks(*keys: str, backoff: float = 0.1) -> WebhookSettings:
    return WebhookSettings(
        timeout_seconds=2.0,
        max_attempts=2,
        backoff_base_seconds=backoff,
        backoff_max_seconds=backoff,
        jitter=0.0,
        allow_private_urls=True,
        secret_keys=",".join(keys) or None,  # type: ignore[arg-type]
    )


def _settings(db_url: str, tmp_path: Path, *keys: str, backoff: float = 0.1) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        api=ApiSettings(auth_enabled=False),
        queue=QueueSettings(lease_seconds=10.0, sweep_interval_seconds=0.2),
        webhooks=_webhooks(*keys, backoff=backoff),
    )


def _app(
    db_url: str,
    tmp_path: Path,
    factory: sessionmaker[Session],
    *keys: str,
    backoff: float = 0.1,
) -> TestClient:
    """The API with embedded delivery threads, configured with ``keys``."""
    settings = _settings(db_url, tmp_path, *keys, backoff=backoff)
    analyzer = RuleAnalyzer()  # never called: only deliveries run here
    dispatcher = EmbeddedDispatcher(
        settings,
        factory,
        runtime=AnalysisRuntime(settings, analyzer=analyzer),
        handlers=build_delivery_handlers(settings.webhooks),
    )
    return TestClient(create_app(settings, dispatcher, factory))


def _subscribe(client: TestClient, url: str) -> tuple[str, str]:
    response = client.post("/v1/webhooks", json={"url": url})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["secret"]


def _stored(factory: sessionmaker[Session], hook: str) -> str:
    """The raw column, read with plain SQL."""
    with factory() as session:
        return str(
            session.execute(
                text("SELECT secret FROM webhook_subscriptions WHERE id = :id"), {"id": hook}
            ).scalar_one()
        )


def _ping_verifies(client: TestClient, receiver: Receiver, hook: str, secret: str) -> None:
    """A test ping reaches the receiver and verifies with ``secret``."""
    before = len(receiver.accepted)
    assert client.post(f"/v1/webhooks/{hook}/test").status_code == 202
    wait_for(lambda: len(receiver.accepted) > before, "the ping", timeout=DEADLINE)
    entry = receiver.accepted[-1]
    assert verify(entry["body"], entry["headers"], secret)["type"] == "webhook.test"


def _webhooks_cli(command: str, db_url: str, tmp_path: Path, *keys: str) -> Any:
    """`undertone webhooks <command>` with ``keys`` as its configured keys."""
    env = {
        "UNDERTONE_DATA_DIR": str(tmp_path),
        "UNDERTONE_DATABASE_URL": db_url,
        "UNDERTONE_LOG_FORMAT": "console",
        "UNDERTONE_WEBHOOKS__SECRET_KEYS": ",".join(keys),
    }
    return runner.invoke(cli, ["webhooks", command], env=env)


def _reencrypt(db_url: str, tmp_path: Path, *keys: str) -> Any:
    return _webhooks_cli("reencrypt", db_url, tmp_path, *keys)


def _stranger_subscription(factory: sessionmaker[Session]) -> str:
    """A subscription whose secret was sealed with a key no test process is given."""
    with factory() as session:
        row = webhooks.create_subscription(
            session,
            "https://example.com/h",
            ["detection.created"],
            generate_secret(),
            cipher=SecretCipher([STRANGER]),
        )
        session.commit()
        return row.id


class TestEncryptedAtRest:
    def test_column_holds_no_plaintext_and_the_delivery_verifies(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """With a key: the column is a fernet token, the message verifies with the secret."""
        with (
            webhook_receiver(Receiver()) as receiver,
            _app(db_url, tmp_path, session_factory, NEW) as client,
        ):
            hook, secret = _subscribe(client, receiver.url)
            stored = _stored(session_factory, hook)
            assert stored.startswith(ENCRYPTED_PREFIX)
            assert secret not in stored
            assert secret[len("whsec_") :] not in stored
            _ping_verifies(client, receiver, hook, secret)

    def test_rotation_old_key_second_then_reencrypt(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """[new, old] still delivers an old-key secret; reencrypt moves it to the new key (once),
        after which the new key alone delivers."""
        with webhook_receiver(Receiver()) as receiver:
            with _app(db_url, tmp_path, session_factory, OLD) as client:
                hook, secret = _subscribe(client, receiver.url)
            with _app(db_url, tmp_path, session_factory, NEW, OLD) as client:
                _ping_verifies(client, receiver, hook, secret)
            moved = _reencrypt(db_url, tmp_path, NEW, OLD)
            assert moved.exit_code == 0, moved.output
            assert "1 secret(s) re-encrypted with the first key, 0 already were" in moved.stdout
            assert SecretCipher([NEW]).unseal(_stored(session_factory, hook)) == secret
            again = _reencrypt(db_url, tmp_path, NEW, OLD)
            assert "0 secret(s) re-encrypted with the first key, 1 already were" in again.stdout
            with _app(db_url, tmp_path, session_factory, NEW) as client:
                _ping_verifies(client, receiver, hook, secret)

    def test_legacy_plaintext_row_delivers_and_gets_encrypted(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """A row stored before encryption still delivers with a key set; reencrypt seals it."""
        with webhook_receiver(Receiver()) as receiver:
            with _app(db_url, tmp_path, session_factory) as client:  # no key: as before
                hook, secret = _subscribe(client, receiver.url)
            assert _stored(session_factory, hook) == secret
            with _app(db_url, tmp_path, session_factory, NEW) as client:
                _ping_verifies(client, receiver, hook, secret)
            result = _reencrypt(db_url, tmp_path, NEW)
            assert result.exit_code == 0, result.output
            assert "1 secret(s) re-encrypted" in result.stdout
            assert secret not in _stored(session_factory, hook)
            with _app(db_url, tmp_path, session_factory, NEW) as client:
                _ping_verifies(client, receiver, hook, secret)


class TestWrongKey:
    def test_delivery_fails_clearly_and_the_api_still_answers(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """No configured key decrypts the secret: nothing is sent, the delivery (and its job)
        says why, it ends dead after its attempts, and every read of the API answers."""
        with webhook_receiver(Receiver()) as receiver:
            with _app(db_url, tmp_path, session_factory, OLD) as client:
                hook, secret = _subscribe(client, receiver.url)
            # A retry 5 s after the first failure: time to look at the job in between.
            with _app(db_url, tmp_path, session_factory, STRANGER, backoff=5.0) as client:
                ping = client.post(f"/v1/webhooks/{hook}/test")
                assert ping.status_code == 202
                delivery = ping.json()["id"]

                def state(status: str | None = None) -> dict[str, Any] | None:
                    params = {"status": status} if status else {}
                    items = client.get(f"/v1/webhooks/{hook}/deliveries", params=params).json()
                    found = [d for d in items["items"] if d["attempts"] >= 1]
                    return found[0] if found else None

                first = wait_for(state, "the first attempt", timeout=DEADLINE)
                assert (first["id"], first["status"], first["attempts"]) == (delivery, "pending", 1)
                assert first["last_status_code"] is None
                assert first["last_error"].startswith("not sent: none of the 1 key(s) in ")
                assert "UNDERTONE_WEBHOOKS__SECRET_KEYS" in first["last_error"]
                with session_factory() as session:
                    job = session.scalars(select(Job).where(Job.subject_id == delivery)).one()
                    assert job.status == "queued"
                    assert job.last_error == first["last_error"]
                assert client.get("/v1/webhooks").status_code == 200
                assert client.get(f"/v1/webhooks/{hook}").status_code == 200
                letter = wait_for(
                    lambda: state("dead"), "the delivery to end dead", timeout=DEADLINE
                )
                assert letter["attempts"] == 2
                assert letter["last_error"] == first["last_error"]
            assert receiver.requests == []
            # The key put back: the replayed message goes out and verifies.
            with _app(db_url, tmp_path, session_factory, STRANGER, OLD) as client:
                replay = client.post(f"/v1/webhooks/{hook}/deliveries/{delivery}/replay")
                assert replay.status_code == 202
                wait_for(lambda: receiver.accepted, "the replayed message", timeout=DEADLINE)
                final = client.get(f"/v1/webhooks/{hook}/deliveries").json()["items"]
            entry = receiver.accepted[0]
            assert verify(entry["body"], entry["headers"], secret)["type"] == "webhook.test"
        assert [d["status"] for d in final] == ["delivered"]

    def test_reencrypt_reports_rows_no_key_opens(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """Exit 1 naming the subscription, the row untouched; no key at all: exit 2."""
        hook = _stranger_subscription(session_factory)
        before = _stored(session_factory, hook)
        result = _reencrypt(db_url, tmp_path, NEW)
        assert result.exit_code == 1
        assert hook in result.output
        assert _stored(session_factory, hook) == before
        assert _reencrypt(db_url, tmp_path).exit_code == 2

    def test_check_and_start_name_rows_no_key_opens(
        self,
        db_url: str,
        tmp_path: Path,
        session_factory: sessionmaker[Session],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A wrong but valid key shows at start and in `webhooks check`, not only at delivery."""
        hook = _stranger_subscription(session_factory)
        wrong = _webhooks_cli("check", db_url, tmp_path, NEW)
        assert wrong.exit_code == 1, wrong.output
        assert hook in wrong.output
        assert "0 of 1 signing secret(s) readable" in wrong.output
        right = _webhooks_cli("check", db_url, tmp_path, NEW, STRANGER)
        assert right.exit_code == 0, right.output
        assert "1 of 1 signing secret(s) readable" in right.output
        # The start-up check's logger, recorded (structlog caches loggers on first use, so
        # capture_logs cannot be relied on across tests).
        recorder = CapturingLogger()
        monkeypatch.setattr(secrets_at_rest, "log", recorder)
        with _app(db_url, tmp_path, session_factory, NEW):
            pass  # the lifespan runs the start-up check
        errors = [c for c in recorder.calls if c.args == ("webhook_secrets_undecryptable",)]
        assert len(errors) == 1
        assert errors[0].method_name == "error"
        assert errors[0].kwargs["subscriptions"] == [hook]
        recorder.calls.clear()
        with _app(db_url, tmp_path, session_factory, STRANGER):
            pass
        assert recorder.calls == []


def test_generate_key_prints_a_usable_key() -> None:
    """`undertone webhooks generate-key` prints one Fernet key the setting accepts."""
    result = runner.invoke(cli, ["webhooks", "generate-key"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert WebhookSettings(secret_keys=key).fernet_keys == [key]  # type: ignore[arg-type]


# ------------------------------------------------------------------------- Celery processes


def _plain(log: Path) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))


@pytest.mark.celery
class TestProcesses:
    """`undertone serve` and `undertone worker` read the keys from their own environment."""

    def _env(self, offline_env: dict[str, str], settings: Settings, *keys: str) -> dict[str, str]:
        env = process_env(offline_env, settings)
        env["UNDERTONE_WEBHOOKS__ALLOW_PRIVATE_URLS"] = "true"
        if keys:
            env["UNDERTONE_WEBHOOKS__SECRET_KEYS"] = ",".join(keys)
        return env

    def test_worker_delivers_with_its_own_keys_and_warns_without(
        self,
        postgres_url: str,
        redis_url: str,
        tmp_path: Path,
        offline_env: dict[str, str],
    ) -> None:
        """A delivery worker with [new, old] signs an old-key secret; it logs no key and no
        warning, while a serve and a worker started without a key warn once each, and a worker
        with a wrong key names the subscription it cannot sign for."""
        settings = _settings(postgres_url, tmp_path, OLD).model_copy(
            update={
                "queue": QueueSettings(
                    backend="celery", broker_url=redis_url, sweep_interval_seconds=0.5
                )
            }
        )
        engine = create_db_engine(postgres_url)
        factory = create_session_factory(engine)
        worker_log, bare_log, serve_log = (
            tmp_path / "worker.log",
            tmp_path / "bare.log",
            tmp_path / "serve.log",
        )
        delivery_only = ["worker", "-Q", "undertone.delivery", "--pool", "threads", "-c", "2"]
        api = create_app(settings, CeleryDispatcher(settings), factory)
        try:
            with (
                webhook_receiver(Receiver()) as receiver,
                TestClient(api) as client,
                running(
                    start_cli(delivery_only, self._env(offline_env, settings, NEW, OLD), worker_log)
                ),
            ):
                hook, secret = _subscribe(client, receiver.url)
                assert _stored(factory, hook).startswith(ENCRYPTED_PREFIX)
                _ping_verifies(client, receiver, hook, secret)
            worker_text = _plain(worker_log)
            assert WARNING not in worker_text
            assert NEW not in worker_text
            assert OLD not in worker_text
            port = _free_port()
            bare_env = self._env(offline_env, settings)
            with (
                running(start_cli(delivery_only, bare_env, bare_log)),
                running(start_cli(["serve", "--port", str(port)], bare_env, serve_log)),
            ):
                wait_for(
                    lambda: WARNING in _plain(bare_log),
                    "the worker's warning",
                    timeout=DEADLINE,
                    log_path=bare_log,
                )
                wait_for(
                    lambda: WARNING in _plain(serve_log),
                    "the API's warning",
                    timeout=DEADLINE,
                    log_path=serve_log,
                )
            assert _plain(bare_log).count(WARNING) == 1
            assert _plain(serve_log).count(WARNING) == 1
            assert "undertone webhooks generate-key" in _plain(serve_log)
            assert UNDECRYPTABLE not in worker_text
            # A worker given a valid key that is not the secret's names the subscription at
            # start, before any delivery fails.
            wrong_log = tmp_path / "wrong.log"
            wrong_env = self._env(offline_env, settings, STRANGER)
            with running(start_cli(delivery_only, wrong_env, wrong_log)):
                wait_for(
                    lambda: UNDECRYPTABLE in _plain(wrong_log),
                    "the worker's start-up error",
                    timeout=DEADLINE,
                    log_path=wrong_log,
                )
            assert hook in _plain(wrong_log)
        finally:
            engine.dispose()

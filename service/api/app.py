"""The application factory: `create_app(settings, dispatcher, session_factory, audio_probe)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.api import (
    routes_analyze,
    routes_detections,
    routes_feedback,
    routes_health,
    routes_recordings,
    routes_trends,
    routes_webhooks,
)
from service.api.handlers import install_error_handlers
from service.api.metrics import ApiMetrics
from service.api.middleware import RequestContextMiddleware
from service.audio import AudioProbe
from service.config import Settings
from service.dispatch import Dispatcher
from service.logging import get_logger
from service.secrets_at_rest import UNENCRYPTED_HINT, SecretCipher, check_stored_secrets

log = get_logger(__name__)


def create_app(
    settings: Settings,
    dispatcher: Dispatcher,
    session_factory: sessionmaker[Session] | None = None,
    audio_probe: AudioProbe | None = None,
) -> FastAPI:
    """Build the API; the lifespan starts and stops ``dispatcher``.

    Without ``session_factory`` the app builds its own engine on
    ``settings.resolved_database_url`` (already migrated) and disposes it at shutdown.
    Without ``audio_probe`` (``workers.audio.probe_upload`` at the composition roots)
    recording uploads answer 503.
    """
    owned_engine = None
    if session_factory is None:
        from service.db.engine import create_db_engine, create_session_factory

        owned_engine = create_db_engine(settings.resolved_database_url)
        session_factory = create_session_factory(owned_engine)
    factory = session_factory
    # Webhook secrets are sealed with webhooks.secret_keys (see service.secrets_at_rest).
    secret_cipher = SecretCipher.from_settings(settings.webhooks)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        dispatcher.start()
        log.info("api_started", queue=settings.queue.backend, auth=settings.api.auth_enabled)
        if not secret_cipher.encrypts:
            log.warning("webhook_secrets_unencrypted", hint=UNENCRYPTED_HINT)
        else:
            check_stored_secrets(factory, secret_cipher)
        try:
            yield
        finally:
            dispatcher.stop()
            if owned_engine is not None:
                owned_engine.dispose()

    app = FastAPI(
        title="Undertone",
        version="0.1.0",
        description="Finds the complaint in customer feedback, stated or not.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.dispatcher = dispatcher
    app.state.session_factory = factory
    app.state.audio_probe = audio_probe
    app.state.secret_cipher = secret_cipher
    app.state.max_request_bytes = settings.api.max_request_bytes
    app.state.metrics = ApiMetrics(lambda: _count_jobs(factory))
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    app.include_router(routes_feedback.router)
    app.include_router(routes_recordings.router)
    app.include_router(routes_analyze.router)
    app.include_router(routes_health.router)
    app.include_router(routes_detections.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_trends.router)
    return app


def _count_jobs(factory: sessionmaker[Session]) -> dict[str, int]:
    from service.db.repositories import jobs

    with factory() as session:
        return jobs.count_by_status(session)

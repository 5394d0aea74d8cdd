"""`undertone serve`: the HTTP API, with its dispatcher (embedded threads or Celery)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from service.config import Settings
    from service.dispatch import Dispatcher


def register(root: typer.Typer) -> None:
    """Add the `serve` command."""
    root.command("serve")(serve)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """Upgrade the database, start the analysis backend and serve the API."""
    import uvicorn

    from service.api.app import create_app
    from service.cli.common import load_settings
    from service.db.engine import create_db_engine, create_session_factory
    from service.db.migrate import upgrade
    from service.db.repositories import api_keys
    from service.logging import get_logger

    log = get_logger("service.cli.serve")
    settings = load_settings()
    url = settings.resolved_database_url
    upgrade(url)
    engine = create_db_engine(url)
    factory = create_session_factory(engine)
    if settings.api.auth_enabled:
        with factory() as session:
            no_key = api_keys.count_active(session) == 0
        if no_key:
            hint = (
                "no API key exists yet: create one with "
                "`undertone keys create --name my-app --scopes ingest,read` and send it as "
                "'Authorization: Bearer <key>' (or set UNDERTONE_API__AUTH_ENABLED=false "
                "for a local trial)"
            )
            log.warning("no_api_key", hint=hint)
            typer.echo(hint, err=True)
    dispatcher = _build_dispatcher(settings, factory)
    from workers.audio import probe_upload  # recording uploads: PyAV only, no model

    app = create_app(settings, dispatcher, factory, audio_probe=probe_upload)
    from service.api import routes_taxonomies
    from workers.taxonomy import tools_for_api

    routes_taxonomies.install(app, tools_for_api(settings, factory))
    log.info(
        "serving",
        host=host,
        port=port,
        queue=settings.queue.backend,
        database=engine.url.render_as_string(hide_password=True),
    )
    try:
        # log_config=None keeps our structlog setup instead of uvicorn's own.
        uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=True)
    finally:
        engine.dispose()


def _build_dispatcher(settings: Settings, factory: sessionmaker[Session]) -> Dispatcher:
    # The CLI is a composition root: the workers (and, embedded, the models) load here only.
    if settings.queue.backend == "celery":
        from workers.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(settings)
    from workers.embedded import EmbeddedDispatcher

    return EmbeddedDispatcher(settings, factory)

"""Persistence: SQLAlchemy 2 models, engine construction, repositories and Alembic migrations."""

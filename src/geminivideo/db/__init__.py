"""Persistence: SQLAlchemy 2 models, per-process engine and sessions, Alembic migrations."""

"""Alembic environment: migrations run inside one transaction that holds a database-wide lock,
so several processes starting at once (gunicorn workers, hub instances) apply each migration
exactly once."""

from __future__ import annotations

from alembic import context
from flask import current_app
from sqlalchemy import text

# An arbitrary constant naming panoptes' migration lock among PostgreSQL advisory locks.
_PG_MIGRATION_LOCK = 0x70616E6F

target_db = current_app.extensions["migrate"].db


def run_migrations_online() -> None:
    engine = target_db.engine
    with engine.connect() as connection:
        # On SQLite, database.py turns this option into BEGIN IMMEDIATE: the write lock is
        # taken before Alembic reads the current revision.
        connection = connection.execution_options(panoptes_write=True)
        context.configure(
            connection=connection,
            target_metadata=target_db.metadata,
            transactional_ddl=True,
            render_as_batch=engine.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if engine.dialect.name == "postgresql":
                connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("panoptes migrations run online only (panoptes db upgrade).")
run_migrations_online()

"""Applying the Alembic migrations, safely from several processes at once."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_migrate import upgrade as alembic_upgrade

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def upgrade(app: Flask) -> None:
    """Bring the schema up to date. The migration environment takes a database-wide lock
    (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL), so gunicorn workers that
    start together apply each migration once."""
    with app.app_context():
        alembic_upgrade(directory=str(MIGRATIONS_DIR))

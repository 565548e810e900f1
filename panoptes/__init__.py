"""panoptes: one live monitor for Snakemake and Nextflow runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import config as configuration


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the hub. ``config`` overrides defaults and ``PANOPTES_*`` environment variables
    (tests pass e.g. ``{"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}``)."""
    from . import (
        api,
        auth,
        commands,
        database,
        errors,
        live,
        metrics,
        migrations_runner,
        openapi,
        ops,
        serializers,
        ui,
    )
    from .extensions import db, migrate
    from .ingest import snakemake, tower
    from .launcher import api as launcher_api
    from .launcher import queues
    from .launcher import ui as launcher_ui

    app = Flask(__name__)
    app.json = serializers.JsonProvider(app)
    app.config.from_mapping(configuration.load(config))
    configuration.check(app.config)
    queues.configured(app.config)  # a bad [queues] table stops the start, with its key
    db.init_app(app)
    migrate.init_app(app, db, directory=str(migrations_runner.MIGRATIONS_DIR))
    with app.app_context():
        database.configure(db.engine)
    errors.register(app)
    auth.protect(app)
    commands.register(app)
    app.register_blueprint(snakemake.bp)
    app.register_blueprint(tower.bp)
    app.register_blueprint(tower.bp, url_prefix="/api", name="tower_api")
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(ops.bp)
    launcher_api.register(app)
    app.register_blueprint(launcher_ui.bp)
    metrics.instrument(app)
    if app.config["AUTO_MIGRATE"]:
        migrations_runner.upgrade(app)
    return app

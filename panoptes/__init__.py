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
        engines,
        errors,
        hubstate,
        live,
        metrics,
        migrations_runner,
        openapi,
        ops,
        serializers,
        ui,
    )
    from .extensions import db, migrate
    from .launcher import api as launcher_api
    from .launcher import queues
    from .launcher import ui as launcher_ui
    from .notify import init_app as init_notifications
    from .seqera import api as seqera_api
    from .store import projector

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
    for adapter in engines.ADAPTERS.values():
        for route in adapter.routes():
            options = {"url_prefix": route.url_prefix, "name": route.name}
            app.register_blueprint(
                route.blueprint, **{k: v for k, v in options.items() if v is not None}
            )
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(ops.bp)
    launcher_api.register(app)
    app.register_blueprint(launcher_ui.bp)
    seqera_api.register(app)
    metrics.instrument(app)
    init_notifications(app)
    if app.config["AUTO_MIGRATE"]:
        migrations_runner.upgrade(app)
        # Otherwise the stored key is read when a cookie is first signed or checked (auth.py).
        hubstate.ensure_secret_key(app)
    if app.config["PROJECTOR_THREAD"]:
        # Started by the first request of each process: threads do not survive the fork of
        # gunicorn's workers, and a process that never serves does not need one.
        app.before_request(lambda: projector.for_app(app).ensure_running())
    return app

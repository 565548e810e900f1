"""Running the hub under gunicorn from the ``panoptes`` command."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from . import gunicorn_conf
from .extensions import db


def prepare_metrics_dir() -> None:
    """Give prometheus_client a fresh directory for the workers' metric files.

    Must run before prometheus_client is imported; files of an earlier run would be summed in.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="panoptes-metrics-")


class _Hub(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def _post_worker_init(worker: Any) -> None:
    gunicorn_conf.post_worker_init(worker)
    from .launcher import inprocess

    inprocess.start(worker.wsgi)


def serve(app: Flask, host: str, port: int, workers: int, threads: int) -> None:
    """Serve ``app`` with threaded gunicorn workers until interrupted."""
    with app.app_context():
        db.engine.dispose()  # no pooled connection may cross the fork into the workers
    options = {
        "bind": f"{host}:{port}",
        "worker_class": gunicorn_conf.worker_class,
        "workers": workers,
        "threads": threads,
        "timeout": gunicorn_conf.timeout,
        "graceful_timeout": gunicorn_conf.graceful_timeout,
        "keepalive": gunicorn_conf.keepalive,
        "accesslog": gunicorn_conf.accesslog,
        "errorlog": gunicorn_conf.errorlog,
        "child_exit": gunicorn_conf.child_exit,
        "control_socket_disable": gunicorn_conf.control_socket_disable,
        "post_worker_init": _post_worker_init,
    }
    _Hub(app, options).run()

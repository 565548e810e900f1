"""The worker the plain ``panoptes`` command runs: a thread in one of the hub's processes.

Every gunicorn worker process starts a thread that waits for an exclusive lock on a file of
this start; the one that gets it runs the launch worker, and if that process dies the lock
passes to another. So exactly one in-process worker runs while the hub does.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading

from flask import Flask

from .queues import configured
from .worker import Worker, hub_url

logger = logging.getLogger(__name__)
LOCK_SETTING = "LAUNCH_WORKER_LOCK"


def _hold_lock_then_work(app: Flask, path: str) -> None:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # held until this process ends
    hub = hub_url(app.config)
    if hub is None:
        logger.error("no hub address for the launch worker: set PANOPTES_PUBLIC_URL")
        return
    worker = Worker(app, list(configured(app.config).values()), hub)
    logger.info("launch worker %s runs in process %s", worker.worker_id, os.getpid())
    worker.run()


def start(app: Flask) -> threading.Thread | None:
    """Start the waiting thread in this process, if the hub runs a worker and has queues."""
    path = app.config.get(LOCK_SETTING)
    if not path or not app.config["LAUNCH_WORKER"] or not configured(app.config):
        return None
    thread = threading.Thread(
        target=_hold_lock_then_work, args=(app, str(path)), name="launch-worker", daemon=True
    )
    thread.start()
    return thread

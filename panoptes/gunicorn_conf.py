"""gunicorn settings: ``gunicorn -c python:panoptes.gunicorn_conf 'panoptes:create_app()'``.

Threaded workers: a live page (server-sent events) holds a thread, not a whole worker, so open
dashboards never starve ingestion. PANOPTES_BIND, PANOPTES_WORKERS and PANOPTES_THREADS set the
basics; anything else can be given on gunicorn's command line.
"""

import os
import tempfile
from typing import Any

# Workers write their metrics here; /metrics sums them (see panoptes/metrics.py). Set before
# any worker imports prometheus_client.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="panoptes-metrics-")

bind = os.environ.get("PANOPTES_BIND", "127.0.0.1:5000")
worker_class = "gthread"
workers = int(os.environ.get("PANOPTES_WORKERS", "2"))
threads = int(os.environ.get("PANOPTES_THREADS", "16"))
# Nextflow's begin/complete bodies can be several MB over slow links.
timeout = 120
# On SIGTERM workers finish the requests they hold (live streams end) before exiting.
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# gunicorn 27 opens a control socket at one fixed path per user: several hubs on one machine
# would fight over it, and the hub does not need it.
control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the metrics files."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def post_worker_init(worker: Any) -> None:
    """Start the worker's notifier (if notifications are set up), and end open live streams as
    soon as the worker is asked to stop (SIGTERM, SIGQUIT), so a graceful shutdown does not
    wait for them."""
    import signal

    from panoptes import notify
    from panoptes.live import SHUTTING_DOWN

    notify.start(worker.wsgi)

    for signum in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(received: int, frame: Any, previous: Any = previous) -> None:
            SHUTTING_DOWN.set()
            if callable(previous):
                previous(received, frame)

        signal.signal(signum, handler)

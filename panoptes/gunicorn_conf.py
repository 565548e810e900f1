"""gunicorn settings: ``gunicorn -c python:panoptes.gunicorn_conf 'panoptes:create_app()'``.

Threaded workers: a live page (server-sent events) holds a thread, not a whole worker, so open
dashboards never starve ingestion. Every value can be overridden with GUNICORN_* settings or
on the command line.
"""

import os

bind = os.environ.get("PANOPTES_BIND", "127.0.0.1:5000")
worker_class = "gthread"
workers = int(os.environ.get("PANOPTES_WORKERS", "2"))
threads = int(os.environ.get("PANOPTES_THREADS", "16"))
# Nextflow's begin/complete bodies can be several MB over slow links.
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# Workers start with the schema already migrated by the first one that ran (see migrations).
preload_app = False

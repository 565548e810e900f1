#!/bin/sh
# Container start: wait for the database, apply migrations, then hand the process to gunicorn
# (exec, so SIGTERM from `docker stop` reaches gunicorn and shuts it down gracefully).
set -eu
panoptes wait-db --timeout "${PANOPTES_WAIT_DB_SECONDS:-60}"
panoptes db upgrade
exec gunicorn -c python:panoptes.gunicorn_conf 'panoptes:create_app()' "$@"

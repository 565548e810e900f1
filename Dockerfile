# panoptes hub: gunicorn with threaded workers, migrations applied at start.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PANOPTES_BIND=0.0.0.0:5000

RUN useradd --create-home --uid 10001 panoptes
WORKDIR /app
COPY pyproject.toml README.md ./
COPY panoptes ./panoptes
RUN pip install .
COPY docker/entrypoint.sh /usr/local/bin/panoptes-entrypoint

USER panoptes
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/readyz', timeout=2)"
ENTRYPOINT ["sh", "/usr/local/bin/panoptes-entrypoint"]

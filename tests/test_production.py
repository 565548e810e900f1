"""Deployment: the compose file and Dockerfile (parsed; Docker cannot run here) and the exact
command the container runs, executed outside Docker."""

import os
import re
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import LiveHub

ROOT = Path(__file__).parent.parent
BIN = str(Path(sys.executable).parent)


def test_compose_has_the_hub_and_postgres_with_volume_healthchecks_and_ordering():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "hub", "worker"}
    db, hub = services["db"], services["hub"]
    assert db["image"].startswith("postgres:")
    assert "panoptes-db:/var/lib/postgresql/data" in db["volumes"]
    assert "panoptes-db" in compose["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert hub["build"] == "."
    assert hub["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert hub["env_file"] == ".env"
    assert hub["environment"]["PANOPTES_DATABASE_URL"].startswith("postgresql://")
    assert any(port.endswith(":5000") for port in hub["ports"])
    assert "/readyz" in " ".join(hub["healthcheck"]["test"])
    assert hub["restart"] == db["restart"] == "unless-stopped"


def test_compose_has_a_launch_worker_on_the_same_database():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    worker, hub = services["worker"], services["hub"]
    assert worker["build"] == "." and worker["profiles"] == ["launcher"]
    assert "panoptes worker" in " ".join(worker["entrypoint"])
    assert (
        worker["environment"]["PANOPTES_DATABASE_URL"]
        == hub["environment"]["PANOPTES_DATABASE_URL"]
    )
    assert "hub:5000" in worker["environment"]["PANOPTES_PUBLIC_URL"]
    assert worker["volumes"][0] == hub["volumes"][0] == "./config:/etc/panoptes:ro"


def test_env_example_names_every_variable_compose_reads():
    compose_text = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    for name in set(re.findall(r"\$\{([A-Z_]+)", compose_text)):
        assert re.search(rf"^#? ?{name}=", example, re.M), name
    assert re.search(r"^PANOPTES_SECRET_KEY=", example, re.M)


def test_dockerfile_runs_the_entrypoint_that_migrates_then_execs_gunicorn():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", dockerfile, re.M)
    assert "COPY docker/entrypoint.sh /usr/local/bin/panoptes-entrypoint" in dockerfile
    assert 'ENTRYPOINT ["sh", "/usr/local/bin/panoptes-entrypoint"]' in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, re.M)
    steps = [
        line
        for line in (ROOT / "docker/entrypoint.sh").read_text().splitlines()
        if line and not line.startswith("#") and not line.startswith("set ")
    ]
    assert steps[0].startswith("panoptes wait-db")
    assert steps[1] == "panoptes db upgrade"
    assert steps[2].startswith(
        "exec gunicorn -c python:panoptes.gunicorn_conf 'panoptes:create_app()'"
    )


def entrypoint_hub(tmp_path, database_url, workers="2"):
    """The container's command, outside the container."""
    return LiveHub(
        database_url,
        tmp_path / "entrypoint.log",
        command=["sh", str(ROOT / "docker/entrypoint.sh")],
        env={
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "PANOPTES_DATABASE_URL": database_url,
            "PANOPTES_BIND": "127.0.0.1:{port}",
            "PANOPTES_WORKERS": workers,
            "PANOPTES_THREADS": "4",
            "PANOPTES_SECRET_KEY": "test-only-" + "x" * 32,
            "PANOPTES_AUTO_MIGRATE": "0",  # the entrypoint's `panoptes db upgrade` must do it
        },
    )


def exercise(hub):
    session = requests.Session()
    workflow_id = session.post(
        f"{hub.url}/trace/create", json={"runName": "prod"}, timeout=5
    ).json()["workflowId"]
    for _ in range(9):
        assert session.put(f"{hub.url}/trace/{workflow_id}/heartbeat", json={}, timeout=5).ok
    # Each scrape may land on another worker: the sum must be the same every time.
    for _ in range(6):
        text = requests.get(f"{hub.url}/metrics", timeout=5).text
        line = next(
            row
            for row in text.splitlines()
            if row.startswith("panoptes_events_ingested_total") and 'kind="heartbeat"' in row
        )
        assert float(line.rsplit(" ", 1)[1]) == 9
    assert requests.get(f"{hub.url}/readyz", timeout=5).json()["status"] == "ready"
    return workflow_id


def test_container_command_outside_docker_on_sqlite(tmp_path):
    hub = entrypoint_hub(tmp_path, f"sqlite:///{tmp_path / 'prod.db'}").start(timeout=60)
    try:
        exercise(hub)
    finally:
        code = hub.stop(timeout=40)
    log = hub.log_path.read_text()
    assert code == 0, log[-2000:]  # graceful shutdown on SIGTERM
    assert "Database is reachable." in log
    assert '"PUT /trace/' in log  # gunicorn's access log
    assert "Shutting down: Master" in log


@pytest.mark.postgresql
def test_container_command_outside_docker_on_postgresql(tmp_path, postgres_url):
    hub = entrypoint_hub(tmp_path, postgres_url, workers="4").start(timeout=60)
    try:
        exercise(hub)
    finally:
        assert hub.stop(timeout=40) == 0

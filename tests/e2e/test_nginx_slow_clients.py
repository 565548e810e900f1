"""The production stack against slow clients: the shipped docker/nginx.conf, run by Debian's
nginx in front of a real gunicorn hub. 50 slowloris connections stop ingestion sent straight to
gunicorn, and do not stop it through nginx. (The latency under attack is measured by
bench/slow_clients.py, not asserted here.)"""

import json
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveHub
from tests.e2e.proxy import NGINX_CONF, Slowloris, nginx_binary, nginx_in_front, render

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
MIN_REQUESTS = 60
MAX_REQUESTS = 3000
ATTACK_ROUNDS = 3  # ingestion goes on for at least this many header lines per slow client


@pytest.fixture
def small_hub(tmp_path):
    """One gthread worker with 4 threads: what 50 slow clients overwhelm without a proxy."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = LiveHub(
        url,
        tmp_path / "hub.log",
        command=[
            str(BIN / "gunicorn"),
            "-c",
            "python:panoptes.gunicorn_conf",
            "panoptes:create_app()",
        ],
        env={
            "PANOPTES_DATABASE_URL": url,
            "PANOPTES_BIND": "127.0.0.1:{port}",
            "PANOPTES_WORKERS": "1",
            "PANOPTES_THREADS": "4",
            "PANOPTES_TRUSTED_PROXIES": "1",
        },
    ).start(timeout=60)
    yield hub
    hub.stop()


def ingest(url, session, number):
    """One ingestion request of each protocol in turn; the status code."""
    if number % 2:
        response = session.put(
            f"{url}/trace/slowloris00001/progress", json={"tasks": []}, timeout=(5, 60)
        )
    else:
        response = session.post(
            f"{url}/update_workflow_status",
            data={
                "id": "slowloris00002",
                "msg": json.dumps({"level": "progress", "done": number, "total": 9999}),
            },
            timeout=(5, 60),
        )
    return response.status_code


def test_the_shipped_configuration_is_what_runs():
    nginx_binary()
    text = NGINX_CONF.read_text()
    for directive in (
        "client_header_timeout",
        "client_body_timeout",
        "send_timeout",
        "limit_conn ",
        "proxy_request_buffering on;",
        "proxy_buffering on;",
    ):
        assert directive in text, directive
    rendered = render(text, 8080, 5000, Path("/tmp/x"))

    # Only addresses and paths differ between production and the test.
    def strip(conf):
        changed = ("listen ", "server hub", "server 127", "pid ", "_temp_path")
        return [line for line in conf.splitlines() if not any(word in line for word in changed)]

    assert strip(rendered) == strip(text)


def test_fifty_slowloris_clients_do_not_stop_ingestion_through_nginx(small_hub, tmp_path):
    hub_port = small_hub.port
    # Control: straight to gunicorn, the slow clients take every thread and ingestion stops.
    direct = Slowloris(hub_port)
    direct.start()
    try:
        assert direct.ready.wait(60) and direct.connected == 50
        with pytest.raises((requests.Timeout, requests.ConnectionError)):
            requests.put(f"{small_hub.url}/trace/slowloris00000/heartbeat", json={}, timeout=(3, 5))
    finally:
        direct.stop()

    with nginx_in_front(hub_port, tmp_path / "nginx.log") as proxy:
        port = int(proxy.rsplit(":", 1)[1])
        attack = Slowloris(port)
        attack.start()
        statuses = []
        try:
            assert attack.ready.wait(60) and attack.connected == 50
            started_round = attack.rounds
            session = requests.Session()
            while len(statuses) < MAX_REQUESTS and (
                len(statuses) < MIN_REQUESTS or attack.rounds < started_round + ATTACK_ROUNDS
            ):
                statuses.append(ingest(proxy, session, len(statuses)))
            still_attacking = attack.is_alive() and attack.connected == 50
        finally:
            attack.stop()
        assert still_attacking
        assert attack.rounds >= started_round + ATTACK_ROUNDS, "the attack ran alongside"
        assert statuses and all(200 <= status < 300 for status in statuses), sorted(set(statuses))
        # gunicorn served them (nginx did not answer on its own).
        assert (
            small_hub.log_path.read_text().count("/trace/slowloris00001/progress")
            >= len(statuses) // 2
        )

"""The generated secret key across real processes: two gunicorn instances (two workers each)
started together on one new database agree on it, and a restart keeps it, so a browser signed
in on one is signed in on all, before and after."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import LiveHub

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def create_token(url):
    """A token made the way an operator does (the hubs see it on their next request)."""
    made = subprocess.run(
        [sys.executable, "-m", "panoptes", "--db", url, "token", "create", "browser"],
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip().splitlines()[0]


def instance(tmp_path, url, name):
    return LiveHub(
        url,
        tmp_path / f"{name}.log",
        command=[
            str(BIN / "gunicorn"),
            "-c",
            "python:panoptes.gunicorn_conf",
            "panoptes:create_app()",
        ],
        env={
            "PANOPTES_DATABASE_URL": url,
            "PANOPTES_BIND": "127.0.0.1:{port}",
            "PANOPTES_WORKERS": "2",
            "PANOPTES_THREADS": "2",
            "PANOPTES_TOKEN_CACHE_SECONDS": "0",
            "PANOPTES_SECRET_KEY": "",  # unset, as an env file with an empty value leaves it
        },
        ready_path="/healthz",
    )


def signed_in(hub, cookie, times=12):
    """Whether every one of ``times`` requests (spread over the workers) accepts the cookie."""
    return all(
        requests.get(
            f"{hub.url}/api/workflows", cookies={"session": cookie}, timeout=10
        ).status_code
        == 200
        for _ in range(times)
    )


def test_instances_and_restarts_share_the_generated_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = instance(tmp_path, url, "first"), instance(tmp_path, url, "second")
    hubs = [first, second]
    try:
        # Started together: four workers race to migrate and to generate the key.
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda hub: hub.start(timeout=90), hubs))
        token = create_token(url)
        answer = requests.post(
            f"{first.url}/signin", data={"token": token}, allow_redirects=False, timeout=10
        )
        assert answer.status_code == 302
        cookie = answer.cookies["session"]
        assert requests.get(f"{second.url}/api/workflows", timeout=10).status_code == 401
        assert signed_in(first, cookie) and signed_in(second, cookie)
    finally:
        for hub in hubs:
            hub.stop()
    restarted = instance(tmp_path, url, "restarted").start(timeout=90)
    try:
        assert signed_in(restarted, cookie)
        forged = cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
        assert (
            requests.get(
                f"{restarted.url}/api/workflows", cookies={"session": forged}, timeout=10
            ).status_code
            == 401
        )
    finally:
        restarted.stop()

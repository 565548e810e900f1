"""A real hub process notifies by itself: its gunicorn workers run the notifier thread."""

import time

import pytest
import requests

from tests.conftest import LiveHub
from tests.notify.conftest import WAIT, Webhook
from tests.replay import http_sender, replay_tower

pytestmark = pytest.mark.e2e


def test_a_serving_hub_notifies_once_with_several_workers(tmp_path):
    hook = Webhook()
    hub = LiveHub(
        f"sqlite:///{tmp_path / 'live.db'}",
        tmp_path / "hub.log",
        ["--workers", "2"],
        env={
            "PANOPTES_NOTIFY_URLS": hook.url,
            "PANOPTES_NOTIFY_GRACE_SECONDS": "0",
            "PANOPTES_NOTIFY_POLL_SECONDS": "0.1",
        },
    )
    try:
        hub.start()
        send = http_sender(hub.url, requests.Session())
        _, statuses = replay_tower("modern", send)
        assert set(statuses) == {200}
        deadline = time.monotonic() + WAIT  # a bound on the wait, not an assertion on time
        while not hook.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hook.titles() == ["Done: nostalgic_pasteur"]
        # Both workers keep looking; neither tells it again.
        for _ in range(10):
            time.sleep(0.1)
        assert hook.titles() == ["Done: nostalgic_pasteur"]
    finally:
        hub.stop()
        hook.close()

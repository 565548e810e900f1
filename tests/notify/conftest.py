"""Real receivers on loopback for the notification tests: a webhook (HTTP server) that can
answer, fail or hang, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message as Email
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask

from panoptes.models import utcnow
from panoptes.notify import Notifier, notifier

# Bounds on waiting for something that should happen promptly; a test never asserts on time.
WAIT = 30.0
# The longest a hanging receiver holds a request if the test never releases it.
HOLD = 120.0


class Webhook:
    """An HTTP server on 127.0.0.1 recording every JSON body posted to it.

    ``answer``: the status it answers with. ``hang()``: hold every request until
    ``release()``.
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.answer = 200
        self.arrived = threading.Event()
        self._open = threading.Event()
        self._open.set()
        self.holding = 0
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook._lock:
                    hook.holding += 1
                hook.arrived.set()
                hook._open.wait(HOLD)
                with hook._lock:
                    hook.holding -= 1
                    status = hook.answer
                    if status < 300:
                        hook.messages.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def hang(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def titles(self) -> list[str]:
        return [m["title"] for m in self.messages]

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def second_webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


class Mailbox:
    """aiosmtpd's SMTP server on 127.0.0.1, keeping every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Email] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.messages.append(message_from_bytes(envelope.content))
                return "250 Message accepted for delivery"

        from tests.conftest import free_port

        port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()
        self.url = (
            f"mailto://127.0.0.1:{port}?from=hub@example.org&to=ops@example.org&mode=insecure"
        )

    def subjects(self) -> list[str]:
        return [str(make_header(decode_header(m["Subject"]))) for m in self.messages]

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.close()


def later(seconds: float) -> Any:
    """A moment ``seconds`` from now (the notifier's clock in tests)."""
    return utcnow() + timedelta(seconds=seconds)


def notifier_of(app: Flask) -> Notifier:
    found = notifier(app)
    assert found is not None
    return found


@pytest.fixture
def notify_app(app_factory: Callable[..., Flask]) -> Callable[..., Flask]:
    """Builds a hub with notification settings (on this test's fresh database)."""
    return app_factory

"""The shipped nginx configuration (docker/nginx.conf) run with Debian's nginx on loopback, and
a slowloris attacker. Used by the tests and by bench/slow_clients.py."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent.parent
NGINX_CONF = ROOT / "docker" / "nginx.conf"


def nginx_binary() -> str:
    """Debian's nginx; skipped with the reason when it is missing (a failure under CI)."""
    found = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )
    if found is None:
        reason = "nginx is not installed (Debian: apt-get install nginx; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"the nginx tests must run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def render(conf: str, listen_port: int, hub_port: int, folder: Path) -> str:
    """The shipped configuration with only its addresses and paths changed."""
    replacements = [
        (r"\blisten 80;", f"listen 127.0.0.1:{listen_port};"),
        (r"\bserver hub:5000\b", f"server 127.0.0.1:{hub_port}"),
        (r"\bpid /var/run/nginx\.pid;", f"pid {folder}/nginx.pid;"),
        (r"/var/cache/nginx/", f"{folder}/"),
    ]
    for pattern, replacement in replacements:
        conf, count = re.subn(pattern, replacement, conf)
        assert count >= 1, f"docker/nginx.conf no longer has {pattern!r}"
    return conf


@contextlib.contextmanager
def nginx_in_front(hub_port: int, log_path: Path) -> Iterator[str]:
    """nginx with docker/nginx.conf on a free loopback port, proxying to ``hub_port``; yields
    its URL."""
    binary = nginx_binary()
    # Its worker processes drop root for nobody: their folder must be reachable by anyone.
    folder = Path(tempfile.mkdtemp(prefix="panoptes-nginx-"))
    folder.chmod(0o755)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = folder / "nginx.conf"
    conf.write_text(render(NGINX_CONF.read_text(), port, hub_port, folder))
    command = [binary, "-p", str(folder), "-e", "stderr", "-c", str(conf), "-g", "daemon off;"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"nginx did not answer:\n{log_path.read_text()[-3000:]}")
        yield url
    finally:
        process.terminate()  # nginx: fast shutdown
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


class Slowloris(threading.Thread):
    """``count`` connections that each send a request's header one line per ``interval``
    and never finish it; a connection the server drops is opened again (as the attack does)."""

    MAX_ROUNDS = 600  # bounded whatever happens

    def __init__(self, port: int, count: int = 50, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.port, self.count, self.interval = port, count, interval
        self.sockets: list[socket.socket | None] = [None] * count
        self.rounds = 0
        self.reopened = 0
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(b"POST /update_workflow_status HTTP/1.1\r\nHost: hub\r\n")
        except OSError:
            return None
        return sock

    def run(self) -> None:
        self.sockets = [self._open() for _ in range(self.count)]
        self.ready.set()
        while self.rounds < self.MAX_ROUNDS and not self.stopping.wait(self.interval):
            for index, sock in enumerate(self.sockets):
                try:
                    if sock is None:
                        raise OSError("not connected")
                    sock.sendall(f"X-Slow-{self.rounds}: {index}\r\n".encode())
                except OSError:
                    if sock is not None:
                        sock.close()
                    self.sockets[index] = self._open()
                    self.reopened += 1
            self.rounds += 1

    @property
    def connected(self) -> int:
        return sum(sock is not None for sock in self.sockets)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)
        for sock in self.sockets:
            if sock is not None:
                sock.close()

"""The load generator: ordered request sequences over keep-alive connections, timed.

A stream is a list of *sequences*; a sequence is what one client sends one after another (one
Snakemake or Nextflow run), so its requests stay in order whatever the concurrency. ``c``
connections each take the next unsent sequence until none is left. The connections are spread
over a few client processes (threads inside each), so the client is never held back by one
interpreter lock; ``client_cpu`` in the result shows how much of the machine it used.

HTTP/1.1 is spoken directly on sockets with the request bytes prepared before the clock starts:
``http.client`` or ``requests`` would cost the client ten times more per request, and on a
2-core machine every client cycle is taken from the server.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import os
import socket
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Stands for the id a sequence captured from an earlier answer (create_workflow, trace/create).
ID = b"@ID@"
_MAX_ERRORS_KEPT = 5
SOCKET_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Step:
    """One request. ``capture`` names the JSON key of the answer that becomes the sequence's
    id; ``units`` is how many events (or task updates) the request carries."""

    method: str
    path: bytes
    body: bytes = b""
    content_type: bytes | None = None
    capture: str | None = None
    units: int = 0


@dataclass
class RunResult:
    """What one pass of a stream measured on the client side."""

    requests: int = 0
    units: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    ids: dict[int, str] = field(default_factory=dict)
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        """Units (events, task updates) per second of wall time."""
        return self.units / self.wall if self.wall else 0.0

    @property
    def request_rate(self) -> float:
        return self.requests / self.wall if self.wall else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in seconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank]

    @property
    def median_latency(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


class HttpError(Exception):
    """The connection broke or the answer could not be read."""


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._host_header = f"Host: {host}:{port}\r\n".encode()
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=SOCKET_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer.clear()
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request(
        self, method: str, path: bytes, body: bytes = b"", content_type: bytes | None = None
    ) -> tuple[int, bytes]:
        """Send one request; the status and the body of the answer."""
        head = [method.encode(), b" ", path, b" HTTP/1.1\r\n", self._host_header]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(b"Content-Length: %d\r\n" % len(body))
        if content_type:
            head += [b"Content-Type: ", content_type, b"\r\n"]
        head.append(b"\r\n")
        payload = b"".join(head) + body
        for attempt in (1, 2):
            if self._sock is None:
                self._sock = self._connect()
            try:
                self._sock.sendall(payload)
                return self._read_response(method)
            except (ConnectionError, HttpError) as error:
                # A kept-alive connection the server closed meanwhile: retry once on a new one,
                # as every HTTP client does; a second failure is real.
                self.close()
                if attempt == 2 or self._buffer:
                    raise HttpError(str(error)) from None
        raise AssertionError("unreachable")

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(262144)
        if not chunk:
            raise HttpError("connection closed by the server")
        self._buffer += chunk

    def _read_response(self, method: str) -> tuple[int, bytes]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        try:
            status = int(head[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpError(f"not an HTTP answer: {head[0]!r}") from None
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "content-length" in headers:
            length = int(headers["content-length"])
            while len(self._buffer) < length:
                self._fill()
            body = bytes(self._buffer[:length])
            del self._buffer[:length]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            try:
                while True:
                    self._fill()
            except HttpError:
                pass
            body = bytes(self._buffer)
            self._buffer.clear()
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            while (end := self._buffer.find(b"\r\n")) < 0:
                self._fill()
            size = int(bytes(self._buffer[:end]).split(b";")[0], 16)
            del self._buffer[: end + 2]
            while len(self._buffer) < size + 2:
                self._fill()
            parts.append(bytes(self._buffer[:size]))
            del self._buffer[: size + 2]
            if size == 0:
                return b"".join(parts)


def _run_sequence(
    connection: Connection, steps: Sequence[Step], result: RunResult, index: int
) -> None:
    """Send one sequence in order, recording latencies, errors and the captured id."""
    ident: bytes | None = None
    clock = time.perf_counter
    for step in steps:
        path, body = step.path, step.body
        if ident is not None:
            if ID in path:
                path = path.replace(ID, ident)
            if ID in body:
                body = body.replace(ID, ident)
        started = clock()
        try:
            status, answer = connection.request(step.method, path, body, step.content_type)
        except (OSError, HttpError) as error:
            result.errors += 1
            if len(result.error_samples) < _MAX_ERRORS_KEPT:
                result.error_samples.append(f"{step.method} {path.decode()}: {error}")
            connection.close()
            continue
        result.latencies.append(clock() - started)
        result.requests += 1
        if status >= 400:
            result.errors += 1
            if len(result.error_samples) < _MAX_ERRORS_KEPT:
                text = answer[:200].decode("utf-8", "replace")
                result.error_samples.append(f"{step.method} {path.decode()}: {status} {text}")
            continue
        result.units += step.units
        if step.capture is not None:
            try:
                ident = str(json.loads(answer)[step.capture]).encode()
            except (ValueError, KeyError, TypeError):
                result.errors += 1
                if len(result.error_samples) < _MAX_ERRORS_KEPT:
                    result.error_samples.append(f"no {step.capture!r} in {answer[:200]!r}")
                return
            result.ids[index] = ident.decode()


def _client_process(
    host: str,
    port: int,
    sequences: Sequence[Sequence[Step]],
    threads: int,
    next_index: Any,
    ready: multiprocessing.synchronize.Barrier,
    go: multiprocessing.synchronize.Event,
    out: Any,
) -> None:
    """One client process: ``threads`` connections taking sequences from the shared counter."""
    results = [RunResult() for _ in range(threads)]
    connections = [Connection(host, port) for _ in range(threads)]

    def work(slot: int) -> None:
        while True:
            with next_index.get_lock():
                index = next_index.value
                next_index.value += 1
            if index >= len(sequences):
                return
            _run_sequence(connections[slot], sequences[index], results[slot], index)

    cpu_before = time.process_time()
    ready.wait()
    go.wait()
    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    finished = time.perf_counter()
    for connection in connections:
        connection.close()
    merged = RunResult(client_cpu=time.process_time() - cpu_before)
    for result in results:
        merged.requests += result.requests
        merged.units += result.units
        merged.latencies += result.latencies
        merged.errors += result.errors
        merged.error_samples += result.error_samples
        merged.ids.update(result.ids)
    out.send((finished, merged))
    out.close()


def client_processes(concurrency: int, limit: int) -> int:
    """How many client processes carry ``concurrency`` connections."""
    return max(1, min(concurrency, limit))


def run(
    host: str,
    port: int,
    sequences: Sequence[Sequence[Step]],
    concurrency: int,
    processes: int = 2,
    on_start: Any = None,
) -> RunResult:
    """Send every sequence with ``concurrency`` connections; the merged, timed result.

    ``on_start`` is called right before the clock starts (to sample the server's CPU time).
    """
    count = client_processes(concurrency, processes)
    threads = [concurrency // count + (1 if i < concurrency % count else 0) for i in range(count)]
    context = multiprocessing.get_context("fork")
    next_index = context.Value("l", 0)
    ready = context.Barrier(count + 1)
    go = context.Event()
    pipes = []
    children = []
    for slot in range(count):
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=_client_process,
            args=(host, port, sequences, threads[slot], next_index, ready, go, sender),
            daemon=True,
        )
        child.start()
        sender.close()
        pipes.append(receiver)
        children.append(child)
    ready.wait()
    if on_start is not None:
        on_start()
    started = time.perf_counter()
    go.set()
    merged = RunResult()
    finished = started
    for receiver in pipes:
        end, part = receiver.recv()
        finished = max(finished, end)
        merged.requests += part.requests
        merged.units += part.units
        merged.latencies += part.latencies
        merged.errors += part.errors
        merged.error_samples += part.error_samples[: _MAX_ERRORS_KEPT - len(merged.error_samples)]
        merged.ids.update(part.ids)
        merged.client_cpu += part.client_cpu
    for child in children:
        child.join()
    merged.wall = finished - started
    return merged


def get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """One GET on a fresh connection (for checks, not for measuring)."""
    connection = Connection(host, port)
    try:
        return connection.request("GET", path.encode())
    finally:
        connection.close()


def get_json(host: str, port: int, path: str) -> Any:
    """GET and decode JSON; raises on a non-2xx answer."""
    status, body = get(host, port, path)
    if status >= 300:
        raise HttpError(f"GET {path}: {status} {body[:200]!r}")
    return json.loads(body)


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))

"""The floor: a Flask app that stores each request's body in SQLite with one commit, and does
nothing else.

Run beside the bare-Flask ceiling under the hub's gunicorn settings and driven by the same
client with the same requests, it gives the rate no monitor can beat on this machine if it
stores every event as it arrives, one transaction per request (as the hub and panoptes-ui do).
What the hub adds on top of it is its own work: parsing, normalising, job rows, counters.

SQLite is set up as the hub sets it up (database.py): WAL, ``synchronous=NORMAL``, writers
queued on the hub's own ``WriterQueue``, then ``BEGIN IMMEDIATE``. The answer is the
ceiling's, with a fresh id per request so that every run's requests stay apart.
"""

from __future__ import annotations

import os
import sqlite3
import threading

from flask import Flask, Response, jsonify, request

from panoptes.database import SQLITE_BUSY_TIMEOUT_MS, WriterQueue

DATABASE = os.environ.get("FLOOR_DATABASE", "floor.db")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS requests (pk INTEGER PRIMARY KEY, method TEXT NOT NULL,"
    " path TEXT NOT NULL, received_at TEXT NOT NULL, body BLOB NOT NULL)"
)
_INSERT = (
    "INSERT INTO requests (method, path, received_at, body)"
    " VALUES (?, ?, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?)"
)

app = Flask(__name__)
_writers = WriterQueue(DATABASE)
_connections = threading.local()


def _connection() -> sqlite3.Connection:
    """This thread's connection (sqlite3 connections are not shared between threads)."""
    connection: sqlite3.Connection | None = getattr(_connections, "connection", None)
    if connection is None:
        connection = sqlite3.connect(DATABASE, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(_SCHEMA)
        _connections.connection = connection
    return connection


@app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT"])
@app.route("/<path:path>", methods=["GET", "POST", "PUT"])
def store(path: str) -> Response:
    """Store the request, answer once it is committed."""
    body = request.get_data()
    connection = _connection()
    with _writers.held():
        connection.execute("BEGIN IMMEDIATE")
        try:
            cursor = connection.execute(_INSERT, (request.method, request.path, body))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    request_id = f"floor{cursor.lastrowid}"
    return jsonify(id=request_id, workflowId=request_id, status="ok")

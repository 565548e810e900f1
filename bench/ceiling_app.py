"""The ceiling: a Flask app that answers every request with the same small JSON object.

Run under the hub's gunicorn settings and driven by the same client with the same requests, it
gives the request rate no Flask handler can beat on this machine. The answer carries ``id`` and
``workflowId`` so that the streams' create steps find an id to continue with.
"""

from __future__ import annotations

from flask import Flask, Response

app = Flask(__name__)
_ANSWER = b'{"id": "ceiling", "workflowId": "ceiling", "status": "ok"}'


@app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT"])
@app.route("/<path:path>", methods=["GET", "POST", "PUT"])
def constant(path: str) -> Response:
    """The same answer for any path; the request body is not even read."""
    return Response(_ANSWER, mimetype="application/json")

"""Access tokens: who may send events and read runs.

With no token configured the hub is open (a laptop). Once ``PANOPTES_TOKEN`` is set or a token
exists (``panoptes token create NAME``), every route but the health checks, static files and the
sign-in page needs one, sent the way each client can:

- ``Authorization: Bearer <token>``: Snakemake 7/8 (``WMS_MONITOR_TOKEN``), our plugin,
  Nextflow with JWT-shaped tokens, scripts;
- ``Authorization: Basic base64("@token:<token>")``: Nextflow with any other token;
- the session cookie set by the sign-in page: browsers. Changes made with a cookie must come
  from the hub's own pages (same origin), so another site cannot make them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from . import apidoc
from .errors import ApiError
from .extensions import db
from .models import ApiToken

TOKEN_PREFIX = "pnp_"
_CACHE_KEY = "panoptes_token_hashes"
# Reachable without a token: probes, assets, and the way in.
PUBLIC_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz", "static", "auth.signin"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bp = Blueprint("auth", __name__)


def new_secret() -> str:
    """A fresh token: 256 random bits, recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What is stored. Tokens are long random strings, so a plain SHA-256 suffices (no salt
    or slow hash is needed against guessing)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def invalidate_cache(app: Flask) -> None:
    """Forget the cached token hashes of this process (after a create or revoke)."""
    app.extensions.pop(_CACHE_KEY, None)


def _token_state() -> tuple[bool, frozenset[str]]:
    """Whether tokens are required, and the hashes of the usable ones; re-read at most every
    TOKEN_CACHE_SECONDS per process, so checking a token costs no query on most requests.

    Tokens stay required once any was created: revoking the last one must not open the hub.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cached: tuple[float, bool, frozenset[str]] | None = app.extensions.get(_CACHE_KEY)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    rows = db.session.execute(select(ApiToken.token_hash, ApiToken.revoked_at)).all()
    hashes = frozenset(token_hash for token_hash, revoked_at in rows if revoked_at is None)
    static = app.config.get("TOKEN")
    if static:
        hashes |= {hash_secret(static)}
    required = bool(rows) or bool(static)
    app.extensions[_CACHE_KEY] = (now + float(app.config["TOKEN_CACHE_SECONDS"]), required, hashes)
    return required, hashes


def presented_secret(authorization: str | None) -> str | None:
    """The token in an Authorization header (Bearer, or Basic with the token as password)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, separator, password = decoded.partition(":")
        return password or None if separator else None
    return None


def _valid(secret: str | None, hashes: frozenset[str]) -> bool:
    if not secret:
        return False
    digest = hash_secret(secret)
    return any(hmac.compare_digest(digest, known) for known in hashes)


def _same_origin() -> bool:
    """A cookie-authenticated change must come from the hub's own pages."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return False
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" == request.host_url.rstrip("/")


# Pages outside the dashboard's blueprint, which a browser without a session is sent to sign in for.
_PAGES = frozenset({"openapi.docs"})


def _wants_html() -> bool:
    endpoint = request.endpoint
    return endpoint is not None and (endpoint.startswith("ui.") or endpoint in _PAGES)


def _check() -> ResponseReturnValue | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    required, hashes = _token_state()
    if not required:
        return None  # no token configured: the hub is open
    if _valid(presented_secret(request.headers.get("Authorization")), hashes):
        g.auth = "token"
        return None
    if session.get("token_hash") in hashes:
        if request.method not in _SAFE_METHODS and not _same_origin():
            raise ApiError(403, "Cross-site request refused: use the hub's own pages or a token.")
        g.auth = "session"
        return None
    if _wants_html():
        return redirect(url_for("auth.signin", next=request.full_path.rstrip("?")))
    error = ApiError(
        401,
        "A valid token is required: send 'Authorization: Bearer <token>' "
        "(Nextflow: TOWER_ACCESS_TOKEN; Snakemake 7/8: WMS_MONITOR_TOKEN; "
        "plugin: --logger-panoptes-token).",
    )
    raise error


def _safe_next(target: str | None) -> str:
    """Only local paths: the sign-in page must not redirect to another site."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("ui.index")


@bp.route("/signin", methods=["GET", "POST"])
@apidoc.operation(
    apidoc.DASHBOARD,
    public=True,
    body=apidoc.Body(
        {
            "type": "object",
            "properties": {
                "token": {"type": "string"},
                "next": {"type": "string", "description": "the page to go to (a local path)"},
            },
        },
        media=("application/x-www-form-urlencoded",),
    ),
    responses={
        200: apidoc.HTML,
        302: apidoc.Answer("signed in", None),
        401: apidoc.Answer("wrong token (HTML form again)", "text/html", {"type": "string"}),
    },
)
def signin() -> Any:
    """Dashboard sign-in with a token (sets a session cookie).

    The session keeps only the token's hash."""
    error = None
    if request.method == "POST":
        secret = (request.form.get("token") or "").strip()
        if _valid(secret, _token_state()[1]):
            session.clear()
            session["token_hash"] = hash_secret(secret)
            session.permanent = True
            return redirect(_safe_next(request.form.get("next")))
        error = "That token is not valid."
    return (
        render_template("signin.html", error=error, next=_safe_next(request.args.get("next"))),
        401 if error else 200,
    )


@bp.post("/signout")
@apidoc.operation(apidoc.DASHBOARD, responses={302: apidoc.Answer("signed out", None)})
def signout() -> ResponseReturnValue:
    """End the dashboard session."""
    session.clear()
    return redirect(url_for("auth.signin"))


# Pages (the dashboard, the API docs): nothing but the hub's own scripts, styles and images, no
# inline script or style, no framing. Everything else is data and may load nothing at all.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"


def _headers(response: Response) -> Response:
    """Security headers on every answer (a view's own values win)."""
    headers = response.headers
    if "Content-Security-Policy" not in headers:
        policy = PAGE_POLICY if response.mimetype == "text/html" else DATA_POLICY
        headers.add("Content-Security-Policy", policy)
    if "X-Content-Type-Options" not in headers:
        headers.add("X-Content-Type-Options", "nosniff")
    if "Referrer-Policy" not in headers:
        headers.add("Referrer-Policy", "same-origin")
    return response


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened without building a signer when the request has
    no cookie: clients sending events never have one, and the signer was a tenth of the cost
    of recording an event (bench/PROFILES.md)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def protect(app: Flask) -> None:
    """Require a token on every non-public route once tokens exist; security headers."""
    app.session_interface = _CookieSessions()
    app.before_request(_check)
    app.after_request(_headers)
    app.register_blueprint(bp)

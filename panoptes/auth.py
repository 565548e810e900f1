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
from collections.abc import Iterable
from dataclasses import dataclass
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
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from . import abuse, apidoc, hubstate
from .errors import ApiError
from .extensions import db
from .launcher.models import ACTIVE, Launch
from .models import ApiToken

TOKEN_PREFIX = "pnp_"
_CACHE_KEY = "panoptes_token_hashes"
# Reachable without a token: probes, assets, and the way in.
PUBLIC_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz", "static", "auth.signin"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Rights a token may carry. Tokens made before rights existed keep what they could do.
SCOPES = ("read", "ingest", "launch", "admin")
LEGACY_SCOPES = frozenset({"read", "ingest", "admin"})
# A token with one of these makes the hub require tokens for reading and sending events.
OPENING_SCOPES = frozenset({"read", "ingest", "admin"})
LAUNCH_BLUEPRINTS = frozenset({"launches", "launch_ui", "seqera_launch"})
ANY_TOKEN_ENDPOINTS = frozenset({"auth.signout"})
INGEST_BLUEPRINTS = frozenset({"snakemake", "tower", "tower_api", "tower_seqera"})
# The per-launch tokens the launcher hands to the engines it starts.
LAUNCH_TOKEN_PREFIX = "pnl_"

bp = Blueprint("auth", __name__)


@dataclass(frozen=True, slots=True)
class Credential:
    """Whose token a request carries, and its rights."""

    name: str
    scopes: frozenset[str]


def parse_scopes(text: str | None) -> frozenset[str]:
    """Rights from their stored, comma-separated form (None: a token made before rights)."""
    if text is None:
        return LEGACY_SCOPES
    scopes = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = scopes - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown right(s): {', '.join(sorted(unknown))}")
    return scopes


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


def _token_state() -> tuple[bool, dict[str, Credential]]:
    """Whether tokens are required, and the usable tokens by hash; re-read at most every
    TOKEN_CACHE_SECONDS per process, so checking a token costs no query on most requests.

    Tokens stay required once any that may read or ingest was created: revoking the last one
    must not open the hub. Launch-only tokens leave an open hub open.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cached: tuple[float, bool, dict[str, Credential]] | None = app.extensions.get(_CACHE_KEY)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    try:
        rows = db.session.execute(
            select(ApiToken.name, ApiToken.token_hash, ApiToken.revoked_at, ApiToken.scopes)
        ).all()
    except SQLAlchemyError:
        db.session.rollback()
        # The database is away: the tokens known last keep working (events go to the
        # journal); a process that never read them cannot check one, so it asks to retry.
        if cached is not None:
            return cached[1], cached[2]
        from .store.journal import Unavailable

        raise Unavailable("the database is unreachable and no token list is known yet") from None
    tokens = {
        token_hash: Credential(name, parse_scopes(scopes))
        for name, token_hash, revoked_at, scopes in rows
        if revoked_at is None
    }
    static = app.config.get("TOKEN")
    if static:
        tokens[hash_secret(static)] = Credential("PANOPTES_TOKEN", frozenset(SCOPES))
    required = bool(static) or any(
        parse_scopes(scopes) & OPENING_SCOPES for _name, _hash, _revoked, scopes in rows
    )
    app.extensions[_CACHE_KEY] = (now + float(app.config["TOKEN_CACHE_SECONDS"]), required, tokens)
    return required, tokens


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


def _valid(secret: str | None, hashes: Iterable[str]) -> bool:
    if not secret:
        return False
    digest = hash_secret(secret)
    return any(hmac.compare_digest(digest, known) for known in hashes)


def _credential(secret: str | None, tokens: dict[str, Credential]) -> Credential | None:
    """The token a secret is, if it is one: a created or static token, or a running launch's."""
    if not secret:
        return None
    digest = hash_secret(secret)
    for known, credential in tokens.items():
        if hmac.compare_digest(digest, known):
            return credential
    if secret.startswith(LAUNCH_TOKEN_PREFIX):
        return _launch_credential(digest)
    return None


def _launch_credential(token_hash: str) -> Credential | None:
    """A running launch's own token: it may send events, nothing else. Looked up on use, so
    a launch's engine is let in from its first request."""
    launch_id = db.session.scalar(
        select(Launch.id).where(Launch.token_hash == token_hash, Launch.status.in_(ACTIVE))
    )
    return None if launch_id is None else Credential(f"launch {launch_id}", frozenset({"ingest"}))


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
    return endpoint is not None and (
        endpoint.startswith(("ui.", "launch_ui.")) or endpoint in _PAGES
    )


def needed_scope() -> str | None:
    """The right this request needs: launching, sending events, changing runs, or reading
    (None: any valid token, e.g. to sign out)."""
    if request.endpoint in ANY_TOKEN_ENDPOINTS:
        return None
    if request.blueprint in LAUNCH_BLUEPRINTS:
        return "launch"
    if request.blueprint in INGEST_BLUEPRINTS:
        return "ingest"
    return "read" if request.method in _SAFE_METHODS else "admin"


def _check() -> ResponseReturnValue | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    needed = needed_scope()
    required, tokens = _token_state()
    if not required and needed != "launch":
        return None  # no token configured: the hub is open (launching never is)
    credential = _credential(presented_secret(request.headers.get("Authorization")), tokens)
    if credential is not None:
        g.auth = "token"
    else:
        credential = tokens.get(session.get("token_hash") or "")
        if credential is not None:
            if request.method not in _SAFE_METHODS and not _same_origin():
                raise ApiError(
                    403, "Cross-site request refused: use the hub's own pages or a token."
                )
            g.auth = "session"
    if credential is None:
        if _wants_html():
            return redirect(url_for("auth.signin", next=request.full_path.rstrip("?")))
        if needed == "launch":
            raise ApiError(
                401,
                "Launching needs a token with the launch right "
                "(panoptes token create NAME --scope launch): send 'Authorization: Bearer "
                "<token>' or sign in.",
            )
        raise ApiError(
            401,
            "A valid token is required: send 'Authorization: Bearer <token>' "
            "(Nextflow: TOWER_ACCESS_TOKEN; Snakemake 7/8: WMS_MONITOR_TOKEN; "
            "plugin: --logger-panoptes-token).",
        )
    if needed is not None and needed not in credential.scopes:
        raise ApiError(403, f"This token does not carry the {needed} right.", "forbidden")
    g.credential = credential
    return None


def _safe_next(target: str | None) -> str:
    """Only same-site paths (``abuse.safe_next``; 400 otherwise), else the dashboard."""
    return abuse.safe_next(target) or url_for("ui.index")


def authenticated() -> bool:
    """Whether the current request may pass: the hub is open, or it carries a valid token or
    session (the rate limit on failures never applies to these)."""
    required, hashes = _token_state()
    if not required:
        return True
    if _valid(presented_secret(request.headers.get("Authorization")), hashes):
        return True
    return session.get("token_hash") in hashes


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
        400: "next is not a path on this hub",
        401: apidoc.Answer("wrong token (HTML form again)", "text/html", {"type": "string"}),
        429: "too many failed sign-ins from this address",
    },
)
def signin() -> Any:
    """Dashboard sign-in with a token (sets a session cookie).

    The session keeps only the token's hash."""
    error = None
    if request.method == "POST":
        target = _safe_next(request.form.get("next"))  # a bad target: 400 before anything
        secret = (request.form.get("token") or "").strip()
        if _valid(secret, _token_state()[1].keys()):
            session.clear()
            session["token_hash"] = hash_secret(secret)
            session.permanent = True
            return redirect(target)
        error = "That token is not valid."
    else:
        target = _safe_next(request.args.get("next"))
    return render_template("signin.html", error=error, next=target), 401 if error else 200


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

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        hubstate.ensure_secret_key(app)  # none configured: the one kept in the database
        return super().get_signing_serializer(app)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def protect(app: Flask) -> None:
    """Require a token on every non-public route once tokens exist; security headers."""
    app.session_interface = _CookieSessions()
    abuse.install(app, authenticated)  # before the token check: past the limit means 429
    app.before_request(_check)
    app.after_request(_headers)
    app.register_blueprint(bp)

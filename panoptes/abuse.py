"""Defences against misuse of the way in: redirect targets after sign-in, a rate limit on
authentication failures, and which proxy headers to believe.

The rate limit counts failures only: a failed sign-in, and any request refused with 401 for a
missing or wrong token. Past ``AUTH_FAILURE_LIMIT`` an address gets 429 until the window
passes. Requests carrying a valid token or session are never counted nor refused, so a
pipeline reporting with its token is never slowed by someone guessing from the same address
(a shared login node, a NAT). Counters live in each process's memory (Flask-Limiter's
``memory://`` storage): with several workers an address gets up to the limit per worker, and a
restart forgets them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from .errors import ApiError, error_response

# Probes, metrics and assets are never limited (a load balancer shares an address with
# nobody, but a container health check may share one with everything).
NEVER_LIMITED = frozenset({"ops.healthz", "ops.readyz", "ops.prometheus", "static"})
# C0 and C1 control characters: browsers drop tabs and newlines inside URLs, so
# ``/<TAB>/evil.example`` would reach them as ``//evil.example``.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_next(target: str | None) -> str | None:
    """The same-site path to go to after sign-in (None: none given), control characters
    removed first; anything that could leave the site is refused with 400."""
    if target is None:
        return None
    cleaned = _CONTROL.sub("", target).strip()
    if not cleaned:
        return None
    parts = urlsplit(cleaned)
    if (
        not cleaned.startswith("/")
        or cleaned.startswith(("//", "/\\"))
        or parts.scheme
        or parts.netloc
    ):
        raise ApiError(400, "next must be a path on this hub, such as /workflow/ID.")
    return cleaned


def _is_auth_failure(response: Response) -> bool:
    return response.status_code == 401


def install(app: Flask, authenticated: Callable[[], bool]) -> Limiter:
    """Rate-limit authentication failures per client address on ``app``; ``authenticated``
    tells whether the current request carries valid credentials (then it is exempt).

    Must be installed before the token check, so that an address past its limit is answered
    429 before its token is looked at.
    """
    proxies = int(app.config["TRUSTED_PROXIES"])
    if proxies > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )

    def exempt() -> bool:
        return request.endpoint in NEVER_LIMITED or authenticated()

    limiter = Limiter(
        get_remote_address,
        storage_uri="memory://",
        application_limits=[lambda: str(current_app.config["AUTH_FAILURE_LIMIT"])],
        application_limits_exempt_when=exempt,
        application_limits_deduct_when=_is_auth_failure,
        headers_enabled=False,
    )
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(error: RateLimitExceeded) -> Response:
        current = limiter.current_limit
        wait = max(1, int((current.reset_at if current else time.time() + 60) - time.time()))
        response = error_response(
            429,
            f"Too many failed sign-ins or token checks from this address; try again in {wait} s.",
            "too_many_requests",
        )
        response.headers["Retry-After"] = str(wait)
        return response

    return limiter

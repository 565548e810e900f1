"""Defences against misuse of the way in: redirect targets after sign-in, a rate limit on
authentication failures, and which proxy headers to believe.

The rate limit counts failures only: a failed sign-in, and a request refused with 401 for a
wrong token (one sent with no token at all guesses nothing and is not counted). Past
``AUTH_FAILURE_LIMIT`` an address gets 429 until the window passes. Requests carrying a valid
token or session are never counted nor refused, so a pipeline reporting with its token is never
slowed by someone guessing from the same address (a shared login node, a NAT). Counters live in
each process's memory: with several workers an address gets up to the limit per worker, and a
restart forgets them. The counting is ``limits`` (the engine and memory storage of
Flask-Limiter), consulted directly: Flask-Limiter's own request hooks cost about 100 µs on every
request, this one dictionary look-up.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, Response, request
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
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


class RateLimit:
    """Counts something per key (an address, a token) in this process's memory: moving
    windows, ``limits``' MemoryStorage (Flask-Limiter's engine and default storage). The
    limit is written as Flask-Limiter's are: "30 per minute", or several joined by ";"."""

    def __init__(self, limit: str) -> None:
        self.items = parse_many(limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def allows(self, key: str) -> bool:
        return all(self.limiter.test(item, key) for item in self.items)

    def count(self, key: str) -> None:
        for item in self.items:
            self.limiter.hit(item, key)

    def retry_after(self, key: str) -> int:
        """Whole seconds until every window has room for the key again (at least 1)."""
        now = time.time()
        full = [item for item in self.items if not self.limiter.test(item, key)]
        reset_at = max(
            (self.limiter.get_window_stats(i, key).reset_time for i in full), default=now
        )
        return max(1, math.ceil(reset_at - now))


def _client_address() -> str:
    return request.remote_addr or "unknown"


def install(app: Flask, authenticated: Callable[[], bool]) -> RateLimit:
    """Rate-limit authentication failures per client address on ``app``; ``authenticated``
    tells whether the current request carries valid credentials (then it is never refused).

    Must be installed before the token check, so that an address past its limit is answered
    429 before its token is looked at. Nothing is done for an address under its limit but one
    look-up in memory: credentials are only checked here for addresses past it.
    """
    proxies = int(app.config["TRUSTED_PROXIES"])
    if proxies > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    failures = RateLimit(str(app.config["AUTH_FAILURE_LIMIT"]))
    app.extensions["panoptes.auth_failures"] = failures

    def refuse_past_the_limit() -> Response | None:
        address = _client_address()
        if failures.allows(address) or request.endpoint in NEVER_LIMITED or authenticated():
            return None
        wait = failures.retry_after(address)
        response = error_response(
            429,
            f"Too many failed sign-ins or token checks from this address; try again in {wait} s.",
            "too_many_requests",
        )
        response.headers["Retry-After"] = str(wait)
        return response

    def count_failures(response: Response) -> Response:
        # A guess: a wrong token presented, or a failed sign-in. A request with no token at
        # all (a probe, a first try) is answered 401 but guesses nothing.
        if response.status_code == 401 and (
            "Authorization" in request.headers or request.endpoint == "auth.signin"
        ):
            failures.count(_client_address())
        return response

    app.before_request(refuse_past_the_limit)
    app.after_request(count_failures)
    return failures

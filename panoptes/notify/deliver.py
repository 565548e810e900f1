"""Sending one message to one receiver through Apprise, with a timeout, reporting what went
wrong (Apprise logs its failures instead of raising; they are collected here)."""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Any

_LOADED = threading.Lock()
_loaded = False


def _apprise() -> Any:
    """The apprise module, with its plugins loaded once.

    One of its plugins imports ``imghdr``, which warns of its removal in Python 3.13; that
    warning is Apprise's business, not a problem of ours, so it is silenced while loading.
    """
    global _loaded
    with _LOADED:
        if not _loaded:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                import apprise

                apprise.Apprise.instantiate("json://localhost")  # loads every plugin
            _loaded = True
    import apprise

    return apprise


@dataclass(frozen=True, slots=True)
class Receiver:
    """One Apprise URL: ``id`` names it in the database without revealing it."""

    url: str
    id: str
    service: str
    shown: str  # the URL with its secrets masked, for people

    @classmethod
    def of(cls, url: str) -> Receiver:
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        plugin = _apprise().Apprise.instantiate(url)
        if plugin is None:
            scheme = url.partition("://")[0] if "://" in url else "?"
            return cls(url, digest, scheme[:64], f"{scheme}://… (not a valid Apprise URL)")
        return cls(url, digest, str(plugin.service_name)[:64], str(plugin.url(privacy=True)))


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    error: str | None = None


class _ThreadErrors(logging.Handler):
    """Apprise's warnings and errors logged by this thread (other threads deliver too)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def send(url: str, title: str, body: str, kind: str, timeout: float) -> Outcome:
    """Send a plain-text message (Apprise formats it for the service); never raises.

    ``timeout`` bounds connecting and each read, so a receiver that hangs costs at most about
    that long.
    """
    apprise = _apprise()
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return Outcome(False, "not a valid Apprise URL")
    plugin.socket_connect_timeout = timeout
    plugin.socket_read_timeout = timeout
    sender = apprise.Apprise(asset=apprise.AppriseAsset(app_id="panoptes", app_desc="panoptes"))
    sender.add(plugin)
    errors = _ThreadErrors()
    logger = logging.getLogger("apprise")
    logger.addHandler(errors)
    try:
        delivered = bool(
            sender.notify(
                body=body,
                title=title,
                notify_type=kind,
                body_format=apprise.NotifyFormat.TEXT,
            )
        )
    except Exception as error:  # a plugin bug must not stop the notifier
        delivered = False
        errors.messages.append(f"{type(error).__name__}: {error}")
    finally:
        logger.removeHandler(errors)
    if delivered:
        return Outcome(True)
    return Outcome(False, "; ".join(errors.messages)[-2000:] or "the receiver refused it")

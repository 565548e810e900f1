"""Sending one message to one receiver through Apprise, with a timeout, reporting what went
wrong (Apprise reports failures in its logs, not by raising)."""

from __future__ import annotations

import hashlib
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
    valid: bool = True

    @classmethod
    def of(cls, url: str) -> Receiver:
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        plugin = _apprise().Apprise.instantiate(url)
        if plugin is None:
            scheme = url.partition("://")[0][:16] if "://" in url else "?"
            return cls(url, digest, scheme, f"{scheme}://…", valid=False)
        return cls(url, digest, str(plugin.service_name)[:64], str(plugin.url(privacy=True)))


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    error: str | None = None


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
    try:
        result = sender.notify(
            body=body, title=title, notify_type=kind, body_format=apprise.NotifyFormat.TEXT
        )
    except Exception as error:  # a plugin's bug must not stop the notifier
        return Outcome(False, f"{type(error).__name__}: {error}")
    if result:
        return Outcome(True)
    return Outcome(False, _problems(result) or "the receiver refused it")


def _problems(result: Any) -> str:
    """Apprise's warnings and errors about this call (Apprise 2 reports them with the result;
    they are logged from its own threads)."""
    logs = getattr(result, "logs", None)
    if not callable(logs):
        return ""
    messages = [
        str(entry.message)
        for entry in logs()
        if str(getattr(entry, "level", "")).upper() in ("WARNING", "ERROR", "CRITICAL")
    ]
    return "; ".join(messages)[-2000:]

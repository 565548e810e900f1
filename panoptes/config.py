"""Configuration: defaults here, then ``PANOPTES_*`` environment variables, then the mapping
given to ``create_app`` (tests, the CLI)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import limits

from .normalize import coerce

# A configured secret key must be at least this long, and must not be one of the examples
# people copy from documentation.
MIN_SECRET_KEY_BYTES = 32
_PLACEHOLDER_WORDS = ("change", "placeholder", "not-secret", "example", "your-secret")

DEFAULTS: dict[str, Any] = {
    # SQLAlchemy URL or a path to a SQLite file; PANOPTES_DATABASE_URL sets it.
    "DATABASE_URL": ".panoptes.db",
    # A Running workflow silent for this long reads as Stale (0 disables). Snakemake sends
    # nothing while a long job runs, so hours; Nextflow sends a heartbeat every minute when
    # idle (and retries a call for up to about 3 minutes), so minutes (0: STALE_HOURS too).
    "STALE_HOURS": 48.0,
    "NEXTFLOW_STALE_MINUTES": 10.0,
    # Largest request body accepted, in bytes (Nextflow begin/complete can be several MB).
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
    # Public base URL for links handed to clients (Tower watchUrl); default: the request's host.
    "PUBLIC_URL": None,
    # Page size limits of the read API.
    "API_MAX_LIMIT": 1000,
    # None: generated on first start and kept in the database (hubstate.py), shared by all.
    "SECRET_KEY": None,
    # Apply pending migrations when the app starts (safe with several workers).
    "AUTO_MIGRATE": True,
    # A single static access token; tokens can also be created with `panoptes token create`.
    "TOKEN": None,
    # How long a process trusts its list of valid tokens (a revoke takes effect within this).
    "TOKEN_CACHE_SECONDS": 5.0,
    # Live pages: how often a stream polls the database, how long one stream lasts before the
    # browser reconnects, and how many streams may hold a thread per worker (default: half of
    # PANOPTES_THREADS, so ingestion always keeps threads).
    "LIVE_POLL_SECONDS": 0.5,
    "LIVE_STREAM_SECONDS": 300.0,
    "LIVE_MAX_STREAMS": 0,
    # The projector that applies the log to runs and jobs: a thread in each hub process
    # (tests turn it off and wait for it explicitly), and the most events one batch applies.
    "PROJECTOR_THREAD": True,
    "PROJECTOR_BATCH_SIZE": 2000,
    # The journal that keeps events while the database cannot (unreachable, read-only, full):
    # where (default: beside a SQLite file, else ./.panoptes-journal), and its bounds, past
    # which ingestion answers 503 with Retry-After.
    "JOURNAL_DIR": "",
    "JOURNAL_MAX_BYTES": 256 * 1024 * 1024,
    "JOURNAL_MAX_AGE_HOURS": 24.0,
    # Notifications (panoptes/notify/): Apprise URLs (commas or spaces); which events; narrowing
    # by engine and run-name glob; more rules under [notify] in panoptes.toml.
    "NOTIFY_URLS": "",
    "NOTIFY_ON": "Error,Done,Stale",
    "NOTIFY_ENGINE": "",
    "NOTIFY_NAME_PATTERN": "",
    # A run must keep its status this long before it is told (Snakemake's Error -> Running
    # -> Error retries are told once, when they settle).
    "NOTIFY_GRACE_SECONDS": 10.0,
    "NOTIFY_POLL_SECONDS": 2.0,
    # One delivery's bound on connecting and on each read; then retries with back-off.
    "NOTIFY_TIMEOUT_SECONDS": 10.0,
    "NOTIFY_RETRY_SECONDS": 30.0,
    "NOTIFY_MAX_ATTEMPTS": 6,
    # The panoptes.toml to read (default: ./panoptes.toml when there is one).
    "CONFIG": None,
    # Failed sign-ins and requests refused for a wrong token (401), per client
    # address and process; past it the address gets 429 until the window passes. Requests with
    # a valid token or session are never counted nor refused.
    "AUTH_FAILURE_LIMIT": "20 per minute",
    # How many reverse proxies in front of the hub set X-Forwarded-For/-Proto/-Host (the
    # shipped nginx configuration: 1). 0 trusts none of these headers.
    "TRUSTED_PROXIES": 0,
    # Seconds a client is told to wait (Retry-After) when the database cannot take a request.
    "DATABASE_RETRY_AFTER_SECONDS": 5,
    # Launcher: how often a worker looks for work, heartbeats and checks cancels; how long a
    # silent worker's launches wait before they read as lost; how long a cancelled head job
    # gets between SIGTERM and SIGKILL; the launch rate per token; and whether the plain
    # `panoptes` command runs a worker thread.
    "LAUNCH_POLL_SECONDS": 1.0,
    "LAUNCH_LOST_SECONDS": 60.0,
    "LAUNCH_CANCEL_GRACE_SECONDS": 10.0,
    "LAUNCH_RATE_LIMIT": "30 per minute",
    "LAUNCH_WORKER": True,
}

SETTINGS_HELP: dict[str, str] = {
    "DATABASE_URL": "SQLAlchemy URL or SQLite file path (default .panoptes.db)",
    "STALE_HOURS": "hours of silence after which a Running workflow reads as Stale (0: never)",
    "NEXTFLOW_STALE_MINUTES": "minutes of silence after which a Running Nextflow run reads as "
    "Stale (default 10; 0: STALE_HOURS)",
    "MAX_CONTENT_LENGTH": "largest accepted request body in bytes (default 64 MiB)",
    "PUBLIC_URL": "base URL used in links handed to clients, e.g. Tower's watchUrl",
    "API_MAX_LIMIT": "largest page size of the read API (default 1000)",
    "SECRET_KEY": "key for signing cookies, at least 32 bytes; unset: generated on first start "
    "and kept in the database",
    "AUTO_MIGRATE": "apply database migrations at start-up (default true; 0 to leave it to "
    "`panoptes db upgrade`)",
    "TOKEN": "a static access token; with it (or any created token) every client needs one",
    "TOKEN_CACHE_SECONDS": "seconds a process trusts its list of valid tokens (default 5)",
    "LIVE_POLL_SECONDS": "how often a live page's stream checks the database (default 0.5)",
    "LIVE_STREAM_SECONDS": "how long one live stream lasts before the browser reconnects",
    "LIVE_MAX_STREAMS": "live streams per worker holding a thread (0: half of the threads)",
    "PROJECTOR_THREAD": "apply the log to runs and jobs in a background thread of each hub "
    "process (default true)",
    "PROJECTOR_BATCH_SIZE": "most events one projection transaction applies (default 2000)",
    "JOURNAL_DIR": "where events are kept while the database cannot store them (default: "
    "beside a SQLite file, else ./.panoptes-journal)",
    "JOURNAL_MAX_BYTES": "largest journal per hub process, in bytes (default 256 MiB)",
    "JOURNAL_MAX_AGE_HOURS": "oldest journaled event before ingestion answers 503 (default 24)",
    "NOTIFY_URLS": "Apprise URLs to notify, separated by commas or spaces (mailto://, json://...)",
    "NOTIFY_ON": "events that notify (default Error,Done,Stale; also Cancelled, No Execution, "
    "launch_failed, launch_lost)",
    "NOTIFY_ENGINE": "notify only for runs of these engines (snakemake, nextflow)",
    "NOTIFY_NAME_PATTERN": "notify only for runs whose name matches this glob, e.g. prod-*",
    "NOTIFY_GRACE_SECONDS": "seconds a run's status must hold before it is told (default 10)",
    "NOTIFY_POLL_SECONDS": "how often the notifier looks for something to tell (default 2)",
    "NOTIFY_TIMEOUT_SECONDS": "timeout of one delivery, connecting and each read (default 10)",
    "NOTIFY_RETRY_SECONDS": "delay before the first retry of a failed delivery; doubles after "
    "each attempt (default 30)",
    "NOTIFY_MAX_ATTEMPTS": "deliveries tried before a notification is given up (default 6)",
    "AUTH_FAILURE_LIMIT": "failed sign-ins and wrong tokens allowed per client address and "
    "process (default 20 per minute)",
    "TRUSTED_PROXIES": "reverse proxies in front whose X-Forwarded-* headers are trusted "
    "(default 0; 1 behind the shipped nginx)",
    "DATABASE_RETRY_AFTER_SECONDS": "Retry-After of the 503 answered while the database cannot "
    "take a request (default 5)",
    "CONFIG": "the TOML configuration file: launch queues, [notify] rules, settings "
    "(default ./panoptes.toml)",
    "LAUNCH_POLL_SECONDS": "how often a launch worker looks for work, heartbeats and checks "
    "cancels (default 1)",
    "LAUNCH_LOST_SECONDS": "silence after which a worker's launches read as lost (default 60)",
    "LAUNCH_CANCEL_GRACE_SECONDS": "seconds between SIGTERM and SIGKILL on cancel (default 10)",
    "LAUNCH_RATE_LIMIT": "launches allowed per token, e.g. '30 per minute'",
    "LAUNCH_WORKER": "whether the panoptes command runs a launch worker thread (default true)",
}


def database_uri(value: str) -> str:
    """A SQLAlchemy URL from a URL or a plain file path (taken as SQLite)."""
    if "://" in value:
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value
    return "sqlite:///" + str(Path(value).expanduser().resolve())


def _parse_setting(key: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if raw.strip().lower() not in _BOOLEANS:
                raise ValueError(raw)
            return _BOOLEANS[raw.strip().lower()]
        if isinstance(default, int | float):
            return type(default)(raw)
    except ValueError:
        raise ValueError(
            f"PANOPTES_{key}={raw!r} is not a valid {type(default).__name__}"
        ) from None
    return raw


_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def config_file(overrides: Mapping[str, Any] | None) -> Path | None:
    """The configuration file in force: ``CONFIG`` given, else ``PANOPTES_CONFIG``, else
    ``panoptes.toml`` in the working directory if there is one."""
    named = (overrides or {}).get("CONFIG") or os.environ.get("PANOPTES_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ValueError(f"configuration file {named} does not exist")
        return path
    default = Path("panoptes.toml")
    return default if default.is_file() else None


def read_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings (top-level keys, named like PANOPTES_* without the prefix, any case) and
    the ``[queues]`` tables of a configuration file (its ``[notify]`` rules are the
    notifier's)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    queues = data.pop("queues", {})
    data.pop("notify", None)  # [notify] rules: read by panoptes/notify/rules.py
    settings: dict[str, Any] = {}
    for key, value in data.items():
        name = key.upper()
        if name not in DEFAULTS or name == "CONFIG":
            raise ValueError(f"{path}: unknown setting {key!r}")
        settings[name] = value
    if not isinstance(queues, dict):
        raise ValueError(f"{path}: queues must be a table of [queues.NAME] tables")
    return settings, queues


def load(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The effective configuration: defaults < configuration file < environment < overrides."""
    config = dict(DEFAULTS)
    path = config_file(overrides)
    if path is not None:
        settings, queues = read_file(path)
        config.update(settings)
        config["CONFIG"] = str(path)
        config["QUEUES"] = queues
    for key, default in DEFAULTS.items():
        raw = os.environ.get(f"PANOPTES_{key}")
        if raw is None:
            continue
        config[key] = _parse_setting(key, raw, default)
    if overrides:
        config.update(overrides)
    if "SQLALCHEMY_DATABASE_URI" not in config:
        config["SQLALCHEMY_DATABASE_URI"] = database_uri(str(config["DATABASE_URL"]))
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = None  # an empty PANOPTES_SECRET_KEY= (env files) means unset
    # JSON columns are written and read on every event: orjson, where it agrees with Python.
    # Pre-ping: a pooled connection the database dropped (a restart) is replaced on checkout
    # instead of failing the next request.
    config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "json_serializer": coerce.dumps,
        "json_deserializer": coerce.loads,
        "pool_pre_ping": True,
        **(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}),
    }
    config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    # Behind TLS the cookie must never travel in clear.
    config.setdefault(
        "SESSION_COOKIE_SECURE", str(config.get("PUBLIC_URL") or "").startswith("https://")
    )
    config.setdefault("PERMANENT_SESSION_LIFETIME", 7 * 24 * 3600)
    if not config["LIVE_MAX_STREAMS"]:
        threads = _parse_setting("THREADS", os.environ.get("PANOPTES_THREADS", "16"), 16)
        config["LIVE_MAX_STREAMS"] = max(1, threads // 2)
    return config


@dataclass(frozen=True, slots=True)
class Staleness:
    """How long a Running run may stay silent before it reads as Stale (None: never): by
    engine for the engines whose adapter says so, ``default`` for any other."""

    by_engine: Mapping[str, timedelta | None]
    default: timedelta | None

    def after(self, engine: str) -> timedelta | None:
        return self.by_engine.get(engine, self.default)


def stale_after(config: Mapping[str, Any]) -> Staleness:
    """The silence after which a Running run reads as Stale, for each engine (asked of the
    engine adapters)."""
    from . import engines

    by_engine, default = engines.stale_thresholds(config)
    return Staleness(by_engine, default)


def weak_secret_key(key: str | bytes) -> str | None:
    """Why a configured secret key is unsafe (too short, a placeholder), or None."""
    raw = key.encode() if isinstance(key, str) else key
    if len(raw) < MIN_SECRET_KEY_BYTES:
        return f"it is shorter than {MIN_SECRET_KEY_BYTES} bytes"
    lowered = raw.decode("utf-8", "replace").lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS) or len(set(raw)) < 8:
        return "it looks like a placeholder"
    return None


def check(config: Mapping[str, Any]) -> None:
    """Refuse settings that would be unsafe to serve with."""
    key = config.get("SECRET_KEY")
    if key is not None:
        problem = weak_secret_key(key)
        if problem:
            raise RuntimeError(
                f"PANOPTES_SECRET_KEY is refused: {problem}. Set a long random string "
                "(python -c 'import secrets; print(secrets.token_hex(32))'), or unset it to "
                "have the hub generate one and keep it in its database."
            )
    for name in ("AUTH_FAILURE_LIMIT", "LAUNCH_RATE_LIMIT"):
        try:
            limits.parse_many(str(config.get(name, DEFAULTS[name])))
        except ValueError:
            raise RuntimeError(
                f"PANOPTES_{name} is refused: {config.get(name)!r} is not a rate; "
                "write it as '30 per minute' (or per second, hour, day)."
            ) from None

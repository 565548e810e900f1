"""Workflow ids: one id space for every engine."""

from __future__ import annotations

import re
import secrets
import string
import zlib

_BASE62 = string.digits + string.ascii_letters
GENERATED_ID_LENGTH = 14
# Ids adopted from clients: safe in URLs and paths (no slash, no leading dot or dash).
WORKFLOW_ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_WORKFLOW_ID = re.compile(WORKFLOW_ID_PATTERN)
# The log's partitions: fixed for the life of a database (the migration that made them
# assigned the events it found).
SHARDS = 16


def new_workflow_id() -> str:
    """A fresh public id: 14 base62 characters (Tower requires at most 16)."""
    return "".join(secrets.choice(_BASE62) for _ in range(GENERATED_ID_LENGTH))


def is_valid_workflow_id(value: str) -> bool:
    """Whether a client's id can be adopted: 1-64 characters of base62, ``_``, ``.``, ``-``,
    starting alphanumeric."""
    return _WORKFLOW_ID.fullmatch(value) is not None


def shard_of(workflow_id: str) -> int:
    """The log partition of a run's events (stable across processes and releases)."""
    return zlib.crc32(workflow_id.encode()) % SHARDS

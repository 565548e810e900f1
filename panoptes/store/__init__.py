"""The store: the only code that writes to the database.

- ``log``: ingestion appends raw events to the log and commits before answering;
- ``projector``: applies the log to runs and jobs in batches (and rebuilds them: reindex);
- ``runs``: what people do to runs (rename, cancel, delete) and retention;
- ``tokens``: access tokens.

See docs/ARCHITECTURE.md for the flow from each protocol through the log to the tables.
"""

from __future__ import annotations

from .ids import WORKFLOW_ID_PATTERN, is_valid_workflow_id, new_workflow_id
from .log import (
    BatchResult,
    EngineMismatch,
    generic_batch,
    snakemake_batch,
    snakemake_create,
    snakemake_update,
    tower_create,
    tower_event,
)
from .projector import catch_up, reindex
from .runs import Deleted, cancel, delete_all, delete_workflow, find_run, prune, rename
from .tokens import create_token, revoke_token
from .transactions import write_transaction, writing

__all__ = [
    "WORKFLOW_ID_PATTERN",
    "BatchResult",
    "Deleted",
    "EngineMismatch",
    "cancel",
    "catch_up",
    "create_token",
    "delete_all",
    "delete_workflow",
    "find_run",
    "generic_batch",
    "is_valid_workflow_id",
    "new_workflow_id",
    "prune",
    "reindex",
    "rename",
    "revoke_token",
    "snakemake_batch",
    "snakemake_create",
    "snakemake_update",
    "tower_create",
    "tower_event",
    "write_transaction",
    "writing",
]

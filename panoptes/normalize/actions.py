"""What people do to runs (recorded in the log under the engine "hub") as schema events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .schema import Event, MarkedCancelled, Renamed


def parse(kind: str, body: Any, received_at: datetime) -> list[Event]:
    """``rename`` (``{"name": ...}``) and ``cancel``; anything else changes nothing."""
    if kind == "rename" and isinstance(body, dict) and isinstance(body.get("name"), str):
        return [Renamed(at=received_at, name=body["name"])]
    if kind == "cancel":
        return [MarkedCancelled(at=received_at)]
    return []

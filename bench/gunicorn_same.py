"""gunicorn settings for the servers that are not the hub: exactly the hub's settings.

Reads ``panoptes/gunicorn_conf.py`` and keeps every setting it makes (worker class, workers,
threads, timeouts, keep-alive, access log ...) but none of its hooks: those import the hub's
own modules, which a peer's environment does not have (panoptes-ui's package is even called
``panoptes`` too).
"""

from __future__ import annotations

import runpy
import types
from pathlib import Path
from typing import Any

_HUB_CONF = Path(__file__).resolve().parent.parent / "panoptes" / "gunicorn_conf.py"

_settings: dict[str, Any] = {
    name: value
    for name, value in runpy.run_path(str(_HUB_CONF)).items()
    if not name.startswith("_") and not callable(value) and not isinstance(value, types.ModuleType)
}
globals().update(_settings)

"""The plugin's spool files: the shared client's, kept in ``.snakemake/panoptes/``.

See ``panoptes_hub_client.spool`` for the format; this module only adds where a Snakemake
run keeps them and sends them over the Snakemake channel by default.
"""

from __future__ import annotations

import os
from pathlib import Path

from panoptes_hub_client.channels import Channel
from panoptes_hub_client.spool import (
    SPOOL_SUFFIX,
    SpoolBusy,
    SpoolFile,
    SpoolHeader,
    find_spools,
    read_header,
    write_spool,
)
from panoptes_hub_client.spool import send_spool as _send_spool

__all__ = [
    "SPOOL_SUFFIX",
    "SpoolBusy",
    "SpoolFile",
    "SpoolHeader",
    "find_spools",
    "read_header",
    "send_spool",
    "spool_dir",
    "write_spool",
]


def spool_dir(workdir: str | os.PathLike[str]) -> Path:
    """Return the directory holding the spool files of runs in ``workdir``."""
    return Path(workdir) / ".snakemake" / "panoptes"


def send_spool(
    path: str | os.PathLike[str],
    address: str,
    token: str | None = None,
    timeout: float = 10.0,
    *,
    batch_size: int = 500,
    channel: Channel | None = None,
) -> int:
    """Send a spool file to the hub at ``address``; return how many events it took.

    This is ``panoptes_hub_client.spool.send_spool``: the file's header names its channel
    (the Snakemake routes for the plugin's files, found through its entry point).
    """
    return _send_spool(path, address, token, timeout, batch_size=batch_size, channel=channel)

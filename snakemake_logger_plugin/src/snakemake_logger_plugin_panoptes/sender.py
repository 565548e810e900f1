"""The plugin's sender: the shared client's background sender on the Snakemake channel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from panoptes_hub_client.sender import CloseReport, Notifier
from panoptes_hub_client.sender import Sender as _Sender

from .client import SnakemakeChannel
from .spool import spool_dir

__all__ = ["CloseReport", "Notifier", "Sender"]


class Sender(_Sender):
    """Deliver a Snakemake run's events; spool files go to ``<workdir>/.snakemake/panoptes``."""

    def __init__(self, *, workdir: Callable[[], str], **kwargs: Any) -> None:
        notifier = kwargs.get("notifier")

        def tell_url(url: str) -> None:
            if isinstance(notifier, Notifier):
                notifier.once("run-url", f"this run on the hub: {url}")

        super().__init__(
            channel=SnakemakeChannel(on_registered=tell_url),
            spool_directory=lambda: spool_dir(workdir()),
            **kwargs,
        )

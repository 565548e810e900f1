"""Pure translation of engine payloads into engine-neutral events.

No Flask and no SQLAlchemy here: another Python program can reuse it as it is::

    from datetime import UTC, datetime
    from panoptes.normalize import snakemake, tower

    events = snakemake.parse_message({"level": "progress", "done": 1, "total": 3},
                                     received_at=datetime.now(UTC))
    events = tower.parse("progress", body, received_at=datetime.now(UTC))

Each call returns a list of the dataclasses in :mod:`panoptes.normalize.schema`; the status rules
are the pure functions in :mod:`panoptes.normalize.rules`.
"""

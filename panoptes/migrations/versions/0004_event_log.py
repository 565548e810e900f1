"""the event log: shards and the projector's positions

Revision ID: 0004
Revises: 0003

Runs and jobs are projected from raw_events by the projector, which keeps its place in
log_positions. Everything a database of an earlier release holds is already projected, so
every position starts at the current end of the log.
"""

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SHARDS = 16  # panoptes.store.log.SHARDS: fixed for the life of a database
ALL_SHARDS = -1  # SQLite's single position


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    # Constant defaults: no table rebuild on SQLite, no rewrite on PostgreSQL.
    op.add_column(
        "raw_events",
        sa.Column("shard", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
    )
    positions = op.create_table(
        "log_positions",
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_log_positions")),
    )
    head = bind.scalar(sa.text("SELECT COALESCE(MAX(pk), 0) FROM raw_events")) or 0
    op.bulk_insert(
        positions,
        [{"shard": shard, "event_pk": head} for shard in range(ALL_SHARDS, SHARDS)],
    )
    if postgresql:
        # A run's earlier events join its shard, so a replay orders them with its later ones.
        ids = [row[0] for row in bind.execute(sa.text("SELECT DISTINCT workflow_id FROM raw_events"))]
        for workflow_id in ids:
            shard = zlib.crc32((workflow_id or "").encode()) % SHARDS
            if shard:
                bind.execute(
                    sa.text("UPDATE raw_events SET shard = :shard WHERE workflow_id = :id"),
                    {"shard": shard, "id": workflow_id},
                )
    op.create_index("ix_raw_events_shard_pk", "raw_events", ["shard", "pk"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_raw_events_shard_pk", table_name="raw_events")
    op.drop_table("log_positions")
    with op.batch_alter_table("raw_events", schema=None) as batch_op:
        batch_op.drop_column("shard")

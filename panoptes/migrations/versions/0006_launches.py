"""launches, their logs, and token scopes

Revision ID: 0006
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "launches",
        sa.Column("pk", BIG_ID, nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("pipeline", sa.Text(), nullable=False),
        sa.Column("revision", sa.String(length=255), nullable=True),
        sa.Column("profile", sa.String(length=255), nullable=True),
        sa.Column("params", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("config_text", sa.Text(), nullable=True),
        sa.Column("work_dir", sa.Text(), nullable=True),
        sa.Column("run_name", sa.String(length=255), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("executor", sa.String(length=16), nullable=False),
        sa.Column("args", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("resume", sa.Boolean(), nullable=False),
        sa.Column("relaunch_of", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(), nullable=True),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pgid", sa.Integer(), nullable=True),
        sa.Column("slurm_job_id", sa.String(length=64), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("log_size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_launches")),
        sa.UniqueConstraint("id", name=op.f("uq_launches_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_launches_token_hash")),
    )
    with op.batch_alter_table("launches", schema=None) as batch_op:
        batch_op.create_index("ix_launches_queue_status", ["queue", "status"], unique=False)
        batch_op.create_index(
            "ix_launches_status_submitted", ["status", "submitted_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_launches_workflow_id"), ["workflow_id"], unique=False
        )
    op.create_table(
        "launch_log_chunks",
        sa.Column("pk", BIG_ID, nullable=False),
        sa.Column("launch_pk", BIG_ID, nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["launch_pk"],
            ["launches.pk"],
            name=op.f("fk_launch_log_chunks_launch_pk_launches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_launch_log_chunks")),
    )
    with op.batch_alter_table("launch_log_chunks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_launch_log_chunks_launch_start", ["launch_pk", "start"], unique=False
        )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scopes", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scopes")
    op.drop_table("launch_log_chunks")
    op.drop_table("launches")

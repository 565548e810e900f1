"""workflows: planned jobs without a row, Ignored tasks, the keys of unfinished jobs, an
index to list runs by their start

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("n_ignored", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("n_unseen", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("open_jobs", sa.JSON(none_as_null=True), nullable=True))
    # The runs list sorts by when runs started.
    op.create_index("ix_workflows_started_pk", "workflows", ["started_at", "pk"])


def downgrade() -> None:
    op.drop_index("ix_workflows_started_pk", table_name="workflows")
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("open_jobs")
        batch.drop_column("n_unseen")
        batch.drop_column("n_ignored")

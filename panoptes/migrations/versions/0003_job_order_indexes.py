"""indexes for the job table's order and the timeline of big runs

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_workflow_pk", ["workflow_pk", "pk"], unique=False)
        batch_op.create_index("ix_jobs_workflow_started", ["workflow_pk", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_workflow_started")
        batch_op.drop_index("ix_jobs_workflow_pk")

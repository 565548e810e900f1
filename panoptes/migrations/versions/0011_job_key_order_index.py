"""jobs: an index for the job table's default order (job id as a number)

The run page lists jobs by id as a number: shorter keys first, then as text. Without an
index a page of a 1,000,000-job run sorted every job (200 ms in SQLite alone).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_workflow_key_order",
        "jobs",
        ["workflow_pk", sa.text("length(job_key)"), "job_key"],
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_workflow_key_order", table_name="jobs")

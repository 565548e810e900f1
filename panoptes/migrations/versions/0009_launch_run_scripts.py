"""launches: the pre-run and post-run scripts of a launch

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("launches") as batch:
        batch.add_column(sa.Column("pre_run_script", sa.Text(), nullable=True))
        batch.add_column(sa.Column("post_run_script", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("launches") as batch:
        batch.drop_column("post_run_script")
        batch.drop_column("pre_run_script")

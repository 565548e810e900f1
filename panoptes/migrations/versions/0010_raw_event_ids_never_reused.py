"""raw_events: SQLite never reuses an event id (AUTOINCREMENT)

Deleting a run deletes its raw events. Without AUTOINCREMENT SQLite gives the next row the
highest id left plus one, so when the deleted events were the newest, the next events got
ids the projector had already passed and were never applied. PostgreSQL's sequence never
goes back; nothing changes there.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "raw_events", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass
    # Ids already handed out may be gone from the table: start above the projector too.
    high = bind.scalar(
        sa.text(
            "SELECT MAX(COALESCE((SELECT MAX(pk) FROM raw_events), 0),"
            " COALESCE((SELECT MAX(event_pk) FROM log_positions), 0))"
        )
    )
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'raw_events'"))
    bind.execute(
        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('raw_events', :seq)"),
        {"seq": int(high or 0)},
    )


def downgrade() -> None:
    # Never reusing ids is what every earlier revision assumed; the table stays as it is.
    pass

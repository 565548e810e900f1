"""Statements run on the driver's connection (ingestion's hot path), on each backend."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import DateTime, bindparam, insert, select
from sqlalchemy.dialects import sqlite

from panoptes import driver
from panoptes.extensions import db
from panoptes.models import RawEvent, UTCDateTime, Workflow

RAW_EVENTS = RawEvent.__table__
INSERT_RAW = driver.Statement(
    insert(RAW_EVENTS).inline(), [c.key for c in RAW_EVENTS.columns if c.key != "pk"]
)
SELECT_RAW = driver.Statement(
    select(RAW_EVENTS).where(RAW_EVENTS.c.workflow_id == bindparam("workflow_id"))
)


def raw_event(workflow_id, body, received_at=datetime(2026, 11, 22, 3, 0, tzinfo=UTC)):
    return {
        "engine": "snakemake",
        "kind": "event",
        "workflow_id": workflow_id,
        "received_at": received_at,
        "dedupe_key": None,
        "body": body,
    }


def test_values_convert_as_sqlalchemy_converts_them(app):
    """What the driver path writes, the ORM reads back unchanged, and the other way round."""
    an_hour_east = timezone(timedelta(hours=1))
    with app.app_context():
        with driver.transaction(db.engine, immediate=True) as writer:
            writer.execute(
                INSERT_RAW,
                raw_event("W1", {"a": [1, "ü"]}, datetime(2026, 11, 22, 4, 0, tzinfo=an_hour_east)),
            )
            writer.execute(INSERT_RAW, raw_event("W2", None))
            writer.execute(INSERT_RAW, raw_event("W3", driver.JsonText('{"already": "text"}')))
        stored = {e.workflow_id: e for e in db.session.scalars(select(RawEvent))}
        assert stored["W1"].body == {"a": [1, "ü"]}
        assert stored["W1"].received_at == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
        assert stored["W3"].body == {"already": "text"}
        # Python None is SQL NULL in JSON columns (not the JSON text "null").
        nulls = db.session.scalars(select(RawEvent.workflow_id).where(RawEvent.body.is_(None)))
        assert list(nulls) == ["W2"]

        with driver.transaction(db.engine, immediate=False) as writer:
            (row,) = writer.rows(SELECT_RAW, {"workflow_id": "W1"})
            assert writer.first(SELECT_RAW, {"workflow_id": "nope"}) is None
        assert row.body == {"a": [1, "ü"]}
        assert row.received_at == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
        assert row.workflow_id == row["workflow_id"] == "W1"


def test_a_failed_transaction_leaves_nothing_behind(app):
    def fail_half_way() -> None:
        with driver.transaction(db.engine, True) as writer:
            writer.execute(INSERT_RAW, raw_event("W1", {}))
            raise RuntimeError("the handler failed half-way")

    with app.app_context():
        with pytest.raises(RuntimeError, match="half-way"):
            fail_half_way()
        assert db.session.scalars(select(RawEvent)).all() == []


def test_one_off_statements_carry_their_own_values(app):
    with app.app_context():
        with driver.transaction(db.engine, True) as writer:
            writer.execute_many(INSERT_RAW, [raw_event(f"W{i}", {"i": i}) for i in range(3)])
            rows = writer.rows(
                select(RAW_EVENTS.c.workflow_id).where(RAW_EVENTS.c.workflow_id == "W2")
            )
        assert rows == [{"workflow_id": "W2"}]


def test_lists_of_values_are_refused_with_a_clear_error(app):
    with app.app_context(), driver.transaction(db.engine, False) as writer:
        query = select(Workflow.pk).where(Workflow.id.in_(["a", "b"]))
        with pytest.raises(ValueError, match="expanding parameters"):
            writer.rows(query)


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), timezones=st.none() | st.timezones()),
    type_=st.sampled_from([UTCDateTime(), DateTime()]),
)
def test_datetimes_are_written_to_sqlite_as_sqlalchemy_writes_them(moment, type_):
    """Stored datetimes are compared as text in SQL: the driver's text must be SQLAlchemy's."""
    dialect = sqlite.dialect()
    ours = driver.Compiled.of(select(bindparam("at", type_=type_)), dialect)
    sqlalchemys = type_.dialect_impl(dialect).bind_processor(dialect)
    assert ours.parameters({"at": moment}) == [sqlalchemys(moment)]

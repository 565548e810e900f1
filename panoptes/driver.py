"""Core statements run on the database driver's own connection, for ingestion's hot path.

SQLAlchemy still builds every statement, compiles it (once per dialect) and supplies the type
conversions (its bind and result processors); only the execution skips its ``Connection``,
whose bookkeeping cost about 55 µs per statement against about 15 µs for SQLite to run it, and
an event is half a dozen statements (bench/PROFILES.md). Only ``store`` uses this module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import JSON, ClauseElement, DateTime, TypeDecorator
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any] | None
_NO_VALUES: Mapping[str, Any] = MappingProxyType({})


class JsonText(str):
    """A value for a JSON column that is already serialised: sent as it is."""

    __slots__ = ()


class Row(dict[str, Any]):
    """A row being changed: a dict of its columns, readable and writable as attributes."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


@dataclass(slots=True)
class Compiled:
    """One statement compiled for one dialect, with its conversions in parameter order."""

    sql: str
    positional: bool
    # (name, name sent to the driver, processor, default value), in parameter order
    binds: tuple[tuple[str, str, Processor, Any], ...]
    columns: tuple[tuple[str, TypeEngine[Any]], ...]  # a SELECT's (key, type), else empty
    # A SELECT's columns that need converting, with their result processors: known once the
    # driver has described the columns.
    readers: tuple[tuple[str, Callable[[Any], Any]], ...] | None = None

    @classmethod
    def of(
        cls, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> Compiled:
        """``column_keys``: the columns an INSERT or UPDATE sets (all of them if None)."""
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        assert isinstance(compiled, SQLCompiler)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("expanding parameters (IN with a list) are not supported here")
        names = compiled.positiontup if compiled.positional else list(compiled.binds)
        escaped = compiled.escaped_bind_names
        binds = tuple(
            (
                name,
                escaped.get(name, name),
                _bind_processor(compiled.binds[name].type.dialect_impl(dialect), dialect),
                compiled.binds[name].value,
            )
            for name in names or ()
        )
        selected: Sequence[Any] = getattr(statement, "selected_columns", None) or ()
        columns: tuple[tuple[str, TypeEngine[Any]], ...] = tuple(
            (column.key, column.type.dialect_impl(dialect)) for column in selected
        )
        return cls(compiled.string, compiled.positional, binds, columns)

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The driver's parameters for these values (a statement's own literals fill the gaps)."""
        get = values.get
        if self.positional:
            return [
                get(name, default) if processor is None else processor(get(name, default))
                for name, _, processor, default in self.binds
            ]
        return {
            sent: get(name, default) if processor is None else processor(get(name, default))
            for name, sent, processor, default in self.binds
        }

    def rows(self, dialect: Dialect, cursor: Any) -> list[Row]:
        """A SELECT's fetched rows, converted as SQLAlchemy would."""
        fetched = cursor.fetchall()
        readers = self.readers
        if readers is None:  # the driver's type codes choose some conversions (PostgreSQL)
            readers = self.readers = tuple(
                (key, convert)
                for (key, type_), described in zip(self.columns, cursor.description, strict=True)
                if (convert := type_.result_processor(dialect, described[1])) is not None
            )
        keys = [key for key, _ in self.columns]
        rows = []
        for values in fetched:
            row = Row(zip(keys, values, strict=True))
            for key, to_python in readers:
                value = row[key]
                if value is not None:
                    row[key] = to_python(value)
            rows.append(row)
        return rows


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    processor = type_.bind_processor(dialect)
    if processor is None:
        return None
    if isinstance(type_, JSON):

        def json_or_text(value: Any, serialise: Callable[[Any], Any] = processor) -> Any:
            return str(value) if value.__class__ is JsonText else serialise(value)

        return json_or_text
    if isinstance(type_, DateTime) or (
        isinstance(type_, TypeDecorator) and isinstance(type_.impl_instance, DateTime)
    ):
        to_driver: Callable[[Any], Any] = processor
        if dialect.name == "sqlite":
            to_driver = _sqlite_datetime(type_, dialect, processor)
        # The rows of one request share their timestamps (the arrival time of a batch of
        # events, the update time of its jobs): convert each one once.
        last: list[tuple[Any, Any]] = [(None, None)]

        def datetime_once(value: Any, convert: Callable[[Any], Any] = to_driver) -> Any:
            seen, converted = last[0]
            if value is seen:
                return converted
            converted = convert(value)
            last[0] = (value, converted)
            return converted

        return datetime_once
    return processor


def _sqlite_datetime(
    type_: TypeEngine[Any], dialect: Dialect, convert: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """SQLAlchemy's conversion of a datetime for SQLite, with its text made by ``isoformat``
    (the same text, "YYYY-MM-DD HH:MM:SS.ffffff", at a third of the cost); other values
    (None, dates, datetimes with a zone left) take SQLAlchemy's own."""
    to_stored = type_.process_bind_param if isinstance(type_, TypeDecorator) else None

    def sqlite_datetime(value: Any) -> Any:
        if value.__class__ is not datetime:
            return convert(value)
        stored = value if to_stored is None else to_stored(value, dialect)
        # SQLAlchemy drops a zone left (isoformat would write it): its own conversion, from
        # the value as given, so that a decorator's conversion is not applied twice.
        if stored.__class__ is not datetime or stored.tzinfo is not None:
            return convert(value)
        return stored.isoformat(" ", "microseconds")

    return sqlite_datetime


class Statement:
    """A statement built once and compiled the first time each dialect runs it.

    ``columns``: the columns an INSERT or UPDATE sets (all of them if None).
    """

    __slots__ = ("_compiled", "_lock", "columns", "statement")

    def __init__(self, statement: ClauseElement, columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.columns = None if columns is None else list(columns)
        self._compiled: dict[str, Compiled] = {}
        self._lock = threading.Lock()

    def compiled(self, dialect: Dialect) -> Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            with self._lock:
                found = self._compiled.setdefault(
                    dialect.name, Compiled.of(self.statement, dialect, self.columns)
                )
        return found


class Writer:
    """One write transaction on a pooled driver connection."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect
        # (engine, kind) of each raw event written, counted in the metrics once committed.
        self.recorded: list[tuple[str, str]] = []

    def execute(
        self, statement: Statement | ClauseElement, values: Mapping[str, Any] = _NO_VALUES
    ) -> None:
        compiled = self._compile(statement)
        # Both drivers' connections execute directly (sqlite3 and psycopg 3).
        self.connection.execute(compiled.sql, compiled.parameters(values)).close()

    def execute_many(self, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        compiled = self._compile(statement)
        cursor = self.connection.cursor()
        try:
            cursor.executemany(compiled.sql, [compiled.parameters(row) for row in rows])
        finally:
            cursor.close()

    def rows(
        self, statement: Statement | ClauseElement, values: Mapping[str, Any] = _NO_VALUES
    ) -> list[Row]:
        compiled = self._compile(statement)
        cursor = self.connection.execute(compiled.sql, compiled.parameters(values))
        try:
            return compiled.rows(self.dialect, cursor)
        finally:
            cursor.close()

    def first(
        self, statement: Statement | ClauseElement, values: Mapping[str, Any] = _NO_VALUES
    ) -> Row | None:
        found = self.rows(statement, values)
        return found[0] if found else None

    def _compile(self, statement: Statement | ClauseElement) -> Compiled:
        if isinstance(statement, Statement):
            return statement.compiled(self.dialect)
        return Compiled.of(statement, self.dialect)  # a one-off statement, off the hot path


@contextmanager
def transaction(engine: Engine, immediate: bool) -> Iterator[Writer]:
    """A transaction on a pooled connection: committed on success, rolled back on any error.

    ``immediate`` (SQLite) takes the write lock at BEGIN, so that concurrent writers queue
    instead of failing when a deferred transaction tries to upgrade.
    """
    pooled = engine.raw_connection()
    try:
        connection: Any = pooled.driver_connection
        if engine.dialect.name == "sqlite":
            connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield Writer(connection, engine.dialect)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
    finally:
        pooled.close()

"""Engine construction: the one place that knows how SQLite and PostgreSQL differ."""

from __future__ import annotations

import time
from collections.abc import Iterable, MutableMapping
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.pool import StaticPool

from einvoice.errors import DatabaseUnavailableError, DuplicateKeyError

SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_AFTER_IDLE_SECONDS = 5.0
#: PostgreSQL connections a process keeps once it has opened them (lazily: no more than it has used
#: at once). Opening one costs the server a backend fork and several ms of CPU, so the pool keeps
#: what a burst opened instead of closing it again; the API bounds its own concurrent database
#: work below this (``api.deps.DATABASE_CONCURRENCY``).
POOL_SIZE = 16
#: Beyond the pool, for callers that do not bound themselves; closed again when returned.
MAX_OVERFLOW = 16
#: ``Connection.info`` key: a statement of the transaction under way may have written (``may_have_written``).
WROTE = "einvoice.wrote"
#: Statements that change no row: a transaction of only these ends alike by COMMIT or ROLLBACK (a
#: ``SELECT … FOR UPDATE`` only locks; ``SET LOCAL`` ends with the transaction). Known by their
#: text: a ``WITH`` that writes reports the command tag of its last part, ``SELECT`` for instance.
_READING = ("SELECT", "SHOW", "SET")
#: Plain writes, which write nothing when their command tag counts no row (``UPDATE 0``).
_PLAIN_WRITES = ("UPDATE", "DELETE", "INSERT")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Return an engine for ``url`` with the settings the store relies on.

    SQLite: foreign keys on, WAL, a busy timeout, and every transaction begun with
    ``BEGIN IMMEDIATE`` so that two writers queue up instead of failing on lock upgrade.
    An in-memory URL (``sqlite://``) gets one shared connection, so all threads see one database.
    PostgreSQL: a pool that keeps up to ``POOL_SIZE`` connections; connections idle for a while
    are pinged before use, so that connections broken by a server restart are replaced
    (``_ping_when_idle``).
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, in_memory=parsed.database in (None, "", ":memory:"))
        _translate_errors(engine)
        return engine
    kwargs["pool_size"] = POOL_SIZE
    kwargs["max_overflow"] = MAX_OVERFLOW
    kwargs["pool_use_lifo"] = True  # the connections in use stay few and warm; the rest idle
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    _translate_errors(engine)
    _track_writes(engine)
    return engine


def note_statements(info: MutableMapping[Any, Any], statements: Iterable[tuple[str, str | None]]) -> None:
    """Note in a connection's ``info`` that its transaction may have written when one of
    ``statements`` (each its SQL and its command tag, psycopg's ``statusmessage``; None when
    unknown) may have: anything but a reading statement (``SELECT``, ``SHOW``, ``SET``) or a plain
    ``UPDATE``, ``DELETE`` or ``INSERT`` whose tag counts no row. A ``WITH`` always counts."""
    for sql, tag in statements:
        verb = sql.lstrip()[:6].upper()
        if verb.startswith(_READING):
            continue
        if verb.startswith(_PLAIN_WRITES) and tag is not None and tag.endswith(" 0"):
            continue
        info[WROTE] = True
        return


def may_have_written(info: MutableMapping[Any, Any]) -> bool:
    """Whether a statement of the connection's transaction under way may have written
    (``note_statements``; every statement through SQLAlchemy is noted by ``_track_writes``)."""
    return bool(info.get(WROTE))


def _track_writes(engine: Engine) -> None:
    """Note, on each connection, whether its transaction under way ran a statement that may have
    written, from each statement's text and command tag: a unit of work that only read ends with
    COMMIT without asking the server (``uow._wrote_nothing``). Statements run on the driver itself
    (``repositories.pg_round_trip``) note theirs with ``note_statements``."""

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.info.pop(WROTE, None)

    @event.listens_for(engine, "after_cursor_execute")
    def _on_execute(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        note_statements(connection.info, [(statement, getattr(cursor, "statusmessage", None))])


#: How the drivers name a unique key taken (PostgreSQL's SQLSTATE; SQLite's extended result codes).
_UNIQUE = frozenset({"23505", "SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def _unique_violation(error: BaseException | None) -> bool:
    return bool({getattr(error, "sqlstate", None), getattr(error, "sqlite_errorname", None)} & _UNIQUE)


def _translate_errors(engine: Engine) -> None:
    """Raise the engine's own errors for the driver's, so that no layer above the store knows
    SQLAlchemy or the driver: a unique key taken is DuplicateKeyError (other integrity errors are
    bugs and pass through); a connection refused, lost
    or timed out (and SQLite's "database is locked") is DatabaseUnavailableError, a TransientError
    that callers retry (the API answers 503). SQLAlchemy still invalidates the pool on a
    disconnect before the translated error is raised."""

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        error = context.sqlalchemy_exception
        if isinstance(error, IntegrityError) and _unique_violation(error.orig):
            raise DuplicateKeyError(str(error.orig).strip().splitlines()[0])
        if isinstance(error, OperationalError | InterfaceError) or context.is_disconnect:
            cause = error.orig if error is not None and error.orig is not None else context.original_exception
            raise DatabaseUnavailableError(f"database unavailable: {type(cause).__name__}")


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it has been idle for ``PING_AFTER_IDLE_SECONDS``.

    ``pool_pre_ping`` pings at every checkout: a round trip per transaction, a tenth of a
    submission's. A connection used moments ago is alive unless the server just restarted, and
    then the first statement to fail invalidates the whole pool (SQLAlchemy does so on any
    disconnect error), so a restart costs each process one failed transaction, which callers
    retry (the API answers 503, the worker retries the message)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:  # the pool replaces the connection and tries again
            raise DisconnectionError(str(exc)) from exc


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

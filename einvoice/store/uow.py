"""Unit of work: one transaction, with the repositories that work inside it.

Services receive a unit of work (or a factory of them) and use it as a context manager::

    with uow:
        ...
        uow.commit()

Leaving the block without ``commit()`` rolls back (on PostgreSQL, a transaction that wrote nothing
ends with ``COMMIT``, which is the same for it and keeps the connection's prepared statements).
Entering an already entered unit of work
joins it (the outer block owns the transaction), so a caller may wrap several service calls
in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from einvoice.store.commitments import CommitmentRepository
from einvoice.store.engine import may_have_written
from einvoice.store.ports import UnitOfWork
from einvoice.store.posting import PostingRepository
from einvoice.store.repositories import (
    DocumentRepository,
    InstitutionRepository,
    OutboxRepository,
    SupplierRepository,
    UserRepository,
)
from einvoice.store.review import ReviewRepository


class SqlUnitOfWork:
    """A SQLAlchemy session and the repositories bound to it (``ports.UnitOfWork``)."""

    institutions: InstitutionRepository
    suppliers: SupplierRepository
    documents: DocumentRepository
    outbox: OutboxRepository
    commitments: CommitmentRepository
    users: UserRepository
    posting: PostingRepository
    review: ReviewRepository

    def __init__(self, session_factory: Callable[[], Session], engine: Engine | None = None) -> None:
        self._session_factory = session_factory
        self._engine = engine
        self._session: Session | None = None
        self._depth = 0

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    @property
    def scope(self) -> object:
        """The engine: what identifies the data behind this unit of work, for per-store caches."""
        return self._engine

    def __enter__(self) -> SqlUnitOfWork:
        self._depth += 1
        if self._depth == 1:
            session = self._session_factory()
            self._session = session
            self.institutions = InstitutionRepository(session)
            self.suppliers = SupplierRepository(session)
            self.documents = DocumentRepository(session)
            self.outbox = OutboxRepository(session)
            self.commitments = CommitmentRepository(session)
            self.users = UserRepository(session)
            self.posting = PostingRepository(session)
            self.review = ReviewRepository(session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        session, self._session = self._session, None
        if session is None:  # pragma: no cover - defensive
            return
        try:
            if exc_type is None and _wrote_nothing(session):
                session.commit()  # the same as a rollback here, and it keeps the prepared statements
            else:
                session.rollback()  # no-op after commit; undoes anything not committed
        finally:
            session.close()

    def commit(self) -> None:
        """Commit, unless an outer block owns the transaction (then it commits)."""
        if self._depth > 1:
            self.session.flush()
            return
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def flush(self) -> None:
        self.session.flush()


def _wrote_nothing(session: Session) -> bool:
    """Whether the session's open transaction on PostgreSQL wrote nothing: every statement it ran
    was a reading one (``engine.may_have_written``, from their command tags, noted as they ran).
    Such a transaction ends with ``COMMIT``: psycopg takes a ``ROLLBACK`` for a sign that what it
    prepared may be gone and forgets every statement prepared on the connection (and deallocates
    them, one more round trip), so that a connection whose read-only units of work (a key's lookup
    before each request) rolled back never kept a statement prepared, and PostgreSQL parsed and
    planned each one again every time. Other databases, or nothing begun: False."""
    if not session.in_transaction() or session.get_bind().dialect.name != "postgresql":
        return False
    if session.new or session.dirty or session.deleted:
        return False
    connection = session.connection()
    import psycopg

    driver = connection.connection.driver_connection
    if (
        not isinstance(driver, psycopg.Connection)
        or driver.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS
    ):
        return False  # idle, or a failed statement left it aborted: roll back
    return not may_have_written(connection.info)


def uow_factory_for(engine: Engine) -> Callable[[], UnitOfWork]:
    """Return a factory of units of work on ``engine``."""
    session_factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
    return lambda: SqlUnitOfWork(session_factory, engine)

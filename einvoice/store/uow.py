"""Unit of work: one transaction, with the repositories that work inside it.

Services receive a unit of work (or a factory of them) and use it as a context manager::

    with uow:
        ...
        uow.commit()

Leaving the block without ``commit()`` rolls back. Entering an already entered unit of work
joins it (the outer block owns the transaction), so a caller may wrap several service calls
in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from einvoice.store.commitments import CommitmentRepository
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


def uow_factory_for(engine: Engine) -> Callable[[], UnitOfWork]:
    """Return a factory of units of work on ``engine``."""
    session_factory = sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
    return lambda: SqlUnitOfWork(session_factory, engine)

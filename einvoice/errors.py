"""Every error the package raises on purpose: one root, ``EInvoiceError``, and a subtree per concern.

What an error is about travels in typed fields set by its constructor (``IntakeError.document_id``
and ``findings``, ``SellerMismatchError.reason``, ``ConflictError.status``, ``UblParseError.element``
and ``line``), never in attributes attached after it was raised. The message is ``str(error)``.

HTTP status codes are chosen in ``einvoice.api.problems`` only, by class (a subclass answers as its
parent does); CLI exit codes in ``einvoice.cli``. The modules that defined some of these classes
before they moved here still export them under the same names.

Errors survive pickling with their fields (``BaseException`` pickles the constructor's positional
arguments and the instance's ``__dict__``), so they can cross a process boundary.

    EInvoiceError
    ├── ConfigurationError
    ├── InputError                      a path given on the command line cannot be used
    ├── DecimalSyntaxError (ValueError) not an xs:decimal
    ├── ArtefactError                   the official validation artefacts
    │   ├── ArtefactMissingError
    │   ├── ArtefactCorruptError
    │   └── RuleSetError
    ├── IntakeError                     a document refused before validation
    │   ├── NotWellFormedError
    │   ├── UnsafeXmlError
    │   │   └── DocumentTooLargeError
    │   ├── UnsupportedDocumentError
    │   ├── UnknownBuyerError
    │   └── IdempotencyConflictError
    ├── ValidationEngineError
    ├── PipelineError                   processing after intake
    │   ├── TransientError
    │   │   └── ErpDeliveryError
    │   └── PermanentError
    │       ├── UblParseError
    │       └── ErpRefusedError
    ├── PaymentError                    a payment the ERP reports
    ├── FeedCursorError                 a pull's cursor the feed never gave out
    ├── AckBatchError                   an acknowledgement of no entries, or of more than 500
    ├── AccountError                    registering institutions and suppliers
    │   ├── InvalidEndpointError (ValueError)
    │   ├── InvalidIdentifierError (ValueError)
    │   └── DuplicateAccountError
    ├── NotFoundError
    ├── ConflictError                   a decision the document's state no longer allows
    ├── AuthenticationError
    ├── AuthorizationError
    │   └── SellerMismatchError
    └── BenchmarkError                  the benchmarks' own HTTP client
        ├── HttpProtocolError
        └── ServerClosedError (ConnectionError)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from einvoice.domain.findings import Finding


class EInvoiceError(Exception):
    """Root of every error the engine raises on purpose."""


class ConfigurationError(EInvoiceError):
    """A setting is missing or invalid (for example a secret without a value outside embedded mode)."""


class InputError(EInvoiceError):
    """A path given on the command line cannot be used (``einvoice validate``, ``einvoice bench``)."""


class DecimalSyntaxError(EInvoiceError, ValueError):
    """A text is not in the ``xs:decimal`` lexical space."""


# --- artefacts -------------------------------------------------------------------------------


class ArtefactError(EInvoiceError):
    """An official validation artefact is missing, corrupt or cannot be installed."""


class ArtefactMissingError(ArtefactError):
    """An artefact the engine needs is not installed."""


class ArtefactCorruptError(ArtefactError):
    """An artefact does not have the sha256 the manifest records."""


class RuleSetError(ArtefactError):
    """No artefact set of the needed kind is in force at the document's receipt time."""


# --- intake ----------------------------------------------------------------------------------


class IntakeError(EInvoiceError):
    """A document was refused before validation could start.

    ``document_id``: the refused document when it was still recorded (state ``refused``), else
    None. ``findings``: what the supplier is told, each with a rule id (empty: the API states one
    from the class). ``line``: where in the document, when known.
    """

    def __init__(
        self,
        message: str = "",
        *,
        document_id: str | None = None,
        findings: Iterable[Finding] = (),
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.document_id = document_id
        self.findings: tuple[Finding, ...] = tuple(findings)
        self.line = line


class NotWellFormedError(IntakeError):
    """The bytes are not well-formed XML."""


class UnsafeXmlError(IntakeError):
    """The XML uses a construct the engine refuses (DOCTYPE, entities, XInclude) or exceeds a limit."""


class DocumentTooLargeError(UnsafeXmlError):
    """The document exceeds the configured size limit."""


class UnsupportedDocumentError(IntakeError):
    """Well-formed XML, but not a document type the engine processes."""


class UnknownBuyerError(IntakeError):
    """The buyer endpoint (BT-49) is not a registered institution."""


class IdempotencyConflictError(IntakeError):
    """An Idempotency-Key was used before with different bytes."""


# --- validation ------------------------------------------------------------------------------


class ValidationEngineError(EInvoiceError):
    """A validation layer could not run (never to be reported as 'valid')."""


class ValidationSubprocessEnded(ValidationEngineError):
    """A validation subprocess had ended before it was given the document (``validation.pool``
    starts another and gives it the document)."""


class ValidationStopped(ValidationEngineError):
    """A validation subprocess was stopped at a limit (time, memory), or died, before it finished
    the document: ``what`` says which, ``findings`` are those of the layers that had finished."""

    def __init__(self, what: str, findings: list[Any] | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.findings = findings or []


# --- pipeline --------------------------------------------------------------------------------


class PipelineError(EInvoiceError):
    """Root for processing errors after intake."""


class TransientError(PipelineError):
    """Worth retrying: a database or broker hiccup, an ERP timeout."""


class PermanentError(PipelineError):
    """Retrying will not help; the document goes to a state a person can see."""


class DatabaseUnavailableError(TransientError):
    """The database refused or lost the connection, or timed out (the store translates the
    driver's error into this one, ``store.engine``): a retry may succeed."""


class DuplicateKeyError(EInvoiceError):
    """A write found a row with the same unique key: registered before, or by a concurrent
    writer a moment ago (the store translates the driver's integrity error into this one; the
    services say what it means to the caller)."""


class DocumentParseError(PermanentError):
    """A document cannot be read into the domain ``Invoice``: its bytes do not parse safely, its
    root is not a UBL Invoice or CreditNote, or an element holds a value outside its lexical space
    (``UblParseError`` says which element, on which line)."""


class StoredInvoiceError(PermanentError):
    """Stored data that is not an ``Invoice`` in a form this engine reads (another format version,
    or data changed by hand)."""


class UblParseError(DocumentParseError):
    """A UBL element holds a value the parser cannot read (a malformed amount, date, boolean, ...).

    Also raised for a root that is neither a UBL Invoice nor a UBL CreditNote. Permanent: the same
    bytes will never parse. ``element`` is the local name of the offending element, ``line`` its
    source line, where known.
    """

    def __init__(self, message: str = "", *, element: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.element = element
        self.line = line


# --- posting ---------------------------------------------------------------------------------


class PostingError(PipelineError):
    """A journal entry cannot be built or delivered."""


class PostingNotReadyError(PostingError):
    """The institution's books are not ready for the document: no complete posting profile, an
    account the profile or the chart lacks (input VAT for a rate, an expense account), or no
    exchange rate for its currency. The document waits in ``approved`` with this as its reason
    until the cause is fixed."""


class PostingSetupError(EInvoiceError):
    """A chart of accounts or a posting profile cannot be stored as given (a malformed CSV row,
    an unknown profile key, an account the profile names that the chart does not hold)."""


class ProfileError(PostingSetupError, ValueError):
    """A posting profile's JSON is not one (an unknown key, a rate that is not a number)."""


class ErpDeliveryError(TransientError):
    """The ERP did not take an entry this time (unreachable, timed out, answered 5xx)."""


class ErpRefusedError(PermanentError):
    """The ERP refused an entry as it is (a push answered 4xx other than 408, 409, 425, 429)."""


class PaymentError(EInvoiceError):
    """A payment the ERP reports cannot be recorded as given (its amount is not the amount due)."""


class FeedCursorError(EInvoiceError):
    """A pull's ``after`` is not a cursor the ERP feed gave out."""


class AckBatchError(EInvoiceError):
    """An acknowledgement of several entries names none, or more than one request may."""


# --- accounts --------------------------------------------------------------------------------


class AccountError(EInvoiceError):
    """An institution or supplier could not be added as asked."""


class InvalidEndpointError(AccountError, ValueError):
    """An endpoint is not of the form ``SCHEME:ID`` (e.g. ``0192:987654325``)."""


class InvalidIdentifierError(AccountError, ValueError):
    """An endpoint's scheme is not a Peppol one, or an identifier fails its scheme's form or check
    digit, or a VAT identifier its country's (``einvoice.domain.identifiers``)."""


class DuplicateAccountError(AccountError):
    """An institution or supplier with this endpoint already exists."""


# --- requests: what a caller may see and do --------------------------------------------------


# --- matching --------------------------------------------------------------------------------


class MatchingError(PermanentError):
    """Matching cannot work with what it was given (an invoice without the total amount with VAT,
    BT-112, that every valid invoice states)."""


class ReservationError(MatchingError):
    """A reservation does not fit the commitment it is applied to: another commitment's, a line the
    commitment does not have, more than the commitment allows (its amount or a line's ordered
    quantity plus tolerance), or a release or consumption of more than is held."""


# --- commitments -----------------------------------------------------------------------------


class CommitmentError(EInvoiceError):
    """A commitment or a receipt could not be registered or changed as asked."""


class InvalidCommitmentError(CommitmentError, ValueError):
    """Input that breaks a rule of the register, naming the field (``field``, a dotted path such as
    ``body.supplier`` or ``lines.2.quantity``): a supplier nobody registered, an end before the
    start, an order without lines, a receipt for a line the commitment does not have."""

    def __init__(self, field: str, message: str = "") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CommitmentConflictError(CommitmentError):
    """The number (or a receipt's reference) is registered already with other content, or a
    change would take away what invoices and receipts already hold."""


class NotFoundError(EInvoiceError):
    """A requested entity does not exist (or is not visible to the caller)."""


class ConflictError(EInvoiceError):
    """A decision on a document whose state no longer allows it (it moved on, or was never there):
    a dead document sent back twice, a decision on a document another person already decided.

    ``document_id`` is the document; ``status`` the state it is in now, when known.
    """

    def __init__(self, message: str = "", *, document_id: str | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.document_id = document_id
        self.status = status


class AuthenticationError(EInvoiceError):
    """Missing or wrong credentials."""


class AuthorizationError(EInvoiceError):
    """Authenticated, but not allowed to do this."""


class SellerMismatchError(AuthorizationError):
    """The authenticated supplier is not the seller the document names; ``reason`` says by which
    identifier. Intake records nothing then, so ``document_id`` is None."""

    def __init__(self, reason: str = "", *, document_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.document_id = document_id


# --- the benchmarks' HTTP client ---------------------------------------------------------------


class BenchmarkError(EInvoiceError):
    """The benchmark could not measure (``einvoice bench``)."""


class HttpProtocolError(BenchmarkError):
    """The server answered something the benchmark's client does not parse as an HTTP/1.1 response."""


class ServerClosedError(BenchmarkError, ConnectionError):
    """The server closed the connection before sending any byte of a response."""


# --- people: accountants' sign-in and decisions ----------------------------------------------


class WebhookError(EInvoiceError):
    """A webhook URL the engine will not deliver to (not https, or http off this host when that is
    not allowed, or not a URL at all)."""


class UserError(EInvoiceError):
    """A user could not be added or changed as asked (unknown role, weak password, no such user)."""


class SignInError(AuthenticationError):
    """Wrong user name or password, or a disabled user (not told apart)."""


class AccountLockedError(SignInError):
    """Too many failed sign-ins in a row: the user is locked out for a while."""


class DecisionError(EInvoiceError):
    """A person's decision on a document was refused."""


class DecisionConflictError(DecisionError):
    """The document's state no longer allows the decision (someone else decided first, or the
    pipeline moved it on)."""


class DecisionRefusedError(DecisionError):
    """The decision is incomplete or not this person's to make: a comment or reason missing, a
    role short of what the approval rules ask, the same person approving twice."""


# --- responses to suppliers ---------------------------------------------------------------------------


class ResponseError(EInvoiceError, ValueError):
    """A response to a supplier that the Peppol rules do not allow: an unknown code, a status that
    moves backwards (``AB → IP → UQ → CA → RE → AP → PD``), a clarification the status cannot carry."""

"""One exception root with a subtree per concern.

HTTP status codes are chosen in ``einvoice.api`` only; CLI exit codes in ``einvoice.cli``.
"""

from __future__ import annotations


class EInvoiceError(Exception):
    """Root of every error the engine raises on purpose."""


class ConfigurationError(EInvoiceError):
    """A setting is missing or invalid (for example a secret without a value outside embedded mode)."""


# --- artefacts -------------------------------------------------------------------------------


class ArtefactError(EInvoiceError):
    """An official validation artefact is missing, corrupt or cannot be installed."""


class ArtefactMissingError(ArtefactError):
    """An artefact the engine needs is not installed."""


class ArtefactCorruptError(ArtefactError):
    """An artefact does not have the sha256 the manifest records."""


# --- intake ----------------------------------------------------------------------------------


class IntakeError(EInvoiceError):
    """A document was refused before validation could start."""


class NotWellFormedError(IntakeError):
    """The bytes are not well-formed XML."""


class UnsafeXmlError(IntakeError):
    """The XML uses a construct the engine refuses (DOCTYPE, entities, XInclude) or exceeds a limit."""


class DocumentTooLargeError(UnsafeXmlError):
    """The document exceeds the configured size limit."""


class UnsupportedDocumentError(IntakeError):
    """Well-formed XML, but not a document type the engine processes."""


# --- validation ------------------------------------------------------------------------------


class ValidationEngineError(EInvoiceError):
    """A validation layer could not run (never to be reported as 'valid')."""


# --- pipeline --------------------------------------------------------------------------------


class PipelineError(EInvoiceError):
    """Root for processing errors after intake."""


class TransientError(PipelineError):
    """Worth retrying: a database or broker hiccup, an ERP timeout."""


class PermanentError(PipelineError):
    """Retrying will not help; the document goes to a state a person can see."""


class DocumentParseError(PermanentError):
    """A document cannot be read into the domain ``Invoice``: its bytes do not parse safely, its
    root is not a UBL Invoice or CreditNote, or an element holds a value outside its lexical space
    (``parsers.ubl.UblParseError`` says which element, on which line)."""


# --- commitments -----------------------------------------------------------------------------


class CommitmentError(EInvoiceError):
    """A commitment or a receipt could not be registered or changed as asked."""


class InvalidCommitmentError(CommitmentError, ValueError):
    """Input that breaks a rule of the register, naming the field (``field``, a dotted path such as
    ``body.supplier`` or ``lines.2.quantity``): a supplier nobody registered, an end before the
    start, an order without lines, a receipt for a line the commitment does not have."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CommitmentConflictError(CommitmentError):
    """The number (or a receipt's reference) is registered already with other content, or a
    change would take away what invoices and receipts already hold."""


class NotFoundError(EInvoiceError):
    """A requested entity does not exist (or is not visible to the caller)."""


class AuthenticationError(EInvoiceError):
    """Missing or wrong credentials."""


class AuthorizationError(EInvoiceError):
    """Authenticated, but not allowed to do this."""

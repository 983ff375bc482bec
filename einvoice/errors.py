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


class NotFoundError(EInvoiceError):
    """A requested entity does not exist (or is not visible to the caller)."""


class AuthenticationError(EInvoiceError):
    """Missing or wrong credentials."""


class AuthorizationError(EInvoiceError):
    """Authenticated, but not allowed to do this."""


# --- people: accountants' sign-in and decisions ----------------------------------------------


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

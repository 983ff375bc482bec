"""Responses to suppliers: the Peppol Invoice Response (T111) for each business step of an
invoice and the Message Level Response (T71) for a document rejected by validation (``build``),
with the code lists and the order in which a status may move (``codes``). Pure: no I/O."""

from einvoice.responses.build import (
    DOCUMENT_TYPE_CODES,
    MLR_MAX_LINES,
    Answered,
    Party,
    invoice_response,
    message_level_response,
)
from einvoice.responses.codes import (
    RESPONSE_CODES,
    STATUS_ACTIONS,
    STATUS_REASONS,
    check_clarification,
    check_transition,
    may_follow,
)

__all__ = [
    "DOCUMENT_TYPE_CODES",
    "MLR_MAX_LINES",
    "RESPONSE_CODES",
    "STATUS_ACTIONS",
    "STATUS_REASONS",
    "Answered",
    "Party",
    "check_clarification",
    "check_transition",
    "invoice_response",
    "may_follow",
    "message_level_response",
]

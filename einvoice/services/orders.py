"""Peppol Orders and Despatch Advices in the commitments register.

- An institution's Peppol BIS Order (T01) registers an order commitment (``register_order``): the
  Order's buyer must be the institution, its supplier a registered one; it is then registered as
  ``POST /v1/commitments`` registers JSON (the same Order again changes nothing, another with the
  same number is a conflict).
- A supplier's Peppol Despatch Advice (T16) is stored against the order's lines as expected
  deliveries (``take_despatch_advice``); only the institution's confirmation, whole or with the
  quantities that arrived, records a receipt (``confirm_despatch_advice``).

Both documents are validated (XSD and Peppol rules) before they come here: the API does it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import Field, ValidationError

from einvoice.domain.commitments import (
    Commitment,
    DespatchAdvice,
    DespatchStatus,
    Order,
    Receipt,
    ReceiptLine,
)
from einvoice.errors import (
    AuthorizationError,
    CommitmentConflictError,
    DuplicateKeyError,
    InvalidCommitmentError,
    NotFoundError,
    SellerMismatchError,
    UnknownBuyerError,
)
from einvoice.services import InstitutionView, SupplierView
from einvoice.services.commitments import CommitmentInput, ReceiptLineInput, Registered, _Form, register
from einvoice.store import UnitOfWork

#: The reference of the receipt a confirmed Despatch Advice records: this prefix and its number.
RECEIPT_PREFIX = "DESADV-"


def _now() -> datetime:
    return datetime.now(UTC)


def _same_endpoint(a: str | None, b: str | None) -> bool:
    """Whether two ``SCHEME:ID`` endpoints name the same participant (Peppol ids ignore case)."""
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def order_input(commitment: Commitment) -> dict[str, Any]:
    """The JSON form (``CommitmentInput``) of the commitment an Order describes. The supplier is
    named by its endpoint; by its VAT and legal ids only when the Order gives no endpoint."""
    supplier = commitment.supplier
    named = (
        {"endpoint": supplier.endpoint}
        if supplier.endpoint
        else {k: v for k, v in (("vat", supplier.vat), ("legal_id", supplier.legal_id)) if v}
    )
    data: dict[str, Any] = {
        "number": commitment.number,
        "kind": commitment.kind.value,
        "supplier": named,
        "currency": commitment.currency,
        "valid_from": commitment.valid_from,
        "valid_to": commitment.valid_to,
        "account": commitment.account,
        "amount": _text(commitment.amount),
        "lines": [
            {
                "id": line.id,
                "seller_item_id": line.seller_item_id,
                "standard_item_id": line.standard_item_id,
                "description": line.description,
                "quantity": _text(line.quantity),
                "unit_code": line.unit_code,
                "unit_price": _text(line.unit_price),
                "vat_category": line.vat_category,
                "vat_rate": _text(line.vat_rate),
                "account": line.account,
            }
            for line in commitment.lines
        ],
    }
    return data


def register_order(uow: UnitOfWork, order: Order, *, institution: InstitutionView) -> Registered:
    """Register the order commitment ``order`` describes for ``institution`` (``source`` order).
    Raises AuthorizationError when the Order's buyer is another, InvalidCommitmentError naming the
    field (``order.…``: an unknown supplier, a line the register refuses), CommitmentConflictError
    when the number is registered with other content."""
    if not _same_endpoint(order.buyer, institution.endpoint):
        raise AuthorizationError(
            f"the Order's buyer (cac:BuyerCustomerParty endpoint {order.buyer or 'missing'}) "
            f"is not the institution of this key ({institution.endpoint})"
        )
    try:
        form = CommitmentInput.model_validate(order_input(order.commitment))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in ("order", *error["loc"]))
        raise InvalidCommitmentError(field, error["msg"].removeprefix("Value error, ")) from None
    return register(uow, form, institution_id=institution.id, source="order", field_prefix="order.")


# --- Despatch Advices ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Taken:
    """A Despatch Advice as stored, and whether this call stored it (False: the same advice was
    sent before, nothing changed)."""

    advice: DespatchAdvice
    created: bool


def take_despatch_advice(uow: UnitOfWork, advice: DespatchAdvice, *, supplier: SupplierView) -> Taken:
    """Store the supplier's ``advice`` against its order's lines as expected deliveries. The order
    is the commitment ``advice.order`` of the institution the advice is delivered to
    (DeliveryCustomerParty), with this supplier. Raises SellerMismatchError (the advice's supplier
    is another), UnknownBuyerError (no such institution), InvalidCommitmentError naming the element
    (no such order of the supplier's, a line of another order or not on the order, a line id
    twice), CommitmentConflictError (the number was sent before with other content)."""
    if not _same_endpoint(advice.supplier_endpoint, supplier.endpoint):
        raise SellerMismatchError(
            f"the Despatch Advice's supplier (cac:DespatchSupplierParty endpoint "
            f"{advice.supplier_endpoint or 'missing'}) is not the supplier of this key ({supplier.endpoint})"
        )
    from einvoice.services.accounts import AccountError, parse_endpoint

    with uow:
        institution = None
        if advice.customer_endpoint:
            try:
                institution = uow.institutions.by_endpoint(*parse_endpoint(advice.customer_endpoint))
            except AccountError:
                institution = None
        if institution is None:
            raise UnknownBuyerError(
                f"the Despatch Advice's customer (cac:DeliveryCustomerParty endpoint "
                f"{advice.customer_endpoint or 'missing'}) is not a registered institution"
            )
        commitment = uow.commitments.get(institution.id, advice.order)
        if commitment is None or commitment.supplier_id != supplier.id:
            raise InvalidCommitmentError(
                "cac:OrderReference/cbc:ID", f"{institution.name} has registered no order {advice.order} of yours"
            )
        seen: set[str] = set()
        for n, line in enumerate(advice.lines, start=1):
            where = f"cac:DespatchLine[{n}]"
            if line.id in seen:
                raise InvalidCommitmentError(f"{where}/cbc:ID", f"line {line.id!r} appears more than once")
            seen.add(line.id)
            if line.order is not None and line.order != advice.order:
                raise InvalidCommitmentError(
                    f"{where}/cac:OrderLineReference/cac:OrderReference/cbc:ID",
                    f"order {line.order} is not the advice's order {advice.order}",
                )
            if commitment.line(line.order_line) is None:
                raise InvalidCommitmentError(
                    f"{where}/cac:OrderLineReference/cbc:LineID",
                    f"order {advice.order} has no line {line.order_line!r}",
                )
        earlier = uow.commitments.despatch_advice_by_number(supplier.id, advice.number)
        if earlier is None:
            try:
                stored = uow.commitments.add_despatch_advice(
                    advice, institution_id=institution.id, supplier_id=supplier.id, at=_now()
                )
                uow.commit()
            except DuplicateKeyError:  # the same number stored by a concurrent request meanwhile
                uow.rollback()
                earlier = uow.commitments.despatch_advice_by_number(supplier.id, advice.number)
                if earlier is None:
                    raise
            else:
                return Taken(stored, created=True)
        if not earlier.same_content(advice):
            raise CommitmentConflictError(f"despatch advice {advice.number} was sent before with other content")
        return Taken(earlier, created=False)


class ConfirmationInput(_Form):
    """What arrived of a Despatch Advice (``POST /v1/despatch-advices/{id}/confirm``): no lines
    (or an empty body) confirms it whole; else each order line's quantity that arrived."""

    model_config = _Form.model_config | {"json_schema_extra": {"example": {"lines": [{"line": "1", "quantity": "40"}]}}}

    lines: list[ReceiptLineInput] | None = Field(
        None, max_length=10_000, description="The order lines and the quantities that arrived; none: all of it"
    )


@dataclass(frozen=True, slots=True)
class Confirmed:
    advice: DespatchAdvice
    receipt: Receipt
    commitment: Commitment


def despatch_advice(uow: UnitOfWork, advice_id: str, *, institution_id: str) -> DespatchAdvice:
    """The institution's Despatch Advice ``advice_id``; NotFoundError when it has none."""
    with uow:
        owner = uow.commitments.despatch_advice_owner(advice_id)
        found = None if owner is None or owner[0] != institution_id else uow.commitments.despatch_advice(advice_id)
    if found is None:
        raise NotFoundError(f"no despatch advice {advice_id}")
    return found


def list_despatch_advices(
    uow: UnitOfWork, *, institution_id: str, status: str | None = None, limit: int = 100
) -> list[DespatchAdvice]:
    with uow:
        return uow.commitments.list_despatch_advices(institution_id, status=status, limit=limit)


def confirm_despatch_advice(
    uow: UnitOfWork,
    advice_id: str,
    data: ConfirmationInput | None,
    *,
    institution_id: str,
    received_on: date | None = None,
) -> Confirmed:
    """Confirm the institution's Despatch Advice: whole (no lines: every order line with what the
    advice says was shipped) or with the quantities that arrived, each at most what was shipped.
    Records the receipt ``DESADV-<number>`` on the order (received on ``received_on``, default
    today) and marks the advice confirmed, in one transaction. Raises NotFoundError,
    InvalidCommitmentError (a line the advice does not ship, twice, or more than it ships),
    CommitmentConflictError (confirmed before, or the receipt's reference is taken)."""
    with uow:
        owner = uow.commitments.despatch_advice_owner(advice_id)
        advice = None
        if owner is not None and owner[0] == institution_id:
            advice = uow.commitments.despatch_advice(advice_id, for_update=True)
        if advice is None:
            raise NotFoundError(f"no despatch advice {advice_id}")
        if advice.status is DespatchStatus.CONFIRMED:
            raise CommitmentConflictError(
                f"despatch advice {advice.number} is confirmed already (receipt {advice.receipt_reference})"
            )
        expected = advice.expected()
        if not data or not data.lines:
            arrived = [ReceiptLine(line=k, quantity=v) for k, v in expected.items() if v > 0]
        else:
            arrived = []
            seen: set[str] = set()
            for n, line in enumerate(data.lines):
                shipped = expected.get(line.line)
                if shipped is None:
                    raise InvalidCommitmentError(
                        f"body.lines.{n}.line", f"despatch advice {advice.number} ships nothing on line {line.line!r}"
                    )
                if line.line in seen:
                    raise InvalidCommitmentError(f"body.lines.{n}.line", f"line {line.line!r} appears more than once")
                seen.add(line.line)
                if line.quantity > shipped:
                    raise InvalidCommitmentError(
                        f"body.lines.{n}.quantity",
                        f"{line.quantity} is more than the {shipped} despatch advice {advice.number} ships",
                    )
                arrived.append(ReceiptLine(line=line.line, quantity=line.quantity))
        if not arrived:
            raise InvalidCommitmentError("body.lines", f"despatch advice {advice.number} ships nothing to confirm")
        reference = RECEIPT_PREFIX + advice.number
        if uow.commitments.receipt(institution_id, advice.order, reference) is not None:
            raise CommitmentConflictError(f"commitment {advice.order} has a receipt {reference} already")
        now = _now()
        receipt = Receipt(reference=reference, received_on=received_on or now.date(), lines=tuple(arrived))
        uow.commitments.add_receipt(institution_id, advice.order, receipt, at=now)
        uow.commitments.confirm_despatch_advice(advice_id, receipt_reference=reference, at=now)
        commitment = uow.commitments.get(institution_id, advice.order)
        confirmed = uow.commitments.despatch_advice(advice_id)
        uow.commit()
    assert commitment is not None
    assert confirmed is not None
    return Confirmed(confirmed, receipt, commitment)

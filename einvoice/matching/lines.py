"""Invoice lines against commitment lines: which line each one is (BT-132, else the item ids
BT-155 and BT-157, else the description), then what it may take of it (price, quantity, unit, VAT)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rapidfuzz import fuzz, utils

from einvoice.domain.commitments import Commitment, CommitmentLine, LineMatchedBy, Reason, ReasonCode
from einvoice.domain.invoice import Line
from einvoice.matching.reservations import price_limit, quantity_limit
from einvoice.matching.tolerance import percent_change


@dataclass(frozen=True, slots=True)
class Found:
    """The commitment line an invoice line is, and how it was found; or why none was."""

    line: CommitmentLine | None
    by: LineMatchedBy | None
    why_not: str = ""


def _key(text: str | None) -> str:
    return (text or "").strip().casefold()


def _standard_id(line: Line) -> str | None:
    item = line.item
    if item is None or item.standard_id is None or not item.standard_id.value:
        return None
    sid = item.standard_id
    return f"{sid.scheme}:{sid.value}" if sid.scheme else sid.value


def unit_code(line: Line) -> str | None:
    return line.quantity.unit_code if line.quantity else None


def find_line(line: Line, commitment: Commitment, threshold: float) -> Found:
    """The commitment line ``line`` names by its order line reference (BT-132); else the one line
    whose seller's item id (BT-155) or standard item id (BT-157) it has; else the one line whose
    description is most similar to the item's name (BT-153) or description (BT-154), above
    ``threshold``, with the same unit code. Two lines equally good are no match: never a guess."""
    notes = []
    reference = (line.order_line_reference or "").strip()
    if reference:
        named = commitment.line(reference)
        if named is not None:
            return Found(named, LineMatchedBy.ORDER_LINE_REFERENCE)
        notes.append(f"its order line reference {reference} (BT-132) names no line of {commitment.number}")

    item = line.item
    sellers_id = _key(item.sellers_id if item else None)
    standard_id = _key(_standard_id(line))
    if sellers_id or standard_id:
        by_id = [
            c
            for c in commitment.lines
            if (sellers_id and _key(c.seller_item_id) == sellers_id)
            or (standard_id and _key(c.standard_item_id) == standard_id)
        ]
        if len(by_id) == 1:
            return Found(by_id[0], LineMatchedBy.ITEM_ID)
        if by_id:
            return Found(None, None, f"its item id names {len(by_id)} lines ({', '.join(c.id for c in by_id)})")
        notes.append("no line has its item id (BT-155, BT-157)")

    texts = [t for t in (item.name if item else None, item.description if item else None) if t]
    unit = unit_code(line)
    scored: list[tuple[float, CommitmentLine]] = []
    for candidate in commitment.lines:
        if not candidate.description or not unit or candidate.unit_code != unit:
            continue
        score = max(
            (fuzz.token_sort_ratio(t, candidate.description, processor=utils.default_process) for t in texts),
            default=0.0,
        )
        if score > threshold:
            scored.append((score, candidate))
    if scored:
        best = max(score for score, _ in scored)
        top = [c for score, c in scored if score == best]
        if len(top) == 1:
            return Found(top[0], LineMatchedBy.DESCRIPTION)
        return Found(None, None, f"its description is as similar to lines {', '.join(c.id for c in top)}")
    notes.append(f"no line with unit {unit} has a description similar enough (above {threshold:g})")
    return Found(None, None, "; ".join(notes))


def unit_price(line: Line) -> tuple[Decimal, Decimal] | None:
    """The line's net price (BT-146) and the base quantity it is for (BT-149, 1 when not given);
    None without a net price."""
    price = line.price
    if price is None or price.net_price is None:
        return None
    base = price.base_quantity.value if price.base_quantity is not None else Decimal(1)
    return price.net_price.value, (base if base else Decimal(1))


def check_unit(line: Line, committed: CommitmentLine) -> Reason | None:
    """``UNIT_MISMATCH`` when the line's unit code (BT-130) is not the commitment line's."""
    unit = unit_code(line)
    if committed.unit_code is None or unit is None or unit == committed.unit_code:
        return None
    return Reason(
        ReasonCode.UNIT_MISMATCH,
        f"Line {line.id} is in unit {unit}, commitment line {committed.id} in {committed.unit_code}",
        line=line.id,
        commitment_line=committed.id,
        expected=committed.unit_code,
        actual=unit,
    )


def _vat(category: str | None, rate: Decimal | None) -> str:
    return " ".join(p for p in (category, f"{rate}%" if rate is not None else None) if p) or "none"


def check_vat(line: Line, committed: CommitmentLine) -> Reason | None:
    """``VAT_MISMATCH`` when the line's VAT category (BT-151) or rate (BT-152) is not the one the
    commitment line states (what it does not state is not compared; 21 and 21.00 are one rate)."""
    category_differs = committed.vat_category is not None and line.vat_category_code != committed.vat_category
    rate_differs = committed.vat_rate is not None and (line.vat_rate or Decimal(0)) != committed.vat_rate
    if not (category_differs or rate_differs):
        return None
    expected = _vat(committed.vat_category, committed.vat_rate)
    actual = _vat(line.vat_category_code, line.vat_rate)
    return Reason(
        ReasonCode.VAT_MISMATCH,
        f"Line {line.id} has VAT {actual}, commitment line {committed.id} {expected}",
        line=line.id,
        commitment_line=committed.id,
        expected=expected,
        actual=actual,
    )


def check_price(line: Line, committed: CommitmentLine, commitment: Commitment) -> Reason | None:
    """``PRICE_VARIANCE`` when the net unit price (BT-146 over BT-149) differs from the committed
    price, above or below it, by more than the price tolerance allows. Compared without dividing:
    BT-146 against the committed price times BT-149."""
    priced = unit_price(line)
    if priced is None:
        return None
    net, base = priced
    committed_price = committed.unit_price * base
    limit = price_limit(commitment)
    over = limit.exceeded(abs(net - committed_price), committed_price, scale=base)
    if not over:
        return None
    actual = net if base == 1 else net / base
    change = percent_change(actual, committed.unit_price)
    direction = "above" if net > committed_price else "below"
    size = f"{abs(change)}%" if change is not None else str(abs(actual - committed.unit_price))
    per = "" if base == 1 else f" ({net} per {base})"
    return Reason(
        ReasonCode.PRICE_VARIANCE,
        f"Unit price {actual}{per} is {size} {direction} the committed {committed.unit_price} "
        f"(limit {' / '.join(over)})",
        line=line.id,
        commitment_line=committed.id,
        expected=str(committed.unit_price),
        actual=str(actual),
        tolerance=limit.describe(),
    )


def check_ordered(line: Line, committed: CommitmentLine, commitment: Commitment, taken: Decimal) -> Reason | None:
    """``QUANTITY_EXCEEDS_ORDERED`` when what earlier invoices took (``invoiced``) and this invoice
    takes up to this line (``taken``) is more than the ordered quantity plus its tolerance."""
    total = committed.invoiced + taken
    limit = quantity_limit(commitment)
    over = limit.exceeded(total - committed.quantity, committed.quantity)
    if not over:
        return None
    earlier = f" with {committed.invoiced} already invoiced" if committed.invoiced else ""
    return Reason(
        ReasonCode.QUANTITY_EXCEEDS_ORDERED,
        f"Quantity {total} invoiced on commitment line {committed.id}{earlier} is more than the "
        f"{committed.quantity} ordered (limit {' / '.join(over)})",
        line=line.id,
        commitment_line=committed.id,
        expected=str(committed.quantity),
        actual=str(total),
        tolerance=limit.describe(),
    )


def check_received(line: Line, committed: CommitmentLine, commitment: Commitment, taken: Decimal) -> Reason | None:
    """``QUANTITY_EXCEEDS_RECEIVED`` (three-way, when the commitment requires receipts) when what
    earlier invoices took and this invoice takes is more than receipts say arrived, plus the
    quantity tolerance."""
    if not commitment.receipt_required:
        return None
    total = committed.invoiced + taken
    limit = quantity_limit(commitment)
    over = limit.exceeded(total - committed.received, committed.received)
    if not over:
        return None
    return Reason(
        ReasonCode.QUANTITY_EXCEEDS_RECEIVED,
        f"Quantity {total} invoiced on commitment line {committed.id} is more than the {committed.received} "
        f"received (limit {' / '.join(over)})",
        line=line.id,
        commitment_line=committed.id,
        expected=str(committed.received),
        actual=str(total),
        tolerance=limit.describe(),
    )

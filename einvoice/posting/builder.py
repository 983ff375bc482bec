"""The journal entry builder: an invoice or credit note, the institution's posting profile and the
commitment it was matched to, in; a balanced ``JournalEntry``, out. Pure: no I/O, no clock.

For an invoice (a credit note posts the mirror image, every amount on the other side):

- **expense**, debit, one line per invoice line for its net amount (BT-131), on the commitment
  line's account, else the account the profile maps the line's accounting reference (BT-133) or
  the document's (BT-19) to, else the commitment's account, else the profile's default expense;
- **input VAT**, debit, per VAT breakdown (BG-23) with VAT to post: the tax amount the document
  states (BT-117), never a recomputed one, on the profile's input VAT account for the rate;
  categories Z, E, G and O have none to post. Reverse charge (AE) and intra-community
  acquisitions (K) self-assess: the taxable amount (BT-116) at the profile's self-assessment
  rate, debited to input VAT and credited to **output VAT**, so payable stays the amount due;
- document level **allowances** (credit) and **charges** (debit) on the profile's accounts, or
  spread over the expense lines of their VAT category and rate in proportion to their amounts;
- **payable**, credit, the amount due (BT-115) in the supplier's sub-ledger, with the due date
  (BT-9) and the payment reference (BT-83); **prepaid**, credit, the amount paid in advance
  (BT-113) on the advances account;
- **rounding**: the rounding amount (BT-114), and whatever line rounding or the exchange rate
  left over, on the rounding account, so that debits equal credits exactly.

Amounts are Decimal with two decimals, rounded half-up. A document in another currency than the
accounting currency is converted at the given ``ExchangeRate``; its VAT comes from BT-111 (the
VAT total in accounting currency) where the document gives it, spread over the VAT lines. What
the profile lacks for a document raises ``PostingNotReadyError`` naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from einvoice.domain.commitments import Budget, Commitment, MatchResult
from einvoice.domain.invoice import AllowanceCharge, Invoice, Line, Party
from einvoice.domain.journal import (
    AllowancePosting,
    ChartOfAccounts,
    EntrySupplier,
    ExchangeRate,
    JournalEntry,
    PostingLine,
    PostingProfile,
    Role,
    rate_key,
)
from einvoice.domain.money import ZERO, Amount, round_amount
from einvoice.errors import PostingNotReadyError

#: VAT categories whose VAT the buyer self-assesses (UNCL 5305): reverse charge, intra-community.
SELF_ASSESSED = frozenset({"AE", "K"})


def entry_id(document_id: str) -> str:
    """The journal entry id of a document: one entry per document, the same on every retry."""
    return f"je_{document_id}"


@dataclass(frozen=True, slots=True)
class _Draft:
    """A posting line before rounding and sides: ``amount`` is signed, debit positive, in the
    document currency."""

    account: str
    amount: Decimal
    role: Role
    description: str | None = None
    vat_category: str | None = None
    vat_rate: Decimal | None = None
    invoice_line: str | None = None
    commitment_line: str | None = None


def _value(amount: Amount | None) -> Decimal:
    return ZERO if amount is None else amount.value


def _spread(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """``total`` split over ``weights`` pro rata, in cents that add up to ``total`` exactly
    (cumulative rounding); equal parts when the weights add up to nothing."""
    if not weights:
        return []
    base = sum(weights, Decimal(0))
    if base == 0:
        weights, base = [Decimal(1)] * len(weights), Decimal(len(weights))
    parts, done, cumulative = [], ZERO, Decimal(0)
    for weight in weights:
        cumulative += weight
        upto = round_amount(total * cumulative / base)
        parts.append(upto - done)
        done = upto
    return parts


def _supplier(seller: Party | None) -> EntrySupplier:
    if seller is None:
        return EntrySupplier()
    endpoint = None
    if seller.endpoint_id is not None:
        scheme = seller.endpoint_id.scheme
        endpoint = f"{scheme}:{seller.endpoint_id.value}" if scheme else seller.endpoint_id.value
    legal = seller.legal_registration_id.value if seller.legal_registration_id is not None else None
    return EntrySupplier(seller.name or seller.trading_name, endpoint, seller.vat_id, legal)


def _commitment_lines(invoice: Invoice, commitment: Commitment | None, match: MatchResult | None) -> dict[str, str]:
    """Invoice line (BT-126) -> commitment line id: as matching paired them, else by the order
    line reference (BT-132) when the commitment has such a line."""
    if commitment is None:
        return {}
    paired: dict[str, str] = {}
    if match is not None:
        paired = {lm.line: lm.commitment_line for lm in match.lines if lm.commitment_line is not None}
    for line in invoice.lines:
        reference = line.order_line_reference
        if line.id and line.id not in paired and reference and commitment.line(reference) is not None:
            paired[line.id] = reference
    return paired


def _expense_account(
    line: Line, invoice: Invoice, profile: PostingProfile, commitment: Commitment | None, commitment_line: str | None
) -> str:
    if commitment is not None and commitment_line is not None:
        held = commitment.line(commitment_line)
        if held is not None and held.account:
            return held.account
    for reference in (line.accounting_reference, invoice.accounting_reference):
        if reference and reference in profile.accounting_references:
            return profile.accounting_references[reference]
    if commitment is not None and commitment.account:
        return commitment.account
    if profile.default_expense:
        return profile.default_expense
    raise PostingNotReadyError("the posting profile names no default expense account")


def _line_description(line: Line) -> str | None:
    if line.item is not None and line.item.name:
        return line.item.name
    return line.note


def _group(category: str | None, rate: Decimal | None) -> tuple[str | None, str | None]:
    return category, None if rate is None else rate_key(rate)


def _allowances_and_charges(
    drafts: list[_Draft], allowances_charges: Iterable[AllowanceCharge], profile: PostingProfile
) -> list[_Draft]:
    """Document level allowances and charges: on their own accounts, or spread over the expense
    lines (``drafts``, changed in place) of their VAT category and rate (all expense lines when
    none has it; their own accounts when there are no lines). Returns the own-account lines."""
    own: list[_Draft] = []
    for ac in allowances_charges:
        if ac.is_charge is None or ac.amount is None:
            continue
        signed = ac.amount.value if ac.is_charge else -ac.amount.value
        if profile.allowances is AllowancePosting.SPREAD:
            group = _group(ac.vat_category_code, ac.vat_rate)
            expenses = [i for i, d in enumerate(drafts) if d.role is Role.EXPENSE]
            targets = [i for i in expenses if _group(drafts[i].vat_category, drafts[i].vat_rate) == group] or expenses
            if targets:
                for i, part in zip(targets, _spread(signed, [abs(drafts[i].amount) for i in targets]), strict=True):
                    drafts[i] = replace(drafts[i], amount=drafts[i].amount + part)
                continue
        account = profile.charge_account if ac.is_charge else profile.allowance_account
        if not account:
            what = "charge_account" if ac.is_charge else "allowance_account"
            raise PostingNotReadyError(f"the posting profile names no {what} for a document level {_kind(ac)}")
        own.append(
            _Draft(
                account,
                signed,
                Role.CHARGE if ac.is_charge else Role.ALLOWANCE,
                ac.reason or ac.reason_code,
                ac.vat_category_code,
                ac.vat_rate,
            )
        )
    return own


def _kind(ac: AllowanceCharge) -> str:
    return "charge" if ac.is_charge else "allowance"


def _vat(invoice: Invoice, profile: PostingProfile) -> list[_Draft]:
    """Input VAT per breakdown as stated (BT-117), and the self-assessed VAT of AE and K."""
    drafts: list[_Draft] = []
    for vb in invoice.vat_breakdown:
        category = (vb.category_code or "").upper()
        if category in SELF_ASSESSED:
            rate = profile.self_assessment_rate
            if rate is None:
                raise PostingNotReadyError(f"the posting profile names no self_assessment_rate for category {category}")
            tax = round_amount(_value(vb.taxable_amount) * rate / 100)
            if tax == 0:
                continue
            input_account = profile.input_vat_account(rate)
            if not input_account:
                raise PostingNotReadyError(f"the posting profile names no input_vat account for rate {rate_key(rate)}")
            if not profile.output_vat:
                raise PostingNotReadyError(f"the posting profile names no output_vat account for category {category}")
            text = f"self-assessed VAT {category} {rate_key(rate)}%"
            drafts.append(_Draft(input_account, tax, Role.INPUT_VAT, text, category, rate))
            drafts.append(_Draft(profile.output_vat, -tax, Role.OUTPUT_VAT, text, category, rate))
            continue
        tax = _value(vb.tax_amount)
        if tax == 0:
            continue  # Z, E, G, O, and S at 0: no VAT to post
        account = profile.input_vat_account(vb.rate)
        if not account:
            rate_text = "none" if vb.rate is None else rate_key(vb.rate)
            raise PostingNotReadyError(f"the posting profile names no input_vat account for rate {rate_text}")
        rate_text = "" if vb.rate is None else f" {rate_key(vb.rate)}%"
        drafts.append(_Draft(account, tax, Role.INPUT_VAT, f"input VAT {category}{rate_text}", category, vb.rate))
    return drafts


def _convert(
    drafts: list[_Draft], invoice: Invoice, profile: PostingProfile, rate: ExchangeRate | None
) -> list[_Draft]:
    """The drafts in the accounting currency, each rounded to cents. Deductible VAT comes from
    BT-111 where the document states it in the accounting currency."""
    if rate is None:
        return [replace(d, amount=round_amount(d.amount)) for d in drafts]
    converted = [replace(d, amount=round_amount(d.amount * rate.rate)) for d in drafts]
    stated = invoice.totals.tax_amount_in_accounting_currency
    if stated is not None and (stated.currency or invoice.tax_currency) == profile.accounting_currency:
        deductible = [
            i
            for i, d in enumerate(drafts)
            if d.role is Role.INPUT_VAT and (d.vat_category or "").upper() not in SELF_ASSESSED
        ]
        parts = _spread(stated.value, [drafts[i].amount for i in deductible])
        for i, part in zip(deductible, parts, strict=True):
            converted[i] = replace(converted[i], amount=part)
    return converted


def exchange_rate_from_document(invoice: Invoice, accounting_currency: str) -> ExchangeRate | None:
    """The rate the document implies: its VAT total in accounting currency (BT-111) over its VAT
    total (BT-110), dated at its tax point date (BT-7) or issue date; None when it gives none."""
    stated, total = invoice.totals.tax_amount_in_accounting_currency, invoice.totals.tax_amount
    when = invoice.tax_point_date or invoice.issue_date
    if stated is None or total is None or total.value == 0 or when is None:
        return None
    if (stated.currency or invoice.tax_currency) != accounting_currency:
        return None
    return ExchangeRate((stated.value / total.value).quantize(Decimal("0.000001")), when, "BT-111/BT-110")


def build_entry(
    invoice: Invoice,
    profile: PostingProfile,
    *,
    document_id: str,
    posting_date: date,
    institution: str | None = None,
    commitment: Commitment | None = None,
    match: MatchResult | None = None,
    exchange_rate: ExchangeRate | None = None,
    chart: ChartOfAccounts | None = None,
) -> JournalEntry:
    """The balanced journal entry of ``invoice`` (see the module's text for the rules).

    ``exchange_rate`` is needed when the document's currency (BT-5) is not the profile's
    accounting currency; without one, the rate BT-111/BT-110 implies is used where the document
    states BT-111. With a ``chart``, every account of the entry must be in it. Raises
    PostingNotReadyError naming what is missing (an account, the rate).
    """
    accounting = profile.accounting_currency
    currency = invoice.currency or accounting
    rate = None
    if currency != accounting:
        rate = exchange_rate or exchange_rate_from_document(invoice, accounting)
        if rate is None:
            raise PostingNotReadyError(f"no exchange rate from {currency} to {accounting}")

    paired = _commitment_lines(invoice, commitment, match)
    drafts: list[_Draft] = []
    for line in invoice.lines:
        held = paired.get(line.id or "")
        drafts.append(
            _Draft(
                _expense_account(line, invoice, profile, commitment, held),
                _value(line.net_amount),
                Role.EXPENSE,
                _line_description(line),
                line.vat_category_code,
                line.vat_rate,
                line.id,
                held,
            )
        )
    drafts += _allowances_and_charges(drafts, invoice.allowances_charges, profile)
    drafts += _vat(invoice, profile)
    totals = invoice.totals
    if not profile.payable:
        raise PostingNotReadyError("the posting profile names no payable account")
    drafts.append(_Draft(profile.payable, -_value(totals.payable_amount), Role.PAYABLE, "amount due"))
    prepaid = _value(totals.prepaid_amount)
    if prepaid != 0:
        if not profile.prepaid:
            raise PostingNotReadyError("the posting profile names no prepaid account for a prepaid amount (BT-113)")
        drafts.append(_Draft(profile.prepaid, -prepaid, Role.PREPAID, "paid in advance"))

    converted = _convert(drafts, invoice, profile, rate)
    left = -sum((d.amount for d in converted), ZERO)
    if left != 0:
        if not profile.rounding:
            raise PostingNotReadyError(f"the posting profile names no rounding account for {left} left over")
        converted.append(_Draft(profile.rounding, left, Role.ROUNDING, "rounding"))

    sign = Decimal(-1) if invoice.is_credit_note else Decimal(1)
    budget = commitment.budget if commitment is not None else None
    due, reference = invoice.due_date, _payment_reference(invoice)
    lines = tuple(_line(d, sign, budget, due, reference) for d in converted)
    if chart is not None:
        absent = sorted({line.account for line in lines if line.account not in chart})
        if absent:
            raise PostingNotReadyError(
                f"accounts not in the chart of accounts in force from {chart.effective_from}: {', '.join(absent)}"
            )
    return JournalEntry(
        id=entry_id(document_id),
        document_id=document_id,
        document_number=invoice.id,
        kind="credit_note" if invoice.is_credit_note else "invoice",
        institution=institution,
        supplier=_supplier(invoice.seller),
        commitment=commitment.number if commitment is not None else None,
        budget=budget,
        currency=accounting,
        document_currency=invoice.currency,
        exchange_rate=rate,
        issue_date=invoice.issue_date,
        tax_point_date=invoice.tax_point_date,
        posting_date=posting_date,
        due_date=due,
        payment_reference=reference,
        corrects=tuple(p.id for p in invoice.preceding_invoices if p.id) if invoice.is_credit_note else (),
        lines=lines,
    )


def _payment_reference(invoice: Invoice) -> str | None:
    return next((pm.remittance_information for pm in invoice.payment_means if pm.remittance_information), None)


def _line(draft: _Draft, sign: Decimal, budget: Budget | None, due: date | None, reference: str | None) -> PostingLine:
    amount = draft.amount * sign
    payables = draft.role in (Role.PAYABLE, Role.PREPAID)
    return PostingLine(
        account=draft.account,
        debit=amount if amount > 0 else ZERO,
        credit=-amount if amount < 0 else ZERO,
        role=draft.role,
        description=draft.description,
        vat_category=draft.vat_category,
        vat_rate=draft.vat_rate,
        invoice_line=draft.invoice_line,
        commitment_line=draft.commitment_line,
        budget=budget,
        due_date=due if payables else None,
        payment_reference=reference if payables else None,
    )


def net_by_account(entries: Iterable[JournalEntry]) -> Mapping[str, Decimal]:
    """Debit minus credit per account over ``entries`` (an invoice and its credit note: zero)."""
    net: dict[str, Decimal] = {}
    for entry in entries:
        for line in entry.lines:
            net[line.account] = net.get(line.account, ZERO) + line.debit - line.credit
    return net

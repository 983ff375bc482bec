"""The EN 16931 semantic model of an invoice or credit note, and the checks of its totals.

One ``Invoice`` class covers both UBL Invoice and CreditNote documents: ``kind`` says which
syntax it came in, ``type_code`` (BT-3) what the seller called it. Every field that EN 16931 makes
optional, and every field a broken document might lack, is ``None`` (or an empty tuple) when
absent: completeness is the validation layers' business, not the model's.

Amounts keep the sign the document gives them; in a credit note they are positive, as in the
document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from einvoice.domain.findings import Finding, Layer, Severity
from einvoice.domain.money import Amount, Quantity, round_amount, sum_amounts

# UNTDID 1001 codes EN 16931 lists as credit notes (BT-3); everything else is an invoice.
CREDIT_NOTE_TYPE_CODES = frozenset({"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"})


class DocumentKind(StrEnum):
    """Which UBL document the invoice came in."""

    INVOICE = "invoice"  # ubl:Invoice-2
    CREDIT_NOTE = "credit_note"  # ubl:CreditNote-2


@dataclass(frozen=True, slots=True)
class Identifier:
    """An identifier with its scheme (ISO 6523 ICD, EAS, UNTDID 1153, ...), None when unstated."""

    value: str
    scheme: str | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """BG-14 invoicing period, BG-26 line period."""

    start_date: date | None = None  # BT-73 / BT-134
    end_date: date | None = None  # BT-74 / BT-135
    description_code: str | None = None  # BT-8 VAT point date code (invoice level only)


@dataclass(frozen=True, slots=True)
class PostalAddress:
    """BG-5 seller, BG-8 buyer, BG-12 tax representative, BG-15 deliver-to address."""

    street_name: str | None = None  # BT-35
    additional_street_name: str | None = None  # BT-36
    address_line: str | None = None  # BT-162
    city_name: str | None = None  # BT-37
    postal_zone: str | None = None  # BT-38
    country_subdivision: str | None = None  # BT-39
    country_code: str | None = None  # BT-40 (ISO 3166-1 alpha-2)


@dataclass(frozen=True, slots=True)
class Contact:
    """BG-6 seller contact, BG-9 buyer contact."""

    name: str | None = None  # BT-41 / BT-56
    telephone: str | None = None  # BT-42 / BT-57
    email: str | None = None  # BT-43 / BT-58


@dataclass(frozen=True, slots=True)
class Party:
    """BG-4 seller or BG-7 buyer. Field comments give the seller's BT id, then the buyer's."""

    name: str | None = None  # BT-27 / BT-44 legal name (PartyLegalEntity/RegistrationName)
    trading_name: str | None = None  # BT-28 / BT-45 (PartyName/Name)
    endpoint_id: Identifier | None = None  # BT-34 / BT-49 electronic address, scheme = EAS code
    identifiers: tuple[Identifier, ...] = ()  # BT-29 / BT-46 (BT-90 creditor id has scheme SEPA)
    legal_registration_id: Identifier | None = None  # BT-30 / BT-47
    legal_form: str | None = None  # BT-33 additional legal information (seller only)
    vat_id: str | None = None  # BT-31 / BT-48
    tax_registration_id: str | None = None  # BT-32 (seller only; tax scheme other than VAT)
    address: PostalAddress | None = None  # BG-5 / BG-8
    contact: Contact | None = None  # BG-6 / BG-9


@dataclass(frozen=True, slots=True)
class Payee:
    """BG-10 payee, when different from the seller."""

    name: str | None = None  # BT-59
    identifier: Identifier | None = None  # BT-60
    legal_registration_id: Identifier | None = None  # BT-61


@dataclass(frozen=True, slots=True)
class TaxRepresentative:
    """BG-11 seller tax representative party."""

    name: str | None = None  # BT-62
    vat_id: str | None = None  # BT-63
    address: PostalAddress | None = None  # BG-12


@dataclass(frozen=True, slots=True)
class Delivery:
    """BG-13 delivery information."""

    party_name: str | None = None  # BT-70 deliver-to party name
    location_id: Identifier | None = None  # BT-71
    actual_delivery_date: date | None = None  # BT-72
    address: PostalAddress | None = None  # BG-15


@dataclass(frozen=True, slots=True)
class PrecedingInvoice:
    """BG-3 preceding invoice reference."""

    id: str | None  # BT-25
    issue_date: date | None = None  # BT-26


@dataclass(frozen=True, slots=True)
class SupportingDocument:
    """BG-24 additional supporting document (the attachment's content is not kept in the model)."""

    id: str | None  # BT-122
    description: str | None = None  # BT-123
    external_uri: str | None = None  # BT-124
    attachment_mime_code: str | None = None  # BT-125 attribute
    attachment_filename: str | None = None  # BT-125 attribute


@dataclass(frozen=True, slots=True)
class FinancialAccount:
    """BG-17 credit transfer: the payee's account."""

    id: str | None  # BT-84 payment account identifier (IBAN, or a national account number)
    name: str | None = None  # BT-85
    service_provider_id: str | None = None  # BT-86 (BIC, or a national clearing code)


@dataclass(frozen=True, slots=True)
class PaymentCard:
    """BG-18 payment card information."""

    primary_account_number: str | None  # BT-87 (only the last digits, per EN 16931)
    holder_name: str | None = None  # BT-88
    network_id: str | None = None  # card network (UBL NetworkID, mandatory in the syntax)


@dataclass(frozen=True, slots=True)
class DirectDebitMandate:
    """BG-19 direct debit (BT-90, the creditor id, is a seller or payee identifier with scheme SEPA)."""

    mandate_id: str | None  # BT-89
    debited_account_id: str | None = None  # BT-91


@dataclass(frozen=True, slots=True)
class PaymentMeans:
    """BG-16 payment instructions, as one UBL ``cac:PaymentMeans`` states them."""

    code: str | None  # BT-81 (UNCL 4461)
    text: str | None = None  # BT-82 (the code's ``name`` attribute)
    remittance_information: str | None = None  # BT-83 (PaymentID)
    payee_account: FinancialAccount | None = None  # BG-17
    card: PaymentCard | None = None  # BG-18
    mandate: DirectDebitMandate | None = None  # BG-19


@dataclass(frozen=True, slots=True)
class AllowanceCharge:
    """BG-20/BG-21 document level, BG-27/BG-28 line level allowance or charge.

    Field comments give the document-level allowance's BT ids (BT-92..98); the charge's are
    BT-99..105, the line allowance's BT-136..140, the line charge's BT-141..145.
    """

    is_charge: bool | None  # None only when a broken document omits cbc:ChargeIndicator
    amount: Amount | None  # BT-92
    base_amount: Amount | None = None  # BT-93
    percentage: Decimal | None = None  # BT-94
    vat_category_code: str | None = None  # BT-95 (document level only)
    vat_rate: Decimal | None = None  # BT-96 (document level only)
    reason: str | None = None  # BT-97
    reason_code: str | None = None  # BT-98 (UNCL 5189 allowances, UNCL 7161 charges)


@dataclass(frozen=True, slots=True)
class VatBreakdown:
    """BG-23 VAT breakdown: one per VAT category and rate."""

    taxable_amount: Amount | None  # BT-116
    tax_amount: Amount | None  # BT-117
    category_code: str | None  # BT-118 (UNCL 5305 subset: S, Z, E, AE, K, G, O, L, M)
    rate: Decimal | None = None  # BT-119
    exemption_reason: str | None = None  # BT-120
    exemption_reason_code: str | None = None  # BT-121 (VATEX)


@dataclass(frozen=True, slots=True)
class DocumentTotals:
    """BG-22 document totals. BT-110 and BT-111 sit in ``cac:TaxTotal`` in UBL."""

    line_extension_amount: Amount | None = None  # BT-106
    allowance_total_amount: Amount | None = None  # BT-107
    charge_total_amount: Amount | None = None  # BT-108
    tax_exclusive_amount: Amount | None = None  # BT-109
    tax_amount: Amount | None = None  # BT-110 in the document currency (BT-5)
    tax_amount_in_accounting_currency: Amount | None = None  # BT-111 in the tax currency (BT-6)
    tax_inclusive_amount: Amount | None = None  # BT-112
    prepaid_amount: Amount | None = None  # BT-113
    rounding_amount: Amount | None = None  # BT-114
    payable_amount: Amount | None = None  # BT-115


@dataclass(frozen=True, slots=True)
class ItemClassification:
    """BT-158 item classification identifier with its list (UNTDID 7143) and version."""

    code: str
    list_id: str | None = None
    list_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemAttribute:
    """BG-32 item attribute."""

    name: str | None  # BT-160
    value: str | None  # BT-161


@dataclass(frozen=True, slots=True)
class Item:
    """BG-31 item information."""

    name: str | None = None  # BT-153
    description: str | None = None  # BT-154
    sellers_id: str | None = None  # BT-155
    buyers_id: str | None = None  # BT-156
    standard_id: Identifier | None = None  # BT-157 (scheme: ISO 6523 ICD, e.g. 0160 GTIN)
    classifications: tuple[ItemClassification, ...] = ()  # BT-158
    origin_country: str | None = None  # BT-159
    attributes: tuple[ItemAttribute, ...] = ()  # BG-32


@dataclass(frozen=True, slots=True)
class Price:
    """BG-29 price details."""

    net_price: Amount | None  # BT-146
    discount: Amount | None = None  # BT-147 price discount (the price allowance amount)
    gross_price: Amount | None = None  # BT-148 (the price allowance base amount)
    base_quantity: Quantity | None = None  # BT-149 with BT-150 unit code


@dataclass(frozen=True, slots=True)
class Line:
    """BG-25 invoice line (a ``cac:CreditNoteLine`` in a credit note)."""

    id: str | None  # BT-126
    quantity: Quantity | None  # BT-129 with BT-130 unit code
    net_amount: Amount | None  # BT-131
    note: str | None = None  # BT-127
    object_id: Identifier | None = None  # BT-128
    order_line_reference: str | None = None  # BT-132
    accounting_reference: str | None = None  # BT-133
    period: Period | None = None  # BG-26
    allowances_charges: tuple[AllowanceCharge, ...] = ()  # BG-27, BG-28
    price: Price | None = None  # BG-29
    vat_category_code: str | None = None  # BT-151
    vat_rate: Decimal | None = None  # BT-152
    item: Item | None = None  # BG-31

    @property
    def allowances(self) -> tuple[AllowanceCharge, ...]:
        return tuple(ac for ac in self.allowances_charges if ac.is_charge is False)

    @property
    def charges(self) -> tuple[AllowanceCharge, ...]:
        return tuple(ac for ac in self.allowances_charges if ac.is_charge is True)


@dataclass(frozen=True, slots=True)
class Invoice:
    """An EN 16931 invoice or credit note."""

    kind: DocumentKind
    id: str | None  # BT-1
    issue_date: date | None  # BT-2
    type_code: str | None  # BT-3 (UNCL 1001)
    currency: str | None  # BT-5
    customization_id: str | None = None  # BT-24 specification identifier
    profile_id: str | None = None  # BT-23 business process type
    due_date: date | None = None  # BT-9
    tax_point_date: date | None = None  # BT-7
    tax_currency: str | None = None  # BT-6
    notes: tuple[str, ...] = ()  # BT-22 (BG-1)
    accounting_reference: str | None = None  # BT-19 buyer accounting reference
    buyer_reference: str | None = None  # BT-10
    project_reference: str | None = None  # BT-11
    contract_reference: str | None = None  # BT-12
    order_reference: str | None = None  # BT-13 purchase order reference
    sales_order_reference: str | None = None  # BT-14
    receiving_advice_reference: str | None = None  # BT-15
    despatch_advice_reference: str | None = None  # BT-16
    tender_or_lot_reference: str | None = None  # BT-17
    invoiced_object_id: Identifier | None = None  # BT-18
    invoice_period: Period | None = None  # BG-14
    preceding_invoices: tuple[PrecedingInvoice, ...] = ()  # BG-3
    supporting_documents: tuple[SupportingDocument, ...] = ()  # BG-24
    seller: Party | None = None  # BG-4
    buyer: Party | None = None  # BG-7
    payee: Payee | None = None  # BG-10
    tax_representative: TaxRepresentative | None = None  # BG-11
    delivery: Delivery | None = None  # BG-13
    payment_means: tuple[PaymentMeans, ...] = ()  # BG-16
    payment_terms: str | None = None  # BT-20
    allowances_charges: tuple[AllowanceCharge, ...] = ()  # BG-20, BG-21
    totals: DocumentTotals = DocumentTotals()  # BG-22
    vat_breakdown: tuple[VatBreakdown, ...] = ()  # BG-23
    lines: tuple[Line, ...] = ()  # BG-25

    @property
    def allowances(self) -> tuple[AllowanceCharge, ...]:
        """BG-20 document level allowances."""
        return tuple(ac for ac in self.allowances_charges if ac.is_charge is False)

    @property
    def charges(self) -> tuple[AllowanceCharge, ...]:
        """BG-21 document level charges."""
        return tuple(ac for ac in self.allowances_charges if ac.is_charge is True)

    @property
    def is_credit_note(self) -> bool:
        """True for a CreditNote document, or an Invoice document with a credit note type code."""
        return self.kind is DocumentKind.CREDIT_NOTE or self.type_code in CREDIT_NOTE_TYPE_CODES


# --- derived values --------------------------------------------------------------------------


def _value(amount: Amount | None) -> Decimal | None:
    return None if amount is None else amount.value


def _sum_present(amounts: Iterable[Amount | None]) -> Decimal | None:
    """Sum rounded to two decimals; None if any amount is missing (nothing sound to compare)."""
    values = [_value(a) for a in amounts]
    if any(v is None for v in values):
        return None
    return sum_amounts(v for v in values if v is not None)


def compute_vat_breakdown(lines: Iterable[Line], allowances_charges: Iterable[AllowanceCharge]) -> list[VatBreakdown]:
    """Group line net amounts and document allowances/charges by VAT category and rate (BG-23).

    Taxable amount per group = Σ line net amounts - Σ allowances + Σ charges (BR-S-08 and its
    siblings for the other categories); tax amount = taxable amount x rate / 100, rounded (BR-CO-17).
    Missing amounts count as zero. The order is the order in which the groups first appear.
    Returns the breakdowns; currency is left unstated.
    """
    taxable: dict[tuple[str | None, Decimal | None], Decimal] = {}
    stated_rate: dict[tuple[str | None, Decimal | None], Decimal | None] = {}

    def add(category: str | None, rate: Decimal | None, amount: Decimal) -> None:
        key = (category, None if rate is None else rate.normalize())  # 25 and 25.00 are one rate
        taxable[key] = taxable.get(key, Decimal(0)) + amount
        stated_rate.setdefault(key, rate)

    for line in lines:
        add(line.vat_category_code, line.vat_rate, _value(line.net_amount) or Decimal(0))
    for ac in allowances_charges:
        if ac.is_charge is None:
            continue
        amount = _value(ac.amount) or Decimal(0)
        add(ac.vat_category_code, ac.vat_rate, amount if ac.is_charge else -amount)
    result = []
    for key, base in taxable.items():
        rate = stated_rate[key]
        base = round_amount(base)
        tax = round_amount(base * (rate or Decimal(0)) / 100)
        result.append(VatBreakdown(Amount(base), Amount(tax), key[0], rate))
    return result


def compute_totals(invoice: Invoice) -> DocumentTotals:
    """Recompute BG-22 from the invoice's parts (lines, BG-20/21, BG-23, BT-113, BT-114).

    BT-106, BT-107, BT-108 and BT-110 are sums of the parts; BT-109, BT-112 and BT-115 follow
    from them (BR-CO-13, BR-CO-15, BR-CO-16). BT-113 and BT-114 are taken as stated, BT-111 is
    copied (it cannot be derived). A sum whose parts are incomplete is None.
    Every amount carries the document currency (BT-5).
    """
    currency = invoice.currency
    stated = invoice.totals

    def amount(value: Decimal | None) -> Amount | None:
        return None if value is None else Amount(value, currency)

    line_total = _sum_present(line.net_amount for line in invoice.lines)
    allowance_total = _sum_present(ac.amount for ac in invoice.allowances)
    charge_total = _sum_present(ac.amount for ac in invoice.charges)
    tax_total = _sum_present(vb.tax_amount for vb in invoice.vat_breakdown)
    prepaid = _value(stated.prepaid_amount) or Decimal(0)
    rounding = _value(stated.rounding_amount) or Decimal(0)

    tax_exclusive = tax_inclusive = payable = None
    if line_total is not None and allowance_total is not None and charge_total is not None:
        tax_exclusive = round_amount(line_total - allowance_total + charge_total)
        if tax_total is not None:
            tax_inclusive = round_amount(tax_exclusive + tax_total)
            payable = round_amount(tax_inclusive - prepaid + rounding)
    return DocumentTotals(
        line_extension_amount=amount(line_total),
        allowance_total_amount=amount(allowance_total),
        charge_total_amount=amount(charge_total),
        tax_exclusive_amount=amount(tax_exclusive),
        tax_amount=amount(tax_total),
        tax_amount_in_accounting_currency=stated.tax_amount_in_accounting_currency,
        tax_inclusive_amount=amount(tax_inclusive),
        prepaid_amount=stated.prepaid_amount,
        rounding_amount=stated.rounding_amount,
        payable_amount=amount(payable),
    )


# --- checks ----------------------------------------------------------------------------------


def _finding(rule: str, message: str, location: str, value: Decimal | None) -> Finding:
    return Finding(
        rule=rule,
        severity=Severity.FATAL,
        layer=Layer.BUSINESS,
        message=message,
        location=location,
        value=None if value is None else str(value),
    )


_TOTALS = "/*/cac:LegalMonetaryTotal"


def check_totals(invoice: Invoice) -> list[Finding]:
    """Check that the stated document totals (BG-22) agree with the invoice's parts.

    Mirrors BR-CO-10 .. BR-CO-16: each stated total is compared with the value recomputed from
    the lines, allowances, charges, VAT breakdown and the other stated totals, rounded half-up to
    two decimals, with no further tolerance; BT-114 (rounding amount) absorbs the difference
    between BT-112 - BT-113 and BT-115. Totals the document does not state, or whose parts are
    incomplete, are not compared here: missing mandatory elements are the EN 16931 layer's findings.
    The one exception follows BR-CO-11/12: allowances (charges) without BT-107 (BT-108) disagree.

    Returns findings (layer BUSINESS, severity FATAL, rule = the EN 16931 rule id); empty when
    the totals agree.
    """
    stated = invoice.totals
    findings: list[Finding] = []

    def compare(rule: str, what: str, location: str, stated_amount: Amount | None, expected: Decimal | None) -> None:
        actual = _value(stated_amount)
        if actual is None or expected is None:
            return
        if round_amount(actual) != round_amount(expected):
            message = f"{what} is {actual}, the parts give {round_amount(expected)}"
            findings.append(_finding(rule, message, location, actual))

    # BR-CO-10: BT-106 = Σ BT-131.
    compare(
        "BR-CO-10",
        "Sum of invoice line net amounts (BT-106)",
        f"{_TOTALS}/cbc:LineExtensionAmount",
        stated.line_extension_amount,
        _sum_present(line.net_amount for line in invoice.lines),
    )
    # BR-CO-11 / BR-CO-12: BT-107 = Σ BT-92, BT-108 = Σ BT-99.
    for rule, what, element, stated_total, parts in (
        ("BR-CO-11", "Sum of allowances on document level (BT-107)", "AllowanceTotalAmount",
         stated.allowance_total_amount, invoice.allowances),
        ("BR-CO-12", "Sum of charges on document level (BT-108)", "ChargeTotalAmount",
         stated.charge_total_amount, invoice.charges),
    ):  # fmt: skip
        location = f"{_TOTALS}/cbc:{element}"
        if stated_total is None:
            if parts:
                message = f"{what} is missing, but the document has some"
                findings.append(_finding(rule, message, location, None))
            continue
        expected = _sum_present(ac.amount for ac in parts) if parts else Decimal(0)
        compare(rule, what, location, stated_total, expected)

    # BR-CO-13: BT-109 = BT-106 - BT-107 + BT-108 (the stated ones; absent BT-107/108 count as 0).
    line_total = _value(stated.line_extension_amount)
    if line_total is not None:
        compare(
            "BR-CO-13",
            "Invoice total amount without VAT (BT-109)",
            f"{_TOTALS}/cbc:TaxExclusiveAmount",
            stated.tax_exclusive_amount,
            line_total
            - (_value(stated.allowance_total_amount) or Decimal(0))
            + (_value(stated.charge_total_amount) or Decimal(0)),
        )
    # BR-CO-14: BT-110 = Σ BT-117 (only when there is a breakdown; BR-CO-18 asks for one).
    if invoice.vat_breakdown:
        compare(
            "BR-CO-14",
            "Invoice total VAT amount (BT-110)",
            "/*/cac:TaxTotal/cbc:TaxAmount",
            stated.tax_amount,
            _sum_present(vb.tax_amount for vb in invoice.vat_breakdown),
        )
    # BR-CO-15: BT-112 = BT-109 + BT-110.
    tax_exclusive, tax_total = _value(stated.tax_exclusive_amount), _value(stated.tax_amount)
    if tax_exclusive is not None and tax_total is not None:
        compare(
            "BR-CO-15",
            "Invoice total amount with VAT (BT-112)",
            f"{_TOTALS}/cbc:TaxInclusiveAmount",
            stated.tax_inclusive_amount,
            tax_exclusive + tax_total,
        )
    # BR-CO-16: BT-115 = BT-112 - BT-113 + BT-114.
    tax_inclusive = _value(stated.tax_inclusive_amount)
    if tax_inclusive is not None:
        compare(
            "BR-CO-16",
            "Amount due for payment (BT-115)",
            f"{_TOTALS}/cbc:PayableAmount",
            stated.payable_amount,
            round_amount(tax_inclusive - (_value(stated.prepaid_amount) or Decimal(0)))
            + (_value(stated.rounding_amount) or Decimal(0)),
        )
    return findings

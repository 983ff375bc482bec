"""Journal entries for the ERP, and the posting profile and chart of accounts they are built with.

Pure data (frozen dataclasses, ``Decimal`` for every amount). An entry is balanced by
construction (``einvoice.posting.build_entry``): its debits equal its credits, exactly. Amounts
are never negative: a credit note, or a negative amount on an invoice, goes to the other side.
The JSON forms (``to_dict``) are the ones the ERP receives, by pull, push and files alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from einvoice.domain.commitments import Budget
from einvoice.domain.money import ZERO, sum_amounts
from einvoice.errors import ProfileError  # defined there; importable from here too


class Role(StrEnum):
    """What a posting line books."""

    EXPENSE = "expense"  # an invoice line's net amount (BT-131)
    INPUT_VAT = "input_vat"  # deductible VAT (BT-117), or self-assessed VAT (AE, K)
    OUTPUT_VAT = "output_vat"  # self-assessed VAT owed (AE, K)
    PAYABLE = "payable"  # the amount due (BT-115), in the supplier's sub-ledger
    PREPAID = "prepaid"  # the amount paid in advance (BT-113), against the advances account
    ROUNDING = "rounding"  # the rounding amount (BT-114) and what rounding left over
    ALLOWANCE = "allowance"  # a document level allowance (BG-20) on its own account
    CHARGE = "charge"  # a document level charge (BG-21) on its own account


class AllowancePosting(StrEnum):
    """Where a posting profile puts document level allowances and charges."""

    OWN_ACCOUNTS = "own_accounts"  # the profile's allowance and charge accounts
    SPREAD = "spread"  # over the expense lines of their VAT category and rate, pro rata


def rate_key(rate: Decimal | str) -> str:
    """A VAT rate as the profile keys it: ``"21"`` for 21, 21.0 and 21.00; ``"5.5"`` for 5.50."""
    try:
        value = Decimal(str(rate).strip())
    except InvalidOperation:
        raise ProfileError(f"not a VAT rate: {rate!r}") from None
    if not value.is_finite():
        raise ProfileError(f"not a VAT rate: {rate!r}")
    text = format(value.normalize(), "f")
    return text


_PROFILE_KEYS = (
    "payable",
    "input_vat",
    "output_vat",
    "self_assessment_rate",
    "rounding",
    "default_expense",
    "prepaid",
    "allowances",
    "allowance_account",
    "charge_account",
    "accounting_currency",
    "accounting_references",
)


@dataclass(frozen=True, slots=True)
class PostingProfile:
    """An institution's posting profile: which accounts a journal entry uses. A field not set is
    None (or empty); ``missing()`` says what a complete profile still lacks."""

    payable: str | None = None
    input_vat: Mapping[str, str] = field(default_factory=dict)  # rate_key -> account
    output_vat: str | None = None  # self-assessed VAT (AE, K)
    self_assessment_rate: Decimal | None = None
    rounding: str | None = None
    default_expense: str | None = None
    prepaid: str | None = None  # advances paid (BT-113)
    allowances: AllowancePosting = AllowancePosting.OWN_ACCOUNTS
    allowance_account: str | None = None
    charge_account: str | None = None
    accounting_currency: str = "EUR"
    #: BT-133 / BT-19 buyer accounting reference -> account.
    accounting_references: Mapping[str, str] = field(default_factory=dict)

    def missing(self) -> list[str]:
        """The fields a complete profile must have and this one lacks (empty when complete)."""
        wanted: list[tuple[str, object]] = [
            ("payable", self.payable),
            ("input_vat", self.input_vat or None),
            ("output_vat", self.output_vat),
            ("self_assessment_rate", self.self_assessment_rate),
            ("rounding", self.rounding),
            ("default_expense", self.default_expense),
            ("prepaid", self.prepaid),
        ]
        if self.allowances is AllowancePosting.OWN_ACCOUNTS:
            wanted += [("allowance_account", self.allowance_account), ("charge_account", self.charge_account)]
        return [name for name, value in wanted if value is None]

    def accounts(self) -> dict[str, str]:
        """Every account the profile names, by where it names it (``input_vat.21``, ``payable``)."""
        named: dict[str, str | None] = {
            "payable": self.payable,
            "output_vat": self.output_vat,
            "rounding": self.rounding,
            "default_expense": self.default_expense,
            "prepaid": self.prepaid,
            "allowance_account": self.allowance_account,
            "charge_account": self.charge_account,
        }
        named |= {f"input_vat.{rate}": account for rate, account in self.input_vat.items()}
        named |= {f"accounting_references.{ref}": account for ref, account in self.accounting_references.items()}
        return {where: account for where, account in named.items() if account}

    def input_vat_account(self, rate: Decimal | None) -> str | None:
        return None if rate is None else self.input_vat.get(rate_key(rate))

    def to_dict(self) -> dict[str, Any]:
        return {
            "payable": self.payable,
            "input_vat": dict(self.input_vat),
            "output_vat": self.output_vat,
            "self_assessment_rate": None if self.self_assessment_rate is None else rate_key(self.self_assessment_rate),
            "rounding": self.rounding,
            "default_expense": self.default_expense,
            "prepaid": self.prepaid,
            "allowances": self.allowances.value,
            "allowance_account": self.allowance_account,
            "charge_account": self.charge_account,
            "accounting_currency": self.accounting_currency,
            "accounting_references": dict(self.accounting_references),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostingProfile:
        """The profile of its JSON form (the issue's keys; ``accounting_references`` optional).
        Raises ProfileError for an unknown key or a value of the wrong kind."""
        unknown = sorted(set(data) - set(_PROFILE_KEYS))
        if unknown:
            raise ProfileError(f"unknown posting profile keys: {', '.join(unknown)}")

        def account(key: str) -> str | None:
            value = data.get(key)
            if value is None:
                return None
            if not isinstance(value, str | int) or not str(value).strip():
                raise ProfileError(f"{key}: an account number, not {value!r}")
            return str(value).strip()

        def accounts_by(key: str, keys: Any = str) -> dict[str, str]:
            value = data.get(key) or {}
            if not isinstance(value, Mapping):
                raise ProfileError(f"{key}: an object of accounts, not {value!r}")
            result = {}
            for k, v in value.items():
                if not isinstance(v, str | int) or not str(v).strip():
                    raise ProfileError(f"{key}.{k}: an account number, not {v!r}")
                result[keys(k)] = str(v).strip()
            return result

        allowances = data.get("allowances") or AllowancePosting.OWN_ACCOUNTS.value
        try:
            posting = AllowancePosting(allowances)
        except ValueError:
            raise ProfileError(f"allowances: own_accounts or spread, not {allowances!r}") from None
        rate = data.get("self_assessment_rate")
        currency = data.get("accounting_currency") or "EUR"
        if not isinstance(currency, str) or len(currency.strip()) != 3:
            raise ProfileError(f"accounting_currency: an ISO 4217 code, not {currency!r}")
        return cls(
            payable=account("payable"),
            input_vat=accounts_by("input_vat", rate_key),
            output_vat=account("output_vat"),
            self_assessment_rate=None if rate is None else Decimal(rate_key(rate)),
            rounding=account("rounding"),
            default_expense=account("default_expense"),
            prepaid=account("prepaid"),
            allowances=posting,
            allowance_account=account("allowance_account"),
            charge_account=account("charge_account"),
            accounting_currency=currency.strip().upper(),
            accounting_references=accounts_by("accounting_references"),
        )


class AccountKind(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"


@dataclass(frozen=True, slots=True)
class Account:
    """One account of a chart of accounts."""

    number: str
    name: str
    kind: AccountKind


@dataclass(frozen=True, slots=True)
class ChartOfAccounts:
    """An institution's chart of accounts, in force from ``effective_from``."""

    effective_from: date
    accounts: tuple[Account, ...]

    def __contains__(self, number: object) -> bool:
        return any(account.number == number for account in self.accounts)

    def unknown(self, profile: PostingProfile) -> dict[str, str]:
        """The accounts ``profile`` names that this chart does not hold, by where it names them."""
        numbers = {account.number for account in self.accounts}
        return {where: account for where, account in profile.accounts().items() if account not in numbers}


# --- entries ------------------------------------------------------------------------------------


def _money(value: Decimal) -> str:
    return str(value.quantize(ZERO))


@dataclass(frozen=True, slots=True)
class ExchangeRate:
    """Accounting currency units per unit of the document currency, on ``date``, from ``source``."""

    rate: Decimal
    date: date
    source: str

    def to_dict(self) -> dict[str, str]:
        return {"rate": str(self.rate), "date": self.date.isoformat(), "source": self.source}


@dataclass(frozen=True, slots=True)
class EntrySupplier:
    """The seller as the payables side names it (BT-27, BT-34, BT-31, BT-30)."""

    name: str | None = None
    endpoint: str | None = None
    vat: str | None = None
    legal_id: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "endpoint": self.endpoint, "vat": self.vat, "legal_id": self.legal_id}


@dataclass(frozen=True, slots=True)
class PostingLine:
    """One line of a journal entry: one side non-zero (or both zero), never negative."""

    account: str
    debit: Decimal
    credit: Decimal
    role: Role
    description: str | None = None
    vat_category: str | None = None  # BT-151 / BT-118
    vat_rate: Decimal | None = None  # BT-152 / BT-119
    invoice_line: str | None = None  # BT-126
    commitment_line: str | None = None
    budget: Budget | None = None
    due_date: date | None = None  # BT-9, payables side
    payment_reference: str | None = None  # BT-83, payables side

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "account": self.account,
            "debit": _money(self.debit),
            "credit": _money(self.credit),
            "role": self.role.value,
            "description": self.description,
            "vat_category": self.vat_category,
            "vat_rate": None if self.vat_rate is None else rate_key(self.vat_rate),
            "invoice_line": self.invoice_line,
            "commitment_line": self.commitment_line,
            "budget": self.budget.to_dict() if self.budget is not None else None,
        }
        if self.role in (Role.PAYABLE, Role.PREPAID):
            data["due_date"] = self.due_date.isoformat() if self.due_date else None
            data["payment_reference"] = self.payment_reference
        return data


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A balanced journal entry for one invoice or credit note, in the accounting currency."""

    id: str
    document_id: str
    document_number: str | None  # BT-1
    kind: str  # invoice | credit_note
    institution: str | None  # the buyer's endpoint, "scheme:id"
    supplier: EntrySupplier
    commitment: str | None
    budget: Budget | None
    currency: str  # the accounting currency the amounts are in
    document_currency: str | None  # BT-5
    exchange_rate: ExchangeRate | None
    issue_date: date | None  # BT-2
    tax_point_date: date | None  # BT-7
    posting_date: date
    due_date: date | None  # BT-9
    payment_reference: str | None  # BT-83
    corrects: tuple[str, ...]  # BT-25: the invoices a credit note corrects
    lines: tuple[PostingLine, ...]

    @property
    def total_debit(self) -> Decimal:
        return sum_amounts(line.debit for line in self.lines)

    @property
    def total_credit(self) -> Decimal:
        return sum_amounts(line.credit for line in self.lines)

    @property
    def balanced(self) -> bool:
        return self.total_debit == self.total_credit

    def lines_with(self, role: Role) -> tuple[PostingLine, ...]:
        return tuple(line for line in self.lines if line.role is role)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "document_id": self.document_id,
            "document_number": self.document_number,
            "kind": self.kind,
            "institution": self.institution,
            "supplier": self.supplier.to_dict(),
            "commitment": self.commitment,
            "budget": self.budget.to_dict() if self.budget is not None else None,
            "currency": self.currency,
            "document_currency": self.document_currency,
            "exchange_rate": self.exchange_rate.to_dict() if self.exchange_rate is not None else None,
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "tax_point_date": self.tax_point_date.isoformat() if self.tax_point_date else None,
            "posting_date": self.posting_date.isoformat(),
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "payment_reference": self.payment_reference,
            "corrects": list(self.corrects),
            "lines": [line.to_dict() for line in self.lines],
            "totals": {"debit": _money(self.total_debit), "credit": _money(self.total_credit)},
        }

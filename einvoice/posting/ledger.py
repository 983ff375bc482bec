"""The trial balance: debits, credits and the balance per account over journal entries (their JSON
form, as the ERP received them). Pure: no I/O.

Debits equal credits in every entry, so the totals of a trial balance are equal too; the balance
of an account is its debits minus its credits (negative: a credit balance).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from einvoice.domain.money import ZERO


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account: str
    name: str | None
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        return self.debit - self.credit

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "name": self.name,
            "debit": str(self.debit.quantize(ZERO)),
            "credit": str(self.credit.quantize(ZERO)),
            "balance": str(self.balance.quantize(ZERO)),
        }


@dataclass(frozen=True, slots=True)
class TrialBalance:
    accounts: tuple[AccountBalance, ...]
    entries: int

    @property
    def debit(self) -> Decimal:
        return sum((a.debit for a in self.accounts), ZERO)

    @property
    def credit(self) -> Decimal:
        return sum((a.credit for a in self.accounts), ZERO)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accounts": [a.to_dict() for a in self.accounts],
            "totals": {
                "debit": str(self.debit.quantize(ZERO)),
                "credit": str(self.credit.quantize(ZERO)),
                "balance": str((self.debit - self.credit).quantize(ZERO)),
                "entries": self.entries,
            },
        }


def trial_balance(entries: Iterable[Mapping[str, Any]], names: Mapping[str, str] | None = None) -> TrialBalance:
    """Debits and credits per account over ``entries`` (entry JSON), accounts in number order,
    each named from ``names`` (the chart of accounts) where it is there."""
    debit: dict[str, Decimal] = {}
    credit: dict[str, Decimal] = {}
    count = 0
    for entry in entries:
        count += 1
        for line in entry.get("lines", ()):
            account = str(line["account"])
            debit[account] = debit.get(account, ZERO) + Decimal(line["debit"])
            credit[account] = credit.get(account, ZERO) + Decimal(line["credit"])
    names = names or {}
    return TrialBalance(
        tuple(AccountBalance(a, names.get(a), debit[a], credit[a]) for a in sorted(debit)),
        count,
    )

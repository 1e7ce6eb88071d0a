"""Small helpers shared by the ledger tests: a fixed clock, state snapshots, posting shortcuts."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger import clock, services
from ledger.models import CreditAccount, CreditLot, LedgerEntry, LotConsumption

# A fixed moment far from the real clock: every posting in these tests says when it happens.
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# Amounts no posting accepts, with the message InvalidPosting gives for each.
INVALID_AMOUNTS = [
    pytest.param(0, "The amount must be greater than zero.", id="zero"),
    pytest.param(-1, "The amount must be greater than zero.", id="negative"),
    pytest.param(-10**16, "The amount must be greater than zero.", id="huge-negative"),
    pytest.param(12.5, "Amounts are ints of minor units, not float.", id="float"),
    pytest.param(12.0, "Amounts are ints of minor units, not float.", id="integral-float"),
    pytest.param(float("nan"), "Amounts are ints of minor units, not float.", id="nan"),
    pytest.param(True, "Amounts are ints of minor units, not bool.", id="bool"),
    pytest.param(Decimal("12"), "Amounts are ints of minor units, not Decimal.", id="decimal"),
    pytest.param("12", "Amounts are ints of minor units, not str.", id="str"),
    pytest.param(None, "Amounts are ints of minor units, not NoneType.", id="none"),
    pytest.param(10**15, "The amount is too large.", id="max"),
    pytest.param(2**63, "The amount is too large.", id="beyond-bigint"),
]


def ledger_state() -> dict:
    """Everything the ledger holds, to prove that a refused call wrote nothing."""
    return {
        "entries": list(LedgerEntry.objects.order_by("id").values_list("id", "amount", "balance_after")),
        "lots": list(CreditLot.objects.order_by("id").values_list("id", "remaining")),
        "consumptions": list(LotConsumption.objects.order_by("id").values_list("id", "lot_id", "amount")),
        "accounts": list(CreditAccount.objects.order_by("pk").values_list("pk", "balance", "version")),
    }


def grant_at(moment, *, customer, amount, expires_at=None, **kwargs):
    with clock.posting_at(moment):
        return services.grant(customer=customer, amount=amount, reason=kwargs.pop("reason", "test grant"),
                              expires_at=expires_at, **kwargs)


def debit_at(moment, *, customer, amount, kind="redeem", **kwargs):
    with clock.posting_at(moment):
        return services.debit(customer=customer, amount=amount, kind=kind,
                              reason=kwargs.pop("reason", "test debit"), **kwargs)


def lot_of(entry) -> CreditLot:
    return CreditLot.objects.get(entry=entry)


def remaining(*entries) -> list[int]:
    """The remainders of the lots the given grant entries created, in that order."""
    return [lot_of(entry).remaining for entry in entries]


def consumptions_of(entry) -> list[tuple[int, int]]:
    return list(LotConsumption.objects.filter(entry=entry).order_by("id").values_list("lot_id", "amount"))


def entries_of(customer) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(account_id=customer.pk).order_by("id"))

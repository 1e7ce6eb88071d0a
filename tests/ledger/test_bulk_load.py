from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Max, Min

from crm.cards import luhn_valid
from crm.models import Customer
from ledger import services
from ledger.bulk_load import bulk_load, card_number_for
from ledger.models import CreditAccount, CreditLot, EntryKind, LedgerEntry, LotConsumption
from ledger.selectors import verify_ledger


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_bulk_load_is_a_consistent_ledger():
    # when
    result = bulk_load(customers=100, entries=2000, seed=3)
    # then
    assert Customer.objects.count() == 100
    assert CreditAccount.objects.count() == 100
    assert 1990 <= LedgerEntry.objects.count() <= 2200 and result["entries"] == LedgerEntry.objects.count()
    assert CreditLot.objects.count() == LedgerEntry.objects.filter(kind="grant").count()
    assert LotConsumption.objects.exists()
    assert set(LedgerEntry.objects.values_list("kind", flat=True)) >= {"grant", "redeem", "expire"}
    assert verify_ledger() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_loaded_rows_look_like_posted_ones():
    # when
    bulk_load(customers=50, entries=1000, seed=4)
    # then: 16-digit Luhn card numbers, history within 18 months, nothing in the future
    assert all(len(c) == 16 and luhn_valid(c) for c in Customer.objects.values_list("card_number", flat=True))
    span = LedgerEntry.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    assert (span["last"] - span["first"]).days <= 550
    # next_expiry_at is the earliest expiry of a lot with a remainder, and in the future
    for account in CreditAccount.objects.all():
        open_dated = (CreditLot.objects.filter(account=account, remaining__gt=0, expires_at__isnull=False)
                      .aggregate(m=Min("expires_at"))["m"])
        assert account.next_expiry_at == open_dated
    # expiries are keyed expire:{lot} and come after their lot's expiry
    for entry in LedgerEntry.objects.filter(kind="expire")[:50]:
        lot = CreditLot.objects.get(consumptions__entry=entry)
        assert entry.idempotency_key == f"expire:{lot.pk}"
        assert lot.expires_at <= entry.created_at


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_services_post_on_a_loaded_account_after_the_load():
    # given
    bulk_load(customers=40, entries=2000, seed=5, topup=10_000)
    account = CreditAccount.objects.order_by("-version").first()
    last_id = LedgerEntry.objects.aggregate(m=Max("id"))["m"]
    # when: sequences were moved past the loaded ids
    grant = services.grant(customer=account.pk, amount=700, reason="after the load", idempotency_key="t:grant")
    debit = services.debit(customer=account.pk, amount=account.balance + 100, kind=EntryKind.REDEEM,
                           reason="checkout", source="api", idempotency_key="t:debit")
    # then
    assert grant.pk > last_id and debit.pk > grant.pk
    assert grant.lot.pk > CreditLot.objects.exclude(pk=grant.lot.pk).aggregate(m=Max("id"))["m"]
    assert debit.balance_after == account.balance + 700 - (account.balance + 100)
    assert verify_ledger() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_second_load_adds_to_the_first():
    # when
    bulk_load(customers=20, entries=300, seed=6)
    bulk_load(customers=30, entries=500, seed=6)
    # then
    assert Customer.objects.count() == 50
    assert verify_ledger() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_command_loads_and_verifies():
    # when
    out = StringIO()
    call_command("load_bench_ledger", customers=30, entries=600, verify=True, stdout=out)
    # then
    assert "Loaded 30 customers" in out.getvalue()
    assert "every invariant holds" in out.getvalue()


def test_card_numbers_are_unique_luhn_valid_16_digits():
    numbers = [card_number_for(i) for i in range(1, 5001)]
    assert len(set(numbers)) == len(numbers)
    assert all(len(n) == 16 and n.isdigit() and luhn_valid(n) for n in numbers)


@pytest.mark.django_db
def test_the_command_refuses_anything_but_postgresql():
    if connection.vendor == "postgresql":
        pytest.skip("checks the error on other databases")
    with pytest.raises(CommandError, match="PostgreSQL"):
        call_command("load_bench_ledger", customers=5, entries=10)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_skipping_foreign_key_checks_loads_the_same_ledger_and_changes_nothing_after():
    # when
    bulk_load(customers=30, entries=500, seed=8, fk_checks=False)
    # then
    assert verify_ledger() == []
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"

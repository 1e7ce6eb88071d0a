from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from crm.cards import luhn_valid
from crm.management.commands.seed_demo import DEMO_STAFF, demo_window
from crm.models import Customer, Order
from ledger.models import CreditAccount, CreditLot, LedgerEntry
from ledger.selectors import verify_ledger

pytestmark = pytest.mark.django_db


def seed(**options) -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def test_a_tiny_seed_builds_a_consistent_store():
    # when
    output = seed(customers=25, scale=0.5)
    # then
    assert Customer.objects.count() == 25
    assert Customer.objects.filter(member_id="M000001").exists()
    assert 0 < Order.objects.count() <= 25 * 6
    entries = LedgerEntry.objects.all()
    assert entries.count() > 100
    assert {"grant", "redeem", "expire"} <= set(entries.values_list("kind", flat=True))
    assert set(entries.values_list("source", flat=True)) >= {"rule", "api", "system"}
    assert verify_ledger() == []
    assert "25 customers" in output


def test_the_seed_is_recent_and_dated_by_the_ledger_clock():
    # given
    base, end = demo_window()
    # when
    seed(customers=15, scale=0.3)
    # then: history spans the 18 months before today, nothing in the future
    first = LedgerEntry.objects.order_by("created_at").first().created_at
    last = LedgerEntry.objects.order_by("-created_at").first().created_at
    assert base <= first < base + timezone.timedelta(days=31)
    assert end - timezone.timedelta(days=60) < last <= end <= timezone.now()
    # and entries chain in time order, expiries land after their lot's expiry
    for entry in LedgerEntry.objects.filter(kind="expire")[:50]:
        lot = CreditLot.objects.get(consumptions__entry=entry)
        assert lot.expires_at <= entry.created_at


def test_customers_look_real():
    # when
    seed(customers=15, scale=0.3)
    # then
    for customer in Customer.objects.all():
        assert " " in customer.name
        assert "@" in customer.email
        assert customer.phone.startswith("+1 ")
        assert len(customer.card_number) == 16 and luhn_valid(customer.card_number)
        assert customer.registered_at is not None


def test_rule_grants_use_the_key_convention():
    # when
    seed(customers=15, scale=0.3)
    # then
    keys = LedgerEntry.objects.filter(kind="grant", source="rule").values_list("idempotency_key", flat=True)
    assert keys
    methods = {key.split(":")[1] for key in keys}
    assert all(key.startswith("grant:") for key in keys)
    assert {"registration", "paid_order", "first_order"} <= methods
    assert methods <= {"registration", "paid_order", "first_order", "order_history", "spend_history"}
    bulk = LedgerEntry.objects.filter(source="bulk").values_list("idempotency_key", flat=True)
    assert bulk and all(key.startswith("bulk:") and key.count(":") == 2 for key in bulk)
    assert LedgerEntry.objects.filter(kind="redeem").exclude(order=None).exists()


def test_staff_users_with_the_four_roles_exist():
    # when
    seed(customers=10, scale=0.2)
    # then
    User = get_user_model()
    for username, password, role, _ in DEMO_STAFF:
        user = User.objects.get(username=username)
        assert user.is_staff and user.is_active
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert user.check_password(password)


def test_running_twice_changes_nothing_but_restores_missing_staff():
    # given
    seed(customers=12, scale=0.3)
    counts = (Customer.objects.count(), Order.objects.count(), LedgerEntry.objects.count(),
              CreditAccount.objects.count())
    get_user_model().objects.filter(username="ops").delete()
    # when
    output = seed(customers=12, scale=0.3)
    # then
    assert "Demo data already present" in output
    assert (Customer.objects.count(), Order.objects.count(), LedgerEntry.objects.count(),
            CreditAccount.objects.count()) == counts
    assert get_user_model().objects.get(username="ops").groups.filter(name="Ops").exists()
    assert verify_ledger() == []


class _Rollback(Exception):
    pass


def _without_row_ids(key: str | None) -> str | None:
    """Keys that embed a row id (lot, customer pk) differ between databases' sequences."""
    if key is None or key.startswith(("expire:", "clawback:")):
        return None
    return key.rsplit(":", 1)[0] if ":tier" in key else key


def _snapshot_of_a_seed(**options) -> list:
    """Seed inside a savepoint, read the result, roll it back."""
    snapshot = []
    try:
        with transaction.atomic():
            seed(**options)
            customers = dict(Customer.objects.values_list("pk", "member_id"))
            snapshot = [
                (customers[account], kind, amount, balance_after, created_at, _without_row_ids(key))
                for account, kind, amount, balance_after, created_at, key in LedgerEntry.objects.order_by("id")
                .values_list("account_id", "kind", "amount", "balance_after", "created_at", "idempotency_key")
            ]
            snapshot += list(Customer.objects.order_by("member_id")
                             .values_list("member_id", "name", "email", "phone", "card_number", "registered_at"))
            raise _Rollback
    except _Rollback:
        return snapshot


def test_the_same_seed_gives_the_same_store():
    # when
    first = _snapshot_of_a_seed(customers=10, scale=0.3)
    second = _snapshot_of_a_seed(customers=10, scale=0.3)
    # then
    assert len(first) > 10
    assert first == second

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from ledger import clock, selectors, services
from ledger.models import LedgerEntry, LotConsumption
from tests.factories import CustomerFactory
from tests.ledger.support import DAY, HOUR, T0, debit_at, grant_at, lot_of

pytestmark = pytest.mark.django_db

APPEND_ONLY_TABLES = ("ledger_ledgerentry", "ledger_lotconsumption")


@pytest.fixture
def healthy_ledger(db):
    """Two customers with every kind of entry; returns the ids the corruptions aim at."""
    alice, bob = CustomerFactory(), CustomerFactory()
    dated = grant_at(T0, customer=alice, amount=1000, expires_at=T0 + DAY)
    kept = grant_at(T0, customer=alice, amount=500)
    debit = debit_at(T0 + HOUR, customer=alice, amount=300)
    to_undo = debit_at(T0 + HOUR, customer=alice, amount=100, kind="cash_refund")
    with clock.posting_at(T0 + 2 * HOUR):
        services.reverse(entry=to_undo)
        services.clawback(customer=alice, amount=50, reason="order refunded", lot=lot_of(kept))
        services.set_balance(customer=bob, target=400, reason="migration")
    services.expire_due(now=T0 + DAY)
    with clock.posting_at(T0 + 2 * DAY):
        services.set_balance(customer=bob, target=150, reason="correction")
        last = services.debit(customer=alice, amount=10, kind="forfeit", reason="closed")
    return {"alice": alice.pk, "dated_lot": lot_of(dated).pk, "kept_lot": lot_of(kept).pk, "debit": debit.pk,
            "last": last.pk, "consumption": LotConsumption.objects.filter(entry_id=debit.pk).first().pk}


def corrupt(sql, params):
    """Run a raw UPDATE the ledger's code never would (CHECK constraints still apply); on
    PostgreSQL, with the append-only triggers switched off for the moment (and back on
    whatever happens)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending FK checks
            for table in APPEND_ONLY_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            cursor.execute(sql, params)
            assert cursor.rowcount == 1
        finally:
            if connection.vendor == "postgresql":
                for table in APPEND_ONLY_TABLES:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def run_ledger_verify():
    out, err = StringIO(), StringIO()
    call_command("ledger_verify", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_verify_ledger_of_an_empty_ledger_finds_nothing(db):
    # when
    problems = selectors.verify_ledger()
    # then
    assert problems == []


def test_verify_ledger_of_a_healthy_ledger_with_every_kind_of_entry_finds_nothing(healthy_ledger):
    # given
    kinds = set(LedgerEntry.objects.values_list("kind", flat=True))
    # when
    problems = selectors.verify_ledger()
    # then
    assert kinds == {"grant", "redeem", "cash_refund", "reversal", "clawback", "expire", "deduct", "forfeit"}
    assert problems == []


def test_ledger_verify_command_on_a_healthy_ledger_reports_success(healthy_ledger):
    # when
    out, err = run_ledger_verify()
    # then
    assert out == "Ledger verified: every invariant holds.\n"
    assert err == ""


CORRUPTIONS = [
    pytest.param(
        "UPDATE ledger_creditaccount SET balance = balance + 1 WHERE customer_id = %s", "alice",
        ["account balance differs from the sum of its entries",
         "account balance differs from the sum of its lots' remainders",
         "account balance differs from the balance_after of its last entry",
         "totals by kind"],
        id="account-balance"),
    pytest.param(
        "UPDATE ledger_creditaccount SET version = version + 1 WHERE customer_id = %s", "alice",
        ["account version differs from its number of entries"],
        id="account-version"),
    pytest.param(
        "UPDATE ledger_creditlot SET remaining = remaining - 1 WHERE id = %s", "kept_lot",
        ["lot remainder differs from its amount minus consumptions plus restorations",
         "account balance differs from the sum of its lots' remainders"],
        id="lot-remaining"),
    pytest.param(
        "UPDATE ledger_ledgerentry SET amount = amount + 1 WHERE id = %s", "debit",
        ["account balance differs from the sum of its entries",
         "entry's balance_after does not chain from the previous entry of its account",
         "a debit's lot consumptions do not add up to its amount",
         "totals by kind"],
        id="entry-amount"),
    pytest.param(
        "UPDATE ledger_ledgerentry SET balance_after = balance_after + 1 WHERE id = %s", "last",
        ["entry's balance_after does not chain from the previous entry of its account",
         "account balance differs from the balance_after of its last entry"],
        id="entry-balance-after"),
    pytest.param(
        "UPDATE ledger_lotconsumption SET amount = amount - 1 WHERE id = %s", "consumption",
        ["lot remainder differs from its amount minus consumptions plus restorations",
         "a debit's lot consumptions do not add up to its amount"],
        id="consumption-amount"),
    pytest.param(
        "UPDATE ledger_creditaccount SET last_entry_at = NULL WHERE customer_id = %s", "alice",
        ["account last_entry_at differs from the latest created_at of its entries"],
        id="account-last-entry-at-null"),
    pytest.param(
        """UPDATE ledger_creditaccount
              SET last_entry_at = (SELECT MIN(e.created_at) FROM ledger_ledgerentry e
                                    WHERE e.account_id = ledger_creditaccount.customer_id)
            WHERE customer_id = %s""", "alice",
        ["account last_entry_at differs from the latest created_at of its entries"],
        id="account-last-entry-at-earlier"),
]


@pytest.mark.parametrize(("sql", "target", "invariants"), CORRUPTIONS)
def test_ledger_verify_command_on_a_corrupted_row_fails_naming_the_invariant(
        healthy_ledger, sql, target, invariants):
    # given
    corrupt(sql, [healthy_ledger[target]])
    # when
    with pytest.raises(CommandError) as excinfo:
        run_ledger_verify()
    # then
    problems = selectors.verify_ledger()
    assert str(excinfo.value) == f"{len(problems)} ledger invariant breach(es)."
    for invariant in invariants:
        assert any(problem.startswith(invariant) for problem in problems), (invariant, problems)


@pytest.mark.postgres
def test_corrupting_an_entry_for_a_test_switches_the_append_only_trigger_back_on(healthy_ledger):
    # given
    corrupt("UPDATE ledger_ledgerentry SET comment = 'x' WHERE id = %s", [healthy_ledger["last"]])
    # when
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgrelid::regclass::text, tgenabled FROM pg_trigger "
                       "WHERE tgname LIKE 'ledger_%%_append_only' ORDER BY 1")
        triggers = cursor.fetchall()
    # then
    assert triggers == [("ledger_ledgerentry", "O"), ("ledger_lotconsumption", "O")]

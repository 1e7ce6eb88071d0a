"""Postings racing each other on PostgreSQL: real threads, real connections, committed data.

Every worker closes its own connection when done; a deadlock or lock timeout would show
up as an error other than the expected business errors."""

import random
import threading

import pytest
from django.db import connection

from ledger import clock, selectors, services
from ledger.models import LedgerEntry
from tests.factories import CustomerFactory
from tests.ledger.support import DAY, HOUR, T0, grant_at, lot_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(count, work, *, at=T0 + DAY):
    """Run work(i) in `count` threads released at the same instant; return each outcome
    as ("ok", result) or ("error", exception)."""
    barrier = threading.Barrier(count)
    outcomes = [None] * count

    def worker(i):
        try:
            barrier.wait(timeout=30)
            with clock.posting_at(at):
                outcomes[i] = ("ok", work(i))
        except Exception as exc:  # noqa: BLE001 - every outcome is inspected by the test
            outcomes[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker is stuck"
    return outcomes


def test_sixteen_debits_of_the_whole_balance_at_once_let_exactly_one_through():
    # given
    customer = CustomerFactory()
    grant_at(T0, customer=customer, amount=3000, expires_at=T0 + 10 * DAY)
    grant_at(T0, customer=customer, amount=2000)
    # when
    outcomes = run_together(16, lambda i: services.debit(customer=customer.pk, amount=5000, kind="redeem",
                                                         reason=f"checkout {i}"))
    # then
    succeeded = [result for status, result in outcomes if status == "ok"]
    refused = [result for status, result in outcomes if status == "error"]
    assert len(succeeded) == 1
    assert len(refused) == 15
    assert all(isinstance(exc, services.InsufficientCredits) for exc in refused), refused
    assert all(str(exc) == "Only 0 available; 5000 requested." for exc in refused)
    assert selectors.account_balance(customer=customer) == 0
    assert LedgerEntry.objects.filter(account_id=customer.pk).count() == 3
    assert selectors.verify_ledger() == []


def test_debits_and_grants_racing_on_one_hot_account_add_up_without_deadlock():
    # given
    customer = CustomerFactory()
    grant_at(T0, customer=customer, amount=100_000)
    debit_threads, grant_threads, rounds = 8, 4, 12
    plans = [[random.Random(i).randint(1, 500) for _ in range(rounds)]
             for i in range(debit_threads + grant_threads)]

    def work(i):
        posted = 0
        for n, amount in enumerate(plans[i]):
            if i < debit_threads:
                services.debit(customer=customer.pk, amount=amount, kind="redeem", reason=f"t{i} #{n}")
                posted -= amount
            else:
                services.grant(customer=customer.pk, amount=amount, reason=f"t{i} #{n}",
                               expires_at=T0 + (2 + n) * DAY)
                posted += amount
        return posted

    # when
    outcomes = run_together(debit_threads + grant_threads, work)
    # then
    assert [status for status, _ in outcomes] == ["ok"] * (debit_threads + grant_threads), outcomes
    expected = 100_000 + sum(result for _, result in outcomes)
    assert selectors.account_balance(customer=customer) == expected
    posted = LedgerEntry.objects.filter(account_id=customer.pk).count()
    assert posted == 1 + (debit_threads + grant_threads) * rounds
    assert selectors.verify_ledger() == []


def test_eight_replays_of_one_key_at_once_post_exactly_one_entry():
    # given
    customer = CustomerFactory()
    # when
    outcomes = run_together(8, lambda i: services.grant(
        customer=customer.pk, amount=700, reason="signup bonus", idempotency_key="grant:signup:42").pk)
    # then
    assert [status for status, _ in outcomes] == ["ok"] * 8, outcomes
    assert len({entry_id for _, entry_id in outcomes}) == 1
    assert LedgerEntry.objects.filter(idempotency_key="grant:signup:42").count() == 1
    assert selectors.account_balance(customer=customer) == 700
    assert selectors.verify_ledger() == []


@pytest.mark.parametrize("posting", ["debit", "set_balance", "clawback"])
def test_eight_replays_of_one_key_at_once_answer_as_replays_even_where_the_balance_no_longer_allows_it(posting):
    # given: 5000 available; the posting takes 3000 (or all of it), so a second one could not
    customer = CustomerFactory()
    grant_at(T0, customer=customer, amount=5000)
    call = {
        "debit": lambda: services.debit(customer=customer.pk, amount=3000, kind="redeem", reason="checkout",
                                        idempotency_key="api:redeem:r-1"),
        "set_balance": lambda: services.set_balance(customer=customer.pk, target=2000, reason="correction",
                                                    idempotency_key="api:redeem:r-1"),
        "clawback": lambda: services.clawback(customer=customer.pk, amount=5000, reason="refund",
                                              idempotency_key="api:redeem:r-1"),
    }[posting]
    # when
    outcomes = run_together(8, lambda i: call().pk)
    # then: one entry, and every caller gets it (none sees "insufficient" or "nothing to do")
    assert [status for status, _ in outcomes] == ["ok"] * 8, outcomes
    assert len({entry_id for _, entry_id in outcomes}) == 1
    assert LedgerEntry.objects.filter(idempotency_key="api:redeem:r-1").count() == 1
    assert selectors.verify_ledger() == []


def test_one_key_used_at_once_for_eight_different_customers_posts_once_and_conflicts_otherwise():
    # given
    customers = CustomerFactory.create_batch(8)
    # when
    outcomes = run_together(8, lambda i: services.grant(customer=customers[i].pk, amount=700, reason="bonus",
                                                        idempotency_key="bulk:1:same"))
    # then
    assert sorted(status for status, _ in outcomes) == ["error"] * 7 + ["ok"]
    errors = [result for status, result in outcomes if status == "error"]
    assert all(isinstance(error, services.IdempotencyConflict) for error in errors), errors
    assert LedgerEntry.objects.filter(idempotency_key="bulk:1:same").count() == 1
    assert sum(selectors.account_balance(customer=c) for c in customers) == 700
    assert selectors.verify_ledger() == []


def test_sweeps_racing_with_debits_expire_each_lot_exactly_once():
    # given
    customers = CustomerFactory.create_batch(6)
    for customer in customers:
        for hours in range(5):
            grant_at(T0, customer=customer, amount=100, expires_at=T0 + (hours + 1) * HOUR)
        grant_at(T0, customer=customer, amount=1000)

    def work(i):  # four sweepers, four debiting threads (each customer is debited once)
        if i < 4:
            return services.expire_due(batch_size=3)
        for customer in customers[i - 4::4]:
            services.debit(customer=customer.pk, amount=50, kind="redeem", reason=f"t{i}")
        return 0

    # when
    outcomes = run_together(8, work)
    # then
    assert [status for status, _ in outcomes] == ["ok"] * 8, outcomes
    expiries = list(LedgerEntry.objects.filter(kind="expire").values_list("idempotency_key", flat=True))
    assert sorted(expiries) == sorted(f"expire:{lot_of(e).pk}" for e in LedgerEntry.objects.filter(
        kind="grant", amount=100))
    assert [selectors.account_balance(customer=c) for c in customers] == [950] * 6
    assert selectors.verify_ledger() == []


def test_expire_due_crashing_on_its_second_batch_then_run_again_expires_every_lot_once(monkeypatch):
    # given
    customers = CustomerFactory.create_batch(7)
    grants = [grant_at(T0, customer=c, amount=100 + i, expires_at=T0 + DAY) for i, c in enumerate(customers)]
    real = services._expire_batch
    calls = []

    def crash_on_second_call(accounts, now):
        calls.append(sorted(accounts))
        if len(calls) == 2:
            raise RuntimeError("worker killed mid-sweep")
        return real(accounts, now)

    monkeypatch.setattr(services, "_expire_batch", crash_on_second_call)
    with pytest.raises(RuntimeError, match="worker killed"):
        services.expire_due(now=T0 + DAY, batch_size=2)
    assert LedgerEntry.objects.filter(kind="expire").count() == 2  # the first batch was committed
    # when
    posted = services.expire_due(now=T0 + DAY, batch_size=2)
    # then
    assert posted == 5
    keys = sorted(LedgerEntry.objects.filter(kind="expire").values_list("idempotency_key", flat=True))
    assert keys == sorted(f"expire:{lot_of(g).pk}" for g in grants)
    assert all(lot_of(g).remaining == 0 for g in grants)
    assert selectors.verify_ledger() == []

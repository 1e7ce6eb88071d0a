"""Two staff at the same moment (PostgreSQL: real row locks between real connections)."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from ledger import selectors as ledger_selectors
from ledger.models import LedgerEntry
from refunds import services
from refunds.exceptions import IllegalTransition, OpenRequestExists
from refunds.models import Payout, RefundRequest
from tests.refunds.conftest import PAYOUT

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(*calls):
    """Run each call in its own thread and connection, released together; return results
    (or the exception each raised)."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=10)
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 (collected for the assertions)
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.parametrize("same_form", [True, False], ids=["same-version", "no-version"])
def test_two_staff_pressing_refund_at_once_refund_once(funded_customer, make_request, staff, same_form):
    # given
    req = make_request(funded_customer, 2000)
    a, b = staff("Support agent"), staff("Support admin")
    version = req.version if same_form else None
    # when
    results = _race(lambda: services.refund(request=req.pk, actor=a, expected_version=version),
                    lambda: services.refund(request=req.pk, actor=b, expected_version=version))
    # then
    assert LedgerEntry.objects.filter(kind="cash_refund").count() == 1
    assert Payout.objects.count() == 1
    assert ledger_selectors.available_balance(customer=funded_customer) == 3000
    assert RefundRequest.objects.get(pk=req.pk).status == "refunded"
    if same_form:  # the slower click answers as the first did
        assert all(isinstance(r, RefundRequest) for r in results)
        assert sorted(bool(getattr(r, "replayed", False)) for r in results) == [False, True]
    else:  # without a version the slower one is told it is already refunded
        assert sorted(type(r).__name__ for r in results) == ["IllegalTransition", "RefundRequest"]
        assert any(isinstance(r, IllegalTransition) for r in results)
    assert ledger_selectors.verify_ledger() == []


def test_refund_racing_a_checkout_never_overdraws(funded_customer, make_request, agent):
    # given: 50.00 available, a 40.00 request, and a 30.00 checkout at the same moment
    from ledger import services as ledger_services

    req = make_request(funded_customer, 4000)
    # when
    results = _race(lambda: services.refund(request=req.pk, actor=agent),
                    lambda: ledger_services.debit(customer=funded_customer.pk, amount=3000, kind="redeem",
                                                  reason="checkout"))
    # then: exactly one of them went through
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert ledger_selectors.available_balance(customer=funded_customer) in (1000, 2000)
    assert ledger_selectors.verify_ledger() == []


def test_two_submissions_for_one_customer_at_once_open_one_request(funded_customer):
    # when
    results = _race(*[
        (lambda n=n: services.create_request(customer=funded_customer, amount=100 + n, channel="storefront",
                                             idempotency_key=f"api:race-{n}", **PAYOUT))
        for n in range(2)
    ])
    # then
    assert RefundRequest.objects.filter(customer=funded_customer).count() == 1
    assert sorted(type(r).__name__ for r in results) == ["OpenRequestExists", "RefundRequest"]
    assert any(isinstance(r, OpenRequestExists) for r in results)


def test_two_daily_runs_at_once_send_each_payout_once(funded_customer, make_request, agent, gateway):
    # given: a refund whose first send was lost
    req = make_request(funded_customer, 1000)
    services.refund(request=req, actor=agent)  # commits; the on_commit send runs eagerly...
    Payout.objects.filter(request=req).update(status="queued", attempts=0, paid_at=None,
                                             next_attempt_at=timezone.now())
    gateway.calls.clear()
    # when: ...so re-queue it and let two workers race for it
    results = _race(services.retry_due_payouts, services.retry_due_payouts)
    # then
    assert sorted(results) == [0, 1]
    assert len(gateway.calls) == 1 and Payout.objects.get(request=req).status == "paid"

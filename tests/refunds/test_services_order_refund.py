from datetime import UTC, datetime, timedelta

import pytest

from credits_admin.models import AuditEvent, StoreSettings
from crm.models import OrderNote
from ledger import clock
from ledger import selectors as ledger_selectors
from refunds import services
from refunds.exceptions import ProgramOff, RefundExceedsOrder, RequestConflict, RequestInvalid
from refunds.models import StoreCreditRefund
from refunds.signals import refunded_with_store_credits
from tests.factories import OrderFactory
from tests.refunds.support import SignalLog, refunds_state

T0 = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db

SEEN_CONTEXT = []


def refunds_expire_in_90_days(*, source, now, **context):
    SEEN_CONTEXT.append({"source": source, **context})
    return now + timedelta(days=90) if context.get("purpose") == "refund" else None


@pytest.fixture
def order(db):
    return OrderFactory(items_total=10_000, paid_amount=8_000)


def _refund(order, amount=3000, key="k-1", **kwargs):
    args = {"note": "Refunded with store credits.", "notify": True, "actor": None, "idempotency_key": key, **kwargs}
    return services.refund_with_store_credits(order=order, amount=amount, **args)


def test_refund_with_store_credits_grants_writes_the_note_audits_and_announces(order, staff, settings):
    # given
    settings.LEDGER_EXPIRY_POLICY = f"{__name__}.refunds_expire_in_90_days"
    SEEN_CONTEXT.clear()
    agent = staff("Support agent")
    # when
    with SignalLog(refunded_with_store_credits) as log, clock.posting_at(T0):
        refund = _refund(order, 3000, note="  Sorry for the broken mug. ", notify=False, actor=agent)
    # then
    entry = refund.entry
    assert (entry.kind, entry.amount, entry.reason, entry.source, entry.order, entry.actor) == (
        "grant", 3000, "Refund with store credits", "staff", order, agent)
    assert entry.lot.expires_at == T0 + timedelta(days=90)
    assert SEEN_CONTEXT == [{"source": "staff", "purpose": "refund"}]
    assert ledger_selectors.available_balance(customer=order.customer) == 3000
    assert list(OrderNote.objects.filter(order=order).values_list("body", "author")) == [
        ("Sorry for the broken mug.", agent.pk)]
    assert (refund.amount, refund.note, refund.notify, refund.actor) == (3000, "Sorry for the broken mug.", False, agent)
    event = AuditEvent.objects.get(action="refunds.order_refunded_with_credits")
    assert (event.target_type, event.target_id, event.after["amount"]) == ("crm.order", str(order.pk), 3000)
    assert log.calls == [{"signal": refunded_with_store_credits, "order": order, "entry": entry, "notify": False,
                          "note": "Sorry for the broken mug.", "actor": agent}]


def test_refund_with_store_credits_never_expires_without_a_policy(order):
    # when
    refund = _refund(order)
    # then
    assert refund.entry.lot.expires_at is None


def test_refund_with_store_credits_while_the_program_is_off_is_refused_and_writes_nothing(order):
    # given
    store = StoreSettings.load()
    store.credits_enabled = False
    store.save()
    before = refunds_state()
    # when
    with pytest.raises(ProgramOff) as exc:
        _refund(order)
    # then
    assert exc.value.message == ("Store credits are switched off, so an order cannot be refunded with them. "
                                 "Switch the credits program on first.")
    assert refunds_state() == before and not OrderNote.objects.exists()


def test_refund_with_store_credits_is_limited_to_what_is_left_of_the_order(db):
    # given: paid 80.00, the storefront refunded 10.00, 30.00 already refunded with credits
    order = OrderFactory(items_total=10_000, paid_amount=8_000, refunded_amount=1_000)
    _refund(order, 3000, key="first")
    before = refunds_state()
    # when
    with pytest.raises(RefundExceedsOrder) as exc:
        _refund(order, 4001, key="second")
    # then
    assert exc.value.message == (f"At most $40.00 of order {order.external_id} can still be refunded with store "
                                 f"credits (paid $80.00, refunded by the store $10.00, already refunded with "
                                 f"credits $30.00).")
    assert exc.value.field == "amount"
    assert refunds_state() == before
    assert _refund(order, 4000, key="third").amount == 4000  # exactly the rest is fine


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"amount": 0}, "amount", "Enter an amount greater than zero."),
    ({"amount": -1}, "amount", "Enter an amount greater than zero."),
    ({"amount": 10.0}, "amount", "Enter an amount greater than zero."),
    ({"note": "  "}, "note", "Write the note that goes on the order."),
    ({"note": "n" * 501}, "note", "The note is too long (500 characters at most)."),
])
def test_refund_with_store_credits_with_bad_input_is_refused_and_writes_nothing(order, kwargs, field, message):
    # given
    before = refunds_state()
    # when
    with pytest.raises(RequestInvalid) as exc:
        _refund(order, **{"amount": 100, **kwargs})
    # then
    assert (exc.value.field, exc.value.message) == (field, message)
    assert refunds_state() == before


def test_refund_with_store_credits_replayed_key_grants_once(order):
    # given
    first = _refund(order, 2000, key="same")
    before = refunds_state()
    # when
    again = _refund(order, 2000, key="same")
    # then
    assert again.pk == first.pk and again.replayed is True
    assert refunds_state() == before
    assert StoreCreditRefund.objects.count() == 1 and OrderNote.objects.count() == 1


def test_refund_with_store_credits_key_reused_with_another_amount_is_a_conflict(order):
    # given
    _refund(order, 2000, key="same")
    before = refunds_state()
    # when
    with pytest.raises(RequestConflict):
        _refund(order, 2500, key="same")
    # then
    assert refunds_state() == before

import pytest
from django.core import mail

from credits_admin.models import AuditEvent
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from ledger.models import CreditLot, LedgerEntry, LotConsumption
from refunds import crypto, services
from refunds.exceptions import (
    IllegalTransition,
    InsufficientCreditsForRefund,
    NoEmailAddress,
    OpenRequestExists,
    RequestChanged,
    RequestConflict,
    RequestInvalid,
)
from refunds.models import Payout, RefundRequest
from refunds.signals import refund_request_status_changed
from tests.factories import CustomerFactory
from tests.refunds.conftest import PAYOUT
from tests.refunds.support import SignalLog, refunds_state

pytestmark = pytest.mark.django_db
S = RefundRequest.Status


def _in_status(make_request, customer, status, actor):
    req = make_request(customer, 1000)
    if status == S.PENDING:
        services.mark_pending(request=req, actor=actor)
    elif status == S.REFUNDED:
        services.refund(request=req, actor=actor)
    elif status == S.REJECTED:
        services.reject(request=req, actor=actor, reason="Not eligible")
    elif status == S.CANCELLED:
        services.cancel(request=req)
    req.refresh_from_db()
    assert req.status == status
    return req


# --------------------------------------------------------------------------- create

def test_create_request_stores_it_requested_with_the_account_number_encrypted(funded_customer):
    # given
    with SignalLog(refund_request_status_changed) as log:
        # when
        req = services.create_request(customer=funded_customer, amount=1500, channel="storefront",
                                      account_holder="  Jane   Doe ", bank_name="First Bank",
                                      account_number="1234 5678-9012", memo=" call first ")
    # then
    req.refresh_from_db()
    assert (req.status, req.amount, req.channel, req.version) == (S.REQUESTED, 1500, "storefront", 0)
    assert (req.account_holder, req.bank_name, req.account_last4, req.memo) == ("Jane Doe", "First Bank",
                                                                               "9012", "call first")
    assert "123456789012" not in req.account_number_encrypted
    assert crypto.decrypt(req.account_number_encrypted) == "123456789012"
    assert "9012" in repr(req.payout_display) and "1234" not in req.payout_display
    event = AuditEvent.objects.get(action="refunds.request_created")
    assert event.target_id == str(req.pk) and event.after["status"] == "requested"
    assert "123456789012" not in str(event.after) + event.summary
    assert [(c["old_status"], c["new_status"]) for c in log.calls] == [("", "requested")]
    assert ledger_selectors.available_balance(customer=funded_customer) == 5000  # nothing debited yet


def test_create_request_crashing_never_shows_the_account_number_in_the_error_report(funded_customer, monkeypatch):
    # given: something in the service fails after the number was read
    import sys

    from django.views.debug import ExceptionReporter

    def broken(**kwargs):
        raise RuntimeError("audit log down")

    monkeypatch.setattr(services, "record_change", broken)
    # when
    with pytest.raises(RuntimeError):
        try:
            services.create_request(customer=funded_customer, amount=100, channel="storefront", **PAYOUT)
        except RuntimeError:
            info = sys.exc_info()
            raise
    # then: the report Django would mail or show lists each frame's variables, the number hidden
    frames = ExceptionReporter(None, *info).get_traceback_data()["frames"]
    service = next(f for f in frames if f["function"] == "create_request")
    variables = dict(service["vars"])
    assert variables["account_number"] == "'********************'"
    assert "••••9012" in variables["details"]
    shown = str([f["vars"] for f in frames])
    assert "1234-5678-9012" not in shown and "123456789012" not in shown


@pytest.mark.parametrize(("amount", "message"), [
    (0, "The amount must be greater than zero."),
    (-5, "The amount must be greater than zero."),
    (12.5, "The amount must be a whole number of minor units."),
    (True, "The amount must be a whole number of minor units."),
    ("100", "The amount must be a whole number of minor units."),
])
def test_create_request_with_a_bad_amount_is_refused_and_writes_nothing(funded_customer, amount, message):
    # given
    before = refunds_state()
    # when
    with pytest.raises(RequestInvalid) as exc:
        services.create_request(customer=funded_customer, amount=amount, channel="storefront", **PAYOUT)
    # then
    assert (exc.value.message, exc.value.field) == (message, "amount")
    assert refunds_state() == before


def test_create_request_above_the_available_credits_is_refused_and_writes_nothing(funded_customer):
    # given
    before = refunds_state()
    # when
    with pytest.raises(InsufficientCreditsForRefund) as exc:
        services.create_request(customer=funded_customer, amount=5001, channel="storefront", **PAYOUT)
    # then
    assert exc.value.message == (f"The amount is more than the available credits: {funded_customer.member_id} "
                                 f"has $50.00 available, the request is for $50.01.")
    assert exc.value.field == "amount"
    assert refunds_state() == before


def test_create_request_of_exactly_the_available_credits_is_accepted(funded_customer, make_request):
    # when
    req = make_request(funded_customer, 5000)
    # then
    assert req.status == S.REQUESTED


@pytest.mark.parametrize(("field", "value", "message"), [
    ("account_holder", " ", "Enter the account holder's name."),
    ("bank_name", "", "Enter the bank's name."),
    ("account_number", "", "Enter the account number."),
    ("account_number", "12-34", "An account number has 6 to 34 letters and digits (spaces and dashes are ignored)."),
    ("account_number", "1234567#", "An account number has 6 to 34 letters and digits (spaces and dashes are ignored)."),
    ("account_holder", "x" * 121, "The account holder's name is too long (120 characters at most)."),
])
def test_create_request_with_bad_payout_details_is_refused_and_writes_nothing(funded_customer, field, value, message):
    # given
    before = refunds_state()
    # when
    with pytest.raises(RequestInvalid) as exc:
        services.create_request(customer=funded_customer, amount=100, channel="staff", **{**PAYOUT, field: value})
    # then
    assert (exc.value.message, exc.value.field) == (message, field)
    assert refunds_state() == before


@pytest.mark.parametrize("status", [S.REQUESTED, S.PENDING])
def test_create_request_while_one_is_open_is_refused_and_writes_nothing(funded_customer, make_request, agent, status):
    # given
    first = _in_status(make_request, funded_customer, status, agent)
    before = refunds_state()
    # when
    with pytest.raises(OpenRequestExists) as exc:
        make_request(funded_customer, 100)
    # then
    assert exc.value.message.startswith(f"{funded_customer.member_id} already has an open cash refund request "
                                        f"(#{first.pk}, {first.get_status_display()}).")
    assert exc.value.existing_id == first.pk
    assert refunds_state() == before


@pytest.mark.parametrize("status", [S.REFUNDED, S.REJECTED, S.CANCELLED])
def test_create_request_after_the_last_one_closed_is_accepted(funded_customer, make_request, agent, status):
    # given
    _in_status(make_request, funded_customer, status, agent)
    # when
    req = make_request(funded_customer, 100)
    # then
    assert req.status == S.REQUESTED


def test_create_request_replaying_its_key_returns_the_first_and_writes_nothing(funded_customer, make_request):
    # given
    first = make_request(funded_customer, 700, idempotency_key="api:r-1")
    before = refunds_state()
    # when
    again = make_request(funded_customer, 700, idempotency_key="api:r-1")
    # then
    assert again.pk == first.pk and again.replayed is True
    assert refunds_state() == before


def test_create_request_reusing_its_key_with_other_data_is_a_conflict(funded_customer, make_request):
    # given
    make_request(funded_customer, 700, idempotency_key="api:r-1")
    before = refunds_state()
    # when
    with pytest.raises(RequestConflict) as exc:
        make_request(funded_customer, 701, idempotency_key="api:r-1")
    # then
    assert exc.value.message == "This request id was already used for a different request."
    assert refunds_state() == before


def test_create_request_for_a_deleted_customer_is_refused(db):
    # given
    customer = CustomerFactory(status="deleted")
    # when
    with pytest.raises(RequestInvalid) as exc:
        services.create_request(customer=customer, amount=1, channel="staff", **PAYOUT)
    # then
    assert exc.value.message == "This customer's account has been deleted."
    assert not RefundRequest.objects.exists()


# --------------------------------------------------------------------------- transitions

def test_mark_pending_moves_a_requested_request_to_pending_with_an_audit_event(funded_customer, make_request, agent):
    # given
    req = make_request(funded_customer)
    # when
    with SignalLog(refund_request_status_changed) as log:
        services.mark_pending(request=req, actor=agent)
    # then
    req.refresh_from_db()
    assert (req.status, req.version, req.status_changed_by) == (S.PENDING, 1, agent)
    event = AuditEvent.objects.get(action="refunds.request_pending")
    assert (event.actor, event.before, event.after) == (agent, {"status": "requested"}, {"status": "pending"})
    assert log.calls == [{"signal": refund_request_status_changed, "request": req, "old_status": "requested",
                          "new_status": "pending", "actor": agent, "reason": ""}]


@pytest.mark.parametrize("start", [S.REQUESTED, S.PENDING])
def test_refund_debits_the_credits_as_cash_refund_and_records_a_paid_manual_payout(
        funded_customer, make_request, agent, start):
    # given
    req = _in_status(make_request, funded_customer, start, agent)
    # when
    services.refund(request=req, actor=agent)
    # then
    req.refresh_from_db()
    entry = req.refund_entry
    assert (req.status, req.refund_attempts) == (S.REFUNDED, 1)
    assert (entry.kind, entry.amount, entry.actor, entry.idempotency_key) == ("cash_refund", -1000, agent,
                                                                              f"cash_refund:{req.pk}:1")
    assert ledger_selectors.available_balance(customer=funded_customer) == 4000
    payout = Payout.objects.get(request=req)
    assert (payout.status, payout.amount, payout.confirmed_by, payout.attempts) == ("paid", 1000, agent, 0)
    event = AuditEvent.objects.get(action="refunds.request_refunded")
    assert event.before == {"status": start} and event.after["entry"] == entry.pk
    assert ledger_selectors.verify_ledger() == []


def test_refund_above_the_available_credits_is_refused_and_writes_nothing(funded_customer, make_request, agent):
    # given: the customer spent credits after asking
    req = make_request(funded_customer, 3000)
    ledger_services.debit(customer=funded_customer, amount=2500, kind="redeem", reason="checkout")
    before = refunds_state()
    # when
    with pytest.raises(InsufficientCreditsForRefund) as exc:
        services.refund(request=req, actor=agent)
    # then
    assert exc.value.message == (f"Refund refused: {funded_customer.member_id} has only $25.00 available and "
                                 f"the request is for $30.00. Nothing was changed.")
    assert (exc.value.requested, exc.value.available) == (3000, 2500)
    assert refunds_state() == before


def test_refund_does_not_spend_credits_that_expired_unswept(customer, make_request, agent):
    # given
    from datetime import timedelta

    from ledger import clock

    grant = ledger_services.grant(customer=customer, amount=1000, reason="promo",
                                  expires_at=clock.now() + timedelta(days=1))
    req = make_request(customer, 1000)
    # when: a day later the lot has expired, though no sweep ran
    with clock.posting_at(grant.created_at + timedelta(days=2)):
        with pytest.raises(InsufficientCreditsForRefund) as exc:
            services.refund(request=req, actor=agent)
    # then
    assert exc.value.available == 0
    assert RefundRequest.objects.get(pk=req.pk).status == S.REQUESTED


def test_refund_double_click_with_the_same_version_refunds_once(funded_customer, make_request, agent, staff):
    # given
    req = make_request(funded_customer, 1000)
    seen = req.version
    services.refund(request=req, actor=agent, expected_version=seen)
    before = refunds_state()
    # when: the second click, or a second staff member with the same list open
    again = services.refund(request=req, actor=staff("Support admin"), expected_version=seen)
    # then
    assert again.replayed is True and again.status == S.REFUNDED
    assert refunds_state() == before
    assert LedgerEntry.objects.filter(kind="cash_refund").count() == 1


def test_refund_with_a_stale_version_after_other_changes_is_refused(funded_customer, make_request, agent):
    # given: the list was opened, then someone rejected the request
    req = make_request(funded_customer, 1000)
    seen = req.version
    services.reject(request=req, actor=agent, reason="Duplicate")
    before = refunds_state()
    # when
    with pytest.raises(RequestChanged) as exc:
        services.refund(request=req, actor=agent, expected_version=seen)
    # then
    assert exc.value.message == (f"Request #{req.pk} was changed by someone else meanwhile (it is now Rejected). "
                                 f"Look at the list again before you act.")
    assert refunds_state() == before


def test_undo_reverses_the_debit_into_the_very_lots_and_returns_to_pending(customer, make_request, agent):
    # given: two lots; the refund takes from the sooner-expiring one first
    from datetime import timedelta

    from ledger import clock

    soon = ledger_services.grant(customer=customer, amount=600, reason="a",
                                 expires_at=clock.now() + timedelta(days=5))
    later = ledger_services.grant(customer=customer, amount=600, reason="b")
    req = make_request(customer, 1000)
    services.refund(request=req, actor=agent)
    req.refresh_from_db()
    debit = req.refund_entry
    # when
    services.undo(request=req, actor=agent)
    # then
    req.refresh_from_db()
    reversal = LedgerEntry.objects.get(reverses=debit)
    assert (req.status, req.refund_entry, req.refund_attempts) == (S.PENDING, None, 1)
    assert (reversal.kind, reversal.amount, reversal.actor) == ("reversal", 1000, agent)
    lots = {soon.lot.pk: -600, later.lot.pk: -400}
    assert dict(LotConsumption.objects.filter(entry=reversal).values_list("lot_id", "amount")) == lots
    assert list(CreditLot.objects.order_by("id").values_list("remaining", flat=True)) == [600, 600]
    assert Payout.objects.get(request=req).status == "cancelled"
    event = AuditEvent.objects.get(action="refunds.refund_undone")
    assert event.before == {"status": "refunded", "entry": debit.pk}
    assert event.after == {"status": "pending", "reversal": reversal.pk}
    assert ledger_selectors.verify_ledger() == []


def test_refund_after_undo_posts_a_new_debit_with_the_next_attempt_key(funded_customer, make_request, agent):
    # given
    req = make_request(funded_customer, 1000)
    services.refund(request=req, actor=agent)
    services.undo(request=req, actor=agent)
    # when
    services.refund(request=req, actor=agent)
    # then
    req.refresh_from_db()
    keys = list(LedgerEntry.objects.filter(kind="cash_refund").order_by("id").values_list("idempotency_key", flat=True))
    assert keys == [f"cash_refund:{req.pk}:1", f"cash_refund:{req.pk}:2"]
    assert req.refund_attempts == 2 and req.refund_entry.idempotency_key == keys[1]
    assert ledger_selectors.available_balance(customer=funded_customer) == 4000
    assert list(Payout.objects.order_by("refund_attempt").values_list("status", flat=True)) == ["cancelled", "paid"]


def test_undo_while_the_customer_has_another_open_request_is_refused(funded_customer, make_request, agent):
    # given
    old = make_request(funded_customer, 1000)
    services.refund(request=old, actor=agent)
    new = make_request(funded_customer, 500)
    before = refunds_state()
    # when
    with pytest.raises(OpenRequestExists) as exc:
        services.undo(request=old, actor=agent)
    # then
    assert exc.value.message == (f"Undo refused: {funded_customer.member_id} has another open request "
                                 f"(#{new.pk}). Settle that one first.")
    assert refunds_state() == before


def test_reject_keeps_the_reason_for_the_customer_and_announces_it(funded_customer, make_request, agent):
    # given
    req = make_request(funded_customer)
    # when
    with SignalLog(refund_request_status_changed) as log:
        services.reject(request=req, actor=agent, reason="  Credits from a promotion cannot be cashed out. ")
    # then
    req.refresh_from_db()
    assert (req.status, req.rejection_reason) == (S.REJECTED, "Credits from a promotion cannot be cashed out.")
    assert log.calls[0]["reason"] == "Credits from a promotion cannot be cashed out."
    assert AuditEvent.objects.get(action="refunds.request_rejected").after["reason"] == req.rejection_reason
    assert ledger_selectors.available_balance(customer=funded_customer) == 5000


@pytest.mark.parametrize(("reason", "message"), [
    ("", "Tell the customer why the request is rejected."),
    ("   ", "Tell the customer why the request is rejected."),
    ("x" * 501, "The reason is too long (500 characters at most)."),
])
def test_reject_without_a_usable_reason_is_refused_and_writes_nothing(funded_customer, make_request, agent,
                                                                      reason, message):
    # given
    req = make_request(funded_customer)
    before = refunds_state()
    # when
    with pytest.raises(RequestInvalid) as exc:
        services.reject(request=req, actor=agent, reason=reason)
    # then
    assert (exc.value.message, exc.value.field) == (message, "reason")
    assert refunds_state() == before


@pytest.mark.parametrize("start", [S.REQUESTED, S.PENDING])
def test_cancel_by_the_customer_closes_an_open_request(funded_customer, make_request, agent, start):
    # given
    req = _in_status(make_request, funded_customer, start, agent)
    # when
    services.cancel(request=req, reason="changed my mind")
    # then
    req.refresh_from_db()
    assert req.status == S.CANCELLED
    event = AuditEvent.objects.get(action="refunds.request_cancelled")
    assert event.actor is None and event.after == {"status": "cancelled", "reason": "changed my mind"}


ILLEGAL = [
    ("mark_pending", S.PENDING, "Request #{pk} is Awaiting/Pending, so it cannot be marked pending. It is already pending."),
    ("mark_pending", S.REFUNDED, "Request #{pk} is Refunded, so it cannot be marked pending. Undo the refund first."),
    ("mark_pending", S.REJECTED, "Request #{pk} is Rejected, so it cannot be marked pending. It was rejected; the customer can send a new request."),
    ("mark_pending", S.CANCELLED, "Request #{pk} is Cancelled, so it cannot be marked pending. The customer cancelled it."),
    ("refund", S.REFUNDED, "Request #{pk} is Refunded, so it cannot be refunded."),
    ("refund", S.REJECTED, "Request #{pk} is Rejected, so it cannot be refunded. It was rejected; the customer can send a new request."),
    ("refund", S.CANCELLED, "Request #{pk} is Cancelled, so it cannot be refunded. The customer cancelled it."),
    ("undo", S.REQUESTED, "Request #{pk} is Requested, so it cannot be undone. Only a refunded request can be undone."),
    ("undo", S.PENDING, "Request #{pk} is Awaiting/Pending, so it cannot be undone. Only a refunded request can be undone."),
    ("undo", S.REJECTED, "Request #{pk} is Rejected, so it cannot be undone. Only a refunded request can be undone."),
    ("undo", S.CANCELLED, "Request #{pk} is Cancelled, so it cannot be undone. Only a refunded request can be undone."),
    ("reject", S.REFUNDED, "Request #{pk} is Refunded, so it cannot be rejected. Undo the refund first."),
    ("reject", S.REJECTED, "Request #{pk} is Rejected, so it cannot be rejected. It was rejected; the customer can send a new request."),
    ("reject", S.CANCELLED, "Request #{pk} is Cancelled, so it cannot be rejected. The customer cancelled it."),
    ("cancel", S.REFUNDED, "Request #{pk} is Refunded, so it cannot be cancelled. Undo the refund first."),
    ("cancel", S.REJECTED, "Request #{pk} is Rejected, so it cannot be cancelled. It was rejected; the customer can send a new request."),
    ("cancel", S.CANCELLED, "Request #{pk} is Cancelled, so it cannot be cancelled. The customer cancelled it."),
]


@pytest.mark.parametrize(("action", "status", "message"), ILLEGAL)
def test_illegal_transition_is_refused_with_a_clear_message_and_writes_nothing(
        funded_customer, make_request, agent, action, status, message):
    # given
    req = _in_status(make_request, funded_customer, status, agent)
    before = refunds_state()
    kwargs = {"request": req}
    if action != "cancel":
        kwargs["actor"] = agent
    if action == "reject":
        kwargs["reason"] = "no"
    # when
    with pytest.raises(IllegalTransition) as exc:
        getattr(services, action)(**kwargs)
    # then
    assert exc.value.message == message.format(pk=req.pk)
    assert refunds_state() == before


def test_a_failing_status_receiver_rolls_the_whole_transition_back(funded_customer, make_request, agent):
    # given: the signal is sent inside the transaction of the change
    req = make_request(funded_customer, 1000)
    before = refunds_state()

    def boom(sender, **kwargs):
        raise RuntimeError("outbox down")

    refund_request_status_changed.connect(boom, weak=False)
    try:
        # when
        with pytest.raises(RuntimeError):
            services.refund(request=req, actor=agent)
    finally:
        refund_request_status_changed.disconnect(boom)
    # then
    assert refunds_state() == before


# --------------------------------------------------------------------------- email

def test_send_customer_email_goes_out_after_commit_and_is_audited(funded_customer, make_request, agent,
                                                                  django_capture_on_commit_callbacks):
    # given
    req = make_request(funded_customer)
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.send_customer_email(request=req, subject="Your refund", message="We are on it.", actor=agent)
        assert mail.outbox == []  # nothing sent before commit
    for callback in callbacks:
        callback()
    # then
    assert [(m.subject, m.to, m.body) for m in mail.outbox] == [("Your refund", [funded_customer.email],
                                                                 "We are on it.")]
    assert AuditEvent.objects.get(action="refunds.customer_emailed").actor == agent


def test_send_customer_email_without_an_address_is_refused(make_request, agent):
    # given
    customer = CustomerFactory(email="")
    ledger_services.grant(customer=customer, amount=100, reason="x")
    req = make_request(customer, 100)
    before = refunds_state()
    # when
    with pytest.raises(NoEmailAddress) as exc:
        services.send_customer_email(request=req, subject="s", message="m", actor=agent)
    # then
    assert exc.value.message == f"{customer.member_id} has no email address."
    assert refunds_state() == before and mail.outbox == []

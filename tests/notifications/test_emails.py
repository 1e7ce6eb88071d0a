"""Every email type: triggered by the real change that causes it, sent once with an HTML and
a plain-text part, and not written at all while its switch is off."""

import datetime as dt
from email import message_from_bytes

import pytest
from django.core import mail
from django.db import transaction

from crm.models import Customer
from ledger import clock
from ledger import services as ledger_services
from notifications import services
from notifications.kinds import EMAIL_TYPES, EmailKind
from notifications.models import OutboxMessage
from refunds import services as refund_services
from refunds.payouts import PayoutResult
from tests.factories import CustomerFactory, OrderFactory

from .conftest import set_staff_recipients, switch

pytestmark = pytest.mark.django_db(transaction=True)


class FailingGateway:
    """A payout gateway client that always declines."""

    def send_payout(self, **kwargs):
        return PayoutResult(ok=False, error="Bank account closed")


def _request(customer, amount=1000):
    return refund_services.create_request(customer=customer, amount=amount, account_holder="Ada Lovelace",
                                          bank_name="First Bank", account_number="12345678", channel="storefront")


def trigger(kind: str, customer: Customer, settings) -> None:
    """Make the change that causes an email of `kind` for `customer`."""
    now = clock.now()
    if kind == EmailKind.CREDITS_RECEIVED:
        ledger_services.grant(customer=customer, amount=1250, reason="Welcome bonus",
                              expires_at=now + dt.timedelta(days=30))
    elif kind == EmailKind.CREDITS_REDEEMED:
        ledger_services.debit(customer=customer, amount=700, kind="redeem", reason="Checkout", source="api",
                              order=OrderFactory(customer=customer, external_id="ORD-77"))
    elif kind == EmailKind.CREDITS_EXPIRING:
        ledger_services.grant(customer=customer, amount=900, reason="Promo", expires_at=now + dt.timedelta(days=2))
        services.send_expiry_reminders()
    elif kind == EmailKind.REFUND_WITH_STORE_CREDITS:
        order = OrderFactory(customer=customer, external_id="ORD-42", items_total=8000)
        refund_services.refund_with_store_credits(order=order, amount=3000, note="Sorry about the broken mug.",
                                                  notify=True, actor=None, idempotency_key="form-1")
    elif kind == EmailKind.CASH_REFUND_STATUS_CHANGED:
        _request(customer)
    elif kind == EmailKind.DELETION_NOTICE:
        with transaction.atomic():
            services.request_account_deletion(customer=customer, event_id="evt-del-1")
    elif kind == EmailKind.PAYOUT_FAILURE_ALERT:
        set_staff_recipients("ops@store.example, finance@store.example")
        settings.REFUNDS_PAYOUT_BACKEND = "refunds.payouts.GatewayBackend"
        settings.REFUNDS_GATEWAY_CLIENT = "tests.notifications.test_emails.FailingGateway"
        settings.REFUNDS_PAYOUT_MAX_RETRIES = 0
        refund_services.refund(request=_request(customer), actor=None)  # the payout task fails after commit
    else:
        raise AssertionError(kind)


def _funded(email="ada@example.com"):
    customer = CustomerFactory(name="Ada Lovelace", email=email)
    with transaction.atomic():
        ledger_services.grant(customer=customer, amount=5000, reason="test setup")
    return customer


@pytest.mark.parametrize("kind", list(EMAIL_TYPES))
def test_each_email_type_is_sent_once_with_html_and_text_parts(kind, settings):
    # given
    customer = _funded()
    before = OutboxMessage.objects.filter(kind=kind).count()
    mail.outbox.clear()
    # when
    trigger(kind, customer, settings)
    # then
    messages = list(OutboxMessage.objects.filter(kind=kind).order_by("pk"))
    assert len(messages) == before + 1
    message = messages[-1]
    assert message.status == OutboxMessage.Status.SENT and message.sent_at is not None
    sent = [m for m in mail.outbox if m.extra_headers.get("X-Credits-Email") == kind]
    assert len(sent) == 1
    email = sent[0]
    assert email.subject == message.subject
    assert email.body == message.text and email.body.strip()
    assert email.alternatives[0].mimetype == "text/html"
    assert email.alternatives[0].content == message.html
    parsed = message_from_bytes(email.message().as_bytes())
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.get_payload()] == ["text/plain", "text/html"]
    if EMAIL_TYPES[kind].audience == "staff":
        assert email.to == ["ops@store.example", "finance@store.example"]
        assert "Bank account closed" in email.body
    else:
        assert email.to == ["ada@example.com"]
        assert "Ada Lovelace" in email.body and "Ada Lovelace" in message.html


@pytest.mark.parametrize("kind", list(EMAIL_TYPES))
def test_each_email_type_switched_off_writes_no_email(kind, settings):
    # given
    customer = _funded()
    switch(kind, False)
    before = OutboxMessage.objects.filter(kind=kind).count()
    mail.outbox.clear()
    # when
    trigger(kind, customer, settings)
    # then
    assert OutboxMessage.objects.filter(kind=kind).count() == before
    assert not [m for m in mail.outbox if m.extra_headers.get("X-Credits-Email") == kind]


def test_credits_received_email_shows_amount_balance_expiry_and_card_digits():
    # given
    customer = _funded()
    mail.outbox.clear()
    expires = clock.now() + dt.timedelta(days=30)
    # when
    ledger_services.grant(customer=customer, amount=1250, reason="Review reward", expires_at=expires)
    # then
    email = mail.outbox[0]
    assert email.subject == "You received $12.50 in store credits at Demo Store"
    assert "You received $12.50 in store credits (Review reward)." in email.body
    assert "Your balance is now $62.50." in email.body
    assert f"These credits expire on {services.format_date(expires)}." in email.body
    assert f"ending in {customer.card_number[-4:]}" in email.body


def test_credits_redeemed_email_names_the_order():
    # given
    customer = _funded()
    mail.outbox.clear()
    # when
    ledger_services.debit(customer=customer, amount=700, kind="redeem", reason="Checkout", source="api",
                          order=OrderFactory(customer=customer, external_id="ORD-77"))
    # then
    assert [m.subject for m in mail.outbox] == ["You used $7.00 in store credits at Demo Store"]
    assert "You used $7.00 in store credits on order ORD-77." in mail.outbox[0].body
    assert "Your remaining balance is $43.00." in mail.outbox[0].body


def test_other_ledger_entries_send_no_email():
    # given
    customer = _funded()
    entry = ledger_services.grant(customer=customer, amount=100, reason="oops")
    mail.outbox.clear()
    before = OutboxMessage.objects.count()
    # when
    ledger_services.debit(customer=customer, amount=300, kind="deduct", reason="Correction")
    ledger_services.reverse(entry=entry)
    ledger_services.debit(customer=customer, amount=200, kind="forfeit", reason="Forfeit", source="system")
    # then
    assert OutboxMessage.objects.count() == before
    assert mail.outbox == []


def test_customer_without_an_email_address_gets_no_email():
    # given
    customer = CustomerFactory(email="")
    # when
    ledger_services.grant(customer=customer, amount=500, reason="Welcome")
    # then
    assert not OutboxMessage.objects.exists()


def test_replayed_grant_writes_no_second_email():
    # given
    customer = CustomerFactory()
    ledger_services.grant(customer=customer, amount=500, reason="Welcome", idempotency_key="k-1")
    # when
    again = ledger_services.grant(customer=customer, amount=500, reason="Welcome", idempotency_key="k-1")
    # then
    assert again.replayed
    assert OutboxMessage.objects.count() == 1
    assert len(mail.outbox) == 1


def test_outbox_row_is_rolled_back_with_the_change_that_caused_it():
    # given
    customer = CustomerFactory()
    # when
    with pytest.raises(RuntimeError), transaction.atomic():
        ledger_services.grant(customer=customer, amount=500, reason="Welcome")
        assert OutboxMessage.objects.filter(kind=EmailKind.CREDITS_RECEIVED).count() == 1  # same transaction
        raise RuntimeError("the caller fails after the grant")
    # then
    assert not OutboxMessage.objects.exists()
    assert mail.outbox == []


def test_refund_with_store_credits_email_replaces_credits_received():
    # given
    customer = _funded()
    order = OrderFactory(customer=customer, external_id="ORD-42", items_total=8000)
    mail.outbox.clear()
    # when
    refund_services.refund_with_store_credits(order=order, amount=3000, note="Sorry about the broken mug.",
                                              notify=True, actor=None, idempotency_key="form-1")
    # then
    assert [m.extra_headers["X-Credits-Email"] for m in mail.outbox] == [EmailKind.REFUND_WITH_STORE_CREDITS]
    email = mail.outbox[0]
    assert email.subject == "Your order ORD-42 was refunded with $30.00 in store credits"
    assert "Sorry about the broken mug." in email.body
    assert OutboxMessage.objects.filter(kind=EmailKind.CREDITS_RECEIVED).count() == 1  # the setup grant's only


def test_refund_with_store_credits_without_notify_sends_nothing():
    # given
    customer = _funded()
    order = OrderFactory(customer=customer, items_total=8000)
    mail.outbox.clear()
    before = OutboxMessage.objects.count()
    # when
    refund_services.refund_with_store_credits(order=order, amount=3000, note="Goodwill", notify=False, actor=None,
                                              idempotency_key="form-2")
    # then
    assert OutboxMessage.objects.count() == before
    assert mail.outbox == []


def test_each_cash_refund_transition_sends_its_own_email():
    # given
    customer = _funded()
    mail.outbox.clear()
    # when
    request = _request(customer)
    refund_services.mark_pending(request=request, actor=None)
    refund_services.refund(request=request, actor=None)
    refund_services.undo(request=request, actor=None)
    refund_services.refund(request=request, actor=None)
    # then
    subjects = [m.subject for m in mail.outbox]
    assert subjects == [
        f"We received your cash refund request #{request.pk}",
        f"Your cash refund request #{request.pk} is now awaiting/pending",
        f"Your cash refund request #{request.pk} is now refunded",
        f"Your cash refund request #{request.pk} is now awaiting/pending",
        f"Your cash refund request #{request.pk} is now refunded",
    ]
    keys = list(OutboxMessage.objects.filter(kind=EmailKind.CASH_REFUND_STATUS_CHANGED)
                .order_by("pk").values_list("cause_key", flat=True))
    assert keys == [f"cash_refund_status_changed:{request.pk}:{n}" for n in range(1, 6)]
    assert "changed from requested to awaiting/pending" in mail.outbox[1].body


def test_rejected_cash_refund_email_gives_the_reason():
    # given
    customer = _funded()
    request = _request(customer)
    mail.outbox.clear()
    # when
    refund_services.reject(request=request, actor=None, reason="The bank details do not match your name.")
    # then
    assert mail.outbox[0].subject == f"Your cash refund request #{request.pk} is now rejected"
    assert "The bank details do not match your name." in mail.outbox[0].body


def test_payout_failure_without_staff_addresses_writes_no_alert(settings):
    # given
    customer = _funded()
    set_staff_recipients("")
    settings.REFUNDS_PAYOUT_BACKEND = "refunds.payouts.GatewayBackend"
    settings.REFUNDS_GATEWAY_CLIENT = "tests.notifications.test_emails.FailingGateway"
    settings.REFUNDS_PAYOUT_MAX_RETRIES = 0
    # when
    refund_services.refund(request=_request(customer), actor=None)
    # then
    assert not OutboxMessage.objects.filter(kind=EmailKind.PAYOUT_FAILURE_ALERT).exists()
    assert OutboxMessage.objects.filter(kind=EmailKind.CASH_REFUND_STATUS_CHANGED).count() == 3  # the customer's


def test_deletion_notice_is_not_sent_when_nothing_is_left():
    # given
    customer = CustomerFactory()
    # when
    with transaction.atomic():
        result = services.request_account_deletion(customer=customer, event_id="evt-1")
    # then
    assert result == {"customer": customer.member_id, "status": "deletion_requested", "balance": 0,
                      "notice": "not_needed"}
    assert not OutboxMessage.objects.exists()


def test_a_stored_template_that_no_longer_renders_falls_back_to_the_default():
    # given: a template saved before a placeholder was renamed (the form would refuse it now)
    from notifications.models import EmailTemplate

    switch(EmailKind.CREDITS_RECEIVED, True)
    EmailTemplate.objects.filter(kind=EmailKind.CREDITS_RECEIVED).update(subject="Hi {{ first_name }}")
    services.forget_templates()  # QuerySet.update sends no post_save
    customer = CustomerFactory()
    # when
    ledger_services.grant(customer=customer, amount=500, reason="Welcome")
    # then: the grant stands and the email goes out with the default subject
    assert mail.outbox[0].subject == "You received $5.00 in store credits at Demo Store"


def test_with_the_demo_mail_settings_each_email_lands_in_the_mail_folder_as_it_happens(settings, tmp_path):
    # given: the demo's set-up (`make run`): tasks run eagerly, mail goes to files
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    customer = CustomerFactory(name="Ada Lovelace", email="ada@example.com")
    # when: a grant, then a redemption
    ledger_services.grant(customer=customer, amount=1250, reason="Welcome bonus")
    files_after_grant = list((tmp_path / "mail").glob("*.log"))
    ledger_services.debit(customer=customer, amount=500, kind="redeem", reason="Checkout", source="api")
    # then: each email is a file as soon as its change commits, with both parts
    assert len(files_after_grant) == 1
    content = "".join(f.read_text() for f in (tmp_path / "mail").glob("*.log"))
    assert content.count("To: ada@example.com") == 2
    assert "Subject: You received $12.50 in store credits at Demo Store" in content
    assert "Subject: You used $5.00 in store credits at Demo Store" in content
    assert content.count("Content-Type: text/plain") == content.count("Content-Type: text/html") == 2
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {OutboxMessage.Status.SENT}

"""Account deletion through the storefront's events (POST /api/v1/events): the request sends
the remaining-credits notice; the confirmation forfeits the credits and anonymises the
customer while the ledger stays whole."""

import datetime as dt
import json

import pytest
from django.core import mail
from django.db import transaction

from credits_admin import apikeys
from credits_admin.models import AuditEvent
from crm.models import Customer, CustomerEditLog, CustomerMemo
from ledger import clock
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from ledger.models import EntryKind, LedgerEntry
from ledger.selectors import verify_ledger
from notifications import events
from notifications.kinds import EmailKind
from notifications.models import OutboxMessage
from rules import events as rule_events
from tests.factories import CustomerFactory, CustomerMemoFactory

from .conftest import switch

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def post_event(client):
    _, raw = apikeys.create_api_key(name="Storefront")

    def post(event_type, data, event_id="evt-1"):
        body = {"id": event_id, "type": event_type, "occurred_at": "2030-01-01T12:00:00Z", "data": data}
        return client.post("/api/v1/events", json.dumps(body), content_type="application/json",
                           headers={"Authorization": f"Bearer {raw}"})

    return post


@pytest.fixture
def ada():
    customer = CustomerFactory(member_id="M-ADA", name="Ada Lovelace", email="ada@example.com", phone="010-1234-5678")
    with transaction.atomic():
        ledger_services.grant(customer=customer, amount=2500, reason="Welcome")
        ledger_services.grant(customer=customer, amount=1000, reason="Promo",
                              expires_at=clock.now() + dt.timedelta(days=60))
    mail.outbox.clear()
    return customer


def test_both_deletion_event_types_are_registered_with_the_events_api():
    # given / when / then
    assert rule_events.handler_for("customer.deletion_requested") is events.handle_deletion_requested
    assert rule_events.handler_for("customer.deletion_confirmed") is events.handle_deletion_confirmed


def test_deletion_request_marks_the_customer_and_sends_the_remaining_credits_notice(post_event, ada):
    # when
    response = post_event("customer.deletion_requested", {"customer_id": "M-ADA"})
    # then
    assert response.status_code == 200, response.content
    assert response.json()["result"] == {"customer": "M-ADA", "status": "deletion_requested", "balance": 3500,
                                         "notice": "queued"}
    assert response.json()["customer"] == "M-ADA"
    ada.refresh_from_db()
    assert ada.status == Customer.Status.DELETION_REQUESTED
    [email] = mail.outbox
    assert email.to == ["ada@example.com"]
    assert email.subject == "You still have $35.00 in store credits at Demo Store"
    assert "forfeited" in email.body and ada.card_number[-4:] in email.body
    assert email.alternatives[0].mimetype == "text/html"
    assert OutboxMessage.objects.get(kind=EmailKind.DELETION_NOTICE).cause_key == "deletion_notice:evt-1"
    assert CustomerEditLog.objects.get(customer=ada).changes == {"status": ["active", "deletion_requested"]}


def test_deletion_request_sent_twice_with_the_same_id_sends_one_notice(post_event, ada):
    # when
    first = post_event("customer.deletion_requested", {"customer_id": "M-ADA"})
    second = post_event("customer.deletion_requested", {"customer_id": "M-ADA"})
    # then
    assert first.status_code == second.status_code == 200
    assert second["Idempotent-Replayed"] == "true"
    assert len(mail.outbox) == 1


def test_deletion_request_with_the_notice_switched_off_sends_nothing(post_event, ada):
    # given
    switch(EmailKind.DELETION_NOTICE, False)
    # when
    response = post_event("customer.deletion_requested", {"customer_id": "M-ADA"})
    # then
    assert response.json()["result"]["notice"] == "disabled"
    assert mail.outbox == []
    ada.refresh_from_db()
    assert ada.status == Customer.Status.DELETION_REQUESTED


@pytest.mark.parametrize("data, status, message", [
    ({}, 422, "data.customer_id (the storefront's customer id) is required."),
    ({"customer_id": ""}, 422, "data.customer_id (the storefront's customer id) is required."),
    ({"customer_id": ["M-ADA"]}, 422, "data.customer_id (the storefront's customer id) is required."),
    ({"customer_id": "M-NOBODY"}, 404, "No customer with id 'M-NOBODY'."),
])
@pytest.mark.parametrize("event_type", ["customer.deletion_requested", "customer.deletion_confirmed"])
def test_deletion_events_for_bad_or_unknown_customers_are_refused_and_write_nothing(
        post_event, ada, event_type, data, status, message):
    # given
    entries = LedgerEntry.objects.count()
    # when
    response = post_event(event_type, data)
    # then
    assert response.status_code == status
    assert response.json()["detail"] == message
    ada.refresh_from_db()
    assert ada.status == Customer.Status.ACTIVE and ada.name == "Ada Lovelace"
    assert LedgerEntry.objects.count() == entries
    assert not OutboxMessage.objects.filter(kind=EmailKind.DELETION_NOTICE).exists()


def test_confirmed_deletion_forfeits_the_credits_and_anonymises_the_customer(post_event, ada):
    # given
    CustomerMemoFactory(customer=ada, body="Ada called about her order, phone 010-1234-5678")
    post_event("customer.deletion_requested", {"customer_id": "M-ADA"}, event_id="evt-req")
    card_number = ada.card_number
    # when
    response = post_event("customer.deletion_confirmed", {"customer_id": "M-ADA"}, event_id="evt-conf")
    # then: the answer
    assert response.status_code == 200, response.content
    assert response.json()["result"] == {"customer": "M-ADA", "status": "deleted", "forfeited": 3500,
                                         "refund_requests_cancelled": [], "refund_requests_anonymised": 0,
                                         "emails_redacted": 3}  # 2 grants + the notice
    # then: the credits are forfeited by one entry, the ledger whole
    forfeit = LedgerEntry.objects.get(kind=EntryKind.FORFEIT)
    assert (forfeit.amount, forfeit.source, forfeit.idempotency_key) == (-3500, "api", "forfeit:evt-conf")
    assert ledger_selectors.available_balance(customer=ada) == 0
    assert LedgerEntry.objects.filter(account_id=ada.pk).count() == 3  # two grants and the forfeit
    assert verify_ledger() == []
    # then: the personal data is gone, the ids kept
    ada.refresh_from_db()
    assert (ada.name, ada.email, ada.phone, ada.status) == ("Deleted customer", "", "", "deleted")
    assert (ada.member_id, ada.card_number) == ("M-ADA", card_number)
    assert not CustomerMemo.objects.filter(customer=ada).exists()
    assert not CustomerEditLog.objects.filter(customer=ada).exists()
    # then: the emails written for her keep no address or content
    for message in OutboxMessage.objects.filter(customer=ada):
        assert message.to == "" and "Ada" not in message.text + message.html + message.subject
    audit = AuditEvent.objects.get(action="crm.customer_anonymised")
    assert "Ada" not in json.dumps([audit.summary, audit.before, audit.after])


def test_confirmed_deletion_sent_twice_forfeits_once(post_event, ada):
    # when
    first = post_event("customer.deletion_confirmed", {"customer_id": "M-ADA"}, event_id="evt-conf")
    second = post_event("customer.deletion_confirmed", {"customer_id": "M-ADA"}, event_id="evt-conf")
    again = post_event("customer.deletion_confirmed", {"customer_id": "M-ADA"}, event_id="evt-conf-2")
    # then
    assert first.json()["result"]["forfeited"] == 3500
    assert second.json() == first.json()
    assert again.status_code == 200 and again.json()["result"]["forfeited"] == 0
    assert LedgerEntry.objects.filter(kind=EntryKind.FORFEIT).count() == 1
    assert verify_ledger() == []


def test_confirmed_deletion_forfeits_only_what_is_still_available(post_event, ada):
    # given: the promo lot is overdue but not swept yet
    with clock.posting_at(clock.now() + dt.timedelta(days=61)):
        # when
        response = post_event("customer.deletion_confirmed", {"customer_id": "M-ADA"})
    # then: the lazy expiry took the overdue lot, the forfeit the rest
    assert response.json()["result"]["forfeited"] == 2500
    kinds = list(LedgerEntry.objects.filter(account_id=ada.pk).order_by("id").values_list("kind", "amount"))
    assert kinds[-2:] == [(EntryKind.EXPIRE, -1000), (EntryKind.FORFEIT, -2500)]
    assert verify_ledger() == []


def test_unsent_emails_of_a_deleted_customer_are_cancelled(post_event, ada, held_deliveries):
    # given: the notice is written but not sent yet
    post_event("customer.deletion_requested", {"customer_id": "M-ADA"}, event_id="evt-req")
    notice = OutboxMessage.objects.get(kind=EmailKind.DELETION_NOTICE)
    assert notice.status == OutboxMessage.Status.PENDING
    # when
    post_event("customer.deletion_confirmed", {"customer_id": "M-ADA"}, event_id="evt-conf")
    # then
    notice.refresh_from_db()
    assert notice.status == OutboxMessage.Status.CANCELLED and notice.to == ""
    from notifications import services

    assert services.deliver(message_id=notice.pk) == "skipped"
    assert mail.outbox == []


def test_deleted_customer_gets_no_more_emails(ada):
    # given
    with transaction.atomic():
        from notifications import services

        services.confirm_account_deletion(customer=ada, event_id="evt-x")
    before = OutboxMessage.objects.count()
    # when
    ledger_services.grant(customer=ada, amount=100, reason="Late reward")
    # then
    assert OutboxMessage.objects.count() == before


def test_confirmed_deletion_cancels_an_open_cash_refund_request_first(post_event, ada):
    # given
    from refunds import services as refund_services
    from refunds.models import RefundRequest

    request = refund_services.create_request(customer=ada, amount=1000, account_holder="Ada Lovelace",
                                             bank_name="First Bank", account_number="12345678", channel="storefront")
    # when
    response = post_event("customer.deletion_confirmed", {"customer_id": "M-ADA"})
    # then
    assert response.json()["result"]["refund_requests_cancelled"] == [request.pk]
    assert response.json()["result"]["forfeited"] == 3500
    request.refresh_from_db()
    assert request.status == RefundRequest.Status.CANCELLED
    assert verify_ledger() == []


def test_confirmed_deletion_removes_the_payout_details_from_every_cash_refund_request(post_event, ada):
    # given: a refunded request (paid by hand), a rejected one and an open one, each with bank details
    from refunds import crypto
    from refunds import services as refund_services
    from refunds.models import Payout, RefundRequest

    details = {"account_holder": "Ada Lovelace", "bank_name": "First Bank", "channel": "storefront"}
    refunded = refund_services.create_request(customer=ada, amount=500, account_number="11112222", memo="Rent",
                                              **details)
    refund_services.refund(request=refunded, actor=None)
    rejected = refund_services.create_request(customer=ada, amount=700, account_number="33334444",
                                              memo="Ada's savings", **details)
    refund_services.reject(request=rejected, actor=None, reason="Too soon after the last one")
    open_request = refund_services.create_request(customer=ada, amount=1000, account_number="55556666",
                                                  memo="Call me on 010-1234-5678", **details)
    refund_services.mark_pending(request=open_request, actor=None)
    payouts = list(Payout.objects.values_list("pk", "request_id", "status", "amount"))
    # when
    response = post_event("customer.deletion_confirmed", {"customer_id": "M-ADA"})
    # then: the open request is cancelled (so nothing is paid to the deleted account), the rest keep their status
    assert response.status_code == 200, response.content
    result = response.json()["result"]
    assert result["refund_requests_cancelled"] == [open_request.pk]
    assert result["refund_requests_anonymised"] == 3
    assert result["forfeited"] == 3000  # 3500 less the 500 refunded in cash
    statuses = dict(RefundRequest.objects.values_list("pk", "status"))
    assert statuses == {refunded.pk: "refunded", rejected.pk: "rejected", open_request.pk: "cancelled"}
    # then: no request keeps the holder, the bank, the account number (even encrypted) or the memo
    for request in RefundRequest.objects.filter(customer=ada):
        assert (request.account_holder, request.bank_name, request.account_last4, request.memo) == ("", "", "", "")
        assert crypto.decrypt(request.account_number_encrypted) == ""
    # then: rows, amounts, payouts and the ledger are untouched and the ledger still verifies
    assert list(RefundRequest.objects.order_by("pk").values_list("pk", "amount")) == [
        (refunded.pk, 500), (rejected.pk, 700), (open_request.pk, 1000)]
    assert list(Payout.objects.values_list("pk", "request_id", "status", "amount")) == payouts
    refunded.refresh_from_db()
    assert refunded.refund_entry.kind == EntryKind.CASH_REFUND and refunded.refund_entry.amount == -500
    assert verify_ledger() == []
    # then: the audit event of the scrub names what it cleared, never the values
    audit = AuditEvent.objects.get(action="refunds.requests_anonymised")
    text = json.dumps([audit.summary, audit.before, audit.after])
    assert not any(secret in text for secret in ("Ada", "First Bank", "1111", "3333", "5555", "6666", "Rent"))


def test_anonymising_the_cash_refund_requests_twice_changes_nothing_the_second_time(ada):
    # given
    from refunds import services as refund_services
    from refunds.models import RefundRequest

    request = refund_services.create_request(customer=ada, amount=1000, account_holder="Ada Lovelace",
                                             bank_name="First Bank", account_number="12345678", channel="storefront")
    refund_services.cancel(request=request)
    with transaction.atomic():
        assert refund_services.anonymise_customer_requests(customer=ada) == 1
    first = RefundRequest.objects.get(pk=request.pk)
    audits = AuditEvent.objects.count()
    # when
    with transaction.atomic():
        again = refund_services.anonymise_customer_requests(customer=ada)
    # then
    assert again == 0
    second = RefundRequest.objects.get(pk=request.pk)
    assert (second.account_number_encrypted, second.updated_at, second.version) == (
        first.account_number_encrypted, first.updated_at, first.version)
    assert AuditEvent.objects.count() == audits


def test_a_customer_without_cash_refund_requests_has_nothing_to_anonymise(ada):
    # given
    from refunds import services as refund_services

    # when / then
    assert refund_services.anonymise_customer_requests(customer=ada) == 0

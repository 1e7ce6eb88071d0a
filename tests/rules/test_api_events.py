"""The storefront events API through HTTP: auth, idempotency, validation, out-of-order."""

import json

import pytest

from crm.models import Customer, CustomerEditLog, Order
from ledger.models import LedgerEntry
from rules import events as rule_events
from rules.models import StorefrontEvent

from .conftest import cancelled, event, paid, refunded, registered

pytestmark = pytest.mark.django_db


def _writes():
    return {"events": StorefrontEvent.objects.count(), "entries": LedgerEntry.objects.count(),
            "customers": Customer.objects.count(), "orders": Order.objects.count()}


def test_post_event_without_api_key_answers_401_json_and_writes_nothing(send):
    # given
    before = _writes()
    # when
    response = send(registered("M1"), key=None)
    # then
    assert response.status_code == 401
    assert response.json() == {"detail": "A valid API key is required."}
    assert _writes() == before


def test_post_event_with_wrong_api_key_answers_401(send):
    # when
    response = send(registered("M1"), key="sca_deadbeef_not-the-secret")
    # then
    assert response.status_code == 401
    assert not Customer.objects.exists()


def test_customer_registered_creates_customer_and_grants_registration_credits(send, make_rule):
    # given
    make_rule("registration", amount=300)
    # when
    response = send(registered("M1", name="Ada Lovelace", phone="010-1234-5678"))
    # then
    assert response.status_code == 200
    body = response.json()
    customer = Customer.objects.get(member_id="M1")
    assert (customer.name, customer.phone) == ("Ada Lovelace", "010-1234-5678")
    assert body["status"] == "applied" and body["program"] == "on" and body["customer"] == "M1"
    assert [(g["rule"], g["amount"]) for g in body["grants"]] == [("registration", 300)]
    entry = LedgerEntry.objects.get()
    assert (entry.amount, entry.source, entry.idempotency_key) == (300, "rule", f"grant:registration:{body['id']}")


def test_replayed_event_answers_exactly_the_first_answer_and_changes_nothing(send, make_rule):
    # given
    make_rule("registration", amount=300)
    body = registered("M1")
    first = send(body)
    before = _writes()
    # when
    again = send(body)
    # then
    assert again.status_code == first.status_code == 200
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert _writes() == before


def test_same_event_id_with_other_body_answers_409_and_changes_nothing(send):
    # given
    body = registered("M1")
    send(body)
    before = _writes()
    other = json.loads(json.dumps(body))
    other["data"]["name"] = "Someone else"
    # when
    response = send(other)
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "event_id_reused"
    assert "already used with a different body" in response.json()["detail"]
    assert _writes() == before
    assert Customer.objects.get().name == "Customer M1"


@pytest.mark.parametrize(("body", "where", "message"), [
    pytest.param({"type": "customer.registered", "occurred_at": "2030-01-01T00:00:00Z",
                  "data": {"customer_id": "M1", "name": "A"}}, "id", "Field required", id="no-id"),
    pytest.param(event("customer.registered", {"customer_id": "M1"}), "name", "Field required", id="no-name"),
    pytest.param(event("customer.registered", {"customer_id": "M1", "name": "A", "email": "not-an-email"}),
                 "email", "valid email", id="bad-email"),
    pytest.param(event("customer.registered", {"customer_id": "M 1", "name": "A"}), "customer_id",
                 "should match pattern", id="bad-member-id"),
    pytest.param(event("customer.updated", {"customer_id": "M1"}), "data", "at least one of name, email, phone",
                 id="update-nothing"),
    pytest.param(event("order.paid", {"order_id": "O1", "customer_id": "M1", "items_total": 12.5,
                                      "paid_amount": 1250}), "items_total", "integer", id="float-amount"),
    pytest.param(event("order.paid", {"order_id": "O1", "customer_id": "M1", "items_total": "1250",
                                      "paid_amount": 1250}), "items_total", "integer", id="string-amount"),
    pytest.param(event("order.paid", {"order_id": "O1", "customer_id": "M1", "items_total": -1,
                                      "paid_amount": 0}), "items_total", "greater than or equal to 0",
                 id="negative-amount"),
    pytest.param(event("order.refunded", {"order_id": "O1"}), "refunded_amount", "Field required",
                 id="refund-without-amount"),
    pytest.param(event("no.such.type", {}), "type", "unknown event type", id="unknown-type"),
    pytest.param({"id": "e1", "type": "order.cancelled", "occurred_at": "2030-01-01T00:00:00",
                  "data": {"order_id": "O1"}}, "occurred_at", "timezone", id="naive-time"),
    pytest.param({"id": "e1", "type": "order.cancelled", "occurred_at": "1970-01-01T00:00:00Z",
                  "data": {"order_id": "O1"}}, "occurred_at", "between 2000-01-01 and 2100-01-01", id="old-time"),
    pytest.param(event("customer.registered", {"customer_id": "M1", "name": "A\u0000B"}), "", "NUL",
                 id="nul-character"),
])
def test_malformed_event_answers_422_with_the_field_and_writes_nothing(send, body, where, message):
    # given
    before = _writes()
    # when
    response = send(body)
    # then
    assert response.status_code == 422
    payload = response.json()
    text = json.dumps(payload["errors"])
    assert message in text
    assert where in text
    assert _writes() == before


def test_body_that_is_not_json_answers_4xx(client, api_key):
    # when
    response = client.post("/api/v1/events", "{not json", content_type="application/json",
                           headers={"Authorization": f"Bearer {api_key}"})
    # then
    assert 400 <= response.status_code < 500
    assert not StorefrontEvent.objects.exists()


def test_order_paid_for_unregistered_customer_answers_409_and_can_be_retried_with_same_id(send, make_rule):
    # given
    make_rule("paid_order", amount=200)
    body = paid("O1", "M1", 5000)
    # when
    early = send(body)
    # then
    assert early.status_code == 409
    assert early.json()["code"] == "customer_not_registered"
    assert "not registered yet" in early.json()["detail"]
    assert not Order.objects.exists() and not StorefrontEvent.objects.exists()
    # when: the registration arrives, then the storefront retries the same event
    send(registered("M1"))
    retried = send(body)
    # then
    assert retried.status_code == 200
    assert [g["amount"] for g in retried.json()["grants"]] == [200]
    assert Order.objects.get(external_id="O1").status == Order.Status.PAID


def test_order_refunded_before_order_paid_answers_409_order_not_paid(send):
    # given
    send(registered("M1"))
    before = _writes()
    # when
    response = send(refunded("O1", 100))
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "order_not_paid"
    assert _writes() == before


def test_customer_updated_before_registration_answers_409(send):
    # when
    response = send(event("customer.updated", {"customer_id": "M9", "name": "New"}))
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "customer_not_registered"
    assert not StorefrontEvent.objects.exists()


def test_customer_registered_twice_answers_409_customer_exists(send):
    # given
    send(registered("M1"))
    # when
    response = send(registered("M1"))
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "customer_exists"
    assert Customer.objects.count() == 1


def test_customer_updated_writes_edit_log_with_changed_fields(send):
    # given
    send(registered("M1", name="Ada", email="ada@example.com"))
    # when
    response = send(event("customer.updated", {"customer_id": "M1", "name": "Ada King", "email": "ada@example.com"}))
    # then
    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    log = CustomerEditLog.objects.get()
    assert (log.source, log.changes) == ("storefront", {"name": ["Ada", "Ada King"]})
    assert Customer.objects.get().name == "Ada King"


def test_customer_updated_older_than_last_change_is_stale_and_changes_nothing(send):
    # given
    import datetime as dt

    t = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    send(registered("M1", name="Ada"))
    send(event("customer.updated", {"customer_id": "M1", "name": "Newest"}, occurred_at=t + dt.timedelta(hours=2)))
    # when
    response = send(event("customer.updated", {"customer_id": "M1", "name": "Older"}, occurred_at=t + dt.timedelta(hours=1)))
    # then
    assert response.status_code == 200
    assert response.json()["status"] == "stale"
    assert Customer.objects.get().name == "Newest"
    assert CustomerEditLog.objects.count() == 1


def test_order_paid_twice_with_same_amounts_is_unchanged_and_with_other_amounts_409(send, make_rule):
    # given
    make_rule("paid_order", amount=200)
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    # when
    same = send(paid("O1", "M1", 5000))
    other = send(paid("O1", "M1", 6000))
    # then
    assert same.status_code == 200 and same.json()["status"] == "unchanged" and same.json()["grants"] == []
    assert other.status_code == 409 and other.json()["code"] == "order_already_paid"
    assert LedgerEntry.objects.count() == 1


def test_order_paid_after_cancellation_answers_409_order_cancelled(send):
    # given
    send(registered("M1"))
    send(cancelled("O1", "M1"))
    # when
    response = send(paid("O1", "M1", 5000))
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "order_cancelled"
    assert Order.objects.get().status == Order.Status.CANCELLED


def test_order_cancelled_for_unknown_order_without_customer_answers_404(send):
    # when
    response = send(cancelled("NOPE"))
    # then
    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"
    assert not StorefrontEvent.objects.exists()


def test_order_paid_in_other_currency_answers_422(send):
    # given
    send(registered("M1"))
    # when
    response = send(paid("O1", "M1", 5000, currency="EUR"))
    # then
    assert response.status_code == 422
    assert response.json()["code"] == "currency_mismatch"
    assert not Order.objects.exists()


def test_refund_larger_than_paid_amount_answers_422(send):
    # given
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    # when
    response = send(refunded("O1", 5001))
    # then
    assert response.status_code == 422
    assert response.json()["code"] == "refund_exceeds_paid"
    assert Order.objects.get().refunded_amount == 0


def test_order_paid_mirrors_order(send):
    # given
    send(registered("M1"))
    # when
    send(paid("O1", "M1", 4000, paid_amount=4500, placed_at="2030-01-01T10:00:00Z", paid_at="2030-01-01T10:05:00Z"))
    # then
    order = Order.objects.get()
    assert (order.customer.member_id, order.status, order.items_total, order.paid_amount, order.currency) == (
        "M1", "paid", 4000, 4500, "USD")
    assert order.paid_at.isoformat() == "2030-01-01T10:05:00+00:00"
    assert order.placed_at.isoformat() == "2030-01-01T10:00:00+00:00"


def test_get_event_returns_the_stored_answer_and_404_for_unknown(client, send, api_key):
    # given
    body = registered("M1")
    first = send(body)
    headers = {"Authorization": f"Bearer {api_key}"}
    # when
    found = client.get(f"/api/v1/events/{body['id']}", headers=headers)
    missing = client.get("/api/v1/events/nope", headers=headers)
    # then
    assert found.status_code == 200 and found.json() == first.json()
    assert missing.status_code == 404


# --------------------------------------------------------------------------- extension point

@pytest.fixture
def deletion_handler():
    calls = []

    def handler(event):
        customer_id = event.data.get("customer_id")
        customer = Customer.objects.filter(member_id=customer_id).first() if isinstance(customer_id, str) else None
        if customer is None:
            raise rule_events.EventRejected(404, "No such customer.", code="customer_not_found")
        customer.status = Customer.Status.DELETION_REQUESTED
        customer.save(update_fields=["status"])
        event.customer = customer
        calls.append(event.event_id)
        return {"customer": customer.member_id, "status": customer.status}

    rule_events.register("test.flagged", handler)
    yield calls
    rule_events.unregister("test.flagged")


def test_registered_event_type_runs_its_handler_once_and_replays(send, deletion_handler):
    # given
    send(registered("M1"))
    body = event("test.flagged", {"customer_id": "M1"})
    # when
    first = send(body)
    again = send(body)
    # then
    assert first.status_code == 200
    assert first.json()["result"] == {"customer": "M1", "status": "deletion_requested"}
    assert again.content == first.content
    assert deletion_handler == [body["id"]]
    assert StorefrontEvent.objects.get(event_id=body["id"]).customer.member_id == "M1"


def test_registered_handler_rejection_answers_its_status_and_writes_nothing(send, deletion_handler):
    # given
    before = _writes()
    # when
    response = send(event("test.flagged", {"customer_id": "NOPE"}))
    # then
    assert response.status_code == 404
    assert response.json() == {"detail": "No such customer.", "code": "customer_not_found"}
    assert _writes() == before


def test_register_refuses_builtin_types_and_a_second_handler(deletion_handler):
    # when / then
    with pytest.raises(ValueError, match="handled by the credits engine"):
        rule_events.register("order.paid", lambda e: {})
    with pytest.raises(ValueError, match="already has a handler"):
        rule_events.register("test.flagged", lambda e: {})
    with pytest.raises(ValueError, match="4xx"):
        rule_events.EventRejected(500, "no")


def test_events_for_a_deleted_customer_never_store_their_details_again_nor_grant(send, make_rule):
    # given: the account was deleted (anonymised) and a late update and order arrive
    make_rule("paid_order", amount=300)
    send(registered("M1", name="Ada"))
    Customer.objects.filter(member_id="M1").update(name="Deleted customer", email="", status=Customer.Status.DELETED)
    # when
    update = send(event("customer.updated", {"customer_id": "M1", "name": "Ada Again"}))
    order = send(paid("O1", "M1", 5000))
    # then
    assert update.status_code == 200 and update.json()["status"] == "stale"
    assert Customer.objects.get().name == "Deleted customer"
    assert not CustomerEditLog.objects.exists()
    assert order.status_code == 200 and order.json()["grants"] == []
    assert not LedgerEntry.objects.exists()


def test_openapi_docs_describe_each_event_type_and_the_out_of_order_policy(client):
    # when
    schema = client.get("/api/v1/openapi.json").json()
    # then
    operation = schema["paths"]["/api/v1/events"]["post"]
    assert "**Out of order.**" in operation["description"]
    assert "customer_not_registered" in operation["description"]
    variants = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    names = {v["$ref"].rsplit("/", 1)[1] for v in variants}
    assert names == {"CustomerRegistered", "CustomerUpdated", "OrderPaid", "OrderRefunded", "OrderCancelled",
                     "OtherEvent"}
    assert set(operation["responses"]) >= {"200", "404", "409", "422"}

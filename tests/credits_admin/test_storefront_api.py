"""The storefront endpoints through HTTP: balance, redemption (replay, conflict, not enough
credits, cancel), the member panel link, and what bad input gets."""

import datetime as dt
import json
import threading

import pytest
import schemathesis
import time_machine
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, connection
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from credits_admin import apikeys
from credits_admin.api import api as root_api
from credits_admin.models import StoreSettings
from crm.cards import luhn_check_digit
from crm.models import Customer
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from ledger.models import LedgerEntry
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db):
    """A client that sends a valid API key with every request."""
    _, raw = apikeys.create_api_key(name="Storefront")

    class ApiClient:
        def __init__(self):
            self.client = Client()
            self.headers = {"Authorization": f"Bearer {raw}"}

        def get(self, path, **headers):
            return self.client.get(f"/api/v1{path}", headers={**self.headers, **headers})

        def post(self, path, body=None, *, raw_body=None, content_type="application/json"):
            data = raw_body if raw_body is not None else json.dumps(body if body is not None else {})
            return self.client.post(f"/api/v1{path}", data=data, content_type=content_type, headers=self.headers)

    return ApiClient()


def _redeem(api, customer, amount=1_000, redemption_id="r-1", **extra):
    body = {"redemption_id": redemption_id, "card_number": customer.card_number, "amount": amount, **extra}
    return api.post("/redemptions", body)


def _entries():
    return LedgerEntry.objects.count()


def _other_valid_card(taken: str) -> str:
    body = "9" + str((int(taken[1:15]) + 1) % 10**14).zfill(14)
    return body + luhn_check_digit(body)


# --------------------------------------------------------------------------- authentication

@pytest.mark.parametrize(("method", "path"), [
    ("get", "/api/v1/customers/M000001/balance"),
    ("get", "/api/v1/customers/M000001/panel-link"),
    ("post", "/api/v1/redemptions"),
    ("post", "/api/v1/redemptions/r-1/cancel"),
])
def test_storefront_api_when_anonymous_answers_401_json_not_a_login_redirect(client, method, path):
    # when
    response = getattr(client, method)(path)
    # then
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "A valid API key is required."}


def test_storefront_api_with_a_wrong_key_answers_401(client, funded_customer):
    # when
    response = client.get(f"/api/v1/customers/{funded_customer.member_id}/balance",
                          headers={"Authorization": "Bearer sca_deadbeef_not-the-secret"})
    # then
    assert response.status_code == 401


def test_storefront_api_accepts_the_key_in_the_x_api_key_header(client, funded_customer):
    # given
    _, raw = apikeys.create_api_key(name="Storefront")
    # when
    response = client.get(f"/api/v1/customers/{funded_customer.member_id}/balance", headers={"X-Api-Key": raw})
    # then
    assert response.status_code == 200


def test_storefront_api_is_in_the_openapi_schema(client):
    # when
    schema = client.get("/api/v1/openapi.json").json()
    # then
    for path in ("/api/v1/customers/{member_id}/balance", "/api/v1/redemptions",
                 "/api/v1/redemptions/{redemption_id}/cancel", "/api/v1/customers/{member_id}/panel-link"):
        assert path in schema["paths"]


# --------------------------------------------------------------------------- balance

def test_balance_gives_available_currency_and_what_expires_in_30_days_per_day(api):
    # given
    customer = CustomerFactory(member_id="M-42")
    now = timezone.now()
    soon = now + dt.timedelta(days=10)
    ledger_services.grant(customer=customer, amount=1_000, reason="a", expires_at=soon)
    ledger_services.grant(customer=customer, amount=250, reason="b", expires_at=soon + dt.timedelta(minutes=1))
    ledger_services.grant(customer=customer, amount=700, reason="c", expires_at=now + dt.timedelta(days=20))
    ledger_services.grant(customer=customer, amount=5_000, reason="d", expires_at=now + dt.timedelta(days=40))
    ledger_services.grant(customer=customer, amount=300, reason="e")
    # when
    response = api.get("/customers/M-42/balance")
    # then
    assert response.status_code == 200
    assert response.json() == {
        "member_id": "M-42",
        "card_last4": customer.card_number[-4:],
        "program_enabled": True,
        "available": 7_250,
        "currency": "USD",
        "exponent": 2,
        "expiring_soon": [
            {"date": timezone.localdate(soon).isoformat(), "amount": 1_250},
            {"date": timezone.localdate(now + dt.timedelta(days=20)).isoformat(), "amount": 700},
        ],
    }


def test_balance_leaves_out_credits_that_have_expired_even_before_the_sweep(api, customer):
    # given
    ledger_services.grant(customer=customer, amount=1_000, reason="short", expires_at=timezone.now()
                          + dt.timedelta(days=1))
    ledger_services.grant(customer=customer, amount=400, reason="forever")
    # when
    with time_machine.travel(timezone.now() + dt.timedelta(days=2)):
        response = api.get(f"/customers/{customer.member_id}/balance")
    # then
    assert response.json()["available"] == 400


def test_balance_for_a_zero_exponent_currency_says_so(api, customer):
    # given
    StoreSettings.objects.update_or_create(pk=1, defaults={"currency": "KRW"})
    # when
    body = api.get(f"/customers/{customer.member_id}/balance").json()
    # then
    assert (body["currency"], body["exponent"], body["available"]) == ("KRW", 0, 0)


def test_balance_while_the_program_is_off_says_so_and_still_gives_what_can_be_redeemed(api, funded_customer):
    # given
    StoreSettings.objects.update_or_create(pk=1, defaults={"credits_enabled": False})
    # when
    body = api.get(f"/customers/{funded_customer.member_id}/balance").json()
    # then
    assert body["program_enabled"] is False
    assert body["available"] == 5_000


def test_balance_of_unknown_member_is_404_json(api):
    # when
    response = api.get("/customers/NOBODY/balance")
    # then
    assert response.status_code == 404
    assert response.json() == {"detail": "No customer has this member ID.", "code": "unknown_customer"}


def test_balance_of_a_deleted_customer_is_404(api, funded_customer):
    # given
    Customer.objects.filter(pk=funded_customer.pk).update(status=Customer.Status.DELETED)
    # when
    response = api.get(f"/customers/{funded_customer.member_id}/balance")
    # then
    assert response.status_code == 404


def test_balance_with_a_10k_character_member_id_is_422(api):
    # when
    response = api.get("/customers/" + "M" * 10_000 + "/balance")
    # then
    assert response.status_code == 422
    assert response.json()["detail"] == "Invalid request."


@pytest.mark.parametrize("member_id", ["%00", "M%00X", "%1F", "%7F"])
def test_balance_with_control_characters_in_the_member_id_is_422(api, member_id):
    # when
    response = api.get(f"/customers/{member_id}/balance")
    # then
    assert response.status_code == 422


# --------------------------------------------------------------------------- redeem

def test_redeem_by_card_number_spends_credits_and_answers_201(api, funded_customer):
    # when
    response = _redeem(api, funded_customer, amount=1_250, redemption_id="chk-1001")
    # then
    assert response.status_code == 201
    body = response.json()
    assert body | {"redeemed_at": None} == {
        "redemption_id": "chk-1001", "status": "redeemed", "member_id": funded_customer.member_id,
        "card_last4": funded_customer.card_number[-4:], "amount": 1_250, "balance_after": 3_750,
        "currency": "USD", "exponent": 2, "order_id": None, "redeemed_at": None,
    }
    entry = LedgerEntry.objects.get(idempotency_key="redeem:chk-1001")
    assert (entry.kind, entry.amount, entry.source, entry.reason) == ("redeem", -1_250, "api", "Redeemed at checkout")
    assert ledger_selectors.available_balance(customer=funded_customer) == 3_750
    assert "Idempotent-Replayed" not in response


def test_redeem_by_card_number_with_spaces_and_dashes_works(api, funded_customer):
    # given
    card = funded_customer.card_number
    spaced = f"{card[:4]} {card[4:8]}-{card[8:12]} {card[12:]}"
    # when
    response = api.post("/redemptions", {"redemption_id": "r-sp", "card_number": spaced, "amount": 100})
    # then
    assert response.status_code == 201


def test_redeem_by_member_id_works(api, funded_customer):
    # when
    response = api.post("/redemptions", {"redemption_id": "r-m", "member_id": funded_customer.member_id,
                                         "amount": 5_000})
    # then
    assert response.status_code == 201
    assert response.json()["balance_after"] == 0


def test_redeem_with_a_known_order_links_the_entry_to_it(api, funded_customer):
    # given
    order = OrderFactory(customer=funded_customer, external_id="SO-77")
    # when
    response = _redeem(api, funded_customer, order_id="SO-77")
    # then
    assert response.json()["order_id"] == "SO-77"
    assert LedgerEntry.objects.get(kind="redeem").order == order


def test_redeem_with_an_order_not_mirrored_yet_keeps_its_id(api, funded_customer):
    # when
    response = _redeem(api, funded_customer, order_id="SO-FUTURE")
    # then
    assert response.status_code == 201 and response.json()["order_id"] == "SO-FUTURE"
    entry = LedgerEntry.objects.get(kind="redeem")
    assert entry.order is None and entry.details["order_id"] == "SO-FUTURE" and "SO-FUTURE" in entry.comment


def test_redeem_replayed_answers_200_with_the_first_answer_and_spends_once(api, funded_customer):
    # given
    first = _redeem(api, funded_customer, amount=1_000, redemption_id="r-9")
    # when
    again = _redeem(api, funded_customer, amount=1_000, redemption_id="r-9")
    # then
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert LedgerEntry.objects.filter(kind="redeem").count() == 1
    assert ledger_selectors.available_balance(customer=funded_customer) == 4_000


def test_redeem_replayed_after_its_order_was_mirrored_is_still_a_replay(api, funded_customer):
    # given
    first = _redeem(api, funded_customer, redemption_id="r-o", order_id="SO-LATE")
    OrderFactory(customer=funded_customer, external_id="SO-LATE")
    # when
    again = _redeem(api, funded_customer, redemption_id="r-o", order_id="SO-LATE")
    # then
    assert again.status_code == 200 and again.json() == first.json()


@pytest.mark.parametrize("change", [{"amount": 999}, {"order_id": "SO-OTHER"}, "other-customer"])
def test_redeem_same_id_with_other_values_is_409_and_writes_nothing(api, funded_customer, change):
    # given
    _redeem(api, funded_customer, amount=1_000, redemption_id="r-x")
    entries = _entries()
    if change == "other-customer":
        other = CustomerFactory()
        ledger_services.grant(customer=other, amount=5_000, reason="setup")
        entries = _entries()
        response = _redeem(api, other, amount=1_000, redemption_id="r-x")
    else:
        response = _redeem(api, funded_customer, redemption_id="r-x", **{"amount": 1_000, **change})
    # then
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert "already made with other values" in response.json()["detail"]
    assert _entries() == entries


def test_redeem_more_than_available_is_409_with_the_available_amount_and_writes_nothing(api, funded_customer):
    # given
    entries = _entries()
    # when
    response = _redeem(api, funded_customer, amount=5_001)
    # then
    assert response.status_code == 409
    assert response.json() == {"detail": "The customer does not have enough store credits for this amount.",
                               "code": "insufficient_credits", "available": 5_000, "requested": 5_001}
    assert _entries() == entries


def test_redeem_does_not_spend_credits_that_have_expired(api, customer):
    # given
    ledger_services.grant(customer=customer, amount=1_000, reason="short",
                          expires_at=timezone.now() + dt.timedelta(hours=1))
    # when
    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        response = _redeem(api, customer, amount=1_000)
    # then
    assert response.status_code == 409 and response.json()["available"] == 0


def test_redeem_with_an_unknown_card_is_404_and_writes_nothing(api, funded_customer):
    # given
    entries = _entries()
    card = _other_valid_card(funded_customer.card_number)
    # when
    response = api.post("/redemptions", {"redemption_id": "r-u", "card_number": card, "amount": 100})
    # then
    assert response.status_code == 404
    assert response.json() == {"detail": "No customer has this card number.", "code": "unknown_card"}
    assert _entries() == entries


def test_redeem_with_an_unknown_member_id_is_404(api, funded_customer):
    # when
    response = api.post("/redemptions", {"redemption_id": "r-u", "member_id": "GHOST", "amount": 100})
    # then
    assert response.status_code == 404 and response.json()["code"] == "unknown_customer"


def test_redeem_with_the_card_of_a_deleted_customer_is_404(api, funded_customer):
    # given
    Customer.objects.filter(pk=funded_customer.pk).update(status=Customer.Status.DELETED)
    # when
    response = _redeem(api, funded_customer)
    # then
    assert response.status_code == 404


def test_redeem_for_an_order_of_another_customer_is_422_and_writes_nothing(api, funded_customer):
    # given
    OrderFactory(external_id="SO-THEIRS")
    entries = _entries()
    # when
    response = _redeem(api, funded_customer, order_id="SO-THEIRS")
    # then
    assert response.status_code == 422
    assert response.json() == {"detail": "Order 'SO-THEIRS' belongs to another customer.",
                               "code": "order_customer_mismatch"}
    assert _entries() == entries


def test_redeem_while_the_program_is_off_still_works(api, funded_customer):
    # given
    StoreSettings.objects.update_or_create(pk=1, defaults={"credits_enabled": False})
    # when
    response = _redeem(api, funded_customer, amount=2_000)
    # then
    assert response.status_code == 201
    assert ledger_selectors.available_balance(customer=funded_customer) == 3_000


@pytest.mark.parametrize(("amount", "message"), [
    (0, "Input should be greater than 0"),
    (-5, "Input should be greater than 0"),
    (12.5, "Input should be a valid integer"),
    (100.0, "Input should be a valid integer"),
    ("100", "Input should be a valid integer"),
    ("12.50", "Input should be a valid integer"),
    (True, "Input should be a valid integer"),
    (None, "Input should be a valid integer"),
    (10**15, "Input should be less than 1000000000000000"),
    (10**40, "Input should be less than 1000000000000000"),
    ([100], "Input should be a valid integer"),
])
def test_redeem_with_a_bad_amount_is_422_with_the_reason_and_writes_nothing(api, funded_customer, amount, message):
    # given
    entries = _entries()
    # when
    response = _redeem(api, funded_customer, amount=amount)
    # then
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "Invalid request."
    assert any(message in e["msg"] and "amount" in e["loc"] for e in body["errors"])
    assert _entries() == entries


def test_redeem_without_an_amount_is_422(api, funded_customer):
    # when
    response = api.post("/redemptions", {"redemption_id": "r-1", "card_number": funded_customer.card_number})
    # then
    assert response.status_code == 422
    assert any(e["type"] == "missing" and "amount" in e["loc"] for e in response.json()["errors"])


@pytest.mark.parametrize(("card", "message"), [
    ("1234", "A card number has 16 digits."),
    ("9" * 17, "A card number has 16 digits."),
    ("abcd-efgh-ijkl-mnop", "A card number has 16 digits."),
    ("", "A card number has 16 digits."),
    ("x" * 10_000, "String should have at most 40 characters"),
])
def test_redeem_with_a_malformed_card_number_is_422(api, funded_customer, card, message):
    # when
    response = api.post("/redemptions", {"redemption_id": "r-1", "card_number": card, "amount": 100})
    # then
    assert response.status_code == 422
    assert any(message in e["msg"] for e in response.json()["errors"])
    assert LedgerEntry.objects.filter(kind="redeem").count() == 0


def test_redeem_with_a_card_number_failing_the_luhn_check_is_422(api, funded_customer):
    # given: the customer's own number with its last digit changed
    card = funded_customer.card_number
    wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
    # when
    response = api.post("/redemptions", {"redemption_id": "r-1", "card_number": wrong, "amount": 100})
    # then
    assert response.status_code == 422
    assert any("its check digit does not match" in e["msg"] for e in response.json()["errors"])
    assert LedgerEntry.objects.filter(kind="redeem").count() == 0


@pytest.mark.parametrize("body_change", [
    {"card_number": None, "member_id": None},
    {"member_id": "M000001"},   # and the card number
])
def test_redeem_needs_exactly_one_of_card_number_and_member_id(api, funded_customer, body_change):
    # given
    body = {"redemption_id": "r-1", "card_number": funded_customer.card_number, "amount": 100, **body_change}
    body = {k: v for k, v in body.items() if v is not None}
    # when
    response = api.post("/redemptions", body)
    # then
    assert response.status_code == 422
    assert any("Give either card_number or member_id (exactly one)." in e["msg"]
               for e in response.json()["errors"])


@pytest.mark.parametrize(("redemption_id", "message"), [
    ("", "String should have at least 1 character"),
    ("r" * 101, "String should have at most 100 characters"),
    ("r" * 10_000, "String should have at most 100 characters"),
    ("has space", "String should match pattern"),
    ("-starts-with-dash", "String should match pattern"),
    ("ünïcode", "String should match pattern"),
    (12345, "Input should be a valid string"),
])
def test_redeem_with_a_bad_redemption_id_is_422(api, funded_customer, redemption_id, message):
    # when
    response = _redeem(api, funded_customer, redemption_id=redemption_id)
    # then
    assert response.status_code == 422
    assert any(message in e["msg"] for e in response.json()["errors"])
    assert LedgerEntry.objects.filter(kind="redeem").count() == 0


@pytest.mark.parametrize("field", ["order_id", "member_id"])
def test_redeem_with_a_nul_character_in_an_id_is_422(api, funded_customer, field):
    # given
    body = {"redemption_id": "r-nul", "amount": 100, field: "SO\x00-1"}
    if field == "order_id":
        body["card_number"] = funded_customer.card_number
    # when
    response = api.post("/redemptions", body)
    # then: refused before validation, as NUL characters are on every endpoint
    assert response.status_code == 422
    assert any("NUL" in e["msg"] for e in response.json()["errors"])
    assert LedgerEntry.objects.filter(kind="redeem").count() == 0


def test_redeem_with_a_10k_character_order_id_is_422(api, funded_customer):
    # when
    response = _redeem(api, funded_customer, order_id="o" * 10_000)
    # then
    assert response.status_code == 422
    assert LedgerEntry.objects.filter(kind="redeem").count() == 0


@pytest.mark.parametrize(("raw_body", "content_type"), [
    ("{not json", "application/json"),
    ("[1, 2, 3]", "application/json"),
    ("", "application/json"),
    ("amount=100", "application/x-www-form-urlencoded"),
])
def test_redeem_with_a_body_that_is_not_a_json_object_is_a_4xx(api, funded_customer, raw_body, content_type):
    # when
    response = api.post("/redemptions", raw_body=raw_body, content_type=content_type)
    # then
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")
    assert LedgerEntry.objects.filter(kind="redeem").count() == 0


# --------------------------------------------------------------------------- cancel

def test_cancel_gives_the_credits_back_and_answers_200(api, funded_customer):
    # given
    _redeem(api, funded_customer, amount=1_500, redemption_id="r-c")
    # when
    response = api.post("/redemptions/r-c/cancel")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body | {"cancelled_at": None} == {
        "redemption_id": "r-c", "status": "cancelled", "member_id": funded_customer.member_id, "amount": 1_500,
        "available": 5_000, "currency": "USD", "exponent": 2, "cancelled_at": None}
    reversal = LedgerEntry.objects.get(kind="reversal")
    assert reversal.idempotency_key == "redeem-cancel:r-c"
    assert reversal.reverses == LedgerEntry.objects.get(kind="redeem")
    assert ledger_selectors.available_balance(customer=funded_customer) == 5_000
    assert ledger_selectors.verify_ledger() == []


def test_cancel_twice_answers_the_same_and_gives_back_once(api, funded_customer):
    # given
    _redeem(api, funded_customer, amount=1_500, redemption_id="r-c")
    first = api.post("/redemptions/r-c/cancel")
    # when
    again = api.post("/redemptions/r-c/cancel")
    # then
    assert again.status_code == 200 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert LedgerEntry.objects.filter(kind="reversal").count() == 1
    assert ledger_selectors.available_balance(customer=funded_customer) == 5_000


def test_cancel_of_a_redemption_reversed_by_staff_answers_cancelled(api, funded_customer):
    # given
    _redeem(api, funded_customer, amount=1_500, redemption_id="r-s")
    ledger_services.reverse(entry=LedgerEntry.objects.get(kind="redeem"), comment="by staff")
    # when
    response = api.post("/redemptions/r-s/cancel")
    # then
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert LedgerEntry.objects.filter(kind="reversal").count() == 1


def test_cancel_puts_back_credits_that_expired_meanwhile_and_they_expire_again(api, customer):
    # given
    ledger_services.grant(customer=customer, amount=1_000, reason="short",
                          expires_at=timezone.now() + dt.timedelta(hours=1))
    _redeem(api, customer, amount=600, redemption_id="r-e")
    # when
    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        response = api.post("/redemptions/r-e/cancel")
    # then
    assert response.status_code == 200
    assert response.json()["amount"] == 600 and response.json()["available"] == 0
    assert ledger_selectors.verify_ledger() == []


def test_cancel_of_an_unknown_redemption_is_404(api):
    # when
    response = api.post("/redemptions/nope/cancel")
    # then
    assert response.status_code == 404
    assert response.json() == {"detail": "No redemption has this id.", "code": "unknown_redemption"}


def test_cancel_with_a_10k_character_id_is_422(api):
    # when
    response = api.post("/redemptions/" + "r" * 10_000 + "/cancel")
    # then
    assert response.status_code == 422


def test_redeem_replayed_after_a_cancel_does_not_spend_again(api, funded_customer):
    # given
    _redeem(api, funded_customer, amount=1_000, redemption_id="r-rc")
    api.post("/redemptions/r-rc/cancel")
    # when
    again = _redeem(api, funded_customer, amount=1_000, redemption_id="r-rc")
    # then
    assert again.status_code == 200
    assert ledger_selectors.available_balance(customer=funded_customer) == 5_000


# --------------------------------------------------------------------------- member panel link

def test_panel_link_gives_a_signed_url_that_opens_the_panel(api, funded_customer):
    # when
    response = api.get(f"/customers/{funded_customer.member_id}/panel-link")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["url"].startswith("http://testserver/member/")
    expires_at = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=59) < expires_at - timezone.now() <= dt.timedelta(hours=1)
    panel = Client().get(body["url"].removeprefix("http://testserver"))
    assert panel.status_code == 200
    assert funded_customer.card_number[-4:] in panel.content.decode()


def test_panel_link_for_unknown_member_is_404(api):
    # when
    response = api.get("/customers/NOBODY/panel-link")
    # then
    assert response.status_code == 404 and response.json()["code"] == "unknown_customer"


# --------------------------------------------------------------------------- concurrency

@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_redeem_same_id_sent_twice_at_once_spends_once(funded_customer):
    # given
    _, raw = apikeys.create_api_key(name="Storefront")
    body = json.dumps({"redemption_id": "race-1", "card_number": funded_customer.card_number, "amount": 3_000})
    statuses = []

    def send():
        try:
            response = Client().post("/api/v1/redemptions", data=body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {raw}"})
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    # when
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then
    assert sorted(statuses) == [200, 200, 200, 201]
    assert LedgerEntry.objects.filter(kind="redeem").count() == 1
    assert ledger_selectors.available_balance(customer=funded_customer) == 2_000


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_redeem_two_checkouts_at_once_never_overspend(funded_customer):
    # given: 5000 available, two checkouts of 3000 each
    _, raw = apikeys.create_api_key(name="Storefront")
    statuses = []

    def send(rid):
        try:
            body = json.dumps({"redemption_id": rid, "card_number": funded_customer.card_number, "amount": 3_000})
            response = Client().post("/api/v1/redemptions", data=body, content_type="application/json",
                                     headers={"Authorization": f"Bearer {raw}"})
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(f"co-{i}",)) for i in range(2)]
    # when
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then
    assert sorted(statuses) == [201, 409]
    assert ledger_selectors.available_balance(customer=funded_customer) == 2_000
    assert ledger_selectors.verify_ledger() == []


# --------------------------------------------------------------------------- fuzzing the schema

STOREFRONT_SCHEMA = schemathesis.openapi.from_dict(root_api.get_openapi_schema()).include(tag="storefront")


@pytest.fixture
def wsgi_app():
    """The real WSGI application, minus what Django's test client also switches off: closing
    the database connection at the end of each request (it is the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_headers(db):
    customer = CustomerFactory(member_id="FUZZ-1")
    ledger_services.grant(customer=customer, amount=1_000_000, reason="fuzz setup")
    _, raw = apikeys.create_api_key(name="Fuzz")
    return {"Authorization": f"Bearer {raw}"}


@STOREFRONT_SCHEMA.parametrize()
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much])
def test_storefront_endpoints_with_generated_input_never_answer_5xx(case, fuzz_headers, wsgi_app):
    # when: whatever the schema allows, and what it does not
    response = case.call(app=wsgi_app, base_url="http://testserver", headers=fuzz_headers)
    # then
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500


# --------------------------------------------------------------------------- NUL characters

@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/cash-refund-requests", {"request_id": "r\x001", "member_id": "M\x00", "amount": 100,
                                       "payout": {"account_holder": "A", "bank_name": "B", "account_number": "1"}}),
    ("post", "/events", {"id": "e-1", "type": "customer.registered", "occurred_at": "2030-01-01T00:00:00Z",
                         "data": {"customer_id": "M1", "name": "Ann\x00", "email": "a@example.com"}}),
    ("get", "/cash-refund-requests?member_id=M%00", None),
])
def test_nul_characters_anywhere_answer_422_and_write_nothing(api, method, path, body):
    # given
    customers = Customer.objects.count()
    # when
    response = api.post(path, body) if method == "post" else api.get(path)
    # then
    assert response.status_code == 422, response.content
    assert "NUL" in json.dumps(response.json())
    assert Customer.objects.count() == customers and _entries() == 0

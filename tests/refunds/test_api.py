import pytest

from credits_admin.apikeys import create_api_key, revoke_api_key
from ledger import services as ledger_services
from refunds import services
from refunds.models import RefundRequest
from tests.refunds.support import refunds_state

pytestmark = pytest.mark.django_db
URL = "/api/v1/cash-refund-requests"


@pytest.fixture
def api(client):
    key, raw = create_api_key(name="storefront")

    class Api:
        api_key = key

        def post(self, url, payload=None, **headers):
            return client.post(url, payload if payload is not None else {}, content_type="application/json",
                               headers={"Authorization": f"Bearer {raw}", **headers})

        def get(self, url):
            return client.get(url, headers={"Authorization": f"Bearer {raw}"})

    return Api()


def _payload(customer, **overrides):
    return {"request_id": "sf-1", "member_id": customer.member_id, "amount": 1500,
            "payout": {"account_holder": "Jane Doe", "bank_name": "First Bank", "account_number": "1234-5678-9012"},
            **overrides}


def test_create_by_api_answers_201_with_the_request_masked(api, funded_customer):
    # when
    response = api.post(URL, _payload(funded_customer, memo="please"))
    # then
    assert response.status_code == 201
    body = response.json()
    req = RefundRequest.objects.get()
    assert body["id"] == req.pk and body["request_id"] == "sf-1" and body["member_id"] == funded_customer.member_id
    assert (body["amount"], body["currency"], body["status"], body["status_label"]) == (1500, "USD", "requested",
                                                                                      "Requested")
    assert body["payout"] == {"account_holder": "Jane Doe", "bank_name": "First Bank",
                              "account_number_masked": "••••9012"}
    assert body["rejection_reason"] is None and "123456789012" not in response.content.decode()
    assert (req.channel, req.memo, req.idempotency_key) == ("storefront", "please", "api:sf-1")


def test_create_by_api_replay_answers_200_with_the_first_request(api, funded_customer):
    # given
    first = api.post(URL, _payload(funded_customer)).json()
    before = refunds_state()
    # when
    again = api.post(URL, _payload(funded_customer))
    # then
    assert again.status_code == 200 and again.json() == first
    assert refunds_state() == before


def test_create_by_api_reusing_a_request_id_with_other_data_is_409(api, funded_customer):
    # given
    api.post(URL, _payload(funded_customer))
    before = refunds_state()
    # when
    response = api.post(URL, _payload(funded_customer, amount=1600))
    # then
    assert response.status_code == 409
    assert response.json() == {"detail": "This request id was already used for a different request.",
                               "code": "request_id_conflict", "field": None, "request": None}
    assert refunds_state() == before


def test_api_without_a_key_is_401_json(client, funded_customer):
    # when
    responses = [client.post(URL, _payload(funded_customer), content_type="application/json"),
                 client.get(f"{URL}/1"), client.post(f"{URL}/1/cancel")]
    # then
    for response in responses:
        assert response.status_code == 401
        assert response.json() == {"detail": "A valid API key is required."}
    assert not RefundRequest.objects.exists()


def test_api_with_a_revoked_key_is_401(api, funded_customer):
    # given
    revoke_api_key(key=api.api_key)
    # when
    response = api.post(URL, _payload(funded_customer))
    # then
    assert response.status_code == 401 and not RefundRequest.objects.exists()


def test_create_by_api_for_an_unknown_member_is_404(api, db):
    # when
    response = api.post(URL, {**_payload(type("C", (), {"member_id": "nobody"})())})
    # then
    assert response.status_code == 404
    assert response.json() == {"detail": "No customer has member ID 'nobody'.", "code": "unknown_member",
                               "field": "member_id", "request": None}
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize("amount", ["1500", 15.5, 15.0, True, None, [1]])
def test_create_by_api_with_an_amount_that_is_not_an_int_is_422(api, funded_customer, amount):
    # when
    response = api.post(URL, _payload(funded_customer, amount=amount))
    # then
    assert response.status_code == 422
    assert response.json()["detail"] == "Invalid request."
    assert any(error["loc"][-1] == "amount" for error in response.json()["errors"])
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize(("overrides", "code", "field", "detail"), [
    ({"amount": 0}, "invalid", "amount", "The amount must be greater than zero."),
    ({"amount": -100}, "invalid", "amount", "The amount must be greater than zero."),
    ({"amount": 5001}, "insufficient_credits", "amount",
     "The amount is more than the available credits: {id} has $50.00 available, the request is for $50.01."),
    ({"payout": {"account_holder": "J", "bank_name": "B", "account_number": "12"}}, "invalid",
     "payout.account_number", "An account number has 6 to 34 letters and digits (spaces and dashes are ignored)."),
    ({"payout": {"account_holder": " ", "bank_name": "B", "account_number": "123456"}}, "invalid",
     "payout.account_holder", "Enter the account holder's name."),
])
def test_create_by_api_with_bad_values_is_422_with_the_forms_message(api, funded_customer, overrides, code, field,
                                                                     detail):
    # when
    response = api.post(URL, _payload(funded_customer, **overrides))
    # then
    assert response.status_code == 422
    assert response.json() == {"detail": detail.format(id=funded_customer.member_id), "code": code, "field": field,
                               "request": None}
    assert not RefundRequest.objects.exists()


@pytest.mark.parametrize(("payload", "status"), [
    ({}, 422), ({"member_id": "x"}, 422), ({"request_id": "", "member_id": "a", "amount": 1, "payout": {}}, 422),
    ("not json", 400),
])
def test_create_by_api_with_a_malformed_body_is_4xx_json(api, payload, status):
    # when
    response = api.post(URL, payload)
    # then
    assert response.status_code == status and "detail" in response.json()
    assert not RefundRequest.objects.exists()


def test_create_by_api_while_a_request_is_open_is_409(api, funded_customer):
    # given
    first = api.post(URL, _payload(funded_customer)).json()
    # when
    response = api.post(URL, _payload(funded_customer, request_id="sf-2", amount=100))
    # then
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["request"]) == ("open_request_exists", first["id"])
    assert body["detail"].startswith(f"{funded_customer.member_id} already has an open cash refund request")
    assert RefundRequest.objects.count() == 1


def test_get_by_api_shows_the_status_and_the_rejection_reason(api, funded_customer, agent):
    # given
    created = api.post(URL, _payload(funded_customer)).json()
    services.reject(request=created["id"], actor=agent, reason="Promotional credits cannot be cashed out.")
    # when
    response = api.get(f"{URL}/{created['id']}")
    # then
    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["status_label"]) == ("rejected", "Rejected")
    assert body["rejection_reason"] == "Promotional credits cannot be cashed out."


def test_list_by_api_shows_a_customers_requests_newest_first_with_the_open_one(api, funded_customer, agent):
    # given: an older request that was rejected, then an open one; another customer's is not shown
    from tests.factories import CustomerFactory

    old = api.post(URL, _payload(funded_customer, request_id="sf-old")).json()
    services.reject(request=old["id"], actor=agent, reason="Promotional credits cannot be cashed out.")
    new = api.post(URL, _payload(funded_customer, request_id="sf-new", amount=900)).json()
    other = CustomerFactory()
    ledger_services.grant(customer=other, amount=5000, reason="setup")
    api.post(URL, _payload(other, request_id="sf-other"))
    # when
    response = api.get(f"{URL}?member_id={funded_customer.member_id}")
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["member_id"], body["open_request"]) == (funded_customer.member_id, new["id"])
    assert [(r["id"], r["status"], r["amount"]) for r in body["items"]] == [(new["id"], "requested", 900),
                                                                            (old["id"], "rejected", 1500)]
    assert body["items"][1]["rejection_reason"] == "Promotional credits cannot be cashed out."
    assert body["items"][0] == new
    assert "123456789012" not in response.content.decode()


def test_list_by_api_without_an_open_request_says_none(api, funded_customer):
    # given
    created = api.post(URL, _payload(funded_customer)).json()
    api.post(f"{URL}/{created['id']}/cancel")
    # when
    body = api.get(f"{URL}?member_id={funded_customer.member_id}").json()
    # then
    assert body["open_request"] is None and [r["status"] for r in body["items"]] == ["cancelled"]


def test_list_by_api_for_an_unknown_member_is_404_and_without_one_422(api, db):
    # when
    unknown = api.get(f"{URL}?member_id=nobody")
    missing = api.get(URL)
    # then
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "No customer has member ID 'nobody'.", "code": "unknown_member",
                              "field": "member_id", "request": None}
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"][-1] == "member_id"


def test_api_payload_never_shows_the_account_number_in_its_repr():
    # given
    from refunds.api import CashRefundRequestIn

    payload = CashRefundRequestIn(request_id="sf-1", member_id="M-1", amount=100,
                                  payout={"account_holder": "J", "bank_name": "B", "account_number": "123456789012"})
    # then: a traceback's locals or a log line shows the rest, never the number
    assert "123456789012" not in repr(payload) + str(payload) + repr(payload.payout)
    assert payload.payout.account_number == "123456789012"


def test_get_by_api_of_an_unknown_request_is_404(api, db):
    response = api.get(f"{URL}/999")
    assert response.status_code == 404
    assert response.json() == {"detail": "No cash refund request #999.", "code": "not_found", "field": None,
                               "request": None}


def test_cancel_by_api_cancels_and_a_second_cancel_answers_the_same(api, funded_customer):
    # given
    created = api.post(URL, _payload(funded_customer)).json()
    # when
    first = api.post(f"{URL}/{created['id']}/cancel", {"reason": "changed my mind"})
    second = api.post(f"{URL}/{created['id']}/cancel")
    # then
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "cancelled"
    assert RefundRequest.objects.get().status == "cancelled"


def test_cancel_by_api_after_the_refund_is_409_and_changes_nothing(api, funded_customer, agent):
    # given
    created = api.post(URL, _payload(funded_customer)).json()
    services.refund(request=created["id"], actor=agent)
    before = refunds_state()
    # when
    response = api.post(f"{URL}/{created['id']}/cancel")
    # then
    assert response.status_code == 409
    assert response.json()["detail"] == (f"Request #{created['id']} is Refunded, so it cannot be cancelled. "
                                         f"Undo the refund first.")
    assert refunds_state() == before


def test_cancel_by_api_of_an_unknown_request_is_404(api, db):
    assert api.post(f"{URL}/999/cancel").status_code == 404


def test_create_by_api_spends_nothing_until_staff_refund(api, funded_customer):
    # when
    api.post(URL, _payload(funded_customer))
    # then
    from ledger import selectors

    assert selectors.available_balance(customer=funded_customer) == 5000
    ledger_services.debit(customer=funded_customer, amount=5000, kind="redeem", reason="spent it all")
    assert selectors.verify_ledger() == []


def test_openapi_schema_lists_the_refund_endpoints(api, client):
    # when
    schema = client.get("/api/v1/openapi.json").json()
    # then
    assert {"/api/v1/cash-refund-requests", "/api/v1/cash-refund-requests/{request_id}",
            "/api/v1/cash-refund-requests/{request_id}/cancel"} <= set(schema["paths"])
    assert set(schema["paths"]["/api/v1/cash-refund-requests"]) == {"get", "post"}

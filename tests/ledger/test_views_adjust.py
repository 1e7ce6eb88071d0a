"""The manual credit/debit pop-up: form → preview (resulting balance) → confirm, posted
once however often the confirm is sent; every refused input shows its message next to
the field and writes nothing (no entry, lot, consumption or audit event)."""

import datetime as dt
import json
import re
import uuid

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils.html import escape

from credits_admin.models import AuditEvent
from credits_admin.roles import ROLES
from ledger import clock, selectors, services
from ledger.models import CreditLot, LedgerEntry
from tests.factories import CustomerFactory, StaffUserFactory
from tests.ledger.support import ledger_state

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2030, 1, 15, 10, 0, tzinfo=UTC)
HTMX = {"HX-Request": "true"}
ROLES_AND_ANONYMOUS = [*ROLES, None]


def ninety_day_policy(*, source, now, **context):
    """A store expiry policy for these tests (settings.LEDGER_EXPIRY_POLICY points here)."""
    assert source == "staff"
    return now + dt.timedelta(days=90)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def agent(client):
    user = StaffUserFactory(role="Support agent")
    client.force_login(user)
    return user


@pytest.fixture
def funded():
    """A customer with $50.00, granted a day ago."""
    customer = CustomerFactory(member_id="M5000", name="Ada Lovelace", email="ada@example.com")
    with clock.posting_at(NOW - dt.timedelta(days=1)):
        services.grant(customer=customer, amount=5000, reason="test setup")
    return customer


def url_for(customer=None):
    if customer is None:
        return reverse("ledger:credit_adjust")
    return reverse("ledger:customer_credit_adjust", args=[customer.pk])


def form_data(**overrides) -> dict:
    data = {"amount": "10.00", "reason": "Goodwill", "reason_other": "", "comment": "Late delivery",
            "expiry": "never", "expiry_days": "", "expiry_date": "", "idempotency_key": str(uuid.uuid4()),
            "step": "preview"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def written() -> dict:
    """Everything a posting could write: the ledger's tables and the audit log."""
    return {**ledger_state(), "audit": list(AuditEvent.objects.values_list("id", flat=True))}


def field_errors(body: str, name: str) -> list[str]:
    """The error messages shown next to the field `name` (partials/field.html)."""
    start = body.index(f'id="field-{name}"')
    block = body[start:body.index("</div>", start)]
    return re.findall(r"<li>(.*?)</li>", block[block.find('class="errorlist"'):]) if "errorlist" in block else []


# --------------------------------------------------------------------------- permissions

@pytest.mark.parametrize("role", ROLES_AND_ANONYMOUS, ids=lambda r: r or "anonymous")
@pytest.mark.parametrize("fixed_customer", [False, True], ids=["from-history", "from-customer"])
def test_credit_adjust_opens_for_roles_that_may_adjust_only(client, funded, role, fixed_customer):
    # given
    if role:
        client.force_login(StaffUserFactory(role=role))
    url = url_for(funded if fixed_customer else None)
    # when
    response = client.get(url, headers=HTMX)
    # then
    expected = {None: 302, "Ops": 403}.get(role, 200)
    assert response.status_code == expected
    if role is None:
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["Ops", None], ids=["Ops", "anonymous"])
def test_credit_adjust_confirm_by_a_role_without_permission_writes_nothing(client, funded, role):
    # given
    if role:
        client.force_login(StaffUserFactory(role=role))
    before = written()
    # when
    response = client.post(url_for(funded), form_data(step="confirm"), headers=HTMX)
    # then
    assert response.status_code == (403 if role else 302)
    assert written() == before


def test_credit_adjust_on_an_unknown_customer_is_404(client, agent):
    # when / then
    assert client.get(reverse("ledger:customer_credit_adjust", args=[999_999])).status_code == 404


# --------------------------------------------------------------------------- form → preview → confirm

def test_credit_adjust_form_carries_a_fresh_idempotency_key_each_time(client, agent, funded):
    # when
    bodies = [client.get(url_for(funded), headers=HTMX).content.decode() for _ in range(2)]
    # then
    keys = [re.search(r'name="idempotency_key" value="([0-9a-f-]{36})"', b).group(1) for b in bodies]
    assert keys[0] != keys[1]
    assert "<html" not in bodies[0] and 'id="modal-title"' in bodies[0]
    assert 'hx-post="/credits/customers/' in bodies[0]


def test_credit_adjust_as_a_full_page_posts_without_htmx(client, agent, funded):
    # when
    body = client.get(url_for(funded)).content.decode()
    # then
    assert "<html" in body and "hx-post" not in body and f'action="{url_for(funded)}"' in body


@pytest.mark.parametrize(("amount", "change", "resulting"), [("10.00", "+$10.00", "$60.00"),
                                                            ("-12.34", "−$12.34", "$37.66"),
                                                            ("-50", "−$50.00", "$0.00")])
def test_credit_adjust_preview_shows_the_resulting_balance_and_writes_nothing(client, agent, funded, amount,
                                                                             change, resulting):
    # given
    before = written()
    # when
    response = client.post(url_for(funded), form_data(amount=amount), headers=HTMX)
    # then
    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-testid="change">{change}<' in body
    assert f'data-testid="resulting">{resulting}<' in body
    assert "$50.00" in body  # available now
    assert 'name="step" value="confirm"' in body
    assert written() == before


def test_credit_adjust_confirm_posts_a_credit_and_closes_the_popup(client, agent, funded):
    # when
    response = client.post(url_for(funded), form_data(step="confirm", comment="Parcel arrived late"),
                           headers=HTMX)
    # then
    assert response.status_code == 204
    events = json.loads(response["HX-Trigger"])
    assert {"closeModal", "creditsChanged"} <= set(events)
    entry = LedgerEntry.objects.latest("id")
    assert events["creditsChanged"] == {"customer": funded.pk, "entry": entry.pk}
    assert (entry.kind, entry.amount, entry.reason, entry.comment, entry.source, entry.actor) == (
        "grant", 1000, "Goodwill", "Parcel arrived late", "staff", agent)
    assert selectors.available_balance(customer=funded) == 6000
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.target_id) == ("ledger.credit", agent, str(funded.pk))
    assert event.after["entry"] == entry.pk and event.after["amount"] == 1000


def test_credit_adjust_confirm_of_a_negative_amount_deducts(client, agent, funded):
    # when
    response = client.post(url_for(funded), form_data(step="confirm", amount="-5.00", expiry="days"),
                           headers=HTMX)
    # then: a deduction (expiry fields do not matter for a debit)
    assert response.status_code == 204
    entry = LedgerEntry.objects.latest("id")
    assert (entry.kind, entry.amount, entry.balance_after) == ("deduct", -500, 4500)
    assert AuditEvent.objects.get().action == "ledger.debit"


def test_credit_adjust_confirm_without_htmx_redirects_to_the_history_with_a_message(client, agent, funded):
    # when
    response = client.post(url_for(funded), form_data(step="confirm"))
    # then
    assert response.status_code == 302
    assert response["Location"] == "/credits/history/?customer=M5000&period="
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["+$10.00 posted for Ada Lovelace (M5000)."]


def test_credit_adjust_back_from_the_preview_keeps_the_values_and_writes_nothing(client, agent, funded):
    # given
    data = form_data(amount="7.25", comment="keep me", step="edit")
    before = written()
    # when
    body = client.post(url_for(funded), data, headers=HTMX).content.decode()
    # then
    assert 'value="7.25"' in body and "keep me" in body and f'value="{data["idempotency_key"]}"' in body
    assert 'name="step" value="preview"' in body
    assert written() == before


@pytest.mark.parametrize("amount", ["10.00", "-40.00"], ids=["credit", "debit"])
def test_credit_adjust_confirm_sent_twice_posts_once_and_audits_once(client, agent, funded, amount):
    # given: a double click / a re-sent form: the same idempotency key and values
    data = form_data(step="confirm", amount=amount)
    # when
    first = client.post(url_for(funded), data, headers=HTMX)
    second = client.post(url_for(funded), data, headers=HTMX)
    third = client.post(url_for(funded), data)  # the browser re-sending it without htmx
    # then
    assert (first.status_code, second.status_code, third.status_code) == (204, 204, 302)
    assert LedgerEntry.objects.count() == 2  # the setup grant and this one
    assert AuditEvent.objects.count() == 1
    assert selectors.available_balance(customer=funded) == 5000 + int(float(amount) * 100)


@pytest.mark.parametrize("expiry", [{"expiry": "days", "expiry_days": "30"}, {"expiry": "policy"}],
                         ids=["days", "policy"])
def test_credit_adjust_confirm_sent_twice_with_a_relative_expiry_posts_once(client, agent, funded, settings,
                                                                           expiry):
    # given: the preview computed the expiry; the two confirms arrive seconds apart
    settings.LEDGER_EXPIRY_POLICY = "tests.ledger.test_views_adjust.ninety_day_policy"
    preview = client.post(url_for(funded), form_data(**expiry), headers=HTMX).content.decode()
    confirm = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', preview))
    assert confirm["step"] == "confirm" and confirm["expires_at_shown"]
    # when
    with time_machine.travel(NOW + dt.timedelta(seconds=20), tick=False):
        first = client.post(url_for(funded), confirm, headers=HTMX)
    with time_machine.travel(NOW + dt.timedelta(seconds=21), tick=False):
        second = client.post(url_for(funded), confirm, headers=HTMX)
    # then: the expiry shown in the preview, posted once
    assert (first.status_code, second.status_code) == (204, 204)
    lot = CreditLot.objects.get(entry=LedgerEntry.objects.latest("id"))
    days = 30 if expiry["expiry"] == "days" else 90
    assert lot.expires_at == NOW + dt.timedelta(days=days)
    assert LedgerEntry.objects.count() == 2 and AuditEvent.objects.count() == 1


def test_credit_adjust_ignores_a_tampered_shown_expiry(client, agent, funded):
    # when: the hidden preview value says 10 years although the form says 30 days
    data = form_data(step="confirm", expiry="days", expiry_days="30",
                     expires_at_shown=(NOW + dt.timedelta(days=3650)).isoformat())
    response = client.post(url_for(funded), data, headers=HTMX)
    # then
    assert response.status_code == 204
    assert CreditLot.objects.get(entry=LedgerEntry.objects.latest("id")).expires_at == NOW + dt.timedelta(days=30)


def test_credit_adjust_same_key_with_other_values_is_refused_and_writes_nothing(client, agent, funded):
    # given
    data = form_data(step="confirm")
    client.post(url_for(funded), data, headers=HTMX)
    before = written()
    # when
    response = client.post(url_for(funded), {**data, "amount": "99.00"}, headers=HTMX)
    # then
    assert response.status_code == 200
    assert "This form was already submitted with other values. Close it and start again." in response.content.decode()
    assert written() == before


# --------------------------------------------------------------------------- refused debits

@pytest.mark.parametrize("step", ["preview", "confirm"])
def test_credit_adjust_debit_beyond_the_available_balance_is_refused_next_to_the_amount(client, agent, funded,
                                                                                       step):
    # given
    before = written()
    # when
    response = client.post(url_for(funded), form_data(amount="-50.01", step=step), headers=HTMX)
    # then
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "amount") == [
        escape("Only $50.00 is available; you cannot deduct $50.01.")]
    assert written() == before


def test_credit_adjust_debit_counts_overdue_credits_as_gone(client, agent, funded):
    # given: $20.00 that expired an hour ago (not swept yet): $50.00 is what is available
    with clock.posting_at(NOW - dt.timedelta(days=2)):
        services.grant(customer=funded, amount=2000, reason="short-lived", expires_at=NOW - dt.timedelta(hours=1))
    before = written()
    # when
    response = client.post(url_for(funded), form_data(amount="-60.00", step="confirm"), headers=HTMX)
    # then
    assert field_errors(response.content.decode(), "amount") == [
        escape("Only $50.00 is available; you cannot deduct $60.00.")]
    assert written() == before


# --------------------------------------------------------------------------- refused input

@pytest.mark.parametrize(("overrides", "field", "message"), [
    pytest.param({"amount": "0"}, "amount", "Enter an amount other than zero.", id="zero"),
    pytest.param({"amount": "-0.00"}, "amount", "Enter an amount other than zero.", id="minus-zero"),
    pytest.param({"amount": ""}, "amount", "This field is required.", id="empty"),
    pytest.param({"amount": "abc"}, "amount", "Enter a number, such as 12.50.", id="abc"),
    pytest.param({"amount": "1.234"}, "amount", "Use at most 2 decimal places.", id="three-decimals"),
    pytest.param({"amount": "1e3"}, "amount", "Enter a number, such as 12.50.", id="exponent"),
    pytest.param({"amount": "1e999999"}, "amount", "Enter a number, such as 12.50.", id="overflow"),
    pytest.param({"amount": "99999999999999"}, "amount", "That amount is too large.", id="too-large"),
    pytest.param({"amount": "1" * 40}, "amount", "Ensure this value has at most 32 characters (it has 40).",
                 id="too-long"),
    pytest.param({"reason": "other"}, "reason_other", "Describe the reason.", id="other-without-text"),
    pytest.param({"reason": "other", "reason_other": "   "}, "reason_other", "Describe the reason.",
                 id="other-blank"),
    pytest.param({"reason": "Bribe"}, "reason", "Select a valid choice. Bribe is not one of the available choices.",
                 id="unknown-reason"),
    pytest.param({"comment": ""}, "comment", "This field is required.", id="no-comment"),
    pytest.param({"comment": "   "}, "comment", "This field is required.", id="blank-comment"),
    pytest.param({"comment": "c" * 501}, "comment", "Ensure this value has at most 500 characters (it has 501).",
                 id="long-comment"),
    pytest.param({"expiry": "days"}, "expiry_days", "Enter for how many days the credits are valid.",
                 id="days-missing"),
    pytest.param({"expiry": "days", "expiry_days": "0"}, "expiry_days",
                 "Ensure this value is greater than or equal to 1.", id="days-zero"),
    pytest.param({"expiry": "days", "expiry_days": "3651"}, "expiry_days",
                 "Ensure this value is less than or equal to 3650.", id="days-too-many"),
    pytest.param({"expiry": "date"}, "expiry_date", "Pick the last day the credits are valid.", id="date-missing"),
    pytest.param({"expiry": "date", "expiry_date": "2030-01-15"}, "expiry_date", "Pick a date after today.",
                 id="date-today"),
    pytest.param({"expiry": "date", "expiry_date": "2029-12-31"}, "expiry_date", "Pick a date after today.",
                 id="date-past"),
    pytest.param({"expiry": "date", "expiry_date": "2070-01-01"}, "expiry_date", "Pick a date within 30 years.",
                 id="date-too-far"),
    pytest.param({"expiry": "date", "expiry_date": "2030-02-30"}, "expiry_date", "Enter a valid date.",
                 id="date-impossible"),
    pytest.param({"expiry": "forever"}, "expiry", "Select a valid choice. forever is not one of the available "
                 "choices.", id="unknown-expiry"),
])
@pytest.mark.parametrize("step", ["preview", "confirm"])
def test_credit_adjust_refuses_bad_input_next_to_the_field_and_writes_nothing(client, agent, funded, overrides,
                                                                             field, message, step):
    # given
    before = written()
    # when
    response = client.post(url_for(funded), form_data(step=step, **overrides), headers=HTMX)
    # then
    assert response.status_code == 200
    assert field_errors(response.content.decode(), field) == [escape(message)]
    assert 'name="step" value="preview"' in response.content.decode()  # back on the form, not the preview
    assert written() == before


def test_credit_adjust_with_a_missing_idempotency_key_is_refused(client, agent, funded):
    # given
    before = written()
    # when
    response = client.post(url_for(funded), form_data(step="confirm", idempotency_key=None), headers=HTMX)
    # then
    assert response.status_code == 200
    assert "This form is incomplete; close it and open it again." in response.content.decode()
    assert written() == before


@pytest.mark.parametrize(("amount", "minor"), [("1000", 1000), ("1,500", 1500), ("-300", -300)])
def test_credit_adjust_in_krw_takes_whole_won(client, agent, funded, settings, amount, minor):
    # given
    settings.STORE_CURRENCY = "KRW"
    # when
    response = client.post(url_for(funded), form_data(amount=amount, step="confirm"), headers=HTMX)
    # then
    assert response.status_code == 204
    assert LedgerEntry.objects.latest("id").amount == minor


def test_credit_adjust_in_krw_refuses_fractions_and_writes_nothing(client, agent, funded, settings):
    # given
    settings.STORE_CURRENCY = "KRW"
    before = written()
    # when
    response = client.post(url_for(funded), form_data(amount="10.5", step="confirm"), headers=HTMX)
    # then
    assert field_errors(response.content.decode(), "amount") == [
        "This currency has no fractional units; enter a whole number."]
    assert written() == before


def test_credit_adjust_other_reason_uses_the_typed_text(client, agent, funded):
    # when
    client.post(url_for(funded), form_data(step="confirm", reason="other", reason_other="  Influencer deal "),
                headers=HTMX)
    # then
    assert LedgerEntry.objects.latest("id").reason == "Influencer deal"


# --------------------------------------------------------------------------- expiry → lot

@pytest.mark.parametrize(("expiry", "policy", "expected"), [
    pytest.param({"expiry": "never"}, "", None, id="never"),
    pytest.param({"expiry": "days", "expiry_days": "30"}, "", NOW + dt.timedelta(days=30), id="30-days"),
    pytest.param({"expiry": "date", "expiry_date": "2030-02-01"}, "", dt.datetime(2030, 2, 2, tzinfo=UTC),
                 id="until-a-date-inclusive"),
    pytest.param({"expiry": "policy"}, "tests.ledger.test_views_adjust.ninety_day_policy",
                 NOW + dt.timedelta(days=90), id="store-policy"),
    pytest.param({"expiry": "policy"}, "", None, id="no-policy-means-never"),
])
def test_credit_adjust_expiry_choice_sets_the_lot_expiry(client, agent, funded, settings, expiry, policy,
                                                         expected):
    # given
    settings.LEDGER_EXPIRY_POLICY = policy
    # when
    response = client.post(url_for(funded), form_data(step="confirm", **expiry), headers=HTMX)
    # then
    assert response.status_code == 204
    assert CreditLot.objects.get(entry=LedgerEntry.objects.latest("id")).expires_at == expected


def test_credit_adjust_until_a_date_ends_at_local_midnight_in_seoul(client, agent, funded, settings):
    # given
    settings.TIME_ZONE = "Asia/Seoul"
    # when
    client.post(url_for(funded), form_data(step="confirm", expiry="date", expiry_date="2030-02-01"), headers=HTMX)
    # then: usable through Feb 1 in Seoul, i.e. until 15:00 UTC that day
    assert CreditLot.objects.get(entry=LedgerEntry.objects.latest("id")).expires_at == dt.datetime(
        2030, 2, 1, 15, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- choosing the customer

@pytest.mark.parametrize("text", ["M5000", "ADA@example.com", "card", "card-spaced"])
def test_credit_adjust_from_history_finds_the_customer_exactly(client, agent, funded, text):
    # given
    card = funded.card_number
    text = {"card": card, "card-spaced": f"{card[:4]} {card[4:8]} {card[8:12]} {card[12:]}"}.get(text, text)
    # when
    response = client.post(url_for(), form_data(customer=text, step="confirm"), headers=HTMX)
    # then
    assert response.status_code == 204
    assert LedgerEntry.objects.latest("id").account_id == funded.pk


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("", "This field is required.", id="empty"),
    pytest.param("M99", "No customer matches this member ID, email or card number.", id="none"),
    pytest.param("Ada", "No customer matches this member ID, email or card number.", id="a-name-is-not-exact"),
    pytest.param("M50", "No customer matches this member ID, email or card number.", id="a-prefix-is-not-exact"),
    pytest.param("twins@example.com", "More than one customer matches; enter the exact member ID.", id="several"),
    pytest.param("x" * 201, "Ensure this value has at most 200 characters (it has 201).", id="too-long"),
])
def test_credit_adjust_from_history_refuses_a_customer_it_cannot_pin_down(client, agent, funded, text, message):
    # given
    CustomerFactory(email="twins@example.com")
    CustomerFactory(email="Twins@example.com")
    before = written()
    # when
    response = client.post(url_for(), form_data(customer=text, step="confirm"), headers=HTMX)
    # then
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "customer") == [escape(message)]
    assert written() == before


def test_credit_adjust_from_history_preview_names_the_customer_found(client, agent, funded):
    # when
    body = client.post(url_for(), form_data(customer="ada@example.com"), headers=HTMX).content.decode()
    # then
    assert "Ada Lovelace (M5000)" in body
    assert 'name="customer" value="ada@example.com"' in body


@pytest.mark.parametrize(("fixed", "back_to"), [(True, "customer"), (False, "history")])
def test_credit_adjust_as_a_full_page_cancels_with_a_link_back(client, agent, funded, fixed, back_to):
    # when
    body = client.get(url_for(funded if fixed else None)).content.decode()
    # then: no dialog to close on a page of its own
    href = reverse("crm:customer_detail", args=[funded.pk]) if back_to == "customer" else reverse("ledger:history")
    assert f'<a class="button" href="{href}">Cancel</a>' in body
    assert "data-close-modal>Cancel" not in body


# --------------------------------------------------------------------------- the store policy's default

def passed_date_policy(*, source, now, **context):
    """A store policy whose fixed date is already behind us (settings.LEDGER_EXPIRY_POLICY)."""
    return dt.datetime(2029, 12, 31, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("policy", "label"), [
    pytest.param("", "Store policy: never expires.", id="permanent"),
    pytest.param("tests.ledger.test_views_adjust.ninety_day_policy", "Store policy: until 2030-04-15.",
                 id="n-days"),
    pytest.param("tests.ledger.test_views_adjust.passed_date_policy", "Store policy: its date has passed.",
                 id="date-passed"),
])
def test_credit_adjust_form_says_what_the_store_policy_gives(client, agent, funded, settings, policy, label):
    # given
    settings.LEDGER_EXPIRY_POLICY = policy
    # when
    body = client.get(url_for(funded), headers=HTMX).content.decode()
    # then: the default choice, and next to it the expiry a credit posted now would get
    assert '<option value="policy" selected>Store policy</option>' in body
    field = body[body.index('id="field-expiry"'):]
    assert label in field[: field.index("</div>")]


@pytest.mark.parametrize("step", ["preview", "confirm"])
def test_credit_adjust_with_a_store_policy_date_already_passed_is_refused_next_to_the_expiry(
        client, agent, funded, settings, step):
    # given
    settings.LEDGER_EXPIRY_POLICY = "tests.ledger.test_views_adjust.passed_date_policy"
    before = written()
    # when
    response = client.post(url_for(funded), form_data(expiry="policy", step=step), headers=HTMX)
    # then: a clear message next to the expiry choice, not a 500; nothing written
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "expiry") == [
        "The store policy&#x27;s expiry date has passed; choose another expiry."]
    assert written() == before


def test_credit_adjust_debit_ignores_a_passed_store_policy(client, agent, funded, settings):
    # given: the expiry applies to credits only
    settings.LEDGER_EXPIRY_POLICY = "tests.ledger.test_views_adjust.passed_date_policy"
    # when
    response = client.post(url_for(funded), form_data(amount="-5.00", expiry="policy", step="confirm"),
                           headers=HTMX)
    # then
    assert response.status_code == 204
    assert selectors.available_balance(customer=funded) == 4500


def test_credit_adjust_confirm_after_the_chosen_date_passed_is_refused_next_to_the_date(client, agent, funded):
    # given: previewed with "until tomorrow", confirmed two days later
    data = form_data(expiry="date", expiry_date="2030-01-16")
    preview = client.post(url_for(funded), data, headers=HTMX).content.decode()
    confirm = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', preview))
    before = written()
    # when
    with time_machine.travel(NOW + dt.timedelta(days=2), tick=False):
        response = client.post(url_for(funded), confirm, headers=HTMX)
    # then: the confirm is validated again, so the date is refused, not posted as already expired
    assert response.status_code == 200
    assert field_errors(response.content.decode(), "expiry_date") == ["Pick a date after today."]
    assert written() == before

"""The customers search page and the customer pop-up: profile, available balance, credits
expiring in the next 30 days by date, masked card with an audited reveal for admins, the
latest entries with a link to the customer's history, and staff memos."""

import datetime as dt
import json
import re

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from credits_admin.models import AuditEvent
from credits_admin.roles import ROLES
from crm.models import CustomerMemo
from ledger import clock, services
from tests.factories import CustomerFactory, CustomerMemoFactory, OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2030, 1, 15, 10, 0, tzinfo=UTC)
CUSTOMERS = reverse("crm:customer_list")
HTMX = {"HX-Request": "true"}
ROLES_AND_ANONYMOUS = [*ROLES, None]


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def login(client, role):
    user = None
    if role is not None:
        user = StaffUserFactory(role=role)
        client.force_login(user)
    return user


def detail_url(customer):
    return reverse("crm:customer_detail", args=[customer.pk])


def grant(customer, amount, *, at=NOW - dt.timedelta(days=1), **kwargs):
    kwargs.setdefault("reason", "Welcome bonus")
    with clock.posting_at(at):
        return services.grant(customer=customer, amount=amount, **kwargs)


@pytest.fixture
def ada():
    return CustomerFactory(member_id="M100", name="Ada Lovelace", email="ada@example.com", phone="010-1234-5678")


# --------------------------------------------------------------------------- permissions

VIEW_EXPECTATIONS = {  # view -> the status each role gets (anonymous: redirect to the login page)
    "customer_list": {"Store admin": 200, "Support admin": 200, "Support agent": 200, "Ops": 200},
    "customer_detail": {"Store admin": 200, "Support admin": 200, "Support agent": 200, "Ops": 200},
    "memo_add": {"Store admin": 200, "Support admin": 200, "Support agent": 200, "Ops": 403},
    "customer_card_reveal": {"Store admin": 200, "Support admin": 200, "Support agent": 403, "Ops": 403},
}


@pytest.mark.parametrize("role", ROLES_AND_ANONYMOUS, ids=lambda r: r or "anonymous")
@pytest.mark.parametrize("view", list(VIEW_EXPECTATIONS))
@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_customer_views_answer_each_role_as_its_permissions_say(client, ada, role, view, headers):
    # given
    login(client, role)
    url = CUSTOMERS if view == "customer_list" else reverse(f"crm:{view}", args=[ada.pk])
    # when
    if view == "customer_card_reveal":
        response = client.post(url, headers=headers)
    else:
        response = client.get(url, headers=headers)
    # then
    if role is None:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")
    else:
        assert response.status_code == VIEW_EXPECTATIONS[view][role]


def test_card_reveal_refuses_get(client, ada):
    # given
    login(client, "Store admin")
    # when / then
    assert client.get(reverse("crm:customer_card_reveal", args=[ada.pk])).status_code == 405


@pytest.mark.parametrize("role", ["Support agent", "Ops"])
def test_card_reveal_by_a_role_without_permission_writes_no_audit_event(client, ada, role):
    # given
    login(client, role)
    # when
    response = client.post(reverse("crm:customer_card_reveal", args=[ada.pk]), headers=HTMX)
    # then
    assert response.status_code == 403
    assert ada.card_number not in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_customer_popup_of_an_unknown_customer_is_404(client):
    # given
    login(client, "Ops")
    # when / then
    assert client.get(reverse("crm:customer_detail", args=[424242])).status_code == 404


# --------------------------------------------------------------------------- the search page

@pytest.fixture
def crowd(ada):
    grace = CustomerFactory(member_id="M1000", name="Grace Hopper", email="grace@example.com")
    alan = CustomerFactory(member_id="X7", name="Alan Turing", email="alan@example.org", status="dormant")
    grant(alan, 1234)
    return {"ada": ada, "grace": grace, "alan": alan}


def listed(response) -> list[str]:
    return re.findall(r'class="customer-link" aria-haspopup="dialog">([^<]+)</a>', response.content.decode())


def test_customers_page_without_a_search_lists_everyone_by_member_id(client, crowd):
    # given
    login(client, "Ops")
    # when
    response = client.get(CUSTOMERS)
    # then
    assert response.status_code == 200
    assert listed(response) == ["M100", "M1000", "X7"]


@pytest.mark.parametrize(("query", "expected"), [
    pytest.param("M100", ["M100", "M1000"], id="member-id-prefix"),
    pytest.param("x7", ["X7"], id="member-id-any-case"),
    pytest.param("hopper", ["M1000"], id="name-part"),
    pytest.param("AN TU", ["X7"], id="name-part-any-case"),
    pytest.param("ADA@EXAMPLE.COM", ["M100"], id="email"),
    pytest.param("card", ["X7"], id="card-number"),
    pytest.param("card-spaced", ["X7"], id="card-number-spaced"),
    pytest.param("card-last4", ["X7"], id="card-last-digits"),
    pytest.param("nobody", [], id="no-match"),
])
def test_customers_page_search_by_member_id_name_email_or_card(client, crowd, query, expected):
    # given
    login(client, "Support agent")
    card = crowd["alan"].card_number
    query = {"card": card, "card-spaced": " ".join(card[i:i + 4] for i in range(0, 16, 4)),
             "card-last4": card[-6:]}.get(query, query)
    # when
    response = client.get(CUSTOMERS, {"q": query})
    # then
    assert listed(response) == expected


def test_customers_page_filters_by_status(client, crowd):
    # given
    login(client, "Ops")
    # when / then
    assert listed(client.get(CUSTOMERS, {"status": "dormant"})) == ["X7"]


def test_customers_page_shows_masked_card_and_balance(client, crowd):
    # given
    login(client, "Store admin")
    card = crowd["alan"].card_number
    # when
    body = client.get(CUSTOMERS, {"q": "X7"}).content.decode()
    # then
    assert f"•••• •••• •••• {card[-4:]}" in body and card not in body
    assert "$12.34" in body


@pytest.mark.parametrize(("params", "message"), [
    ({"q": "q" * 10_000}, "Ensure this value has at most 200 characters (it has 10000)."),
    ({"status": "vip"}, "Select a valid choice. vip is not one of the available choices."),
    ({"q": "a\x00b"}, "Null characters are not allowed."),
])
def test_customers_page_with_a_bad_search_answers_200_with_the_message(client, crowd, params, message):
    # given
    login(client, "Ops")
    # when
    response = client.get(CUSTOMERS, params, headers={"HX-Request": "true", "HX-Target": "results"})
    # then
    assert response.status_code == 200
    assert escape(message) in response.content.decode()
    assert listed(response) == []


def test_customers_page_htmx_search_returns_only_the_results(client, crowd):
    # given
    login(client, "Ops")
    # when
    body = client.get(CUSTOMERS, {"q": "Ada"}, headers={"HX-Request": "true", "HX-Target": "results"}
                      ).content.decode()
    # then
    assert body.lstrip().startswith('<div id="results"') and "<html" not in body
    url = detail_url(crowd["ada"])
    assert f'<a href="{url}" hx-get="{url}" hx-target="#modal" hx-swap="innerHTML"' in body


def test_customers_page_pages_by_25_without_counting(client):
    # given
    login(client, "Ops")
    CustomerFactory.create_batch(30)
    # when
    first = client.get(CUSTOMERS)
    second = client.get(CUSTOMERS, {"page": 2})
    # then
    assert len(listed(first)) == 25 and len(listed(second)) == 5
    assert not set(listed(first)) & set(listed(second))


@pytest.mark.parametrize("params", [
    {"page": "abc"}, {"page": "0"}, {"page": "-1"}, {"page": "99999"}, {"page": "1e3"},
    {"page": "9223372036854775808"}, {"page": "9" * 25}, {"page": "1" * 400},
    {"per_page": "0"}, {"per_page": "-5"}, {"per_page": "abc"},
    {"sort": "evil"}, {"sort": "-credit_account__customer__card_number"},
])
@pytest.mark.parametrize("headers", [{}, {"HX-Request": "true", "HX-Target": "results"}], ids=["page", "partial"])
def test_customers_page_with_odd_paging_or_sorting_never_fails(client, crowd, params, headers):
    # given
    login(client, "Ops")
    # when
    response = client.get(CUSTOMERS, params, headers=headers)
    # then: an out-of-range page never reaches the database as an OFFSET
    assert response.status_code == 200
    assert listed(response)


def test_customers_page_per_page_from_the_url_is_capped(client):
    # given
    login(client, "Ops")
    CustomerFactory.create_batch(101)
    # when
    response = client.get(CUSTOMERS, {"per_page": "10000000"})
    # then
    assert len(listed(response)) == 100


# --------------------------------------------------------------------------- the pop-up

@pytest.fixture
def ledgered(ada):
    """Ada with lots expiring at several moments and a spent one."""
    order = OrderFactory(customer=ada)
    OrderFactory(customer=ada)
    grant(ada, 300, expires_at=NOW - dt.timedelta(hours=1), at=NOW - dt.timedelta(days=3))  # overdue by now
    grant(ada, 1000, expires_at=NOW + dt.timedelta(days=5, hours=2))       # 2030-01-20 12:00
    grant(ada, 500, expires_at=NOW + dt.timedelta(days=5, hours=8))        # 2030-01-20 18:00, same day
    grant(ada, 700, expires_at=NOW + dt.timedelta(days=30))                # exactly 30 days: in
    grant(ada, 900, expires_at=NOW + dt.timedelta(days=30, seconds=1))     # just beyond: out
    grant(ada, 2000)                                                       # never expires
    with clock.posting_at(NOW - dt.timedelta(hours=2)):  # takes 200 of the 300 that expire first
        services.debit(customer=ada, amount=200, kind="redeem", reason="Checkout", order=order, source="api")
    return ada  # booked 5200, of which 100 overdue (not swept yet): 5100 available


def test_customer_popup_shows_profile_and_available_balance(client, ledgered):
    # given
    login(client, "Support agent")
    # when
    response = client.get(detail_url(ledgered), headers=HTMX)
    # then: the htmx partial only; overdue credits are not available
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    for text in ("Ada Lovelace", "M100", "ada@example.com", "010-1234-5678", "Active", "2029-06-29"):
        assert text in body, text
    assert re.search(r"<dt>Orders</dt><dd>2</dd>", body)
    assert 'data-testid="available">$51.00<' in body


def test_customer_popup_groups_credits_expiring_within_30_days_by_date(client, ledgered):
    # given
    login(client, "Support agent")
    # when
    body = client.get(detail_url(ledgered), headers=HTMX).content.decode()
    # then: 1000 + 500 on the 20th, 700 on the 14th of February; not the overdue rest, nothing beyond
    expiring = re.findall(r'<time datetime="([\d-]+)">[\d-]+</time> <span class="num">([^<]+)</span>', body)
    assert expiring == [("2030-01-20", "$15.00"), ("2030-02-14", "$7.00")]


def test_customer_popup_groups_expiring_credits_by_the_stores_calendar_day(client, ada, settings):
    # given: 16:00 UTC on the 20th is already the 21st in Seoul
    settings.TIME_ZONE = "Asia/Seoul"
    login(client, "Support agent")
    grant(ada, 100, expires_at=dt.datetime(2030, 1, 20, 14, 0, tzinfo=UTC))
    grant(ada, 200, expires_at=dt.datetime(2030, 1, 20, 16, 0, tzinfo=UTC))
    # when
    body = client.get(detail_url(ada), headers=HTMX).content.decode()
    # then
    assert re.findall(r'<time datetime="([\d-]+)">', body) == ["2030-01-20", "2030-01-21"]


def test_customer_popup_without_expiring_credits_says_so(client, ada):
    # given
    login(client, "Ops")
    grant(ada, 100)
    # when / then
    assert "Nothing expires in the next 30 days." in client.get(detail_url(ada), headers=HTMX).content.decode()


@pytest.mark.parametrize("role", list(ROLES))
def test_customer_popup_masks_the_card_number_for_every_role(client, ada, role):
    # given
    login(client, role)
    # when
    body = client.get(detail_url(ada), headers=HTMX).content.decode()
    # then
    assert ada.card_number not in body
    assert f'data-testid="card-masked">•••• •••• •••• {ada.card_number[-4:]}<' in body
    reveal = f'hx-post="{reverse("crm:customer_card_reveal", args=[ada.pk])}"'
    assert (reveal in body) is (role in ("Store admin", "Support admin"))


@pytest.mark.parametrize("role", ["Store admin", "Support admin"])
def test_card_reveal_shows_the_full_number_to_admins_and_audits_it(client, ada, role):
    # given
    user = login(client, role)
    # when
    response = client.post(reverse("crm:customer_card_reveal", args=[ada.pk]), headers=HTMX)
    # then: only the card partial, with the full number
    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith('<span id="card-number"')
    assert f'data-testid="card-full">{ada.card_number}<' in body
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.target_type, event.target_id) == (
        "crm.card_revealed", user, "crm.customer", str(ada.pk))
    assert ada.card_number not in event.summary


def test_card_reveal_without_htmx_shows_the_whole_popup_page_with_the_number(client, ada):
    # given
    login(client, "Store admin")
    # when
    body = client.post(reverse("crm:customer_card_reveal", args=[ada.pk])).content.decode()
    # then
    assert "<html" in body and ada.card_number in body and "Memos" in body
    assert AuditEvent.objects.count() == 1


@pytest.mark.parametrize(("role", "sees"), [("Store admin", True), ("Support admin", True),
                                            ("Support agent", True), ("Ops", False)])
def test_customer_popup_offers_credit_debit_to_roles_that_may_adjust(client, ada, role, sees):
    # given
    login(client, role)
    # when
    body = client.get(detail_url(ada), headers=HTMX).content.decode()
    # then
    url = reverse("ledger:customer_credit_adjust", args=[ada.pk])
    assert (f'hx-get="{url}" hx-target="#modal"' in body) is sees


def test_customer_popup_lists_the_latest_ten_entries_newest_first(client, ada):
    # given
    login(client, "Ops")
    for n in range(12):
        grant(ada, 100 + n, at=NOW - dt.timedelta(hours=12 - n), reason=f"reason {n:02d}")
    # when
    body = client.get(detail_url(ada), headers=HTMX).content.decode()
    # then
    assert re.findall(r"<td>(reason \d\d)</td>", body) == [f"reason {n:02d}" for n in range(11, 1, -1)]


def test_customer_popup_links_to_this_customers_history_only(client, ada):
    # given: another customer whose member ID starts with Ada's
    login(client, "Ops")
    mine = grant(ada, 100)
    grant(CustomerFactory(member_id="M1000"), 200)
    body = client.get(detail_url(ada), headers=HTMX).content.decode()
    link = re.search(r'<a href="([^"]+)">Full history', body).group(1).replace("&amp;", "&")
    # when
    history = client.get(link)
    # then
    assert link == "/credits/history/?customer=M100&period="
    assert [row.pk for row in history.context["page"].rows] == [mine.pk]


def test_customer_popup_as_a_full_page_has_the_layout(client, ada):
    # given
    login(client, "Ops")
    # when
    body = client.get(detail_url(ada)).content.decode()
    # then
    assert "<html" in body and 'class="card popup-page"' in body


# --------------------------------------------------------------------------- memos

def memo_url(customer):
    return reverse("crm:memo_add", args=[customer.pk])


def test_memo_add_lists_the_new_memo_first_and_audits_it(client, ada):
    # given
    user = login(client, "Support agent")
    CustomerMemoFactory(customer=ada, body="older note")
    # when
    response = client.post(memo_url(ada), {"body": "  Called about a late parcel.\nWill call back. "},
                           headers=HTMX)
    # then: the memos partial, the new memo on top with its author
    body = response.content.decode()
    assert response.status_code == 200 and body.strip().startswith('<div id="memos"')
    assert body.index("Called about a late parcel.<br>Will call back.") < body.index("older note")
    assert user.username in body
    memo = CustomerMemo.objects.latest("id")
    assert (memo.body, memo.author) == ("Called about a late parcel.\nWill call back.", user)
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.after) == ("crm.memo_added", user, {"memo": memo.pk})
    assert json.loads(response["HX-Trigger"]) == {"customerChanged": {"customer": ada.pk}}
    assert 'name="body"' in body and "Called about" not in body[body.index('name="body"'):body.index("</textarea>")]


def test_memo_add_without_htmx_redirects_to_the_popup_page_with_a_message(client, ada):
    # given
    login(client, "Support admin")
    # when
    response = client.post(memo_url(ada), {"body": "Prefers email."})
    # then
    assert response.status_code == 302 and response["Location"] == detail_url(ada)
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Memo added."]


@pytest.mark.parametrize(("text", "message"), [
    ("", "Write something first."), ("   \n  ", "Write something first."),
    ("m" * 2001, "Ensure this value has at most 2000 characters (it has 2001)."),
    ("bad\x00byte", "Null characters are not allowed."),
])
@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "page"])
def test_memo_add_refuses_an_empty_or_bad_memo_and_writes_nothing(client, ada, text, message, headers):
    # given
    login(client, "Support agent")
    # when
    response = client.post(memo_url(ada), {"body": text}, headers=headers)
    # then
    assert response.status_code == 200
    assert escape(message) in response.content.decode()
    assert not CustomerMemo.objects.exists() and not AuditEvent.objects.exists()


def test_customer_popup_lists_memos_newest_first_with_authors(client, ada):
    # given
    login(client, "Ops")
    author = StaffUserFactory(username="kim.support")
    for n in range(3):
        CustomerMemoFactory(customer=ada, body=f"memo number {n}", author=author)
    CustomerMemoFactory(customer=CustomerFactory(), body="someone else's memo")
    # when
    body = client.get(detail_url(ada), headers=HTMX).content.decode()
    # then: Ops reads memos but gets no form
    assert re.findall(r"memo number (\d)", body) == ["2", "1", "0"]
    assert "kim.support" in body and "someone else" not in body
    assert 'name="body"' not in body


# --------------------------------------------------------------------------- query counts

def captured_count(client, url, params=None, headers=None) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {}, headers=headers or {})
    assert response.status_code == 200
    return len(captured)


def populate(customer, count, start=0):
    for n in range(start, start + count):
        grant(customer, 100 + n, expires_at=NOW + dt.timedelta(days=1 + n % 25),
              actor=StaffUserFactory(role="Support agent"), order=OrderFactory(customer=customer))
        CustomerMemoFactory(customer=customer, author=StaffUserFactory())


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["page", "htmx"])
def test_customer_popup_query_count_does_not_grow_with_entries_memos_or_lots(client, ada, headers):
    # given
    login(client, "Store admin")
    populate(ada, 5)
    client.get(detail_url(ada), headers=headers)  # warm caches
    # when
    few = captured_count(client, detail_url(ada), headers=headers)
    populate(ada, 45, start=5)
    many = captured_count(client, detail_url(ada), headers=headers)
    # then
    assert few == many
    assert many <= 12


@pytest.mark.parametrize("params", [{}, {"q": "M"}, {"sort": "-balance"}], ids=["all", "search", "by-balance"])
def test_customers_page_query_count_does_not_grow_with_the_rows(client, params):
    # given
    login(client, "Ops")
    for customer in CustomerFactory.create_batch(5):
        grant(customer, 100)
    client.get(CUSTOMERS, params)  # warm caches
    # when
    few = captured_count(client, CUSTOMERS, params)
    for customer in CustomerFactory.create_batch(45):
        grant(customer, 100)
    many = captured_count(client, CUSTOMERS, params)
    # then
    assert few == many
    assert many <= 8

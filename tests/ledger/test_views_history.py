"""The credits-history page: who may open it, what a row shows, the htmx partial, and a
query count that does not grow with the rows."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from credits_admin.roles import ROLES
from ledger import clock, services
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

HISTORY = reverse("ledger:history")
HTMX_RESULTS = {"HX-Request": "true", "HX-Target": "results"}
ROLES_AND_ANONYMOUS = [*ROLES, None]


def login(client, role):
    if role is not None:
        client.force_login(StaffUserFactory(role=role))
    return client


@pytest.mark.parametrize("role", ROLES_AND_ANONYMOUS, ids=lambda r: r or "anonymous")
@pytest.mark.parametrize("headers", [{}, HTMX_RESULTS], ids=["page", "partial"])
def test_history_page_opens_for_every_role_and_sends_anonymous_to_login(client, role, headers):
    # when
    response = login(client, role).get(HISTORY, {"period": "7d"}, headers=headers)
    # then
    if role is None:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=/credits/history/")
    else:
        assert response.status_code == 200


def test_history_page_refuses_post(client):
    # given
    login(client, "Store admin")
    # when
    response = client.post(HISTORY)
    # then
    assert response.status_code == 405


@pytest.mark.parametrize(("role", "sees_button"), [("Store admin", True), ("Support admin", True),
                                                  ("Support agent", True), ("Ops", False)])
def test_history_page_shows_the_credit_debit_button_only_to_roles_that_may_adjust(client, role, sees_button):
    # when
    body = login(client, role).get(HISTORY).content.decode()
    # then
    assert (f'hx-get="{reverse("ledger:credit_adjust")}"' in body) is sees_button


@pytest.fixture
def entry_row():
    customer = CustomerFactory(member_id="M777", name="Ada Lovelace")
    clerk = StaffUserFactory(username="clerk.kim", role="Support agent")
    order = OrderFactory(customer=customer, external_id="ORD-9001")
    services.grant(customer=customer, amount=5000, reason="Welcome bonus")
    entry = services.debit(customer=customer, amount=1250, kind="deduct", reason="Goodwill correction",
                           actor=clerk, order=order, comment="Asked by phone <b>twice</b>")
    return customer, entry


def test_history_row_shows_every_column_with_a_signed_coloured_amount(client, entry_row):
    # given
    customer, entry = entry_row
    # when
    body = login(client, "Ops").get(HISTORY).content.decode()
    # then
    row = body[body.index(f'href="/customers/{customer.pk}/"'):]
    row = row[: row.index("</tr>")]
    for text in ("M777", "Ada Lovelace", "Deduct", "Goodwill correction", '<span class="negative">−$12.50</span>',
                 "$37.50", "ORD-9001", "clerk.kim", "Asked by phone &lt;b&gt;twice&lt;/b&gt;"):
        assert text in row, text
    assert '<span class="positive">+$50.00</span>' in body
    thead = body[body.index("<thead>"):body.index("</thead>")]
    headers = [re.sub(r"<[^>]+>", "", th).strip() for th in re.findall(r"<th[^>]*>(.*?)</th>", thead, re.S)]
    assert headers == ["Date", "Customer ID", "Name", "Kind", "Reason", "Amount", "Balance after", "Order",
                       "Staff", "Comment"]


def test_history_customer_id_opens_the_customer_popup(client, entry_row):
    # given
    customer, _ = entry_row
    url = reverse("crm:customer_detail", args=[customer.pk])
    # when
    body = login(client, "Ops").get(HISTORY).content.decode()
    # then: a real link that htmx loads into the shared dialog
    assert f'<a href="{url}" hx-get="{url}" hx-target="#modal" hx-swap="innerHTML"' in body


def test_history_search_form_updates_the_results_and_the_url(client, entry_row):
    # when
    body = login(client, "Ops").get(HISTORY).content.decode()
    # then
    form = body[body.index('<form class="card filters"'):]
    form = form[: form.index(">")]
    assert 'hx-get="/credits/history/"' in form and 'hx-target="#results"' in form
    assert 'hx-push-url="true"' in form and 'method="get"' in form


def test_history_results_refresh_themselves_when_credits_change(client, entry_row):
    # when
    body = login(client, "Ops").get(HISTORY, {"customer": "M777", "period": ""},
                                    headers=HTMX_RESULTS).content.decode()
    # then: only the partial, which re-fetches the same search on creditsChanged
    assert body.lstrip().startswith('<div id="results" hx-get="/credits/history/?customer=M777&amp;period="')
    assert 'hx-trigger="creditsChanged from:body"' in body
    assert "<html" not in body and 'id="summary"' in body


def test_history_htmx_request_for_another_target_gets_the_whole_page(client, entry_row):
    # when: e.g. a boosted navigation link
    body = login(client, "Ops").get(HISTORY, headers={"HX-Request": "true", "HX-Target": "main"}).content.decode()
    # then
    assert "<html" in body


def test_history_summary_shows_totals_and_period_balances(client, entry_row):
    # when: the page, then the summary its placeholder fetches
    page = login(client, "Ops").get(HISTORY, {"period": "today"}).content.decode()
    placeholder = re.search(r'<section[^>]*id="summary"[^>]*>', page).group(0)
    url = re.search(r'hx-get="([^"]+)"', placeholder).group(1).replace("&amp;", "&")
    body = client.get(url, headers={"HX-Request": "true"}).content.decode()
    # then
    assert 'hx-trigger="load"' in placeholder and url.startswith(reverse("ledger:history_summary"))
    summary = body[body.index('id="summary"'):body.index("</section>", body.index('id="summary"'))]
    for testid, value in [("opening", "$0.00"), ("rewarded", "$50.00"), ("deducted", "$12.50"),
                          ("net", "+$37.50"), ("entries", "2"), ("closing", "$37.50")]:
        assert f'data-testid="{testid}">{value}<' in summary, testid
    assert "1 customer" in summary


# --------------------------------------------------------------------------- query counts

def post_entries(count, *, start=0):
    """`count` entries, each for a new customer, by a new staff member, on a new order."""
    moment = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    for n in range(start, start + count):
        customer = CustomerFactory()
        with clock.posting_at(moment + dt.timedelta(minutes=n)):
            services.grant(customer=customer, amount=100 + n, reason=f"reason {n}", comment=f"comment {n}",
                           actor=StaffUserFactory(role="Support agent"), order=OrderFactory(customer=customer))


def count_queries(client, params, headers) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(HISTORY, params, headers=headers)
    assert response.status_code == 200
    return len(captured), response.content.decode().count('class="customer-link"')


@pytest.mark.parametrize("headers", [{}, HTMX_RESULTS], ids=["page", "partial"])
@pytest.mark.parametrize("params", [{"period": ""}, {"period": "custom", "date_from": "2029-12-01", "customer": "M"},
                                    {"period": "", "sort": "-amount", "kind": "grant"}],
                         ids=["all", "period-and-customer", "sorted-kind"])
def test_history_query_count_does_not_grow_with_the_rows(client, params, headers):
    # given
    login(client, "Store admin")
    post_entries(5)
    client.get(HISTORY, params, headers=headers)  # warm caches that only the first request fills
    # when
    few, few_rows = count_queries(client, params, headers)
    post_entries(55, start=5)
    many, many_rows = count_queries(client, params, headers)
    # then
    assert (few_rows, many_rows) == (5, 50)
    assert few == many
    assert many <= 12


# --------------------------------------------------------------------------- the summary view

SUMMARY = reverse("ledger:history_summary")


@pytest.mark.parametrize("role", ROLES_AND_ANONYMOUS, ids=lambda r: r or "anonymous")
def test_history_summary_opens_for_every_role_and_sends_anonymous_to_login(client, role):
    # when
    response = login(client, role).get(SUMMARY, {"period": "7d"}, headers={"HX-Request": "true"})
    # then
    if role is None:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=/credits/history/summary/")
    else:
        assert response.status_code == 200
        assert 'id="summary"' in response.content.decode()


def test_history_summary_refuses_post(client):
    # given
    login(client, "Store admin")
    # when
    response = client.post(SUMMARY, {"period": "7d"})
    # then
    assert response.status_code == 405


@pytest.mark.parametrize("params", [
    {"period": "custom", "date_from": "2030-02-01", "date_to": "2030-01-01"},
    {"period": "", "amount_min": "abc"},
    {"period": "", "amount_min": "500", "amount_max": "100"},
    {"period": "bogus"},
    {"period": "custom"},
    {"period": "custom", "date_from": "1999-12-31"},
    {"period": "custom", "date_from": "not-a-date"},
    {"period": "", "customer": "x" * 10_000},
    {"period": "", "kind": "bogus"},
    {"period": "", "staff": "abc"},
], ids=["from-after-to", "amount-not-a-number", "min-above-max", "unknown-period", "custom-without-dates",
        "date-before-2000", "date-not-a-date", "customer-10000-chars", "unknown-kind", "staff-not-an-id"])
def test_history_summary_of_a_bad_search_answers_with_no_summary(client, entry_row, params):
    # when
    response = login(client, "Ops").get(SUMMARY, params, headers={"HX-Request": "true"})
    # then: no error page, and no totals for a search the page refuses
    assert response.status_code == 200
    assert 'id="summary"' not in response.content.decode()


def test_history_summary_ignores_an_unknown_sort_order(client, entry_row):
    # given: the summary's totals do not depend on the order of the rows
    login(client, "Ops")
    expected = client.get(SUMMARY, {"period": ""}).content.decode()
    # when
    response = client.get(SUMMARY, {"period": "", "sort": "garbage; DROP TABLE"})
    # then
    assert response.status_code == 200
    body = response.content.decode()
    assert body == expected and 'data-testid="entries">2<' in body


def count_summary_queries(client, params) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(SUMMARY, params, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    return len(captured), re.search(r'data-testid="entries">(\d+)<', body).group(1)


@pytest.mark.parametrize("params", [{"period": ""}, {"period": "custom", "date_from": "2029-12-01", "customer": "M"},
                                    {"period": "custom", "date_from": "2029-12-01"},
                                    {"period": "", "kind": "grant", "amount_min": "1"}],
                         ids=["all", "period-and-customer", "period", "kind-and-amount"])
def test_history_summary_query_count_does_not_grow_with_the_entries(client, params):
    # given
    login(client, "Store admin")
    post_entries(3)
    client.get(SUMMARY, params)  # warm caches that only the first request fills
    # when
    few, few_entries = count_summary_queries(client, params)
    post_entries(40, start=3)
    many, many_entries = count_summary_queries(client, params)
    # then
    assert (few_entries, many_entries) == ("3", "43")
    assert few == many

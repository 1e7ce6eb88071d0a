import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credits_admin.roles import ROLE_NAMES
from crm.models import Order
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

URL = "/customers/orders/"


def _at(day: str, hour: int = 12) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour)))


@pytest.fixture
def shop():
    ada = CustomerFactory(member_id="M-ADA", name="Ada Lovelace", email="ada@example.com")
    grace = CustomerFactory(member_id="M-GRACE", name="Grace Hopper", email="grace@example.com")
    return {
        "old": OrderFactory(external_id="10001", customer=ada, placed_at=_at("2026-03-01")),
        "mid": OrderFactory(external_id="10002", customer=grace, placed_at=_at("2026-03-15"),
                            status=Order.Status.REFUNDED, refunded_amount=10_000),
        "new": OrderFactory(external_id="20003", customer=ada, placed_at=_at("2026-03-31", 23),
                            status=Order.Status.PLACED, paid_at=None, paid_amount=0),
    }


def _ids(response) -> list[str]:
    table = response.context["table"]
    return [row.record.external_id for row in table.page.object_list]


@pytest.fixture
def admin_client(client):
    client.force_login(StaffUserFactory(role="Store admin"))
    return client


def test_order_list_url_name_is_under_customers():
    assert reverse("crm:order_list") == URL


def test_order_list_without_search_shows_every_order_newest_first(admin_client, shop):
    # when
    response = admin_client.get(URL)
    # then
    assert response.status_code == 200
    assert _ids(response) == ["20003", "10002", "10001"]
    assert b'id="results"' in response.content and b'hx-push-url="true"' in response.content


def test_order_list_with_same_placed_at_orders_by_id_newest_first(admin_client):
    # given
    moment = _at("2026-05-05")
    first = OrderFactory(external_id="A1", placed_at=moment)
    second = OrderFactory(external_id="A2", placed_at=moment)
    # when
    response = admin_client.get(URL)
    # then
    assert _ids(response) == [second.external_id, first.external_id]


@pytest.mark.parametrize(("text", "expected"), [
    ("10002", ["10002"]),      # the whole id
    ("1000", ["10002", "10001"]),  # its start
    ("  20003 ", ["20003"]),   # spaces around
    ("99999", []),
])
def test_order_list_search_by_order_id_matches_whole_id_or_start(admin_client, shop, text, expected):
    # when
    response = admin_client.get(URL, {"order": text})
    # then
    assert response.status_code == 200
    assert _ids(response) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("M-ADA", ["20003", "10001"]),         # member ID
    ("grace hopper", ["10002"]),           # name, any case
    ("Lovelace", ["20003", "10001"]),      # part of a name
    ("GRACE@example.com", ["10002"]),      # email, any case
    ("nobody", []),
])
def test_order_list_search_by_customer_matches_member_id_name_or_email(admin_client, shop, text, expected):
    # when
    response = admin_client.get(URL, {"customer": text})
    # then
    assert _ids(response) == expected


def test_order_list_search_by_customer_card_last_digits_finds_their_orders(admin_client, shop):
    # given
    card = shop["mid"].customer.card_number
    # when
    response = admin_client.get(URL, {"customer": card[-6:]})
    # then
    assert _ids(response) == ["10002"]


def test_order_list_filter_by_status_shows_only_that_status(admin_client, shop):
    # when
    response = admin_client.get(URL, {"status": "refunded"})
    # then
    assert _ids(response) == ["10002"]


def test_order_list_date_range_includes_both_whole_days(admin_client, shop):
    # given: one order at the very first and one at the very last minute of the range
    OrderFactory(external_id="EDGE-START", placed_at=_at("2026-03-15", 0))
    OrderFactory(external_id="EDGE-AFTER", placed_at=_at("2026-04-01", 0))
    # when
    response = admin_client.get(URL, {"placed_from": "2026-03-15", "placed_to": "2026-03-31"})
    # then
    assert _ids(response) == ["20003", "10002", "EDGE-START"]


def test_order_list_combines_customer_status_and_dates(admin_client, shop):
    # when
    response = admin_client.get(URL, {"customer": "M-ADA", "status": "paid", "placed_to": "2026-03-10"})
    # then
    assert _ids(response) == ["10001"]


@pytest.mark.parametrize(("params", "message"), [
    ({"placed_from": "2026-02-30"}, "Enter a valid date."),
    ({"placed_from": "yesterday"}, "Enter a valid date."),
    ({"placed_from": "2026-03-31", "placed_to": "2026-03-01"}, "The end date must be on or after the start date."),
    ({"placed_to": "1899-01-01"}, "Pick a date between 2000 and 2100."),
    ({"placed_from": "9999-12-31"}, "Pick a date between 2000 and 2100."),
    ({"status": "lost-in-space"}, "Select a valid choice."),
    ({"order": "x" * 10_000}, "Ensure this value has at most 64 characters"),
    ({"customer": "y" * 10_000}, "Ensure this value has at most 200 characters"),
])
def test_order_list_with_bad_search_values_shows_the_error_and_no_rows(admin_client, shop, params, message):
    # when
    response = admin_client.get(URL, params)
    # then
    assert response.status_code == 200
    assert message in response.content.decode()
    assert _ids(response) == []


@pytest.mark.parametrize("params", [
    {"page": "abc"}, {"page": "0"}, {"page": "-1"}, {"page": "99999"}, {"page": "1" * 400}, {"page": "1e3"},
    {"per_page": "100000000"}, {"per_page": "0"}, {"per_page": "-5"},
    {"sort": "evil"}, {"sort": "-customer__password"}, {"sort": "items_total"}, {"sort": "-refunded_amount"},
    {"order": "\x00"}, {"customer": "%' OR 1=1 --"}, {"order": "😀"},
])
def test_order_list_with_odd_paging_sorting_or_text_never_fails(admin_client, shop, params):
    # when
    response = admin_client.get(URL, params)
    # then
    assert response.status_code == 200


def test_order_list_sort_by_items_total_orders_by_amount(admin_client):
    # given
    OrderFactory(external_id="SMALL", items_total=100)
    OrderFactory(external_id="BIG", items_total=9_000)
    # when
    response = admin_client.get(URL, {"sort": "-items_total"})
    # then
    assert _ids(response) == ["BIG", "SMALL"]


def test_order_list_row_links_to_detail_and_opens_customer_popup(admin_client, shop):
    # when
    response = admin_client.get(URL, {"order": "10002"})
    # then
    html = response.content.decode()
    order = shop["mid"]
    assert f'href="{reverse("crm:order_detail", args=[order.pk])}"' in html
    popup = reverse("crm:customer_detail", args=[order.customer.pk])
    assert f'hx-get="{popup}" hx-target="#modal"' in html
    assert "Grace Hopper" in html
    assert "$100.00" in html          # items total, paid and refunded, in the order's currency
    assert 'class="badge order-status-refunded"' in html


def test_order_list_formats_amounts_in_the_order_currency(admin_client):
    # given
    OrderFactory(external_id="KR-1", currency="KRW", items_total=15_000, paid_amount=15_000)
    # when
    response = admin_client.get(URL)
    # then
    assert "₩15,000" in response.content.decode()


def test_order_list_htmx_search_renders_only_the_results(admin_client, shop):
    # when
    response = admin_client.get(URL, {"order": "10001"}, headers={"HX-Request": "true", "HX-Target": "results"})
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="results"')
    assert "<html" not in html and "<form" not in html
    assert 'hx-get="/customers/orders/?order=10001"' in html   # re-fetches the same search


def test_order_list_query_count_does_not_grow_with_rows(admin_client):
    # given
    OrderFactory.create_batch(2)
    admin_client.get(URL)  # warm the per-process caches (store currency, session)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(URL)
    OrderFactory.create_batch(20)
    # when
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(URL)
    # then
    assert len(_ids(response)) == 22
    assert len(many) == len(few)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_order_list_for_every_role_is_allowed(client, role):
    # given
    client.force_login(StaffUserFactory(role=role))
    # when
    response = client.get(URL)
    # then
    assert response.status_code == 200


def test_order_list_for_staff_without_view_order_is_forbidden(client):
    # given
    client.force_login(StaffUserFactory())
    # when
    response = client.get(URL)
    # then
    assert response.status_code == 403


def test_order_list_for_staff_with_only_view_order_is_allowed(client):
    # given
    user = StaffUserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_order", content_type__app_label="crm"))
    client.force_login(user)
    # when
    response = client.get(URL)
    # then
    assert response.status_code == 200


def test_order_list_when_anonymous_redirects_to_login(client):
    # when
    response = client.get(URL)
    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_order_list_refuses_post(admin_client):
    # when
    response = admin_client.post(URL)
    # then
    assert response.status_code == 405


def test_order_list_per_page_from_the_url_is_capped(admin_client):
    # given
    OrderFactory.create_batch(101)
    # when
    response = admin_client.get(URL, {"per_page": "100000"})
    # then
    assert len(_ids(response)) == 100


def test_order_list_shows_25_orders_a_page_with_a_link_to_the_next(admin_client):
    # given
    OrderFactory.create_batch(26)
    # when
    first = admin_client.get(URL)
    second = admin_client.get(URL, {"page": "2"})
    # then
    assert len(_ids(first)) == 25 and len(_ids(second)) == 1
    assert "?page=2" in first.content.decode()

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse

from credits_admin.roles import ROLE_NAMES
from crm import orders_views
from crm.models import OrderNote
from ledger import clock
from ledger import services as ledger_services
from tests.factories import OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

# Roles that may post credits (ledger.add_ledgerentry) see the refund button.
CAN_POST_CREDITS = {"Store admin": True, "Support admin": True, "Support agent": True, "Ops": False}


@pytest.fixture
def order():
    return OrderFactory(external_id="SO-5001", items_total=12_000, paid_amount=12_000, refunded_amount=3_000,
                        status="partially_refunded")


@pytest.fixture
def admin_client(client):
    client.force_login(StaffUserFactory(role="Store admin"))
    return client


def _url(order):
    return reverse("crm:order_detail", args=[order.pk])


def _activity(order, *, entries: int, notes: int, author=None):
    """`entries` grants linked to the order and `notes` notes, each a second apart."""
    start = clock.now() - dt.timedelta(hours=1)
    for i in range(entries):
        with clock.posting_at(start + dt.timedelta(seconds=i)):
            ledger_services.grant(customer=order.customer, amount=100 + i, reason=f"Reward {i}", order=order,
                                  source="rule")
    for i in range(notes):
        OrderNote.objects.create(order=order, author=author, body=f"Note {i}")


def test_order_detail_shows_the_order_facts_and_its_customer(admin_client, order):
    # when
    response = admin_client.get(_url(order))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Order SO-5001" in html
    assert "Partially refunded" in html
    assert 'data-testid="items-total">$120.00<' in html
    assert 'data-testid="refunded-amount">$30.00<' in html
    popup = reverse("crm:customer_detail", args=[order.customer.pk])
    assert f'hx-get="{popup}" hx-target="#modal"' in html
    assert order.customer.name in html and order.customer.member_id in html


def test_order_detail_lists_the_order_entries_with_kind_reason_amount_and_uncollected(admin_client, order):
    # given: the order earned 1000, the customer spent 900, a full refund claws back 1000
    customer = order.customer
    ledger_services.grant(customer=customer, amount=1_000, reason="Paid order reward", order=order, source="rule")
    ledger_services.debit(customer=customer, amount=900, kind="redeem", reason="Checkout", source="api")
    ledger_services.clawback(customer=customer, amount=1_000, reason="Order refunded", order=order)
    # when
    response = admin_client.get(_url(order))
    # then
    html = response.content.decode()
    entries = response.context["entries"]
    assert [e.kind for e in entries] == ["clawback", "grant"]   # newest first; the redeem is not the order's
    assert "Paid order reward" in html and "Order refunded" in html and "Checkout" not in html
    assert "+$10.00" in html and "−$1.00" in html                # granted, then took back what was left
    assert '<span class="warn" title="The balance did not allow taking this back">$9.00</span>' in html
    assert 'data-testid="uncollected-total">$9.00<' in html
    assert 'data-testid="credited">$10.00<' in html and 'data-testid="debited">$1.00<' in html


def test_order_detail_shows_notes_newest_first_with_their_author(admin_client, order):
    # given
    author = StaffUserFactory(username="carol")
    first = OrderNote.objects.create(order=order, author=author, body="Refunded with store credits.")
    second = OrderNote.objects.create(order=order, author=None, body="Customer asked again.")
    # when
    response = admin_client.get(_url(order))
    # then
    html = response.content.decode()
    assert [n.pk for n in response.context["notes"]] == [second.pk, first.pk]
    assert html.index("Customer asked again.") < html.index("Refunded with store credits.")
    assert "carol" in html and "System" in html


def test_order_detail_without_entries_or_notes_says_so(admin_client, order):
    # when
    response = admin_client.get(_url(order))
    # then
    html = response.content.decode()
    assert 'data-testid="no-entries"' in html
    assert 'data-testid="no-notes"' in html


def test_order_detail_activity_refetches_itself_on_credit_and_order_events(admin_client, order):
    # when
    response = admin_client.get(_url(order))
    # then
    html = response.content.decode()
    assert (f'<div id="order-activity" hx-get="{_url(order)}" '
            'hx-trigger="creditsChanged from:body, orderChanged from:body" hx-swap="outerHTML"') in html


def test_order_detail_htmx_refetch_renders_only_the_activity(admin_client, order):
    # given
    _activity(order, entries=1, notes=1)
    # when
    response = admin_client.get(_url(order), headers={"HX-Request": "true", "HX-Target": "order-activity"})
    # then
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="order-activity"')
    assert "Reward 0" in html and "Note 0" in html
    assert "<html" not in html and "Refund with store credits" not in html


def test_order_detail_query_count_does_not_grow_with_entries_and_notes(admin_client, order):
    # given
    author = StaffUserFactory()
    _activity(order, entries=1, notes=1, author=author)
    admin_client.get(_url(order))  # warm the per-process caches (store currency, session)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(_url(order))
    _activity(order, entries=15, notes=15, author=author)
    # when
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(_url(order))
    # then
    assert len(response.context["entries"]) == 16 and len(response.context["notes"]) == 16
    assert len(many) == len(few)


def test_order_detail_of_unknown_order_is_404(admin_client):
    # when
    response = admin_client.get(reverse("crm:order_detail", args=[987654]))
    # then
    assert response.status_code == 404


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_order_detail_refund_button_follows_the_posting_permission(client, order, role, monkeypatch):
    # given: the refund pop-up's URL exists (stood in for by a URL that takes an order pk)
    monkeypatch.setattr(orders_views, "REFUND_WITH_CREDITS", "crm:order_detail")
    client.force_login(StaffUserFactory(role=role))
    # when
    response = client.get(_url(order))
    # then
    assert response.status_code == 200
    html = response.content.decode()
    shown = 'data-testid="refund-with-credits"' in html
    assert shown is CAN_POST_CREDITS[role]
    if shown:
        assert f'hx-get="{_url(order)}" hx-target="#modal" hx-swap="innerHTML"' in html


def test_order_detail_refund_button_is_hidden_while_its_url_does_not_exist(admin_client, order, monkeypatch):
    # given
    monkeypatch.setattr(orders_views, "REFUND_WITH_CREDITS", "refunds:no_such_popup")
    # when
    response = admin_client.get(_url(order))
    # then
    assert response.context["refund_url"] is None
    assert "Refund with store credits" not in response.content.decode()


def test_order_detail_refund_button_opens_the_refunds_popup_when_it_exists(admin_client, order):
    # given
    try:
        expected = reverse("refunds:order_refund_with_credits", args=[order.pk])
    except NoReverseMatch:
        pytest.skip("refunds:order_refund_with_credits is not built yet (the refunds app provides it)")
    # when
    response = admin_client.get(_url(order))
    # then
    assert f'href="{expected}" hx-get="{expected}" hx-target="#modal"' in response.content.decode()


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_order_detail_for_every_role_is_allowed(client, order, role):
    # given
    client.force_login(StaffUserFactory(role=role))
    # when
    response = client.get(_url(order))
    # then
    assert response.status_code == 200


def test_order_detail_for_staff_without_a_role_is_forbidden(client, order):
    # given
    client.force_login(StaffUserFactory())
    # when
    response = client.get(_url(order))
    # then
    assert response.status_code == 403


def test_order_detail_when_anonymous_redirects_to_login(client, order):
    # when
    response = client.get(_url(order))
    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_order_detail_links_to_the_credits_history_of_the_order(admin_client, order):
    # when
    response = admin_client.get(_url(order))
    # then
    assert f'{reverse("ledger:history")}?order=SO-5001&amp;period=' in response.content.decode()


@pytest.mark.parametrize(("codenames", "shown"), [
    (["crm.view_order"], False),
    (["crm.view_order", "ledger.add_ledgerentry"], False),
    (["crm.view_order", "refunds.add_storecreditrefund"], False),
    (["crm.view_order", "ledger.add_ledgerentry", "refunds.add_storecreditrefund"], True),
])
def test_order_detail_refund_button_needs_both_posting_and_refund_permissions(client, order, codenames, shown,
                                                                             monkeypatch):
    # given
    monkeypatch.setattr(orders_views, "REFUND_WITH_CREDITS", "crm:order_detail")
    user = StaffUserFactory()
    for name in codenames:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client.force_login(user)
    # when
    response = client.get(_url(order))
    # then
    assert ('data-testid="refund-with-credits"' in response.content.decode()) is shown

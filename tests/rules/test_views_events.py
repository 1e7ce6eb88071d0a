"""The storefront events log: who may see it, and what it shows (grants, uncollected)."""

import pytest
from django.urls import reverse

from credits_admin.roles import ROLE_NAMES
from crm.models import Customer
from ledger import services as ledger_services
from rules.models import StorefrontEvent

from .conftest import paid, refunded, registered

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def refund_with_uncollected(send, make_rule):
    make_rule("paid_order", amount=1000)
    send(registered("M1"))
    send(paid("O1", "M1", 5000))
    ledger_services.debit(customer=Customer.objects.get(), amount=900, kind="redeem", reason="Checkout", source="api")
    body = refunded("O1", 5000)
    send(body)
    return StorefrontEvent.objects.get(event_id=body["id"])


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_event_pages_open_for_store_admin_and_ops_only(client, staff, refund_with_uncollected, role):
    # given
    client.force_login(staff(role))
    # when
    listing = client.get(reverse("rules:event_list"))
    detail = client.get(reverse("rules:event_detail", args=[refund_with_uncollected.pk]), headers=HX)
    # then
    expected = 200 if role in ("Store admin", "Ops") else 403
    assert (listing.status_code, detail.status_code) == (expected, expected)


def test_event_list_shows_each_event_with_granted_and_uncollected(client, staff, refund_with_uncollected,
                                                                  django_assert_max_num_queries):
    # given
    client.force_login(staff("Ops"))
    # when
    with django_assert_max_num_queries(12):
        response = client.get(reverse("rules:event_list"))
    # then
    html = response.content.decode()
    for type_ in ("customer.registered", "order.paid", "order.refunded"):
        assert f"<code>{type_}</code>" in html
    assert "$10.00" in html  # granted
    assert '<span class="rules-uncollected">$9.00</span>' in html


def test_event_list_searches_by_order_and_filters_by_type(client, staff, refund_with_uncollected):
    # given
    client.force_login(staff("Store admin"))
    # when
    by_order = client.get(reverse("rules:event_list"), {"q": "O1"}, headers={**HX, "HX-Target": "events"})
    by_type = client.get(reverse("rules:event_list"), {"type": "customer.registered"})
    # then
    assert "<html" not in by_order.content.decode()
    assert by_order.content.decode().count("<code>order.") == 2
    assert by_type.content.decode().count("<code>customer.registered</code>") == 1
    assert "<code>order.paid</code>" not in by_type.content.decode()


def test_event_list_with_a_bad_page_link_shows_the_first_page(client, staff, refund_with_uncollected):
    # given
    client.force_login(staff("Store admin"))
    # when
    response = client.get(reverse("rules:event_list"), {"after": "garbage!!"})
    # then
    assert response.status_code == 200
    assert "This page link is no longer valid" in response.content.decode()


def test_event_detail_shows_the_reclaim_and_its_uncollected_part(client, staff, refund_with_uncollected):
    # given
    client.force_login(staff("Store admin"))
    # when
    response = client.get(reverse("rules:event_detail", args=[refund_with_uncollected.pk]), headers=HX)
    # then
    html = response.content.decode()
    assert "<html" not in html
    assert "Pro-rata reclaim" in html
    assert '<span class="rules-uncollected">$9.00</span>' in html
    assert "could not be taken back" in html
    assert "−$1.00" in html  # the clawback entry (what the balance allowed)


def test_event_detail_of_a_grant_shows_the_rule_version(client, staff, send, make_rule):
    # given
    make_rule("registration", amount=250)
    body = registered("M1")
    send(body)
    client.force_login(staff("Store admin"))
    event = StorefrontEvent.objects.get(event_id=body["id"])
    # when
    response = client.get(reverse("rules:event_detail", args=[event.pk]))
    # then
    html = response.content.decode()
    assert "<html" in html  # full page without htmx
    assert "Registration reward" in html and "rule version 1" in html and "+$2.50" in html

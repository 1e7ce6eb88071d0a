import datetime as dt

import pytest
import time_machine
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from credits_admin.member_views import make_panel_token
from credits_admin.models import StoreSettings
from crm.models import Customer
from ledger import services as ledger_services
from tests.factories import CustomerFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shopper(db):
    customer = CustomerFactory(name="Ada Lovelace", member_id="M-ADA")
    ledger_services.grant(customer=customer, amount=4_000, reason="Welcome")
    ledger_services.grant(customer=customer, amount=1_250, reason="Promo",
                          expires_at=timezone.now() + dt.timedelta(days=5))
    return customer


def _url(member_id: str) -> str:
    return reverse("member_panel", args=[make_panel_token(member_id)])


def _card_digits(html: str) -> str:
    start = html.index('data-testid="panel-card"')
    chunk = html[start:html.index("</output>", start)]
    return "".join(ch for ch in chunk.split(">", 1)[1] if ch.isdigit())


def test_member_panel_shows_store_card_number_balance_and_what_expires_soon(client, shopper):
    # given
    StoreSettings.objects.update_or_create(pk=1, defaults={"store_name": "Lovelace Goods"})
    # when
    response = client.get(_url(shopper.member_id))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Lovelace Goods" in html and "Hello, Ada Lovelace" in html
    assert _card_digits(html) == shopper.card_number           # the whole number: it is their own
    assert f'data-copy-text="{shopper.card_number}"' in html   # the copy button copies the digits
    assert 'data-testid="panel-available">$52.50<' in html
    soon = timezone.localdate(timezone.now() + dt.timedelta(days=5))
    assert f'<time datetime="{soon:%Y-%m-%d}">' in html and "$12.50" in html
    assert "Gift card / Discount code" in html


def test_member_panel_is_public_and_has_no_staff_navigation(client, shopper):
    # when: an anonymous visitor (the customer on the storefront)
    response = client.get(_url(shopper.member_id))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "mainnav" not in html and "Log out" not in html and 'id="modal"' not in html


def test_member_panel_while_the_program_is_off_says_credits_are_not_offered_and_hides_the_balance(client, shopper):
    # given
    StoreSettings.objects.update_or_create(pk=1, defaults={"credits_enabled": False})
    # when
    response = client.get(_url(shopper.member_id))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Store credits are currently not offered." in html
    assert "panel-available" not in html and "$52.50" not in html and "$12.50" not in html
    assert _card_digits(html) == shopper.card_number   # still there: unexpired credits can be redeemed


def test_member_panel_without_credits_shows_zero_and_nothing_expiring(client):
    # given
    customer = CustomerFactory()
    # when
    response = client.get(_url(customer.member_id))
    # then
    html = response.content.decode()
    assert 'data-testid="panel-available">$0.00<' in html and "panel-expiring" not in html


def test_member_panel_sends_no_cache_no_referrer_and_refuses_frames(client, shopper):
    # when
    response = client.get(_url(shopper.member_id))
    # then
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Frame-Options"] == "DENY"


def test_member_panel_may_be_framed_by_the_listed_storefront_origins(client, shopper, settings):
    # given
    settings.MEMBER_PANEL_FRAME_ANCESTORS = ["https://shop.example"]
    # when
    response = client.get(_url(shopper.member_id))
    # then
    assert "X-Frame-Options" not in response
    assert response["Content-Security-Policy"] == "frame-ancestors https://shop.example"


def test_member_panel_link_still_works_just_before_an_hour(client, shopper):
    # given
    url = _url(shopper.member_id)
    # when
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=59), tick=False):
        response = client.get(url)
    # then
    assert response.status_code == 200


def test_member_panel_with_an_expired_link_is_403_with_a_clear_message(client, shopper):
    # given
    url = _url(shopper.member_id)
    # when
    with time_machine.travel(timezone.now() + dt.timedelta(hours=1, seconds=2), tick=False):
        response = client.get(url)
    # then
    html = response.content.decode()
    assert response.status_code == 403
    assert "This link has expired." in html
    assert shopper.card_number not in html and "$52.50" not in html


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),   # signature changed
    lambda t: "e30" + t[3:],                             # payload changed
    lambda t: t + "x",
    lambda t: "garbage",
    lambda t: "a:b:c",
    lambda t: "x" * 600,
])
def test_member_panel_with_a_tampered_link_is_403(client, shopper, mangle):
    # given
    token = mangle(make_panel_token(shopper.member_id))
    # when
    response = client.get(reverse("member_panel", args=[token]))
    # then
    assert response.status_code == 403
    assert "This link is not valid." in response.content.decode()
    assert shopper.card_number not in response.content.decode()


def test_member_panel_refuses_a_token_signed_for_something_else(client, shopper):
    # given: a valid signature, but not made for the panel (another salt)
    token = signing.TimestampSigner(salt="some.other.feature").sign_object({"m": shopper.member_id})
    # when
    response = client.get(reverse("member_panel", args=[token]))
    # then
    assert response.status_code == 403


def test_member_panel_for_a_deleted_customer_is_403(client, shopper):
    # given
    url = _url(shopper.member_id)
    Customer.objects.filter(pk=shopper.pk).update(status=Customer.Status.DELETED)
    # when
    response = client.get(url)
    # then
    assert response.status_code == 403
    assert "This membership is no longer active." in response.content.decode()


def test_member_panel_shows_the_same_for_a_logged_in_staff_user(client, shopper):
    # given
    client.force_login(StaffUserFactory(role="Ops"))
    # when
    response = client.get(_url(shopper.member_id))
    # then
    assert response.status_code == 200 and "mainnav" not in response.content.decode()


def test_member_panel_refuses_post(client, shopper):
    # when
    response = client.post(_url(shopper.member_id))
    # then
    assert response.status_code == 405

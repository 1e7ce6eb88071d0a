"""Every role on every refunds URL: support staff and Store admin process requests, Ops only
views them (403 on every action), anonymous users go to the login page."""

import pytest
from django.urls import reverse

from credits_admin.roles import ROLE_NAMES
from refunds.models import RefundRequest
from tests.factories import OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

VIEWERS = set(ROLE_NAMES)
PROCESSORS = {"Store admin", "Support admin", "Support agent"}

# (url name, method, who may, needs a request / an order)
URLS = [
    ("refunds:request_list", "get", VIEWERS, None),
    ("refunds:request_detail", "get", VIEWERS, "request"),
    ("refunds:request_create", "get", PROCESSORS, None),
    ("refunds:request_create", "post", PROCESSORS, None),
    ("refunds:request_pend", "post", PROCESSORS, "request"),
    ("refunds:request_refund", "post", PROCESSORS, "request"),
    ("refunds:request_undo", "post", PROCESSORS, "request"),
    ("refunds:request_reject", "get", PROCESSORS, "request"),
    ("refunds:request_reject", "post", PROCESSORS, "request"),
    ("refunds:request_email", "get", PROCESSORS, "request"),
    ("refunds:request_email", "post", PROCESSORS, "request"),
    ("refunds:order_refund_with_credits", "get", PROCESSORS, "order"),
    ("refunds:order_refund_with_credits", "post", PROCESSORS, "order"),
]


def _url(name, needs, funded_customer, make_request):
    if needs == "request":
        return reverse(name, args=[make_request(funded_customer, 100).pk])
    if needs == "order":
        return reverse(name, args=[OrderFactory().pk])
    return reverse(name)


@pytest.mark.parametrize("role", ROLE_NAMES)
@pytest.mark.parametrize(("name", "method", "allowed", "needs"), URLS, ids=[f"{u[0]}-{u[1]}" for u in URLS])
def test_role_on_refunds_url(client, role, name, method, allowed, needs, funded_customer, make_request):
    # given
    client.force_login(StaffUserFactory(role=role))
    url = _url(name, needs, funded_customer, make_request)
    before = list(RefundRequest.objects.values_list("status", "version"))
    # when
    response = getattr(client, method)(url, headers={"HX-Request": "true", "HX-Target": "refund-panel"})
    # then
    if role in allowed:
        assert response.status_code in (200, 204), response.status_code
    else:
        assert response.status_code == 403
        assert list(RefundRequest.objects.values_list("status", "version")) == before


@pytest.mark.parametrize(("name", "method", "allowed", "needs"), URLS, ids=[f"{u[0]}-{u[1]}" for u in URLS])
def test_anonymous_is_sent_to_login(client, name, method, allowed, needs, funded_customer, make_request):
    # given
    url = _url(name, needs, funded_customer, make_request)
    # when
    response = getattr(client, method)(url)
    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_list_shows_action_buttons_only_to_roles_that_may_use_them(client, role, funded_customer, make_request):
    # given
    req = make_request(funded_customer, 100)
    client.force_login(StaffUserFactory(role=role))
    # when
    html = client.get(reverse("refunds:request_list")).content.decode()
    # then
    processing = [reverse("refunds:request_refund", args=[req.pk]), reverse("refunds:request_reject", args=[req.pk]),
                  reverse("refunds:request_pend", args=[req.pk]), reverse("refunds:request_email", args=[req.pk]),
                  reverse("refunds:request_create")]
    shown = [url for url in processing if url in html]
    assert shown == (processing if role in PROCESSORS else [])
    assert reverse("refunds:request_detail", args=[req.pk]) in html  # everyone may look

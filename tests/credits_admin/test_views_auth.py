import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import resolve, reverse

from credits_admin.roles import ROLES
from ledger import services as ledger_services
from tests.factories import CustomerFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # StaffUserFactory's


def test_dashboard_when_anonymous_redirects_to_login(client):
    # when
    response = client.get(reverse("dashboard"))
    # then
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/"


def test_login_page_renders_for_anonymous(client):
    # when
    response = client.get(reverse("login"))
    # then
    assert response.status_code == 200
    assert b"Log in" in response.content
    assert b'name="csrfmiddlewaretoken"' in response.content


def test_login_with_good_credentials_redirects_to_dashboard(client):
    # given
    user = StaffUserFactory(role="Ops")
    # when
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert client.session[SESSION_KEY] == str(user.pk)


def test_login_with_next_goes_back_to_the_requested_page(client):
    # given
    user = StaffUserFactory(role="Ops")
    # when
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD,
                                               "next": reverse("password_change")})
    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("password_change")


def test_login_with_bad_password_shows_a_clear_error(client):
    # given
    user = StaffUserFactory(role="Ops")
    # when
    response = client.post(reverse("login"), {"username": user.username, "password": "wrong"})
    # then
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert SESSION_KEY not in client.session


def test_login_with_empty_fields_shows_field_errors(client):
    # when
    response = client.post(reverse("login"), {"username": "", "password": ""})
    # then
    assert response.status_code == 200
    assert response.content.decode().count("This field is required.") == 2


def test_logout_by_post_ends_the_session(client):
    # given
    client.force_login(StaffUserFactory(role="Ops"))
    # when
    response = client.post(reverse("logout"))
    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert SESSION_KEY not in client.session
    assert client.get(reverse("dashboard")).status_code == 302


def test_logout_by_get_is_refused(client):
    # given
    client.force_login(StaffUserFactory(role="Ops"))
    # when
    response = client.get(reverse("logout"))
    # then
    assert response.status_code == 405
    assert SESSION_KEY in client.session


@pytest.mark.parametrize("role", ROLES)
def test_dashboard_for_every_role_renders_with_nav_and_password_link(client, role):
    # given
    client.force_login(StaffUserFactory(role=role))
    # when
    response = client.get(reverse("dashboard"))
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert f"· {role}</span>" in html
    assert 'aria-current="page">Dashboard</a>' in html
    assert f'hx-get="{reverse("password_change")}" hx-target="#modal"' in html


def test_dashboard_post_is_not_allowed(client):
    # given
    client.force_login(StaffUserFactory(role="Ops"))
    # when
    response = client.post(reverse("dashboard"))
    # then
    assert response.status_code == 405


def test_dashboard_shows_latest_entries_and_totals(client):
    # given
    customer = CustomerFactory(name="Ada Lovelace")
    ledger_services.grant(customer=customer, amount=2500, reason="welcome bonus")
    ledger_services.debit(customer=customer, amount=500, kind="deduct", reason="goodwill undo")
    client.force_login(StaffUserFactory(role="Support agent"))
    # when
    response = client.get(reverse("dashboard"))
    # then
    html = response.content.decode()
    assert "Ada Lovelace" in html
    assert "welcome bonus" in html and "goodwill undo" in html
    assert "$20.00" in html  # outstanding


def _seed_entries(n):
    customers = CustomerFactory.create_batch(3)
    for i in range(n):
        ledger_services.grant(customer=customers[i % 3], amount=100 + i, reason=f"seed {i}")


def test_dashboard_query_count_does_not_grow_with_entries(client, django_assert_max_num_queries):
    # given: count the queries with 3 entries ...
    client.force_login(StaffUserFactory(role="Ops"))
    _seed_entries(3)
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("dashboard")).status_code == 200
    # when: ... and with 30 (the table shows the latest 10, each with customer and staff)
    _seed_entries(27)
    # then
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    assert response.content.decode().count("<tr>") == 11  # header + 10 latest


def test_healthz_is_public_and_reports_ok(client):
    # when
    response = client.get(reverse("healthz"))
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_htmx_post_passes_csrf_with_the_header_from_body_hx_headers():
    # given: a client that enforces CSRF like a browser, signed in through the login form
    user = StaffUserFactory(role="Ops")
    csrf_client = Client(enforce_csrf_checks=True)
    login_page = csrf_client.get(reverse("login")).content.decode()
    form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page)[1]
    csrf_client.post(reverse("login"), {"username": user.username, "password": PASSWORD,
                                        "csrfmiddlewaretoken": form_token})
    page = csrf_client.get(reverse("dashboard")).content.decode()
    header_token = re.search(r"""hx-headers='\{"X-CSRFToken": "([^"]+)"\}'""", page)[1]
    url = reverse("password_change")
    data = {"old_password": "wrong", "new_password1": "x", "new_password2": "y"}
    # when: the htmx POST carries the token only in the header, as htmx sends it
    with_header = csrf_client.post(url, data, headers={"HX-Request": "true", "X-CSRFToken": header_token})
    without = csrf_client.post(url, data, headers={"HX-Request": "true"})
    # then
    assert with_header.status_code == 200  # reached the view: the form's errors come back
    assert "Your old password was entered incorrectly" in with_header.content.decode()
    assert without.status_code == 403


@pytest.mark.parametrize("role", ROLES)
def test_nav_links_only_to_pages_that_exist_and_the_role_may_open(client, role):
    # given
    user = StaffUserFactory(role=role)
    client.force_login(user)
    # when
    html = client.get(reverse("dashboard")).content.decode()
    # then
    nav = html[html.index('<nav class="mainnav"'):html.index("</nav>")]
    hrefs = re.findall(r'href="([^"]+)"', nav)
    assert hrefs[0] == reverse("dashboard")
    for href in hrefs:
        resolve(href)  # raises Resolver404 for a link to a page that does not exist
    if not user.has_perm("crm.view_customer"):
        assert "Customers" not in nav


def test_nav_is_empty_for_user_without_role(client):
    # given
    client.force_login(StaffUserFactory())
    # when
    html = client.get(reverse("password_change")).content.decode()
    # then
    nav = html[html.index('<nav class="mainnav"'):html.index("</nav>")]
    assert "href=" not in nav

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from ledger import services as ledger_services
from tests.e2e.support import PASSWORD, log_in
from tests.factories import CustomerFactory, StaffUserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "Brand-new-passphrase-42"


def _seed_dashboard():
    now = timezone.now()
    ada = CustomerFactory(name="Ada Lovelace")
    grace = CustomerFactory(name="Grace Hopper")
    alan = CustomerFactory(name="Alan Turing")
    ledger_services.grant(customer=ada, amount=5_000, reason="Welcome bonus")
    ledger_services.grant(customer=grace, amount=2_500, reason="Review reward", expires_at=now + dt.timedelta(days=10))
    ledger_services.grant(customer=alan, amount=1_200, reason="Birthday credits", expires_at=now + dt.timedelta(days=90))
    ledger_services.debit(customer=ada, amount=1_999, kind="redeem", reason="Checkout", source="api")
    ledger_services.debit(customer=grace, amount=500, kind="deduct", reason="Goodwill correction")


def test_login_dashboard_and_change_password_popup(page, live_server, artifacts):
    # given
    user = StaffUserFactory(username="e2e.admin", role="Store admin")
    _seed_dashboard()

    # when: the login page
    page.goto("/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/")
    expect(page.get_by_label("Username")).to_be_focused()
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    # then: a clear error, still on the login page
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    page.screenshot(path=artifacts / "login.png")

    # when: logging in properly
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # then: the dashboard with the seeded entries
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("row")).to_have_count(6)  # header + 5 entries
    expect(page.get_by_text("Ada Lovelace")).to_have_count(2)
    page.screenshot(path=artifacts / "dashboard.png", full_page=True)

    # when: opening the pop-up from the top bar
    opener = page.get_by_role("link", name="Change password")
    dialog = page.locator("dialog#modal")
    opener.click()
    # then: a modal dialog, focus on the first field
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("open", "")
    expect(page.get_by_role("dialog", name="Change password")).to_be_visible()
    expect(page.get_by_label("Old password")).to_be_focused()
    assert page.evaluate("document.querySelector('#modal').matches(':modal')")
    page.screenshot(path=artifacts / "password-popup.png")

    # when: Escape
    page.keyboard.press("Escape")
    # then: closed, emptied, focus back on the opener
    expect(dialog).to_be_hidden()
    expect(dialog).to_be_empty()
    expect(opener).to_be_focused()

    # when: reopening and giving a wrong old password
    opener.click()
    expect(page.get_by_label("Old password")).to_be_focused()
    page.get_by_label("Old password").fill("wrong-old-password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    dialog.get_by_role("button", name="Change password").click()
    # then: the error inside the still-open dialog, focus on the invalid field
    expect(dialog.get_by_text("Your old password was entered incorrectly")).to_be_visible()
    expect(dialog).to_have_attribute("open", "")
    expect(page.get_by_label("Old password")).to_be_focused()
    page.screenshot(path=artifacts / "password-popup-error.png")

    # when: submitting correctly
    page.get_by_label("Old password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    dialog.get_by_role("button", name="Change password").click()
    # then: the dialog closes, a toast confirms, the user stays signed in
    expect(dialog).to_be_hidden()
    expect(dialog).to_be_empty()
    expect(opener).to_be_focused()
    expect(page.locator("#toasts")).to_contain_text("Your password was changed.")
    page.screenshot(path=artifacts / "password-changed.png")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    page.reload()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_popup_closes_with_cancel_and_close_buttons(page):
    # given
    log_in(page, StaffUserFactory(role="Ops"))
    opener = page.get_by_role("link", name="Change password")
    dialog = page.locator("dialog#modal")
    for button_name in ("Cancel", "Close"):
        # when
        opener.click()
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name=button_name, exact=True).click()
        # then
        expect(dialog).to_be_hidden()
        expect(dialog).to_be_empty()
        expect(opener).to_be_focused()


def test_popup_closes_on_a_backdrop_click_but_not_on_a_click_inside(page):
    # given
    log_in(page, StaffUserFactory(role="Ops"))
    opener = page.get_by_role("link", name="Change password")
    dialog = page.locator("dialog#modal")
    opener.click()
    expect(dialog).to_be_visible()
    # when: a click inside the dialog, off any control
    dialog.get_by_text("Signed in as").click()
    # then
    expect(dialog).to_be_visible()
    # when: a click on the backdrop (top-left corner of the page)
    page.mouse.click(5, 300)
    # then
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()


def test_popup_after_the_session_ended_shows_the_login_page(page):
    # given: signed in, then the session cookie is gone (expired, logged out elsewhere)
    log_in(page, StaffUserFactory(role="Ops"))
    page.context.clear_cookies()
    # when
    page.get_by_role("link", name="Change password").click()
    # then: the login page as a page, not nested in the dialog; it leads back to the pop-up's page
    expect(page).to_have_url(re.compile(r"/login/\?next=/account/password/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("dialog#modal")).to_be_hidden()


def test_popup_link_without_htmx_opens_the_full_page(page):
    # given
    log_in(page, StaffUserFactory(role="Ops"))
    # when: opened in its own tab (no hx-request), e.g. by following the href
    page.goto("/account/password/")
    # then
    expect(page.get_by_role("heading", name="Change password")).to_be_visible()
    expect(page.locator("dialog#modal")).to_be_hidden()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_htmx_post_passes_csrf_through_the_body_hx_headers(page):
    # given
    log_in(page, StaffUserFactory(role="Ops"))
    # when: an htmx POST whose body has no csrfmiddlewaretoken, only <body hx-headers>'s header
    with page.expect_response("**/account/password/") as response_info:
        page.evaluate("""htmx.ajax("POST", "/account/password/", {source: document.body, target: "#modal",
            swap: "innerHTML", values: {old_password: "wrong", new_password1: "x", new_password2: "x"}})""")
    # then: CSRF passed (200, the view's own error), the error form opened in the dialog
    response = response_info.value
    assert response.status == 200
    assert response.request.headers["x-csrftoken"]
    assert "csrfmiddlewaretoken" not in (response.request.post_data or "")
    expect(page.locator("dialog#modal")).to_contain_text("Your old password was entered incorrectly")

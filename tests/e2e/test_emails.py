"""The Emails pages in a real browser: edit a template with its live preview, save it, and
see the email it produces in the Email log."""

import pytest
from playwright.sync_api import expect

from ledger import services as ledger_services
from notifications.models import EmailTemplate, OutboxMessage
from tests.e2e.support import log_in
from tests.factories import CustomerFactory, StaffUserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def shots(artifacts):
    folder = artifacts / "emails"
    folder.mkdir(exist_ok=True)
    return folder


def test_edit_template_with_live_preview_then_save_and_see_the_email_in_the_log(page, live_server, shots):
    # given
    admin = StaffUserFactory(username="e2e.emails", role="Store admin")
    log_in(page, admin)

    # when: the Emails page
    page.goto("/emails/")
    # then: every email type with its switch and an Edit link
    expect(page.get_by_role("heading", name="Emails", exact=True)).to_be_visible()
    expect(page.get_by_role("checkbox", name="Store credits received")).to_be_checked()
    expect(page.get_by_role("link", name="Edit template").first).to_be_visible()
    page.screenshot(path=shots / "settings.png", full_page=True)

    # when: opening the editor of "Store credits received"
    page.get_by_role("link", name="Edit template: Store credits received").click()
    # then: the placeholders beside it and a preview on sample data
    expect(page.get_by_role("heading", name="Edit email: Store credits received")).to_be_visible()
    expect(page.locator(".notif-placeholders")).to_contain_text("{{ customer_name }}")
    expect(page.get_by_test_id("preview-subject")).to_have_text("You received $12.50 in store credits at Demo Store")
    page.screenshot(path=shots / "editor.png", full_page=True)

    # when: typing a new subject
    subject = page.get_by_label("Subject")
    subject.fill("{{ customer_name }}, {{ amount }} is waiting for you at {{ store_name }}")
    # then: the preview follows (debounced hx-post)
    expect(page.get_by_test_id("preview-subject")).to_have_text(
        "Ada Lovelace, $12.50 is waiting for you at Demo Store")
    html_preview = page.frame_locator("iframe.notif-preview-html")
    expect(html_preview.get_by_text("Hi Ada Lovelace,")).to_be_visible()

    # when: a typo in a placeholder
    subject.fill("{{ customer_nme }}, {{ amount }} is waiting")
    # then: a clear message next to the field, the preview says to fix it
    errors = page.locator("#errors-subject")
    expect(errors).to_contain_text("unknown placeholder {{ customer_nme }}. Did you mean {{ customer_name }}?")
    expect(page.locator("#preview")).to_contain_text("Fix the highlighted template to see the preview.")
    page.screenshot(path=shots / "editor-error.png", full_page=True)

    # when: fixing it and saving
    subject.fill("{{ customer_name }}, {{ amount }} is waiting for you")
    expect(errors).to_be_empty()
    expect(page.get_by_test_id("preview-subject")).to_have_text("Ada Lovelace, $12.50 is waiting for you")
    page.screenshot(path=shots / "editor-fixed.png", full_page=True)
    page.get_by_role("button", name="Save template").click()
    # then: back on the Emails page with a message; the template is stored
    expect(page.get_by_text("Template “Store credits received” saved.")).to_be_visible()
    assert EmailTemplate.objects.get(kind="credits_received").subject == (
        "{{ customer_name }}, {{ amount }} is waiting for you")

    # when: a grant causes the email
    customer = CustomerFactory(name="Grace Hopper", email="grace@example.com")
    ledger_services.grant(customer=customer, amount=4200, reason="Welcome bonus")
    page.goto("/emails/log/")
    # then: the log shows it sent, with the new subject
    row = page.get_by_role("row").filter(has_text="grace@example.com")
    expect(row).to_contain_text("Grace Hopper, $42.00 is waiting for you")
    expect(row).to_contain_text("Sent")
    page.screenshot(path=shots / "log.png", full_page=True)

    # when: opening the email and resending it
    row.get_by_role("link", name="Grace Hopper, $42.00 is waiting for you").click()
    dialog = page.get_by_role("dialog", name="Store credits received")
    expect(dialog).to_be_visible()
    expect(dialog.frame_locator("iframe").get_by_text("Hi Grace Hopper,")).to_be_visible()
    page.screenshot(path=shots / "message-popup.png")
    page.keyboard.press("Escape")
    page.once("dialog", lambda d: d.accept())  # hx-confirm
    row.get_by_role("button", name="Resend").click()
    # then: a second row for the same email, sent too
    expect(page.get_by_role("row").filter(has_text="grace@example.com")).to_have_count(2)
    assert OutboxMessage.objects.filter(customer=customer).count() == 2
    page.screenshot(path=shots / "log-resent.png", full_page=True)

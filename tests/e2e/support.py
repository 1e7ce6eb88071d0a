"""Helpers the browser tests share."""

from playwright.sync_api import expect

PASSWORD = "pass-word-123"  # StaffUserFactory's


def log_in(page, user) -> None:
    """Log `user` in through the login page and wait for the dashboard."""
    page.goto("/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

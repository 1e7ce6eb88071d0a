"""CSV export in real Chromium: from the history page's search, pick columns, download
the file and read it; a large export with its progress bar polling until the download
link appears; the Exports page."""

import csv
import datetime as dt
import io
import threading

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from ledger import clock, exports, tasks
from ledger import services as ledger_services
from tests.e2e.support import log_in
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def out(artifacts):
    path = artifacts / "export"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _seed():
    now = timezone.now()
    ada = CustomerFactory(member_id="M-ADA", name="Ada Lovelace", email="ada@example.com")
    evil = CustomerFactory(member_id="M-EVIL", name="@evil", email="evil@example.com")
    order = OrderFactory(customer=ada, external_id="SO-1")
    plan = [
        (ada, "grant", 5_000, "Welcome bonus", {"comment": "=SUM(A1)"}),
        (evil, "grant", 1_200, "Review reward", {"source": "rule"}),
        (ada, "redeem", 1_234, "Redeemed at checkout", {"order": order, "source": "api"}),
        (evil, "deduct", 200, "Goodwill correction", {"comment": "-fix"}),
    ]
    for i, (customer, kind, amount, reason, extra) in enumerate(plan):
        with clock.posting_at(now - dt.timedelta(days=3) + dt.timedelta(hours=i)):
            if kind == "grant":
                ledger_services.grant(customer=customer, amount=amount, reason=reason, **extra)
            else:
                ledger_services.debit(customer=customer, amount=amount, kind=kind, reason=reason, **extra)


def _read(download):
    content = download.path().read_bytes()
    return content, list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def test_export_the_current_search_with_chosen_columns_downloads_the_csv(page, live_server, out):
    # given
    _seed()
    log_in(page, StaffUserFactory(username="e2e.ops", role="Ops"))
    page.goto("/credits/history/")
    # when: a search made on the page (htmx; the page is not reloaded), then the export pop-up
    page.get_by_label("Kind").select_option("grant")
    expect(page.locator("#history-table tbody tr")).to_have_count(2)
    opener = page.get_by_role("link", name="Export as CSV")
    opener.click()
    dialog = page.get_by_role("dialog", name="Export as CSV")
    # then: the pop-up describes the search on the page now, not the one the page was loaded with
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("search-description")).to_contain_text("Last 30 days")
    expect(dialog.get_by_test_id("search-description")).to_contain_text("kind Grant")
    expect(dialog.get_by_test_id("search-description")).to_contain_text("2 rows: download at once.")
    expect(dialog.get_by_label("The current search")).to_be_checked()
    expect(dialog.get_by_label("Excel-compatible (UTF-8 with BOM)")).to_be_checked()
    # when: choosing columns
    dialog.get_by_label("Order", exact=True).uncheck()
    dialog.get_by_label("Staff", exact=True).uncheck()
    dialog.get_by_label("Balance after").uncheck()
    dialog.get_by_label("Email").check()
    page.screenshot(path=out / "export-popup.png")
    with page.expect_download() as download_info:
        dialog.get_by_role("button", name="Export", exact=True).click()
    # then: the file, read back
    download = download_info.value
    assert download.suggested_filename == f"credits-history-{timezone.localdate().isoformat()}.csv"
    content, rows = _read(download)
    assert content.startswith(b"\xef\xbb\xbf")
    assert rows[0] == ["Date", "Member ID", "Customer name", "Email", "Kind", "Reason", "Amount", "Comment"]
    assert [(r[1], r[2], r[4], r[6], r[7]) for r in rows[1:]] == [
        ("M-EVIL", "'@evil", "Grant", "12.00", ""),
        ("M-ADA", "Ada Lovelace", "Grant", "50.00", "'=SUM(A1)"),
    ]
    # and: the pop-up closed, a message says so, the page stayed
    expect(page.locator("dialog#modal")).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Downloading 2 rows as CSV.")
    expect(page.get_by_label("Kind")).to_have_value("grant")


def test_export_of_a_period_with_an_error_then_fixed(page, live_server, out):
    # given
    _seed()
    log_in(page, StaffUserFactory(role="Store admin"))
    page.goto("/credits/history/")
    page.get_by_role("link", name="Export as CSV").click()
    dialog = page.get_by_role("dialog", name="Export as CSV")
    # when: a period whose end comes before its start
    dialog.get_by_label("A period").check()
    today = timezone.localdate()
    dialog.get_by_label("From", exact=True).fill(today.isoformat())
    dialog.get_by_label("To", exact=True).fill((today - dt.timedelta(days=5)).isoformat())
    dialog.get_by_role("button", name="Export", exact=True).click()
    # then: the message next to the field, the pop-up still open
    expect(dialog.get_by_text("The last day must be on or after the first day.")).to_be_visible()
    page.screenshot(path=out / "export-popup-error.png")
    # when: fixed, without the Excel BOM
    dialog.get_by_label("From", exact=True).fill((today - dt.timedelta(days=5)).isoformat())
    dialog.get_by_label("To", exact=True).fill(today.isoformat())
    dialog.get_by_label("Excel-compatible (UTF-8 with BOM)").uncheck()
    with page.expect_download() as download_info:
        dialog.get_by_role("button", name="Export", exact=True).click()
    # then
    content, rows = _read(download_info.value)
    assert not content.startswith(b"\xef\xbb\xbf")
    assert len(rows) == 5 and rows[1][5] == "-2.00" and rows[1][6] == "10.00"


def test_a_large_export_shows_progress_then_a_download_link_and_the_exports_page(
        page, live_server, out, monkeypatch):
    # given: the 10,000-row limit lowered to 3, and the job started 1.5 s after the commit
    # (as a worker would), so the pop-up really polls before the file is ready
    monkeypatch.setattr(exports, "DIRECT_LIMIT", 3)
    _seed()

    def later(export_id):
        def run():
            try:
                exports.build_export(export_id=export_id)
            finally:
                connection.close()
        threading.Timer(1.5, run).start()

    monkeypatch.setattr(tasks.build_export_task, "delay_on_commit",
                        lambda export_id: connection.on_commit(lambda: later(export_id)))
    log_in(page, StaffUserFactory(username="e2e.ops2", role="Ops"))
    page.goto("/credits/history/")
    page.get_by_role("link", name="Export as CSV").click()
    dialog = page.locator("dialog#modal")
    expect(dialog.get_by_test_id("search-description")).to_contain_text("More than 3 rows")
    # when
    dialog.get_by_role("button", name="Export", exact=True).click()
    # then: the progress pop-up, waiting, then ready
    expect(page.get_by_role("dialog", name="CSV export")).to_be_visible()
    expect(dialog.locator("progress")).to_be_visible()
    expect(dialog.get_by_test_id("export-counts")).to_be_visible()
    page.screenshot(path=out / "export-progress.png")
    expect(dialog.get_by_test_id("export-ready")).to_contain_text("Ready: 4 rows", timeout=10_000)
    page.screenshot(path=out / "export-ready.png")
    with page.expect_download() as download_info:
        dialog.get_by_role("link", name="Download CSV").click()
    content, rows = _read(download_info.value)
    assert len(rows) == 5 and rows[0][0] == "Date"
    # when: the Exports page
    dialog.get_by_role("link", name="All exports").click()
    # then
    expect(page.get_by_role("heading", name="Exports")).to_be_visible()
    row = page.locator("#export-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Ready")
    expect(row).to_contain_text("Last 30 days")
    page.screenshot(path=out / "exports-page.png", full_page=True)
    with page.expect_download() as again:
        row.get_by_role("link", name="Download").click()
    assert _read(again.value)[1] == rows

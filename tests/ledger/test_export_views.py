"""The "Export as CSV" pop-up: the form, the direct download (also from htmx), the
10,000-row boundary, bad input, permissions for every role, audit events."""

import csv
import datetime as dt
import io
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credits_admin.models import AuditEvent
from credits_admin.roles import ROLE_NAMES
from ledger import exports, services
from ledger.models import Export
from tests.factories import CustomerFactory, StaffUserFactory
from tests.ledger.test_export_content import seed_history

pytestmark = pytest.mark.django_db

URL = "/credits/export/"
CAN_EXPORT = {"Store admin", "Ops"}


def post_data(**overrides):
    data = {"scope": "search", "search": "period=30d", "columns": ["date", "member_id", "amount"], "excel": "on"}
    data.update(overrides)
    return data


def grants(n, customer=None):
    customer = customer or CustomerFactory()
    for i in range(n):
        services.grant(customer=customer, amount=100 + i, reason="bulk")
    return customer


def nothing_written():
    return not AuditEvent.objects.filter(action="ledger.exported").exists() and not Export.objects.exists()


def test_url_names_resolve():
    assert reverse("ledger:export_csv") == URL
    assert reverse("ledger:export_list") == "/credits/exports/"
    assert reverse("ledger:export_status", args=[3]) == "/credits/exports/3/"
    assert reverse("ledger:export_download", args=[3]) == "/credits/exports/3/download/"


# --------------------------------------------------------------------------- the pop-up


def test_popup_as_a_full_page_describes_the_default_search_and_counts_its_rows(client, staff):
    # given
    seed_history()
    client.force_login(staff("Ops"))
    # when
    response = client.get(URL)
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'id="modal-title"' in html
    today = timezone.localdate()
    first = today - timezone.timedelta(days=29)
    assert f"Last 30 days ({first.isoformat()} to {today.isoformat()})" in html
    assert "4 rows: download at once." in html
    assert response.context["form"].initial["scope"] == "search"
    for key in exports.DEFAULT_COLUMNS:
        assert f'value="{key}"' in html
    assert 'name="search" value="period=30d"' in html


def test_popup_in_htmx_is_the_modal_partial_with_the_history_search_in_plain_words(client, staff, htmx_headers):
    # given
    _staff, (ada, _evil), _entries = seed_history()
    client.force_login(staff("Store admin"))
    # when
    response = client.get(URL, {"period": "7d", "customer": "ada", "kind": "grant", "amount_min": "10",
                                "direction": "", "sort": "amount", "after": "x"}, headers=htmx_headers)
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert "Last 7 days (" in html
    assert "customer matching “ada”" in html
    assert "kind Grant" in html and "amount at least $10.00" in html
    assert "1 row: downloads at once." in html
    assert "sort=" not in html and "after=" not in html  # only the filter's own keys are kept


def test_popup_for_a_search_over_the_limit_says_it_runs_in_the_background(client, staff, monkeypatch):
    # given
    monkeypatch.setattr(exports, "DIRECT_LIMIT", 3)
    seed_history()
    client.force_login(staff("Ops"))
    # when
    response = client.get(URL)
    # then
    assert "More than 3 rows: prepared in the background" in response.content.decode()


def test_popup_counts_rows_with_a_capped_count_never_a_full_count(client, staff, monkeypatch):
    # given
    monkeypatch.setattr(exports, "DIRECT_LIMIT", 3)
    seed_history()
    client.force_login(staff("Ops"))
    # when
    with CaptureQueriesContext(connection) as queries:
        client.get(URL)
    # then
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "ledger_ledgerentry" in q["sql"]]
    assert counts and all("LIMIT 4" in sql for sql in counts)


@pytest.mark.parametrize("params, message", [
    ({"date_from": "not-a-date", "period": "custom"}, "From: Enter a valid date."),
    ({"customer": "x" * 10_000}, "Ensure this value has at most 200 characters"),
    ({"kind": "bogus"}, "Select a valid choice. bogus is not one of the available choices."),
    ({"amount_min": "lots"}, "Enter a number, such as 12.50."),
    ({"staff": "999999"}, "Select a valid choice."),
])
def test_popup_with_a_bad_history_search_explains_it_and_offers_a_period(client, staff, params, message):
    # given
    client.force_login(staff("Ops"))
    # when
    response = client.get(URL, params)
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "The search is not valid" in html
    assert message in html
    assert response.context["form"].initial["scope"] == "period"
    assert nothing_written()


# --------------------------------------------------------------------------- direct downloads


def test_post_from_a_full_page_answers_with_the_csv_file_and_audits_it(client, staff):
    # given
    seed_history()
    user = staff("Ops")
    client.force_login(user)
    # when
    response = client.post(URL, post_data(excel=""))
    # then
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="credits-history-')
    assert not response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    assert rows[0] == ["Date", "Member ID", "Amount"] and len(rows) == 5
    event = AuditEvent.objects.get(action="ledger.exported")
    assert (event.actor, event.after["rows"], event.after["columns"]) == (user, 4, ["date", "member_id", "amount"])
    assert event.after["search"] == "period=30d" and event.after["bom"] is False
    assert "Last 30 days" in event.summary
    assert not Export.objects.exists()


@time_machine.travel(dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC), tick=True)  # seed_history spans -5h..-2h
def test_post_of_a_period_exports_exactly_that_period(client, staff):
    # given
    _staff, _customers, entries = seed_history()
    day = timezone.localdate()
    client.force_login(staff("Ops"))
    # when
    response = client.post(URL, post_data(scope="period", date_from=day.isoformat(), date_to=day.isoformat(),
                                          columns=["entry_id"], search="kind=grant"))
    yesterday = day - timezone.timedelta(days=1)
    empty = client.post(URL, post_data(scope="period", date_from=yesterday.isoformat(),
                                       date_to=yesterday.isoformat(), columns=["entry_id"]))
    # then
    ids = [row[0] for row in csv.reader(io.StringIO(response.content.decode("utf-8-sig")))][1:]
    today_ids = [str(e.pk) for e in reversed(entries) if timezone.localdate(e.created_at) == day]
    assert ids == today_ids
    assert empty.content.decode("utf-8-sig") == "Entry ID\n"
    events = AuditEvent.objects.filter(action="ledger.exported").order_by("id")
    assert events[0].after["search"] == f"period=custom&date_from={day}&date_to={day}"
    assert events[0].after["scope"] == "period" and events[1].after["rows"] == 0


def test_post_from_htmx_redirects_the_browser_to_a_signed_download_and_closes_the_popup(
        client, staff, htmx_headers):
    # given
    seed_history()
    user = staff("Ops")
    client.force_login(user)
    # when
    response = client.post(URL, post_data(), headers=htmx_headers)
    # then: no file yet, no audit yet; a redirect the browser follows to download
    assert response.status_code == 204
    triggers = json.loads(response["HX-Trigger"])
    assert set(triggers) == {"closeModal", "showMessage"}
    assert triggers["showMessage"]["text"] == "Downloading 4 rows as CSV."
    location = response["HX-Redirect"]
    assert location.startswith(URL + "?token=")
    assert nothing_written()
    # when: the browser follows it
    download = client.get(location)
    # then
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    assert download.content.startswith(b"\xef\xbb\xbfDate,Member ID,Amount\n")
    assert AuditEvent.objects.get(action="ledger.exported").after["rows"] == 4


def test_signed_download_link_of_another_user_is_refused_and_writes_nothing(client, staff, htmx_headers):
    # given
    seed_history()
    client.force_login(staff("Ops"))
    location = client.post(URL, post_data(), headers=htmx_headers)["HX-Redirect"]
    client.force_login(staff("Store admin"))
    # when
    response = client.get(location)
    # then
    assert response.status_code == 400
    assert "This download link is not valid or has expired" in response.content.decode()
    assert nothing_written()


def test_signed_download_link_expires_after_five_minutes(client, staff, htmx_headers):
    # given
    seed_history()
    client.force_login(staff("Ops"))
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        location = client.post(URL, post_data(), headers=htmx_headers)["HX-Redirect"]
        traveller.shift(301)
        # when
        response = client.get(location)
    # then
    assert response.status_code == 400
    assert "has expired" in response.content.decode()
    assert nothing_written()


@pytest.mark.parametrize("token", ["garbage", "", "x" * 10_000, "eyJ1c2VyIjoxfQ:1tX:abc"])
def test_a_forged_or_garbage_download_token_is_a_clear_400(client, staff, token):
    # given
    client.force_login(staff("Ops"))
    # when
    response = client.get(URL, {"token": token})
    # then
    assert response.status_code == 400
    assert "This download link is not valid or has expired" in response.content.decode()
    assert nothing_written()


# --------------------------------------------------------------------------- the 10,000-row boundary


def test_exactly_the_limit_downloads_at_once(client, staff, monkeypatch):
    # given: the limit (10,000) lowered so the boundary is cheap to reach
    monkeypatch.setattr(exports, "DIRECT_LIMIT", 20)
    grants(20)
    client.force_login(staff("Ops"))
    # when
    response = client.post(URL, post_data())
    # then
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert len(response.content.decode("utf-8-sig").splitlines()) == 21
    assert not Export.objects.exists()


def test_one_row_over_the_limit_becomes_a_background_job(client, staff, monkeypatch, htmx_headers,
                                                         django_capture_on_commit_callbacks):
    # given
    monkeypatch.setattr(exports, "DIRECT_LIMIT", 20)
    grants(21)
    client.force_login(staff("Ops"))
    # when: the job is only enqueued once the transaction commits
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(URL, post_data(), headers=htmx_headers)
        export = Export.objects.get()
        assert export.status == Export.Status.QUEUED
    # then: the pop-up shows a progress bar that polls the status every second
    assert len(callbacks) == 1
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="export-progress"' in html and "<html" not in html
    assert f'hx-get="/credits/exports/{export.pk}/"' in html and 'hx-trigger="every 1s"' in html
    assert "Waiting for a worker" in html
    assert export.params == {"scope": "search", "search": "period=30d", "columns": ["date", "member_id", "amount"],
                             "bom": True}
    assert export.description.startswith("Last 30 days")


def test_one_row_over_the_limit_from_a_full_page_redirects_to_the_status_page(client, staff, monkeypatch):
    # given
    monkeypatch.setattr(exports, "DIRECT_LIMIT", 20)
    grants(21)
    client.force_login(staff("Ops"))
    # when
    response = client.post(URL, post_data())
    # then
    export = Export.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("ledger:export_status", args=[export.pk])


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("overrides, field, message", [
    ({"scope": "period"}, "date_from", "Pick the first day of the period."),
    ({"scope": "period", "date_from": "2026-01-01"}, "date_to", "Pick the last day of the period."),
    ({"scope": "period", "date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_to",
     "The last day must be on or after the first day."),
    ({"scope": "period", "date_from": "1999-12-31", "date_to": "2026-01-01"}, "date_from",
     "Pick a date between 2000 and 2100."),
    ({"scope": "period", "date_from": "2026-13-45", "date_to": "2026-01-01"}, "date_from", "Enter a valid date."),
    ({"scope": "period", "date_from": "9" * 10_000, "date_to": "2026-01-01"}, "date_from", "Enter a valid date."),
    ({"columns": ["amount", "password"]}, "columns", "Unknown column: password."),
    ({"columns": ["x" * 10_000]}, "columns", "Unknown column: " + "x" * 10_000 + "."),
    ({"columns": []}, "columns", "Choose at least one column."),
    ({"scope": "everything"}, "scope", "Choose the current search or a period."),
    ({"scope": ""}, "scope", "This field is required."),
    ({"search": "period=custom&date_from=junk"}, "scope", "The search is not valid: From: Enter a valid date."),
    ({"search": "customer=" + "c" * 10_000}, "search", "This search is too long to export."),
    ({"search": "amount_min=5&amount_max=1"}, "scope", "The maximum must be at least the minimum."),
])
def test_bad_input_re_renders_the_popup_with_the_message_and_writes_nothing(
        client, staff, htmx_headers, overrides, field, message):
    # given
    seed_history()
    client.force_login(staff("Ops"))
    # when
    response = client.post(URL, post_data(**overrides), headers=htmx_headers)
    # then
    assert response.status_code == 200
    assert any(message in str(e) for e in response.context["form"].errors[field]), response.context["form"].errors
    assert message[:60] in response.content.decode().replace("&#x27;", "'")
    assert nothing_written()


def test_a_get_or_post_with_only_garbage_never_fails(client, staff):
    # given
    client.force_login(staff("Ops"))
    # when
    responses = [client.get(URL, {"period": "\x00", "date_from": "２０２６-０１-０１", "staff": "-1", "order": "o" * 10_000}),
                 client.post(URL, {"scope": ["search", "period"], "columns": "amount", "search": "%%%&&&==",
                                   "date_from": "\x00"})]
    # then
    assert [r.status_code for r in responses] == [200, 200]
    assert "The search is not valid" in responses[0].content.decode()
    assert responses[1].context["form"].errors
    assert nothing_written()


# --------------------------------------------------------------------------- permissions


def _urls(export):
    return [("get", URL, {}), ("post", URL, post_data()),
            ("get", reverse("ledger:export_list"), {}),
            ("get", reverse("ledger:export_status", args=[export.pk]), {}),
            ("get", reverse("ledger:export_download", args=[export.pk]), {})]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_export_url_is_open_to_exporters_only(client, role, tmp_path, settings):
    # given: the user's own finished export
    settings.MEDIA_ROOT = str(tmp_path)
    user = StaffUserFactory(role=role)
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "own.csv").write_bytes(b"Date\n")
    export = Export.objects.create(requested_by=user, status=Export.Status.DONE, file="exports/own.csv",
                                   params={}, rows_written=0, size_bytes=5)
    client.force_login(user)
    expected = 200 if role in CAN_EXPORT else 403
    # when / then
    for method, url, data in _urls(export):
        response = getattr(client, method)(url, data)
        assert response.status_code == expected, (role, method, url)


def test_every_export_url_sends_anonymous_visitors_to_log_in(client):
    # given
    export = Export.objects.create(requested_by=StaffUserFactory(role="Ops"), params={})
    # when / then
    for method, url, data in _urls(export):
        response = getattr(client, method)(url, data)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next=")
    assert not AuditEvent.objects.filter(action="ledger.exported").exists()


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_history_page_shows_the_export_button_only_to_exporters(client, role):
    # given
    client.force_login(StaffUserFactory(role=role))
    # when
    response = client.get(reverse("ledger:history"), {"period": "7d", "kind": "grant"})
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert ("Export as CSV" in html) is (role in CAN_EXPORT)
    if role in CAN_EXPORT:
        assert 'href="/credits/export/?period=7d&amp;kind=grant"' in html
        assert 'hx-get="/credits/export/" hx-include="form.filters"' in html


def test_the_popup_reads_the_search_the_history_form_sends(client, staff, htmx_headers):
    # given: what hx-include sends, every field of the filter form, most of them empty
    seed_history()
    client.force_login(staff("Ops"))
    form = {"period": "", "date_from": "", "date_to": "", "customer": "evil", "direction": "deducted", "kind": "",
            "reason": "", "source": "", "amount_min": "", "amount_max": "", "order": "", "staff": ""}
    # when
    response = client.get(URL, form, headers=htmx_headers)
    # then: "any time" as the page shows it, not the 30-day default
    html = response.content.decode()
    assert "All of history · customer matching “evil” · deducted only" in html
    assert "1 row: downloads at once." in html
    hidden = response.context["form"].initial["search"]
    assert parse_qs(hidden) == {"customer": ["evil"], "direction": ["deducted"]}
    assert urlsplit(URL).path == "/credits/export/"

"""Large exports: the Celery job end to end, progress polling, the Exports page, downloads
(who may), clean-up after 7 days."""

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from credits_admin.models import AuditEvent
from ledger import exports, services, tasks
from ledger.models import Export
from tests.factories import CustomerFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

URL = "/credits/export/"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setattr(exports, "DIRECT_LIMIT", 20)  # 10,000 in real life; the same code path


def grants(n, **kwargs):
    customer = CustomerFactory(**kwargs)
    for i in range(n):
        services.grant(customer=customer, amount=100 + i, reason="bulk", comment="=1+1" if i == 0 else "")
    return customer


def finished_export(user, media, *, content=b"Date\n2026-01-01T00:00:00+00:00\n", name="done.csv", **fields):
    (media / "exports").mkdir(parents=True, exist_ok=True)
    (media / "exports" / name).write_bytes(content)
    now = timezone.now()
    defaults = {"status": Export.Status.DONE, "file": f"exports/{name}", "size_bytes": len(content),
                "rows_written": 1, "total_rows": 1, "finished_at": now, "expires_at": now + exports.KEEP_FOR,
                "params": {"search": "period=30d", "columns": ["date"], "bom": False, "scope": "search"},
                "description": "Last 30 days"}
    defaults.update(fields)
    return Export.objects.create(requested_by=user, **defaults)


# --------------------------------------------------------------------------- the job end to end


@pytest.mark.django_db(transaction=True)
def test_a_large_export_runs_as_a_job_and_ends_with_a_download_link(client, small_limit, htmx_headers, media):
    # given (a committed database: on PostgreSQL the job's COPY reads through its own connection)
    grants(25, name="@evil")
    user = StaffUserFactory(role="Ops")
    client.force_login(user)
    # when: the pop-up posts; eager Celery runs the job when the export's transaction commits
    response = client.post(URL, {"scope": "search", "search": "period=30d", "columns": ["customer_name", "amount",
                                                                                         "comment"]},
                           headers=htmx_headers)
    # then: the pop-up shows the progress bar
    export = Export.objects.get()
    assert response.status_code == 200
    assert 'id="export-progress"' in response.content.decode()
    assert export.status == Export.Status.DONE
    assert (export.total_rows, export.rows_written) == (25, 25)
    assert export.expires_at == export.finished_at + dt.timedelta(days=7)
    path = media / export.file
    assert export.file.startswith("exports/export-") and path.exists()
    assert export.size_bytes == path.stat().st_size
    # when: the next poll
    poll = client.get(reverse("ledger:export_status", args=[export.pk]),
                      headers={**htmx_headers, "HX-Target": "export-state"})
    # then: the finished state, and htmx told to stop polling
    assert poll.status_code == 286
    html = poll.content.decode()
    assert "Ready: 25 rows" in html and reverse("ledger:export_download", args=[export.pk]) in html
    assert 'id="export-progress"' not in html
    # when: the download
    download = client.get(reverse("ledger:export_download", args=[export.pk]))
    # then
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith('attachment; filename="credits-history-')
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode("utf-8"), newline="")))
    assert rows[0] == ["Customer name", "Amount", "Comment"]
    assert len(rows) == 26
    assert {r[0] for r in rows[1:]} == {"'@evil"}
    assert rows[-1] == ["'@evil", "1.00", "'=1+1"]
    # and: one audit event with the search and the row count
    event = AuditEvent.objects.get(action="ledger.exported")
    assert (event.actor, event.target_type, event.target_id) == (user, "ledger.export", str(export.pk))
    assert event.after["rows"] == 25 and event.after["search"] == "period=30d" and event.after["mode"] == "job"


def test_job_is_enqueued_only_after_the_export_row_commits(client, small_limit, staff,
                                                           django_capture_on_commit_callbacks):
    # given
    grants(21)
    client.force_login(staff("Store admin"))
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.post(URL, {"scope": "search", "search": "", "columns": ["amount"]})
    # then
    assert len(callbacks) == 1
    export = Export.objects.get()
    assert export.status == Export.Status.DONE and export.finished_at is not None


def test_build_export_on_this_database_writes_the_file_and_is_idempotent(staff, media, small_limit,
                                                                          django_capture_on_commit_callbacks):
    # given: a queued export (the Python writer: it reads through the test's own transaction)
    grants(21)
    user = staff("Ops")
    with django_capture_on_commit_callbacks(execute=False):
        export = exports.start_export(actor=user, params={"scope": "search", "search": "period=30d",
                                                          "columns": ["amount"], "bom": True},
                                      description="Last 30 days")
    # when
    exports.build_export(export_id=export.pk, use_copy=False)
    export.refresh_from_db()
    first_file = export.file
    again = exports.build_export(export_id=export.pk, use_copy=False)
    # then
    assert export.status == Export.Status.DONE and export.rows_written == 21
    content = (media / first_file).read_bytes()
    assert content.startswith(b"\xef\xbb\xbfAmount\n1.20\n")
    assert again.file == first_file
    assert AuditEvent.objects.filter(action="ledger.exported").count() == 1
    assert sorted(p.name for p in (media / "exports").iterdir()) == [Path(first_file).name]


def test_a_redelivered_running_job_builds_a_fresh_file_and_removes_the_old_one(staff, media):
    # given: a job that was running when its worker died (acks_late: it is delivered again)
    grants(3)
    old = finished_export(staff("Ops"), media, name="old.csv", status=Export.Status.RUNNING,
                          params={"scope": "search", "search": "period=30d", "columns": ["amount"], "bom": False})
    # when (the Python writer: it reads through the test's own, uncommitted transaction)
    exports.build_export(export_id=old.pk, use_copy=False)
    # then
    old.refresh_from_db()
    assert old.status == Export.Status.DONE and old.rows_written == 3
    assert old.file != "exports/old.csv" and not (media / "exports" / "old.csv").exists()


def test_a_job_whose_search_is_no_longer_valid_fails_with_a_message_and_no_file(staff, media):
    # given: the staff member the search names was deleted in between
    gone = StaffUserFactory()
    export = Export.objects.create(requested_by=staff("Ops"), params={
        "scope": "search", "search": f"staff={gone.pk}", "columns": ["amount"], "bom": False})
    gone.delete()
    # when
    tasks.build_export_task(export.pk)
    # then
    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert export.error.startswith("The search is not valid: Staff: Select a valid choice.")
    assert export.file == ""
    assert not list(media.rglob("*.csv*"))
    assert not AuditEvent.objects.filter(action="ledger.exported").exists()


def test_an_unexpected_error_in_the_job_is_a_failed_export_not_a_crash(staff, media, monkeypatch):
    # given
    grants(2)
    export = Export.objects.create(requested_by=staff("Ops"), params={
        "scope": "search", "search": "period=30d", "columns": ["amount"], "bom": False})

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(exports, "write_rows_python", broken)
    monkeypatch.setattr(exports, "write_rows_copy", broken)
    # when
    tasks.build_export_task(export.pk)
    # then
    export.refresh_from_db()
    assert (export.status, export.error) == (Export.Status.FAILED, "The export failed; please try again.")
    assert not list((media / "exports").glob("*"))


def test_progress_is_written_about_once_a_second(staff, monkeypatch):
    # given
    export = Export.objects.create(requested_by=staff("Ops"), params={}, status=Export.Status.RUNNING,
                                   total_rows=10_000)
    clock = iter([100.0, 100.4, 101.1, 101.5, 102.2])
    monkeypatch.setattr(exports.time, "monotonic", lambda: next(clock))
    progress = exports._Progress(export.pk)  # reads 100.0
    written = []
    # when
    for rows in (1000, 2000, 3000, 4000):  # at 100.4, 101.1, 101.5, 102.2
        progress(rows)
        written.append(Export.objects.get(pk=export.pk).rows_written)
    # then
    assert written == [0, 2000, 2000, 4000]


# --------------------------------------------------------------------------- status polling


def test_status_poll_of_a_running_export_shows_the_progress_and_keeps_polling(client, staff, htmx_headers):
    # given
    user = staff("Ops")
    export = Export.objects.create(requested_by=user, params={}, status=Export.Status.RUNNING, total_rows=120_000,
                                   rows_written=48_000, description="Last 30 days")
    client.force_login(user)
    # when
    poll = client.get(reverse("ledger:export_status", args=[export.pk]),
                      headers={**htmx_headers, "HX-Target": "export-state"})
    opened = client.get(reverse("ledger:export_status", args=[export.pk]), headers=htmx_headers)
    page = client.get(reverse("ledger:export_status", args=[export.pk]))
    # then
    assert poll.status_code == 200
    assert "48,000 of 120,000 rows (40%)" in poll.content.decode()
    assert 'value="40"' in poll.content.decode()
    assert 'hx-trigger="every 1s"' in opened.content.decode() and "<html" not in opened.content.decode()
    assert "<html" in page.content.decode() and 'hx-trigger="every 1s"' in page.content.decode()


@pytest.mark.parametrize("status, text", [
    (Export.Status.FAILED, "The export failed; please try again."),
    (Export.Status.EXPIRED, "This export has expired and its file was deleted."),
])
def test_status_of_a_finished_export_stops_polling(client, staff, htmx_headers, status, text):
    # given
    user = staff("Ops")
    export = Export.objects.create(requested_by=user, params={}, status=status,
                                   error="The export failed; please try again." if status == "failed" else "")
    client.force_login(user)
    # when
    poll = client.get(reverse("ledger:export_status", args=[export.pk]),
                      headers={**htmx_headers, "HX-Target": "export-state"})
    opened = client.get(reverse("ledger:export_status", args=[export.pk]), headers=htmx_headers)
    # then
    assert poll.status_code == 286 and text in poll.content.decode()
    assert "every 1s" not in opened.content.decode()


def test_status_of_someone_elses_export_is_refused_but_a_store_admin_sees_it(client, staff, htmx_headers):
    # given
    export = Export.objects.create(requested_by=staff("Ops"), params={}, description="theirs")
    url = reverse("ledger:export_status", args=[export.pk])
    # when
    client.force_login(staff("Ops"))
    other = client.get(url)
    client.force_login(staff("Store admin"))
    admin = client.get(url)
    missing = client.get(reverse("ledger:export_status", args=[export.pk + 1000]))
    # then
    assert (other.status_code, admin.status_code, missing.status_code) == (403, 200, 404)


# --------------------------------------------------------------------------- downloads


def test_download_is_for_the_owner_and_store_admins_only(client, staff, media):
    # given
    owner = staff("Ops")
    export = finished_export(owner, media, content=b"Date\nx\n")
    url = reverse("ledger:export_download", args=[export.pk])
    results = {}
    # when
    for who, user in {"owner": owner, "other ops": staff("Ops"), "store admin": staff("Store admin"),
                      "support admin": staff("Support admin")}.items():
        client.force_login(user)
        response = client.get(url)
        results[who] = (response.status_code,
                        b"".join(response.streaming_content) if response.status_code == 200 else None)
    client.logout()
    anonymous = client.get(url)
    # then
    assert results == {"owner": (200, b"Date\nx\n"), "other ops": (403, None), "store admin": (200, b"Date\nx\n"),
                       "support admin": (403, None)}
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("fields", [
    {"status": Export.Status.RUNNING},
    {"status": Export.Status.QUEUED, "file": ""},
    {"status": Export.Status.FAILED},
    {"status": Export.Status.EXPIRED, "file": ""},
    {"file": "exports/missing.csv"},
    {"file": "../../etc/passwd"},
])
def test_download_of_an_export_without_a_ready_file_is_404(client, staff, media, fields):
    # given
    owner = staff("Ops")
    export = finished_export(owner, media, **fields)
    client.force_login(owner)
    # when
    response = client.get(reverse("ledger:export_download", args=[export.pk]))
    # then
    assert response.status_code == 404


# --------------------------------------------------------------------------- the Exports page


def test_exports_page_lists_the_users_own_exports_and_a_store_admin_sees_all(client, staff, media):
    # given
    ops, other = staff("Ops"), staff("Ops")
    mine = finished_export(ops, media, description="Mine · kind Grant", size_bytes=2048, rows_written=12_345)
    theirs = Export.objects.create(requested_by=other, params={}, description="Theirs")
    url = reverse("ledger:export_list")
    # when
    client.force_login(ops)
    own_page = client.get(url).content.decode()
    client.force_login(staff("Store admin"))
    admin_page = client.get(url).content.decode()
    # then
    assert "Mine · kind Grant" in own_page and "Theirs" not in own_page
    assert reverse("ledger:export_download", args=[mine.pk]) in own_page
    assert "12,345" in own_page and "2.0\xa0KB" in own_page and "Ready" in own_page
    assert "Requested by" not in own_page
    assert "Mine · kind Grant" in admin_page and "Theirs" in admin_page and "Requested by" in admin_page
    assert other.username in admin_page
    assert reverse("ledger:export_status", args=[theirs.pk]) in admin_page  # queued: a progress link
    assert 'hx-trigger="every 2s"' in admin_page  # refreshes itself while one is active
    assert 'hx-trigger="every 2s"' not in own_page


def test_exports_page_queries_do_not_grow_with_its_rows(client, staff, media, django_assert_max_num_queries):
    # given
    admin = staff("Store admin")
    for i in range(30):
        Export.objects.create(requested_by=staff("Ops"), params={}, description=f"export {i}")
    client.force_login(admin)
    # when / then
    with django_assert_max_num_queries(8):
        response = client.get(reverse("ledger:export_list"))
    assert response.content.decode().count("export-desc") == 30


def test_exports_page_pages_by_keyset_and_survives_a_bad_cursor(client, staff):
    # given
    ops = staff("Ops")
    for i in range(55):
        Export.objects.create(requested_by=ops, params={}, description=f"export {i:02d}")
    client.force_login(ops)
    # when
    first = client.get(reverse("ledger:export_list"))
    cursor = first.context["page"].next_cursor
    second = client.get(reverse("ledger:export_list"), {"after": cursor})
    bad = client.get(reverse("ledger:export_list"), {"after": "garbage"})
    # then
    assert first.content.decode().count("export-desc") == 50
    assert second.content.decode().count("export-desc") == 5
    assert bad.status_code == 200 and bad.content.decode().count("export-desc") == 50


# --------------------------------------------------------------------------- clean-up


def test_cleanup_deletes_files_older_than_7_days_and_is_idempotent(staff, media):
    # given
    user = staff("Ops")
    finished = timezone.now()
    old = finished_export(user, media, name="old.csv", finished_at=finished, expires_at=finished + dt.timedelta(days=7))
    fresh = finished_export(user, media, name="fresh.csv", finished_at=finished + dt.timedelta(days=1),
                            expires_at=finished + dt.timedelta(days=8))
    # when: 7 days later, twice
    with time_machine.travel(finished + dt.timedelta(days=7, seconds=1), tick=False):
        first = tasks.cleanup_exports_task()
        second = tasks.cleanup_exports_task()
    # then
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (first, second) == (1, 0)
    assert (old.status, old.file) == (Export.Status.EXPIRED, "")
    assert not (media / "exports" / "old.csv").exists()
    assert fresh.status == Export.Status.DONE and (media / "exports" / "fresh.csv").exists()


def test_cleanup_just_before_7_days_keeps_the_file(staff, media):
    # given
    finished = timezone.now()
    export = finished_export(staff("Ops"), media, finished_at=finished, expires_at=finished + dt.timedelta(days=7))
    # when
    expired = exports.cleanup_exports(now=finished + dt.timedelta(days=7) - dt.timedelta(seconds=1))
    # then
    export.refresh_from_db()
    assert expired == 0 and export.status == Export.Status.DONE and (media / export.file).exists()


def test_cleanup_copes_with_a_file_already_gone_and_marks_lost_jobs_failed(staff, media):
    # given
    user = staff("Ops")
    now = timezone.now()
    gone = finished_export(user, media, name="gone.csv", expires_at=now - dt.timedelta(seconds=1))
    (media / gone.file).unlink()
    with time_machine.travel(now - dt.timedelta(days=2), tick=False):
        lost = Export.objects.create(requested_by=user, params={})
    recent = Export.objects.create(requested_by=user, params={})
    # when
    expired = exports.cleanup_exports(now=now)
    # then
    gone.refresh_from_db()
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert expired == 1 and gone.status == Export.Status.EXPIRED
    assert (lost.status, lost.error) == (Export.Status.FAILED, "The export job was lost; please start it again.")
    assert recent.status == Export.Status.QUEUED

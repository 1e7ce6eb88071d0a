"""The beat schedule and its jobs: each one idempotent, safe to run twice or concurrently,
and the expiry sweep safe to kill halfway."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from celery.schedules import crontab
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone

from credits_admin.celery import app as celery_app
from crm.models import CustomerEditLog
from ledger import clock
from ledger import services as ledger_services
from ledger.models import CreditLot, EntryKind, LedgerEntry
from ledger.selectors import verify_ledger
from ledger.signals import entries_posted
from ledger.tasks import sweep_expired_credits_task
from notifications import services
from notifications.tasks import purge_edit_logs_task
from tests.factories import CustomerFactory

from .test_outbox import run_in_threads
from .test_real_worker import _test_database_url

pytestmark = pytest.mark.django_db(transaction=True)


# --------------------------------------------------------------------------- the schedule

def test_beat_schedule_runs_every_job_at_its_cadence():
    # given
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    # when
    tasks = {name: entry["task"] for name, entry in schedule.items()}
    # then
    assert tasks == {
        "expire-credits": "ledger.tasks.sweep_expired_credits_task",
        "send-expiry-reminders": "notifications.tasks.send_expiry_reminders_task",
        "purge-edit-logs": "notifications.tasks.purge_edit_logs_task",
        "retry-payouts": "refunds.tasks.retry_payouts_task",
        "cleanup-exports": "ledger.tasks.cleanup_exports_task",
        "build-day-totals": "ledger.tasks.build_day_totals_task",
        "redispatch-outbox": "notifications.tasks.redispatch_outbox_task",
    }
    assert schedule["expire-credits"]["schedule"] == crontab(minute=5)  # hourly
    assert schedule["build-day-totals"]["schedule"] == crontab(minute=20)  # hourly
    for daily in ("send-expiry-reminders", "purge-edit-logs", "retry-payouts", "cleanup-exports"):
        entry = schedule[daily]["schedule"]
        assert len(entry.hour) == 1 and len(entry.minute) == 1, daily
    assert schedule["redispatch-outbox"]["schedule"] == crontab(minute="*/5")


def test_every_scheduled_task_is_registered_with_the_celery_app():
    # given
    celery_app.loader.import_default_modules()
    # when
    missing = [e["task"] for e in django_settings.CELERY_BEAT_SCHEDULE.values() if e["task"] not in celery_app.tasks]
    # then
    assert missing == []


def test_notification_settings_have_their_defaults():
    # given / when / then
    assert django_settings.EXPIRY_REMINDER_DAYS == 3
    assert django_settings.OUTBOX_REDISPATCH_MINUTES == 10
    assert django_settings.EDIT_LOG_RETENTION_DAYS == 365


# --------------------------------------------------------------------------- edit-log purge

def _edit_log(customer, age_days):
    log = CustomerEditLog.objects.create(customer=customer, source="staff", changes={"name": ["a", "b"]})
    CustomerEditLog.objects.filter(pk=log.pk).update(changed_at=timezone.now() - dt.timedelta(days=age_days))
    return log


def test_purge_deletes_edit_logs_older_than_a_year_and_is_safe_twice():
    # given
    customer = CustomerFactory()
    old = [_edit_log(customer, 400), _edit_log(customer, 366)]
    kept = [_edit_log(customer, 364), _edit_log(customer, 0)]
    # when
    first = purge_edit_logs_task.apply().get()
    second = purge_edit_logs_task.apply().get()
    # then
    assert (first, second) == (2, 0)
    assert sorted(CustomerEditLog.objects.values_list("pk", flat=True)) == sorted(log.pk for log in kept)
    assert not CustomerEditLog.objects.filter(pk__in=[log.pk for log in old]).exists()


def test_purge_works_in_batches():
    # given
    customer = CustomerFactory()
    for _ in range(7):
        _edit_log(customer, 500)
    # when
    deleted = services.purge_edit_logs(batch_size=3)
    # then
    assert deleted == 7 and not CustomerEditLog.objects.exists()


@pytest.mark.postgres
def test_concurrent_purges_delete_each_old_log_once():
    # given
    customer = CustomerFactory()
    for _ in range(40):
        _edit_log(customer, 500)
    _edit_log(customer, 1)
    # when
    counts = run_in_threads(4, lambda: services.purge_edit_logs(batch_size=5))
    # then
    assert sum(counts) == 40
    assert CustomerEditLog.objects.count() == 1


# --------------------------------------------------------------------------- the expiry sweep

def _lots_expiring(n: int, *, at) -> list[CreditLot]:
    """n customers with one lot each, expiring at `at` (granted before it)."""
    lots = []
    with clock.posting_at(at - dt.timedelta(days=30)):
        for _ in range(n):
            customer = CustomerFactory(email="")
            lots.append(ledger_services.grant(customer=customer, amount=1000, reason="Promo", expires_at=at).lot)
    return lots


def _expire_entries_per_lot() -> dict[int, int]:
    counts: dict[int, int] = {}
    for details in LedgerEntry.objects.filter(kind=EntryKind.EXPIRE).values_list("details", flat=True):
        counts[details["lot"]] = counts.get(details["lot"], 0) + 1
    return counts


def test_sweep_task_run_twice_expires_each_lot_once():
    # given
    lots = _lots_expiring(4, at=timezone.now() - dt.timedelta(hours=1))
    # when
    runs = [sweep_expired_credits_task.apply().get(), sweep_expired_credits_task.apply().get()]
    # then
    assert runs == [4, 0]
    assert _expire_entries_per_lot() == {lot.pk: 1 for lot in lots}
    assert verify_ledger() == []


def test_sweep_killed_in_its_second_batch_and_run_again_expires_every_lot_exactly_once():
    # given: 10 due lots, swept in batches of 3; the 2nd batch dies after writing its rows
    expires_at = timezone.now() + dt.timedelta(days=1)
    lots = _lots_expiring(10, at=expires_at)
    sweep_time = expires_at + dt.timedelta(hours=1)
    batches = []

    class WorkerKilled(Exception):
        pass

    def kill_second_batch(sender, entries, **kwargs):
        if entries and all(e.kind == EntryKind.EXPIRE for e in entries):
            batches.append(len(entries))
            if len(batches) == 2:
                raise WorkerKilled("the worker died in the middle of batch 2")

    entries_posted.connect(kill_second_batch, dispatch_uid="test-kill-second-batch")
    try:
        with pytest.raises(WorkerKilled):
            ledger_services.expire_due(now=sweep_time, batch_size=3)
    finally:
        entries_posted.disconnect(dispatch_uid="test-kill-second-batch")
    # then: the first batch is committed, the second left nothing behind
    assert batches == [3, 3]
    assert sum(_expire_entries_per_lot().values()) == 3
    assert CreditLot.objects.filter(remaining=0).count() == 3
    assert verify_ledger() == []
    # when: the sweep runs again (the next hourly run)
    posted = ledger_services.expire_due(now=sweep_time, batch_size=3)
    # then: every lot expired exactly once, the ledger whole
    assert posted == 7
    assert _expire_entries_per_lot() == {lot.pk: 1 for lot in lots}
    assert not CreditLot.objects.filter(remaining__gt=0).exists()
    assert verify_ledger() == []


@pytest.mark.postgres
def test_concurrent_sweeps_expire_each_lot_once():
    # given
    expires_at = timezone.now() + dt.timedelta(days=1)
    lots = _lots_expiring(40, at=expires_at)
    sweep_time = expires_at + dt.timedelta(hours=1)
    # when
    posted = run_in_threads(4, lambda: ledger_services.expire_due(now=sweep_time, batch_size=5))
    # then: a sweep skips accounts another holds; what is left is picked up by a later run
    posted_total = sum(posted) + ledger_services.expire_due(now=sweep_time, batch_size=5)
    assert posted_total == 40
    assert _expire_entries_per_lot() == {lot.pk: 1 for lot in lots}
    assert verify_ledger() == []


def test_expiry_sweep_writes_no_email():
    # given
    from notifications.models import OutboxMessage

    customer = CustomerFactory()
    with clock.posting_at(timezone.now() - dt.timedelta(days=5)), transaction.atomic():
        ledger_services.grant(customer=customer, amount=500, reason="Promo",
                              expires_at=timezone.now() - dt.timedelta(days=1))
    before = OutboxMessage.objects.count()
    # when
    ledger_services.expire_due()
    # then
    assert OutboxMessage.objects.count() == before


# A sweep in another process that stops inside its second batch (after writing the batch's
# entries, before commit) and waits there to be killed.
_SWEEP_THAT_WAITS_IN_BATCH_2 = """
import sys, time, datetime as dt
import django
django.setup()
from ledger import services
from ledger.models import EntryKind
from ledger.signals import entries_posted

marker, now = sys.argv[1], dt.datetime.fromisoformat(sys.argv[2])
batches = []

def wait_in_second_batch(sender, entries, **kwargs):
    if entries and all(e.kind == EntryKind.EXPIRE for e in entries):
        batches.append(len(entries))
        if len(batches) == 2:
            open(marker, "w").write("in batch 2")
            time.sleep(120)

entries_posted.connect(wait_in_second_batch, weak=False)
services.expire_due(now=now, batch_size=3)
"""


def _other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_sweep_process_killed_in_its_second_batch_and_run_again_expires_every_lot_exactly_once(tmp_path):
    # given: 10 due lots; a sweep in its own process, batches of 3
    expires_at = timezone.now() + dt.timedelta(days=1)
    lots = _lots_expiring(10, at=expires_at)
    sweep_time = expires_at + dt.timedelta(hours=1)
    marker = tmp_path / "in-batch-2"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "credits_admin.settings", "DATABASE_URL": _test_database_url(),
           "SECRET_KEY": "sweep-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz", "DEBUG": "0",
           "CELERY_TASK_ALWAYS_EAGER": "1", "EMAIL_URL": "dummymail://"}
    process = subprocess.Popen([sys.executable, "-c", _SWEEP_THAT_WAITS_IN_BATCH_2, str(marker), sweep_time.isoformat()],
                               cwd=django_settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), process.communicate(timeout=5)[0].decode(errors="replace")[-3000:]
        # when: the worker is killed (no cleanup, no rollback from the client side)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    deadline = time.monotonic() + 20  # PostgreSQL notices the dead client and rolls its batch back
    while _other_backends() and time.monotonic() < deadline:
        time.sleep(0.1)
    # then: the first batch is committed, the second left nothing behind
    assert process.returncode == -signal.SIGKILL
    assert sum(_expire_entries_per_lot().values()) == 3
    assert CreditLot.objects.filter(remaining=0).count() == 3
    assert verify_ledger() == []
    # when: the next hourly run
    posted = ledger_services.expire_due(now=sweep_time, batch_size=3)
    # then: every lot expired exactly once, the ledger whole
    assert posted == 7
    assert _expire_entries_per_lot() == {lot.pk: 1 for lot in lots}
    assert not CreditLot.objects.filter(remaining__gt=0).exists()
    assert verify_ledger() == []

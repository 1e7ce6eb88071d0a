"""The outbox: written with the change, enqueued after commit, sent once per cause even when
the task runs twice, concurrently, or its worker dies; re-dispatched when a task is lost."""

import datetime as dt
import threading
from smtplib import SMTPException, SMTPRecipientsRefused

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.db import connection
from django.utils import timezone

from ledger import services as ledger_services
from notifications import services
from notifications.models import OutboxMessage
from notifications.tasks import deliver_outbox_message_task, redispatch_outbox_task
from tests.factories import CustomerFactory

S = OutboxMessage.Status


def _pending_message(held_deliveries) -> OutboxMessage:
    customer = CustomerFactory()
    ledger_services.grant(customer=customer, amount=500, reason="Welcome")
    message = OutboxMessage.objects.get()
    assert message.status == S.PENDING and held_deliveries == [message.pk]
    return message


def run_in_threads(n: int, fn) -> list:
    """fn() in n threads released together; each thread closes its own connection."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def target():
        try:
            barrier.wait()
            results.append(fn())
        except Exception as exc:  # collected and re-raised in the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


def test_delivery_is_enqueued_only_after_the_transaction_commits(db, django_capture_on_commit_callbacks):
    # given
    customer = CustomerFactory()
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ledger_services.grant(customer=customer, amount=500, reason="Welcome")
    # then: the row is there, in the transaction; nothing sent; one delivery waits for commit
    message = OutboxMessage.objects.get()
    assert message.status == S.PENDING and message.attempts == 0
    assert message.cause_key == f"credits_received:{customer.credit_account.entries.get().pk}"
    assert len(callbacks) == 1
    assert mail.outbox == []


def test_deliver_refuses_to_send_inside_a_transaction(db):
    # given / when / then (the claim must commit before the send, or exactly-once is lost)
    with pytest.raises(RuntimeError, match="call it outside any transaction"):
        services.deliver(message_id=1)


@pytest.mark.django_db(transaction=True)
def test_delivery_task_run_twice_sends_one_email(held_deliveries):
    # given
    message = _pending_message(held_deliveries)
    # when
    first = deliver_outbox_message_task.apply(args=[message.pk]).get()
    second = deliver_outbox_message_task.apply(args=[message.pk]).get()
    # then
    assert (first, second) == ("sent", "skipped")
    assert len(mail.outbox) == 1
    message.refresh_from_db()
    assert message.status == S.SENT and message.attempts == 1 and message.sent_at is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_row_send_one_email(held_deliveries):
    # given
    message = _pending_message(held_deliveries)
    # when
    results = run_in_threads(6, lambda: services.deliver(message_id=message.pk))
    # then
    assert sorted(results) == ["sent"] + ["skipped"] * 5
    assert len(mail.outbox) == 1
    message.refresh_from_db()
    assert message.status == S.SENT and message.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_sent_email_carries_a_message_id_fixed_per_row(held_deliveries):
    # given
    message = _pending_message(held_deliveries)
    # when
    services.deliver(message_id=message.pk)
    # then
    assert mail.outbox[0].extra_headers["Message-ID"] == f"<outbox.{message.pk}@store.example>"
    assert mail.outbox[0].from_email == "credits@store.example"


@pytest.mark.django_db(transaction=True)
def test_row_claimed_by_a_worker_that_died_is_sent_once_after_the_timeout(held_deliveries, settings):
    # given: a worker claimed the row 5 minutes ago and died before sending
    settings.OUTBOX_SENDING_TIMEOUT_MINUTES = 15
    message = _pending_message(held_deliveries)
    now = timezone.now()
    OutboxMessage.objects.filter(pk=message.pk).update(status=S.SENDING, attempts=1,
                                                       claimed_at=now - dt.timedelta(minutes=5))
    # when: the broker redelivers the task (acks_late) while the claim is fresh
    redelivered = services.deliver(message_id=message.pk)
    early = services.redispatch(now=now)
    # then: nothing is sent yet
    assert (redelivered, early) == ("skipped", 0)
    assert mail.outbox == []
    # when: the claim is older than the timeout
    OutboxMessage.objects.filter(pk=message.pk).update(claimed_at=now - dt.timedelta(minutes=16))
    held_deliveries.clear()
    assert services.redispatch() == 1
    results = [services.deliver(message_id=pk) for pk in held_deliveries]
    # then: sent exactly once
    assert results == ["sent"]
    assert len(mail.outbox) == 1
    message.refresh_from_db()
    assert message.status == S.SENT and message.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_crash_after_the_smtp_send_before_the_status_write_sends_twice_with_one_message_id(
        held_deliveries, settings, monkeypatch):
    """The accepted at-least-once edge: the server took the email, then the worker died."""
    # given
    settings.OUTBOX_SENDING_TIMEOUT_MINUTES = 15
    message = _pending_message(held_deliveries)
    real_build = services.build_email

    class Crash(BaseException):
        pass

    def build_then_crash(row):
        email = real_build(row)
        real_send = email.send

        def send(**kwargs):
            real_send(**kwargs)
            raise Crash("worker killed after the SMTP server accepted the message")

        email.send = send
        return email

    monkeypatch.setattr(services, "build_email", build_then_crash)
    with pytest.raises(Crash):
        services.deliver(message_id=message.pk)
    monkeypatch.setattr(services, "build_email", real_build)
    # when: the claim goes stale and the row is redispatched
    OutboxMessage.objects.filter(pk=message.pk).update(claimed_at=timezone.now() - dt.timedelta(minutes=16))
    assert services.redispatch() == 1
    services.deliver(message_id=message.pk)
    # then: two copies, one Message-ID, one row
    assert len(mail.outbox) == 2
    assert {m.extra_headers["Message-ID"] for m in mail.outbox} == {f"<outbox.{message.pk}@store.example>"}
    message.refresh_from_db()
    assert message.status == S.SENT


@pytest.mark.django_db(transaction=True)
def test_redispatch_enqueues_only_rows_pending_longer_than_the_setting(held_deliveries, settings):
    # given
    settings.OUTBOX_REDISPATCH_MINUTES = 10
    customer = CustomerFactory()
    for amount in (100, 200, 300):
        ledger_services.grant(customer=customer, amount=amount, reason="Welcome")
    old, recent, sent = OutboxMessage.objects.order_by("pk")
    now = timezone.now()
    OutboxMessage.objects.filter(pk=old.pk).update(dispatched_at=now - dt.timedelta(minutes=11))
    OutboxMessage.objects.filter(pk=recent.pk).update(dispatched_at=now - dt.timedelta(minutes=9))
    OutboxMessage.objects.filter(pk=sent.pk).update(dispatched_at=now - dt.timedelta(minutes=60), status=S.SENT,
                                                    sent_at=now)
    held_deliveries.clear()
    # when
    count = redispatch_outbox_task.apply().get()
    # then
    assert count == 1
    assert held_deliveries == [old.pk]


@pytest.mark.django_db(transaction=True)
def test_redispatch_run_twice_enqueues_each_row_once(held_deliveries):
    # given
    message = _pending_message(held_deliveries)
    OutboxMessage.objects.filter(pk=message.pk).update(dispatched_at=timezone.now() - dt.timedelta(hours=1))
    held_deliveries.clear()
    # when
    counts = [services.redispatch(), services.redispatch()]
    # then
    assert counts == [1, 0]
    assert held_deliveries == [message.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_redispatch_runs_enqueue_each_row_once(held_deliveries):
    # given
    customer = CustomerFactory()
    for amount in range(1, 31):
        ledger_services.grant(customer=customer, amount=amount, reason="Welcome")
    OutboxMessage.objects.update(dispatched_at=timezone.now() - dt.timedelta(hours=1))
    held_deliveries.clear()
    # when
    counts = run_in_threads(4, services.redispatch)
    # then
    assert sum(counts) == 30
    assert sorted(held_deliveries) == sorted(OutboxMessage.objects.values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
def test_lost_task_is_redispatched_and_then_its_late_copy_does_nothing(held_deliveries):
    # given: the first task was lost, the row waited an hour
    message = _pending_message(held_deliveries)
    OutboxMessage.objects.filter(pk=message.pk).update(dispatched_at=timezone.now() - dt.timedelta(hours=1))
    # when: the redispatched task runs, then the lost one turns up after all
    services.redispatch()
    results = [services.deliver(message_id=message.pk), services.deliver(message_id=message.pk)]
    # then
    assert results == ["sent", "skipped"]
    assert len(mail.outbox) == 1


def test_delivery_task_acks_late_and_retries_mail_errors_with_backoff():
    # given / when
    task = deliver_outbox_message_task
    # then
    assert task.acks_late is True
    assert set(task.autoretry_for) >= {SMTPException, ConnectionError}
    assert task.retry_backoff is True and task.retry_jitter is True
    assert task.max_retries == 5


@pytest.mark.django_db(transaction=True)
def test_smtp_errors_are_recorded_and_the_task_retries_until_sent(held_deliveries, flaky_mail):
    # given
    message = _pending_message(held_deliveries)
    flaky_mail.reset(failures=2)
    # when: the task fails, Celery schedules a retry (with backoff on a worker); the
    # retries then run as the broker delivers them
    with pytest.raises(Retry):
        deliver_outbox_message_task.apply(args=[message.pk])
    with pytest.raises(Retry):
        deliver_outbox_message_task.apply(args=[message.pk])
    last = deliver_outbox_message_task.apply(args=[message.pk]).get()
    # then
    assert last == "sent"
    assert flaky_mail.calls == 3
    assert len(mail.outbox) == 1
    message.refresh_from_db()
    assert message.status == S.SENT and message.attempts == 3 and message.last_error == ""


@pytest.mark.django_db(transaction=True)
def test_a_retryable_error_leaves_the_row_pending_with_the_error(held_deliveries, flaky_mail):
    # given
    message = _pending_message(held_deliveries)
    flaky_mail.reset(failures=1)
    # when
    with pytest.raises(Exception, match="Connection unexpectedly closed"):
        services.deliver(message_id=message.pk)
    # then
    message.refresh_from_db()
    assert message.status == S.PENDING and message.attempts == 1
    assert message.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_the_row_fails_for_good_after_the_last_attempt(held_deliveries, flaky_mail, settings):
    # given
    settings.OUTBOX_MAX_ATTEMPTS = 2
    message = _pending_message(held_deliveries)
    flaky_mail.reset(failures=5, error=SMTPRecipientsRefused({"x@example.com": (550, b"No such user")}))
    # when
    with pytest.raises(SMTPRecipientsRefused):
        services.deliver(message_id=message.pk)
    last = services.deliver(message_id=message.pk)
    # then
    assert last == "failed"
    message.refresh_from_db()
    assert message.status == S.FAILED and message.attempts == 2
    assert "No such user" in message.last_error
    assert services.redispatch(now=timezone.now() + dt.timedelta(days=1)) == 0  # failed rows stay failed


@pytest.mark.django_db(transaction=True)
def test_an_error_that_no_retry_can_fix_fails_at_once(held_deliveries, flaky_mail):
    # given
    message = _pending_message(held_deliveries)
    flaky_mail.reset(failures=1, error=ValueError("Invalid address"))
    # when
    result = services.deliver(message_id=message.pk)
    # then
    assert result == "failed"
    message.refresh_from_db()
    assert message.status == S.FAILED and message.last_error == "ValueError: Invalid address"


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_after_commit_never_fails_the_change(monkeypatch):
    # given
    from notifications import tasks

    def broker_down(message_id):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(tasks.deliver_outbox_message_task, "delay", broker_down)
    customer = CustomerFactory()
    # when
    entry = ledger_services.grant(customer=customer, amount=500, reason="Welcome")
    # then: the grant stands, the row waits for the redispatch job
    assert entry.pk is not None
    assert OutboxMessage.objects.get().status == S.PENDING


def test_the_email_of_a_grant_costs_the_posting_a_few_queries(db):
    # given
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ledger.signals import entries_posted
    from notifications import receivers

    customer = CustomerFactory()
    ledger_services.grant(customer=customer, amount=100, reason="warm-up")
    entries_posted.disconnect(dispatch_uid="notifications.entries_posted")
    try:
        with CaptureQueriesContext(connection) as without:
            ledger_services.grant(customer=customer, amount=100, reason="without the listener")
    finally:
        entries_posted.connect(receivers.on_entries_posted, dispatch_uid="notifications.entries_posted")
    # when
    with CaptureQueriesContext(connection) as with_email:
        ledger_services.grant(customer=customer, amount=100, reason="with the listener")
    # then: template, store name, customer, lot expiry, and the row in its savepoint
    assert len(with_email) - len(without) <= 7
    assert OutboxMessage.objects.count() == 2

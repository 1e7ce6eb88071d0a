"""Gateway payouts: sent after commit, retried once a day, given up after the last retry."""

import logging
from datetime import UTC, datetime

import pytest
import time_machine

from credits_admin.models import AuditEvent
from ledger import selectors as ledger_selectors
from ledger.models import LedgerEntry, LotConsumption
from refunds import services, tasks
from refunds.exceptions import IllegalTransition, OpenRequestExists, PayoutInFlight
from refunds.models import Payout, RefundRequest
from refunds.signals import payout_failed, refund_request_status_changed
from tests.refunds.support import SignalLog, refunds_state, run_payout_sends

pytestmark = pytest.mark.django_db
S = RefundRequest.Status

# 14:00 UTC on a Monday; the store's time zone is UTC in tests.
DAY0 = datetime(2031, 3, 3, 14, 0, tzinfo=UTC)


def at(day: int, hour: int):
    return datetime(2031, 3, 3 + day, hour, 0, tzinfo=UTC)


def _refund(make_request, customer, agent, capture, amount=1000):
    req = make_request(customer, amount)
    with capture() as callbacks:
        services.refund(request=req, actor=agent)
    run_payout_sends(callbacks)
    req.refresh_from_db()
    return req


def test_gateway_payout_is_queued_in_the_refund_and_sent_after_commit(
        funded_customer, make_request, agent, gateway, django_capture_on_commit_callbacks):
    # given
    req = make_request(funded_customer, 1000)
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.refund(request=req, actor=agent)
        payout = Payout.objects.get(request=req)
        # then: nothing sent while the refund's transaction is open
        assert (payout.status, payout.attempts, gateway.calls) == ("queued", 0, [])
    assert run_payout_sends(callbacks) == 1
    payout.refresh_from_db()
    assert (payout.status, payout.attempts, payout.reference) == ("paid", 1, "gw-1")
    call = gateway.calls[0]
    assert (call["amount"], call["account_number"], call["idempotency_key"]) == (1000, "123456789012",
                                                                                 f"payout:{payout.pk}")
    assert AuditEvent.objects.filter(action="refunds.payout_paid").count() == 1
    req.refresh_from_db()
    assert req.status == S.REFUNDED


def test_failed_payout_is_queued_for_a_retry_from_the_next_day(
        funded_customer, make_request, agent, gateway, django_capture_on_commit_callbacks):
    # given
    gateway.will("Account 123456789012 closed")
    # when
    with time_machine.travel(DAY0, tick=False):
        req = _refund(make_request, funded_customer, agent, django_capture_on_commit_callbacks)
    # then
    payout = Payout.objects.get(request=req)
    assert (payout.status, payout.attempts) == ("retrying", 1)
    assert payout.next_attempt_at == at(1, 0)
    assert payout.last_error == "Account ••••9012 closed"  # never the full number
    assert req.status == S.REFUNDED  # the credits stay debited while it is retried
    assert ledger_selectors.available_balance(customer=funded_customer) == 4000


def test_retries_run_once_a_day_and_a_success_pays_it(
        funded_customer, make_request, agent, gateway, django_capture_on_commit_callbacks):
    # given
    gateway.will(False, False, True)
    with time_machine.travel(DAY0, tick=False):
        req = _refund(make_request, funded_customer, agent, django_capture_on_commit_callbacks)
    payout = Payout.objects.get(request=req)
    # when / then: the same day, nothing is due
    with time_machine.travel(at(0, 23), tick=False):
        assert tasks.retry_payouts_task() == 0
    # the next day's run retries once; a second run that day does nothing
    with time_machine.travel(at(1, 4), tick=False):
        assert tasks.retry_payouts_task() == 1
        assert tasks.retry_payouts_task() == 0
    payout.refresh_from_db()
    assert (payout.status, payout.attempts, payout.next_attempt_at) == ("retrying", 2, at(2, 0))
    with time_machine.travel(at(2, 4), tick=False):
        assert tasks.retry_payouts_task() == 1
    payout.refresh_from_db()
    assert (payout.status, payout.attempts, payout.next_attempt_at, payout.last_error) == ("paid", 3, None,
                                                                                         "Declined by the bank.")
    assert len(gateway.calls) == 3
    req.refresh_from_db()
    assert req.status == S.REFUNDED and ledger_selectors.available_balance(customer=funded_customer) == 4000


def test_after_the_third_failed_retry_the_credits_are_restored_and_staff_are_told(
        funded_customer, make_request, agent, gateway, django_capture_on_commit_callbacks):
    # given: the first send and three daily retries all fail
    gateway.default = False
    with time_machine.travel(DAY0, tick=False):
        req = _refund(make_request, funded_customer, agent, django_capture_on_commit_callbacks)
    debit = req.refund_entry
    with SignalLog(payout_failed) as failed, SignalLog(refund_request_status_changed) as changed:
        # when
        for day in (1, 2):
            with time_machine.travel(at(day, 4), tick=False):
                tasks.retry_payouts_task()
        assert RefundRequest.objects.get(pk=req.pk).status == S.REFUNDED  # two retries left it refunded
        with time_machine.travel(at(3, 4), tick=False):
            tasks.retry_payouts_task()
    # then
    payout = Payout.objects.get(request=req)
    assert (payout.status, payout.attempts, payout.next_attempt_at) == ("failed", 4, None)
    req.refresh_from_db()
    assert (req.status, req.refund_entry) == (S.PENDING, None)
    reversal = LedgerEntry.objects.get(reverses=debit)
    assert (reversal.amount, reversal.idempotency_key) == (1000, f"payout_failed:{payout.pk}")
    assert sorted(LotConsumption.objects.filter(entry=reversal).values_list("amount", flat=True)) == [-1000]
    assert ledger_selectors.available_balance(customer=funded_customer) == 5000
    assert [(c["request"].pk, c["payout"].pk, c["attempts"]) for c in failed.calls] == [(req.pk, payout.pk, 4)]
    assert [(c["old_status"], c["new_status"], c["actor"]) for c in changed.calls] == [("refunded", "pending", None)]
    assert changed.calls[0]["reason"].startswith("The payout failed 4 times (Declined by the bank.)")
    assert AuditEvent.objects.filter(action="refunds.payout_failed").count() == 1
    assert len(gateway.calls) == 4
    # and a later run does nothing more
    with time_machine.travel(at(4, 4), tick=False):
        assert tasks.retry_payouts_task() == 0
    assert ledger_selectors.verify_ledger() == []


def test_after_the_last_failure_an_alert_email_goes_to_the_notify_addresses(
        funded_customer, make_request, agent, gateway, django_capture_on_commit_callbacks):
    # given: the addresses set on the Emails page; every send fails
    from notifications.kinds import EmailKind
    from notifications.models import EmailSettings, OutboxMessage

    EmailSettings.load()
    EmailSettings.objects.filter(pk=1).update(staff_recipients="ops@store.example, finance@store.example")
    gateway.default = "Account 123456789012 closed"
    with time_machine.travel(DAY0, tick=False):
        req = _refund(make_request, funded_customer, agent, django_capture_on_commit_callbacks)
    alerts = OutboxMessage.objects.filter(kind=EmailKind.PAYOUT_FAILURE_ALERT)
    # when: the first two daily retries fail: no alert yet
    for day in (1, 2):
        with time_machine.travel(at(day, 10), tick=False):
            tasks.retry_payouts_task()
    assert not alerts.exists()
    # when: the third retry fails too
    with time_machine.travel(at(3, 10), tick=False):
        tasks.retry_payouts_task()
    # then: one alert, to those addresses, naming the request, with the account number masked
    alert = alerts.get()
    assert alert.to == "ops@store.example, finance@store.example"
    assert str(req.pk) in alert.subject + alert.text and funded_customer.member_id in alert.text
    assert "123456789012" not in alert.subject + alert.text + alert.html
    assert RefundRequest.objects.get(pk=req.pk).status == S.PENDING


def test_the_beat_schedule_runs_the_payout_retries_once_a_day(settings):
    # given
    entry = settings.CELERY_BEAT_SCHEDULE["retry-payouts"]
    # then: one run a day (a daily crontab: a fixed hour and minute)
    assert entry["task"] == tasks.retry_payouts_task.name
    schedule = entry["schedule"]
    assert len(schedule.hour) == 1 and len(schedule.minute) == 1
    assert len(schedule.day_of_week) == 7 and len(schedule.day_of_month) == 31
    assert settings.REFUNDS_PAYOUT_MAX_RETRIES == 3


def test_undo_while_a_payout_waits_for_its_retry_cancels_it(
        funded_customer, make_request, agent, gateway, django_capture_on_commit_callbacks):
    # given
    gateway.will(False)
    with time_machine.travel(DAY0, tick=False):
        req = _refund(make_request, funded_customer, agent, django_capture_on_commit_callbacks)
    # when
    with time_machine.travel(at(0, 16), tick=False):
        services.undo(request=req, actor=agent)
    with time_machine.travel(at(1, 4), tick=False):
        attempted = tasks.retry_payouts_task()
    # then
    assert attempted == 0 and len(gateway.calls) == 1
    assert Payout.objects.get(request=req).status == "cancelled"
    assert ledger_selectors.available_balance(customer=funded_customer) == 5000


def test_undo_after_the_gateway_paid_is_refused(funded_customer, make_request, agent, gateway,
                                                django_capture_on_commit_callbacks):
    # given
    req = _refund(make_request, funded_customer, agent, django_capture_on_commit_callbacks)
    before = refunds_state()
    # when
    with pytest.raises(IllegalTransition) as exc:
        services.undo(request=req, actor=agent)
    # then
    assert exc.value.message == (f"The payment gateway has already paid request #{req.pk} out; "
                                 f"it cannot be undone here.")
    assert refunds_state() == before


def test_undo_while_the_gateway_is_being_called_is_refused(funded_customer, make_request, agent, gateway):
    # given: the refund committed and a worker has claimed its payout
    req = make_request(funded_customer, 1000)
    services.refund(request=req, actor=agent)  # on_commit not run: the payout stays queued
    payout = Payout.objects.get(request=req)
    services._claim(payout.pk, payout.created_at)
    # when
    with pytest.raises(PayoutInFlight) as exc:
        services.undo(request=req, actor=agent)
    # then
    assert exc.value.message == f"The gateway is paying request #{req.pk} out right now; try again in a minute."


def test_new_request_while_a_payout_is_being_retried_is_refused(
        funded_customer, make_request, agent, gateway, django_capture_on_commit_callbacks):
    # given
    gateway.will(False)
    req = _refund(make_request, funded_customer, agent, django_capture_on_commit_callbacks)
    # when
    with pytest.raises(OpenRequestExists) as exc:
        make_request(funded_customer, 100)
    # then
    assert exc.value.message == (f"{funded_customer.member_id}'s refund #{req.pk} is still being paid out by the "
                                 f"gateway; a new request can be made once that payout is settled.")


def test_a_lost_first_send_is_picked_up_by_the_daily_run(funded_customer, make_request, agent, gateway):
    # given: the refund committed but its send task never ran (broker down)
    req = make_request(funded_customer, 1000)
    services.refund(request=req, actor=agent)
    # when
    attempted = tasks.retry_payouts_task()
    # then
    assert attempted == 1
    assert Payout.objects.get(request=req).status == "paid"


def test_a_claim_left_by_a_dead_worker_is_sent_again_after_an_hour(funded_customer, make_request, agent, gateway):
    # given
    with time_machine.travel(DAY0, tick=False):
        req = make_request(funded_customer, 1000)
        services.refund(request=req, actor=agent)
        payout = Payout.objects.get(request=req)
        services._claim(payout.pk, services.clock.now())  # the worker died after this
    # when / then
    with time_machine.travel(datetime(2031, 3, 3, 14, 30, tzinfo=UTC), tick=False):
        assert tasks.retry_payouts_task() == 0
    with time_machine.travel(datetime(2031, 3, 3, 15, 1, tzinfo=UTC), tick=False):
        assert tasks.retry_payouts_task() == 1
    payout.refresh_from_db()
    assert (payout.status, payout.attempts) == ("paid", 2)
    assert {c["idempotency_key"] for c in gateway.calls} == {f"payout:{payout.pk}"}  # the gateway dedupes


def test_a_crashing_gateway_client_counts_as_a_failed_attempt(
        funded_customer, make_request, agent, gateway, django_capture_on_commit_callbacks, caplog):
    # given
    gateway.will(ConnectionError("reset by peer for 123456789012"))
    # when
    with caplog.at_level(logging.DEBUG):
        req = _refund(make_request, funded_customer, agent, django_capture_on_commit_callbacks)
    # then
    payout = Payout.objects.get(request=req)
    assert (payout.status, payout.last_error) == ("retrying", "ConnectionError: reset by peer for ••••9012")
    assert "123456789012" not in caplog.text


def test_manual_backend_never_calls_a_gateway(funded_customer, make_request, agent, settings,
                                              django_capture_on_commit_callbacks):
    # given
    settings.REFUNDS_PAYOUT_BACKEND = "refunds.payouts.ManualBackend"
    # when
    req = _refund(make_request, funded_customer, agent, django_capture_on_commit_callbacks)
    # then
    payout = Payout.objects.get(request=req)
    assert (payout.status, payout.attempts, payout.backend) == ("paid", 0, "refunds.payouts.ManualBackend")
    assert tasks.retry_payouts_task() == 0


@pytest.mark.django_db(transaction=True)
def test_the_gateway_is_called_outside_any_transaction(funded_customer, make_request, agent, gateway):
    # given
    req = make_request(funded_customer, 1000)
    # when: a real commit runs the on_commit hook
    services.refund(request=req, actor=agent)
    # then
    assert [c["in_atomic_block"] for c in gateway.calls] == [False]
    assert Payout.objects.get(request=req).status == "paid"

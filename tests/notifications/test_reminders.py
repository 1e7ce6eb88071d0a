"""Expiry reminders: each lot reminded once, N days ahead (the Emails page's setting), one
email per customer per run, however often and however concurrently the job runs."""

import datetime as dt

import pytest
from django.core import mail
from django.db import transaction

from ledger import clock
from ledger import services as ledger_services
from notifications import services
from notifications.kinds import EmailKind
from notifications.models import EmailSettings, OutboxMessage, RemindedLot
from notifications.tasks import send_expiry_reminders_task
from tests.factories import CustomerFactory

from .conftest import switch
from .test_outbox import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)
DAY = dt.timedelta(days=1)
KIND = EmailKind.CREDITS_EXPIRING


def _grant(customer, amount, expires_in):
    with transaction.atomic():
        entry = ledger_services.grant(customer=customer, amount=amount, reason="Promo",
                                      expires_at=clock.now() + expires_in)
    return entry.lot


def _reminders():
    return list(OutboxMessage.objects.filter(kind=KIND).order_by("pk"))


def test_reminder_goes_out_once_per_lot_even_if_the_job_runs_three_times():
    # given
    customer = CustomerFactory(name="Ada Lovelace")
    lot = _grant(customer, 900, 2 * DAY)
    mail.outbox.clear()
    # when
    runs = [send_expiry_reminders_task.apply().get() for _ in range(3)]
    # then
    assert runs == [1, 0, 0]
    [message] = _reminders()
    assert message.cause_key == f"credits_expiring:{lot.pk}"
    assert list(RemindedLot.objects.values_list("lot_id", flat=True)) == [lot.pk]
    sent = [m for m in mail.outbox if m.extra_headers["X-Credits-Email"] == KIND]
    assert len(sent) == 1
    assert sent[0].subject == f"$9.00 of your store credits expire on {services.format_date(lot.expires_at)}"


def test_a_customers_lots_share_one_email_and_a_later_lot_gets_its_own_once():
    # given
    customer = CustomerFactory()
    first = _grant(customer, 500, 1 * DAY)
    second = _grant(customer, 700, 2 * DAY)
    _grant(customer, 300, 10 * DAY)  # outside the 3-day window
    # when
    services.send_expiry_reminders()
    third = _grant(customer, 200, 2 * DAY)
    services.send_expiry_reminders()
    services.send_expiry_reminders()
    # then
    one, two = _reminders()
    assert one.cause_key == f"credits_expiring:{first.pk}"
    assert "$12.00 of your store credits" in one.text
    assert f"expire on {services.format_date(first.expires_at)}" in one.text
    assert two.cause_key == f"credits_expiring:{third.pk}"
    assert "$2.00 of your store credits" in two.text
    assert dict(RemindedLot.objects.values_list("lot_id", "message_id")) == {
        first.pk: one.pk, second.pk: one.pk, third.pk: two.pk}


def test_lots_beyond_the_window_are_reminded_once_they_enter_it():
    # given
    customer = CustomerFactory()
    lot = _grant(customer, 500, 5 * DAY)
    # when
    early = services.send_expiry_reminders()
    later = services.send_expiry_reminders(now=clock.now() + 2 * DAY + dt.timedelta(hours=1))
    # then
    assert (early, later) == (0, 1)
    assert RemindedLot.objects.get().lot_id == lot.pk


def test_the_days_setting_moves_the_window():
    # given
    EmailSettings.load()
    EmailSettings.objects.filter(pk=1).update(expiry_reminder_days=7)
    customer = CustomerFactory()
    _grant(customer, 500, 6 * DAY)
    # when
    count = services.send_expiry_reminders()
    # then
    assert count == 1


def test_used_up_expired_and_never_expiring_lots_are_not_reminded():
    # given
    customer = CustomerFactory()
    used = _grant(customer, 500, 2 * DAY)
    ledger_services.debit(customer=customer, amount=500, kind="redeem", reason="Checkout", source="api")
    _grant(customer, 400, dt.timedelta(minutes=1))
    with transaction.atomic():
        ledger_services.grant(customer=customer, amount=300, reason="Forever")
    # when: an hour later the 1-minute lot has expired
    count = services.send_expiry_reminders(now=clock.now() + dt.timedelta(hours=1))
    # then
    assert count == 0
    assert not RemindedLot.objects.filter(lot_id=used.pk).exists()


def test_reminders_switched_off_write_nothing_and_remember_nothing():
    # given
    switch(KIND, False)
    customer = CustomerFactory()
    _grant(customer, 500, 2 * DAY)
    # when
    count = services.send_expiry_reminders()
    # then
    assert count == 0
    assert not RemindedLot.objects.exists() and not _reminders()


def test_customer_without_email_is_skipped():
    # given
    customer = CustomerFactory(email="")
    _grant(customer, 500, 2 * DAY)
    # when
    count = services.send_expiry_reminders()
    # then
    assert count == 0 and not RemindedLot.objects.exists()


@pytest.mark.postgres
def test_concurrent_reminder_jobs_remind_each_lot_once():
    # given
    lots = []
    for _ in range(12):
        customer = CustomerFactory()
        lots += [_grant(customer, 100, 1 * DAY), _grant(customer, 200, 2 * DAY)]
    # when
    counts = run_in_threads(4, services.send_expiry_reminders)
    # then
    assert sum(counts) == 12
    assert len(_reminders()) == 12
    assert sorted(RemindedLot.objects.values_list("lot_id", flat=True)) == sorted(lot.pk for lot in lots)

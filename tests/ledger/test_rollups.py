"""The history summary of a period for everyone comes from daily rollups (ledger.rollups)
plus a live aggregate, and its customers from CreditAccount.last_entry_at: checked against
a brute-force sum over every entry, for random periods over many days, today's live part, a
non-UTC time zone with a daylight-saving change, entries backdated into rolled days after
the build, the beat job run twice, and a clock moved back behind the newest entries."""

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ledger import clock, rollups, selectors, services
from ledger.models import LedgerDayTotal, LedgerEntry
from ledger.tasks import build_day_totals_task
from tests.factories import CustomerFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2030, 3, 20, 15, 30, tzinfo=dt.UTC)
SUMMARY = reverse("ledger:history_summary")
SEED = 20300320
PRESET_DAYS = {"today": 0, "7d": 6, "30d": 29}


def make_ledger(rng: random.Random, *, now: dt.datetime, tz: ZoneInfo, days: int = 45, count: int = 220):
    """Entries of 8 customers over the `days` days before `now` (through ledger.services, in
    time order): random moments, a few exactly on local midnights and a microsecond before,
    some today, and expiries posted by the sweep."""
    customers = [CustomerFactory() for _ in range(8)]
    moments = [now - dt.timedelta(seconds=rng.randrange(days * 86400)) for _ in range(count)]
    today = now.astimezone(tz).date()
    for back in (1, 2, 7, 20, 29, 30):
        midnight = dt.datetime.combine(today - dt.timedelta(days=back), dt.time.min, tzinfo=tz)
        moments += [midnight, midnight - dt.timedelta(microseconds=1)]
    moments += [now - dt.timedelta(minutes=m) for m in (1, 5, 90)]  # today, live
    for moment in sorted(moments):
        customer = rng.choice(customers)
        with clock.posting_at(moment):
            available = selectors.available_balance(customer=customer)
            if available > 0 and rng.random() < 0.4:
                services.debit(customer=customer, amount=rng.randint(1, available), kind="redeem", reason="spent")
            else:
                expiry = rng.choice([None, moment + dt.timedelta(days=rng.randint(1, 10))])
                services.grant(customer=customer, amount=rng.randint(1, 5000), reason="earned", expires_at=expiry)
            if rng.random() < 0.1:
                services.expire_due(now=moment)
    return customers


def brute(start: dt.datetime, end: dt.datetime | None) -> dict:
    rows = [(a, m, t) for a, m, t in LedgerEntry.objects.values_list("account_id", "amount", "created_at")
            if t >= start and (end is None or t < end)]
    rewarded = sum(m for _, m, _ in rows if m > 0)
    deducted = -sum(m for _, m, _ in rows if m < 0)
    return {"rewarded": rewarded, "deducted": deducted, "net": rewarded - deducted, "entries": len(rows),
            "customers": len({a for a, _, _ in rows})}


def local_day(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


def random_period(rng: random.Random, now: dt.datetime, tz: ZoneInfo) -> tuple[dict, dt.datetime, dt.datetime | None]:
    """Search params of a pure period search, with the [start, end) it means."""
    today = now.astimezone(tz).date()
    choice = rng.choice(["today", "7d", "30d", "month", "custom", "custom", "custom", "from"])
    if choice in PRESET_DAYS:
        return ({"period": choice}, local_day(today - dt.timedelta(days=PRESET_DAYS[choice]), tz),
                local_day(today + dt.timedelta(days=1), tz))
    if choice == "month":
        return {"period": "month"}, local_day(today.replace(day=1), tz), local_day(today + dt.timedelta(days=1), tz)
    a, b = sorted(today - dt.timedelta(days=rng.randrange(-1, 50)) for _ in range(2))
    if choice == "from":
        return {"period": "custom", "date_from": a.isoformat()}, local_day(a, tz), None
    return ({"period": "custom", "date_from": a.isoformat(), "date_to": b.isoformat()},
            local_day(a, tz), local_day(b + dt.timedelta(days=1), tz))


def assert_random_periods_match(client, rng, now, tz, searches=40):
    client.force_login(StaffUserFactory(role="Ops"))
    for i in range(searches):
        params, start, end = random_period(rng, now, tz)
        summary = client.get(SUMMARY, params).context["summary"]
        assert summary == brute(start, end), (i, params)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


# --------------------------------------------------------------------------- exact totals

def test_random_periods_equal_a_brute_force_sum_and_use_the_rollups(client, frozen):
    # given
    rng = random.Random(SEED)
    make_ledger(rng, now=NOW, tz=ZoneInfo("UTC"))
    # when / then: the first searches build the days they need, the later ones read them
    assert_random_periods_match(client, rng, NOW, ZoneInfo("UTC"))
    assert LedgerDayTotal.objects.count() >= 29
    assert not LedgerDayTotal.objects.filter(starts_at__gte=NOW - rollups.SETTLE - dt.timedelta(days=1)).exists()


@override_settings(TIME_ZONE="America/New_York")
def test_days_are_the_time_zones_days_across_a_daylight_saving_change(client):
    # given: New York's clocks went forward on 2030-03-10 (a 23-hour day)
    tz = ZoneInfo("America/New_York")
    now = dt.datetime(2030, 3, 20, 2, 30, tzinfo=dt.UTC)  # 22:30 on the 19th in New York
    with time_machine.travel(now, tick=False):
        rng = random.Random(SEED + 1)
        make_ledger(rng, now=now, tz=tz)
        # when / then
        assert_random_periods_match(client, rng, now, tz)
        short = LedgerDayTotal.objects.get(starts_at=local_day(dt.date(2030, 3, 10), tz))
    assert short.time_zone == "America/New_York"
    assert short.ends_at - short.starts_at == dt.timedelta(hours=23)
    assert short.starts_at == dt.datetime(2030, 3, 10, 5, tzinfo=dt.UTC)


def test_a_time_zone_change_builds_that_zones_days_and_drops_the_others(client, frozen):
    # given
    rng = random.Random(SEED + 2)
    make_ledger(rng, now=NOW, tz=ZoneInfo("UTC"))
    assert_random_periods_match(client, rng, NOW, ZoneInfo("UTC"), searches=5)
    # when
    with override_settings(TIME_ZONE="Asia/Seoul"):
        assert_random_periods_match(client, rng, NOW, ZoneInfo("Asia/Seoul"), searches=15)
        # then
        assert set(LedgerDayTotal.objects.values_list("time_zone", flat=True)) == {"Asia/Seoul"}


def test_an_entry_backdated_into_a_rolled_day_after_the_build_is_counted(client, frozen):
    # given: every day rolled up by the beat job
    rng = random.Random(SEED + 3)
    customers = make_ledger(rng, now=NOW, tz=ZoneInfo("UTC"))
    assert build_day_totals_task.apply().get() > 29
    day = dt.datetime(2030, 3, 10, tzinfo=dt.UTC)
    before = LedgerDayTotal.objects.get(starts_at=day)
    # when: an entry posted now, dated ten days ago (a bulk load, an import)
    with clock.posting_at(day + dt.timedelta(hours=3)):
        backdated = services.grant(customer=customers[0], amount=777, reason="late import")
    # then: the summary sees it, and the day is rebuilt
    assert_random_periods_match(client, rng, NOW, ZoneInfo("UTC"), searches=10)
    client.force_login(StaffUserFactory(role="Ops"))
    summary = client.get(SUMMARY, {"period": "30d"}).context["summary"]
    assert summary == brute(dt.datetime(2030, 2, 19, tzinfo=dt.UTC), dt.datetime(2030, 3, 21, tzinfo=dt.UTC))
    after = LedgerDayTotal.objects.get(starts_at=day)
    assert (after.rewarded, after.entries) == (before.rewarded + 777, before.entries + 1)
    assert after.built_through_id >= backdated.pk


def test_the_beat_job_after_a_backdated_entry_rebuilds_its_day(frozen):
    # given
    rng = random.Random(SEED + 4)
    customers = make_ledger(rng, now=NOW, tz=ZoneInfo("UTC"))
    rollups.build_day_totals()
    day = dt.datetime(2030, 3, 1, tzinfo=dt.UTC)
    with clock.posting_at(day + dt.timedelta(hours=23, minutes=59)):
        services.grant(customer=customers[1], amount=55, reason="late import")
    # when
    rollups.build_day_totals()
    # then: the row is right again and every row is trusted up to the newest entry
    row = LedgerDayTotal.objects.get(starts_at=day)
    expected = brute(day, day + dt.timedelta(days=1))
    assert (row.rewarded, row.deducted, row.entries) == (expected["rewarded"], expected["deducted"], expected["entries"])
    newest = LedgerEntry.objects.order_by("-id").first().pk
    assert set(LedgerDayTotal.objects.values_list("built_through_id", flat=True)) == {newest}


def test_the_beat_job_twice_changes_nothing_the_second_time(client, frozen):
    # given
    rng = random.Random(SEED + 5)
    make_ledger(rng, now=NOW, tz=ZoneInfo("UTC"))
    # when
    first = build_day_totals_task.apply().get()
    rows = list(LedgerDayTotal.objects.order_by("starts_at").values_list(
        "starts_at", "ends_at", "rewarded", "deducted", "entries", "built_through_id"))
    second = build_day_totals_task.apply().get()
    # then: the last 400 closed days (up to yesterday), built once
    assert first == rollups.HORIZON_DAYS and second == 0
    assert list(LedgerDayTotal.objects.order_by("starts_at").values_list(
        "starts_at", "ends_at", "rewarded", "deducted", "entries", "built_through_id")) == rows
    assert rows[-1][1] == dt.datetime(2030, 3, 20, tzinfo=dt.UTC)
    assert_random_periods_match(client, rng, NOW, ZoneInfo("UTC"), searches=10)


def test_a_day_that_ended_less_than_an_hour_ago_is_read_live():
    # given: 00:30, yesterday's last postings may still be committing
    now = dt.datetime(2030, 3, 20, 0, 30, tzinfo=dt.UTC)
    with time_machine.travel(now, tick=False):
        rng = random.Random(SEED + 6)
        make_ledger(rng, now=now, tz=ZoneInfo("UTC"), days=10, count=60)
        # when
        days = rollups.rollable_days(dt.datetime(2030, 3, 10, tzinfo=dt.UTC), dt.datetime(2030, 3, 21, tzinfo=dt.UTC))
        summary = selectors.period_summary(start=dt.datetime(2030, 3, 10, tzinfo=dt.UTC),
                                           end=dt.datetime(2030, 3, 21, tzinfo=dt.UTC))
    # then
    assert days[-1] == dt.date(2030, 3, 18)
    assert summary == brute(dt.datetime(2030, 3, 10, tzinfo=dt.UTC), dt.datetime(2030, 3, 21, tzinfo=dt.UTC))


# --------------------------------------------------------------------------- customers

def test_the_customer_count_equals_a_distinct_count_when_the_clock_was_moved_back(client):
    # given: entries up to NOW, then the clock moved back two days and then two hours
    with time_machine.travel(NOW, tick=False):
        rng = random.Random(SEED + 7)
        make_ledger(rng, now=NOW, tz=ZoneInfo("UTC"), days=40, count=120)
    ops = StaffUserFactory(role="Ops")
    for back in (dt.timedelta(days=2), dt.timedelta(hours=2)):
        moved = NOW - back
        with time_machine.travel(moved, tick=False):
            client.force_login(ops)
            today = moved.date()
            for days in (0, 6, 29):
                start = dt.datetime.combine(today - dt.timedelta(days=days), dt.time.min, tzinfo=dt.UTC)
                end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
                # when
                summary = client.get(SUMMARY, {"period": {0: "today", 6: "7d", 29: "30d"}[days]}).context["summary"]
                # then: entries after the period (two days back) or after now (two hours back)
                assert summary == brute(start, end), (back, days)
                assert summary["customers"] == (LedgerEntry.objects.filter(created_at__gte=start, created_at__lt=end)
                                                .values("account_id").distinct().count())


def test_a_period_in_the_past_falls_back_to_the_aggregate(frozen):
    # given
    rng = random.Random(SEED + 8)
    make_ledger(rng, now=NOW, tz=ZoneInfo("UTC"), days=20, count=60)
    # when: entries exist after the period's end
    summary = selectors.period_summary(start=dt.datetime(2030, 3, 1, tzinfo=dt.UTC),
                                       end=dt.datetime(2030, 3, 10, tzinfo=dt.UTC))
    # then
    assert summary is None


# --------------------------------------------------------------------------- queries

def test_the_summary_of_a_rolled_up_period_issues_as_many_queries_with_more_entries(client, frozen):
    # given: the days built by a first call
    rng = random.Random(SEED + 9)
    customers = make_ledger(rng, now=NOW, tz=ZoneInfo("UTC"), days=35, count=50)
    client.force_login(StaffUserFactory(role="Ops"))
    client.get(SUMMARY, {"period": "30d"})
    with CaptureQueriesContext(connection) as few:
        client.get(SUMMARY, {"period": "30d"})
    # when: more entries today, and one more customer
    for n in range(30):
        with clock.posting_at(NOW - dt.timedelta(minutes=n)):
            services.grant(customer=rng.choice([*customers, CustomerFactory()]), amount=100 + n, reason="more")
    with CaptureQueriesContext(connection) as many:
        response = client.get(SUMMARY, {"period": "30d"})
    # then
    assert response.context["summary"] == brute(dt.datetime(2030, 2, 19, tzinfo=dt.UTC),
                                                dt.datetime(2030, 3, 21, tzinfo=dt.UTC))
    assert len(few) == len(many) <= 12, [q["sql"] for q in many.captured_queries]
    assert not any("DISTINCT" in q["sql"].upper() for q in many.captured_queries)

"""Daily totals of the ledger (`LedgerDayTotal`): a cache for the history summary of a
period, never part of the ledger. Nothing here changes an entry, a lot or a balance.

A row holds, for one day of the current time zone `[starts_at, ends_at)`, the sum of the
positive amounts, minus the sum of the negative ones and the number of entries among the
entries with `id <= built_through_id`. The summary of a period adds the rows of its
closed days to a live aggregate of the rest (today, edges), and trusts the rows only if
no entry with a higher id than the lowest `built_through_id` of the rows used is dated
inside them (one probe of the primary key range: the entries posted since the last build).

Each build (the hourly beat job `ledger.tasks.build_day_totals_task`, or lazily the summary
itself when a day it needs is missing or stale), in one transaction and one at a time:

1. reads M = the highest entry id, and W = the lowest `built_through_id` of the rows;
2. finds the days of entries with `W < id <= M` dated before the last rolled day's end
   (backdated or bulk-loaded entries) and rebuilds those days too;
3. builds the asked-for days from the entries with `id <= M` (one grouped statement per
   run of consecutive days);
4. moves every row's `built_through_id` up to M: step 2 showed no other row missed an
   entry up to M. So the summary's check only ever looks at the entries posted since the
   last build (about an hour's worth with the hourly job).

A day is rolled up only once it ended SETTLE ago: a posting is dated when it starts, so an
entry of a just-closed day could still be committing with an id below M. Rows of another
time zone than the current one are deleted by a build (TIME_ZONE changed).
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.db.models import Case, Count, IntegerField, Min, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from . import clock
from .models import LedgerDayTotal, LedgerEntry

SETTLE = dt.timedelta(hours=1)  # a day is rolled up only once it ended this long ago
HORIZON_DAYS = 400  # days before today that rows are kept for (older days: live aggregates)
_LOCK_KEY = 7_340_201  # pg_advisory_xact_lock key: one build at a time


def day_start(day: dt.date, tz) -> dt.datetime:
    """The first instant of `day` in `tz` (as ledger.filters.period_bounds computes it)."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), tz)


def rollable_days(start: dt.datetime | None, end: dt.datetime | None, *, now=None, tz=None) -> list[dt.date]:
    """The consecutive days of the current time zone that lie wholly inside [start, end),
    ended SETTLE ago or more, and are within HORIZON_DAYS before today: the days whose
    totals may come from rows. Empty when there are none (or start is None)."""
    if start is None:
        return []
    tz = tz or timezone.get_current_timezone()
    now = now or clock.now()
    first = timezone.localtime(start, tz).date()
    if day_start(first, tz) < start:
        first += dt.timedelta(days=1)
    first = max(first, timezone.localtime(now, tz).date() - dt.timedelta(days=HORIZON_DAYS))
    days = []
    day = first
    limit = now - SETTLE
    while True:
        following = day_start(day + dt.timedelta(days=1), tz)
        if following > limit or (end is not None and following > end):
            break
        days.append(day)
        day += dt.timedelta(days=1)
    return days


# --------------------------------------------------------------------------- reading

def period_totals(start: dt.datetime, end: dt.datetime | None) -> dict:
    """{"rewarded", "deducted", "entries"} of every entry with start <= created_at < end
    (end None: no upper bound), exactly as an aggregate over those rows would say."""
    tz = timezone.get_current_timezone()
    days = rollable_days(start, end, tz=tz)
    rewarded = deducted = entries = 0
    if days:
        roll_start, roll_end = day_start(days[0], tz), day_start(days[-1] + dt.timedelta(days=1), tz)
        rows = _rows(days, tz)
        if rows is None or _stale(rows, roll_start, roll_end):
            build(days)
            rows = _rows(days, tz)
            if rows is None:  # cannot happen: the build just wrote them
                raise RuntimeError("day totals missing right after their build")
        for row in rows:
            rewarded += row["rewarded"]
            deducted += row["deducted"]
            entries += row["entries"]
        live = Q(created_at__gte=start, created_at__lt=roll_start) | Q(created_at__gte=roll_end)
        if end is not None:
            live &= Q(created_at__lt=end)
    else:
        live = Q(created_at__gte=start) & (Q(created_at__lt=end) if end is not None else Q())
    totals = LedgerEntry.objects.filter(live).aggregate(
        rewarded=Sum("amount", filter=Q(amount__gt=0)), deducted=Sum("amount", filter=Q(amount__lt=0)),
        entries=Count("id"))
    rewarded += int(totals["rewarded"] or 0)
    deducted += -int(totals["deducted"] or 0)
    entries += totals["entries"]
    return {"rewarded": rewarded, "deducted": deducted, "entries": entries}


def _rows(days: list[dt.date], tz) -> list[dict] | None:
    """The rows of `days` in order, or None when one is missing (or is of other bounds)."""
    starts = [day_start(d, tz) for d in days]
    ends = [*starts[1:], day_start(days[-1] + dt.timedelta(days=1), tz)]
    found = {row["starts_at"]: row for row in LedgerDayTotal.objects.filter(
        time_zone=_tz_name(tz), starts_at__gte=starts[0], starts_at__lt=ends[-1]).values(
        "starts_at", "ends_at", "rewarded", "deducted", "entries", "built_through_id")}
    rows = []
    for s, e in zip(starts, ends, strict=True):
        row = found.get(s)
        if row is None or row["ends_at"] != e:
            return None
        rows.append(row)
    return rows


def _stale(rows: list[dict], roll_start: dt.datetime, roll_end: dt.datetime) -> bool:
    """Whether an entry posted after the oldest of these rows was built is dated inside them."""
    through = min(row["built_through_id"] for row in rows)
    return LedgerEntry.objects.filter(id__gt=through, created_at__gte=roll_start, created_at__lt=roll_end).exists()


# --------------------------------------------------------------------------- building

def build_day_totals(*, days: int = HORIZON_DAYS) -> int:
    """The beat job's work: build every missing day of the last `days` closed days (up to
    yesterday, once it ended SETTLE ago), rebuild the days backdated entries changed, and
    move every row's built_through_id up. Safe to run twice or concurrently. Returns the
    number of days built."""
    tz = timezone.get_current_timezone()
    now = clock.now()
    today = timezone.localtime(now, tz).date()
    wanted = rollable_days(day_start(today - dt.timedelta(days=min(days, HORIZON_DAYS)), tz), None, now=now, tz=tz)
    have = set(LedgerDayTotal.objects.filter(time_zone=_tz_name(tz), starts_at__gte=day_start(wanted[0], tz))
               .values_list("starts_at", "ends_at")) if wanted else set()
    missing = [d for d in wanted
               if (day_start(d, tz), day_start(d + dt.timedelta(days=1), tz)) not in have]
    return build(missing)


def build(days: list[dt.date]) -> int:
    """Build (or rebuild) the rows of `days` of the current time zone, with the steps of the
    module docstring. Returns the number of days written."""
    tz = timezone.get_current_timezone()
    name = _tz_name(tz)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        LedgerDayTotal.objects.exclude(time_zone=name).delete()
        through = LedgerEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
        todo = set(days) | _backdated_days(tz, name, through)
        built_at = clock.now()
        written = 0
        for run in _runs(sorted(todo)):
            bounds = [day_start(d, tz) for d in run] + [day_start(run[-1] + dt.timedelta(days=1), tz)]
            totals = _aggregate(bounds, through)
            rows = [LedgerDayTotal(time_zone=name, starts_at=bounds[i], ends_at=bounds[i + 1],
                                   rewarded=totals.get(i, (0, 0, 0))[0], deducted=totals.get(i, (0, 0, 0))[1],
                                   entries=totals.get(i, (0, 0, 0))[2], built_through_id=through,
                                   built_at=built_at)
                    for i in range(len(run))]
            LedgerDayTotal.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["starts_at"],
                update_fields=["time_zone", "ends_at", "rewarded", "deducted", "entries", "built_through_id",
                               "built_at"])
            written += len(rows)
        LedgerDayTotal.objects.filter(built_through_id__lt=through).update(built_through_id=through)
    return written


def _backdated_days(tz, name: str, through: int) -> set[dt.date]:
    """Days with a row that an entry with `W < id <= through` is dated in (W: the lowest
    built_through_id of the rows): for each such entry its local date and both neighbours,
    so that no question of where a day starts can leave one out."""
    span = LedgerDayTotal.objects.filter(time_zone=name).aggregate(
        low=Min("built_through_id"), first=Min("starts_at"))
    if span["low"] is None or span["low"] >= through:
        return set()
    last_end = LedgerDayTotal.objects.filter(time_zone=name).order_by("-ends_at").values_list(
        "ends_at", flat=True).first()
    dates = (LedgerEntry.objects.filter(id__gt=span["low"], id__lte=through, created_at__gte=span["first"],
                                        created_at__lt=last_end)
             .annotate(day=TruncDate("created_at", tzinfo=tz)).order_by().values_list("day", flat=True).distinct())
    near = {d + dt.timedelta(days=k) for d in dates for k in (-1, 0, 1)}
    rows = {timezone.localtime(s, tz).date() for s in LedgerDayTotal.objects.filter(time_zone=name).values_list(
        "starts_at", flat=True)}
    return near & rows


def _runs(days: list[dt.date]) -> list[list[dt.date]]:
    """Sorted days cut into runs of consecutive days."""
    runs: list[list[dt.date]] = []
    for d in days:
        if runs and runs[-1][-1] + dt.timedelta(days=1) == d:
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs


def _aggregate(bounds: list[dt.datetime], through: int) -> dict[int, tuple[int, int, int]]:
    """{day index: (rewarded, deducted, entries)} of the entries with id <= through in each
    [bounds[i], bounds[i + 1]); one statement."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """SELECT width_bucket(created_at, %s::timestamptz[]) - 1 AS day,
                          COALESCE(SUM(amount) FILTER (WHERE amount > 0), 0),
                          COALESCE(-SUM(amount) FILTER (WHERE amount < 0), 0),
                          COUNT(*)
                     FROM ledger_ledgerentry
                    WHERE created_at >= %s AND created_at < %s AND id <= %s
                    GROUP BY 1""",
                [bounds, bounds[0], bounds[-1], through])
            return {int(day): (int(r), int(d), int(n)) for day, r, d, n in cursor.fetchall()}
    bucket = Case(*[When(created_at__lt=bounds[i + 1], then=Value(i)) for i in range(len(bounds) - 1)],
                  output_field=IntegerField())
    rows = (LedgerEntry.objects.filter(created_at__gte=bounds[0], created_at__lt=bounds[-1], id__lte=through)
            .annotate(day=bucket).order_by().values("day")
            .annotate(rewarded=Sum("amount", filter=Q(amount__gt=0)), deducted=Sum("amount", filter=Q(amount__lt=0)),
                      n=Count("id")))
    return {row["day"]: (int(row["rewarded"] or 0), -int(row["deducted"] or 0), row["n"]) for row in rows}


def _tz_name(tz) -> str:
    return str(getattr(tz, "key", None) or tz)

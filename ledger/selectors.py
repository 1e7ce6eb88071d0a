"""Reads of the ledger. Nothing here writes the ledger (no lazy expiry either); only
period_summary may fill the day-totals cache of ledger.rollups."""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import RowNumber

from . import clock
from .models import CreditAccount, CreditLot, LedgerEntry, LotConsumption


def _customer_id(customer) -> int:
    return customer if isinstance(customer, int) else customer.pk


def account_balance(*, customer) -> int:
    """The account's booked balance (may include lots overdue but not yet swept)."""
    return CreditAccount.objects.filter(pk=_customer_id(customer)).values_list("balance", flat=True).first() or 0


def available_balance(*, customer, at: datetime | None = None) -> int:
    """What the customer could spend at `at` (default: now): the booked balance less what
    had expired by then, swept or not."""
    customer_id = _customer_id(customer)
    if at is None:
        now = clock.now()
        booked = account_balance(customer=customer_id)
        overdue = (CreditLot.objects.filter(account_id=customer_id, remaining__gt=0, expires_at__lte=now)
                   .aggregate(s=Sum("remaining"))["s"] or 0)
        return booked - overdue
    last = (LedgerEntry.objects.filter(account_id=customer_id, created_at__lte=at)
            .order_by("-id").values_list("balance_after", flat=True).first())
    booked = last or 0
    # Lots overdue at `at`: what was left of each at that moment still counted in `booked`.
    overdue_lots = CreditLot.objects.filter(account_id=customer_id, created_at__lte=at, expires_at__lte=at)
    granted = overdue_lots.aggregate(s=Sum("amount"))["s"] or 0
    used = (LotConsumption.objects.filter(lot__in=overdue_lots, entry__created_at__lte=at)
            .aggregate(s=Sum("amount"))["s"] or 0)
    return booked - (granted - used)


def expiring_lots(*, customer, within_days: int = 30, now: datetime | None = None):
    """Open lots expiring within the next `within_days` days, soonest first."""
    from datetime import timedelta

    now = now or clock.now()
    return (CreditLot.objects.filter(account_id=_customer_id(customer), remaining__gt=0,
                                     expires_at__gt=now, expires_at__lte=now + timedelta(days=within_days))
            .order_by("expires_at", "id"))


def customer_entries(*, customer):
    return LedgerEntry.objects.filter(account_id=_customer_id(customer)).order_by("-created_at", "-id")


def history_entries(*, kinds=None):
    """The credits history: what the page, its summary and the CSV export all start from."""
    qs = LedgerEntry.objects.select_related("account__customer", "actor", "order")
    if kinds:
        qs = qs.filter(kind__in=kinds)
    return qs.order_by("-created_at", "-id")


def matching_customer_ids(text: str, *, exact: bool = False):
    """Ids of the customers a search box means (see crm.selectors.customer_match)."""
    from crm.models import Customer
    from crm.selectors import customer_match

    return Customer.objects.filter(customer_match(text, exact=exact)).values("pk")


def history_summary(queryset) -> dict:
    """Totals for exactly the rows of `queryset` (one aggregate query)."""
    totals = queryset.order_by().aggregate(
        rewarded=Sum("amount", filter=Q(amount__gt=0)),
        deducted=Sum("amount", filter=Q(amount__lt=0)),
        entries=Count("id"),
        customers=Count("account_id", distinct=True),
    )
    rewarded = int(totals["rewarded"] or 0)
    deducted = -int(totals["deducted"] or 0)
    return {"rewarded": rewarded, "deducted": deducted, "net": rewarded - deducted,
            "entries": totals["entries"], "customers": totals["customers"]}


def period_summary(*, start: datetime, end: datetime | None) -> dict | None:
    """history_summary() of every entry with start <= created_at < end (end None: no upper
    bound), i.e. a period search for everyone, without reading the period's rows: the sums
    come from daily rollups plus a live aggregate of the rest (ledger.rollups), the
    customers from CreditAccount.last_entry_at. None when that shortcut would not be exact
    (an entry is dated at or after `end`, e.g. a period in the past): then use
    history_summary()."""
    from . import rollups

    if end is not None and LedgerEntry.objects.filter(created_at__gte=end).exists():
        return None
    # No entry at or after `end`: the customers with an entry in the period are those whose
    # latest entry is at or after its start.
    customers = CreditAccount.objects.filter(last_entry_at__gte=start).count()
    totals = rollups.period_totals(start, end)
    return {"rewarded": totals["rewarded"], "deducted": totals["deducted"],
            "net": totals["rewarded"] - totals["deducted"], "entries": totals["entries"], "customers": customers}


def balance_at(*, moment: datetime | None, customer_ids=None) -> int:
    """The booked balance (sum of entries) just before `moment` (None: now), for some
    customers (a list of ids or a subquery) or all. For customers it is the balance_after of
    each one's last earlier entry (one index probe per account on PostgreSQL); for everyone
    it is the balances now less everything posted since (exact for any past moment)."""
    if customer_ids is not None:
        if moment is None:
            return int(CreditAccount.objects.filter(pk__in=customer_ids).aggregate(s=Sum("balance"))["s"] or 0)
        if connection.vendor == "postgresql" and isinstance(customer_ids, list | tuple):
            with connection.cursor() as cursor:
                cursor.execute(
                    """SELECT COALESCE(SUM(last.balance_after), 0)
                         FROM unnest(%s::bigint[]) AS a(id)
                         CROSS JOIN LATERAL (
                             SELECT e.balance_after FROM ledger_ledgerentry e
                              WHERE e.account_id = a.id AND e.created_at < %s
                              ORDER BY e.created_at DESC, e.id DESC LIMIT 1) last""",
                    [list(customer_ids), moment])
                return int(cursor.fetchone()[0])
        last_per_account = (
            LedgerEntry.objects.filter(account_id__in=customer_ids, created_at__lt=moment)
            .annotate(rn=Window(RowNumber(), partition_by=F("account_id"),
                                order_by=[F("created_at").desc(), F("id").desc()]))
            .filter(rn=1)
        )
        return int(sum(last_per_account.values_list("balance_after", flat=True)))
    now_total = CreditAccount.objects.aggregate(s=Sum("balance"))["s"] or 0
    if moment is None:
        return int(now_total)
    since = LedgerEntry.objects.filter(created_at__gte=moment).aggregate(s=Sum("amount"))["s"] or 0
    return int(now_total) - int(since)


# --------------------------------------------------------------------------- verification

_CHECKS = [
    ("account balance differs from the sum of its entries",
     """SELECT a.customer_id, a.balance, COALESCE(e.s, 0)
          FROM ledger_creditaccount a
          LEFT JOIN (SELECT account_id, SUM(amount) AS s FROM ledger_ledgerentry GROUP BY account_id) e
            ON e.account_id = a.customer_id
         WHERE a.balance <> COALESCE(e.s, 0)"""),
    ("account balance differs from the sum of its lots' remainders",
     """SELECT a.customer_id, a.balance, COALESCE(l.s, 0)
          FROM ledger_creditaccount a
          LEFT JOIN (SELECT account_id, SUM(remaining) AS s FROM ledger_creditlot GROUP BY account_id) l
            ON l.account_id = a.customer_id
         WHERE a.balance <> COALESCE(l.s, 0)"""),
    ("account version differs from its number of entries",
     """SELECT a.customer_id, a.version, COALESCE(e.n, 0)
          FROM ledger_creditaccount a
          LEFT JOIN (SELECT account_id, COUNT(*) AS n FROM ledger_ledgerentry GROUP BY account_id) e
            ON e.account_id = a.customer_id
         WHERE a.version <> COALESCE(e.n, 0)"""),
    ("lot remainder differs from its amount minus consumptions plus restorations",
     """SELECT l.id, l.remaining, l.amount - COALESCE(c.s, 0)
          FROM ledger_creditlot l
          LEFT JOIN (SELECT lot_id, SUM(amount) AS s FROM ledger_lotconsumption GROUP BY lot_id) c
            ON c.lot_id = l.id
         WHERE l.remaining <> l.amount - COALESCE(c.s, 0)"""),
    ("entry's balance_after does not chain from the previous entry of its account",
     """SELECT id, balance_after, expected FROM (
            SELECT id, balance_after,
                   COALESCE(LAG(balance_after) OVER (PARTITION BY account_id ORDER BY id), 0) + amount AS expected
              FROM ledger_ledgerentry) t
         WHERE balance_after <> expected"""),
    ("account balance differs from the balance_after of its last entry",
     """SELECT a.customer_id, a.balance, e.balance_after
          FROM ledger_creditaccount a
          JOIN ledger_ledgerentry e ON e.id = (SELECT MAX(id) FROM ledger_ledgerentry x WHERE x.account_id = a.customer_id)
         WHERE a.balance <> e.balance_after"""),
    ("account last_entry_at differs from the latest created_at of its entries",
     """SELECT a.customer_id, a.last_entry_at, e.m
          FROM ledger_creditaccount a
          LEFT JOIN (SELECT account_id, MAX(created_at) AS m FROM ledger_ledgerentry GROUP BY account_id) e
            ON e.account_id = a.customer_id
         WHERE (a.last_entry_at IS NULL) <> (e.m IS NULL) OR a.last_entry_at <> e.m"""),
    ("negative balance or remainder",
     """SELECT 'account', customer_id, balance FROM ledger_creditaccount WHERE balance < 0
        UNION ALL SELECT 'lot', id, remaining FROM ledger_creditlot WHERE remaining < 0 OR remaining > amount
        UNION ALL SELECT 'entry', id, balance_after FROM ledger_ledgerentry WHERE balance_after < 0"""),
    ("entry's amount has the wrong sign for its kind, or is zero",
     """SELECT id, kind, amount FROM ledger_ledgerentry
         WHERE amount = 0
            OR (kind = 'grant' AND amount < 0)
            OR (kind IN ('redeem', 'expire', 'clawback', 'deduct', 'cash_refund', 'forfeit') AND amount > 0)"""),
    ("a grant has no lot of the same amount",
     """SELECT e.id, e.amount, l.amount FROM ledger_ledgerentry e
          LEFT JOIN ledger_creditlot l ON l.entry_id = e.id
         WHERE e.kind = 'grant' AND (l.id IS NULL OR l.amount <> e.amount OR l.account_id <> e.account_id)"""),
    ("a debit's lot consumptions do not add up to its amount",
     """SELECT e.id, e.amount, COALESCE(c.s, 0) FROM ledger_ledgerentry e
          LEFT JOIN (SELECT entry_id, SUM(amount) AS s FROM ledger_lotconsumption GROUP BY entry_id) c
            ON c.entry_id = e.id
         WHERE e.kind <> 'grant' AND COALESCE(c.s, 0) <> -e.amount"""),
    ("a lot consumption takes from another account's lot",
     """SELECT c.id, e.account_id, l.account_id FROM ledger_lotconsumption c
          JOIN ledger_ledgerentry e ON e.id = c.entry_id
          JOIN ledger_creditlot l ON l.id = c.lot_id
         WHERE e.account_id <> l.account_id"""),
]


def verify_ledger(*, limit: int = 20) -> list[str]:
    """Every invariant of DESIGN.md's ledger, checked set-based. Empty when all hold."""
    problems: list[str] = []
    with connection.cursor() as cursor:
        for label, sql in _CHECKS:
            cursor.execute(f"SELECT * FROM ({sql}) q LIMIT {int(limit)}")
            for row in cursor.fetchall():
                problems.append(f"{label}: {tuple(row)}")
        # Totals by kind: granted - redeemed - expired - clawed back - deducted - cash-refunded
        # - forfeited +/- reversals == the sum of all balances.
        cursor.execute("SELECT kind, COALESCE(SUM(amount), 0) FROM ledger_ledgerentry GROUP BY kind")
        by_kind = {kind: int(total) for kind, total in cursor.fetchall()}
        cursor.execute("SELECT COALESCE(SUM(balance), 0) FROM ledger_creditaccount")
        balances = int(cursor.fetchone()[0])
    if sum(by_kind.values()) != balances:
        problems.append(f"totals by kind {by_kind} add up to {sum(by_kind.values())}, "
                        f"but the balances add up to {balances}")
    return problems



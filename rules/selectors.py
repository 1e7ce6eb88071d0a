"""Reads of the credits program. Nothing here writes (the back-test included)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Q, QuerySet

from credits_admin.models import StoreSettings
from crm.models import Customer, Order
from ledger import clock
from ledger.models import LedgerEntry

from .models import AllocationRule, Method, Mode, ProgramSettings, Reclaim, StorefrontEvent

BACKTEST_DAYS = 90


def rules_by_method() -> dict[str, AllocationRule]:
    return {rule.method: rule for rule in AllocationRule.objects.select_related("updated_by")}


# --------------------------------------------------------------------------- the engine's settings

# Every storefront event needs the program switch, the expiry policy and the rules: read at
# most every ENGINE_CONFIG_SECONDS per process. A change saved in this process is seen at
# once (forget_engine_config runs on the models' post_save/post_delete, and again on commit);
# other processes (gunicorn workers) see it within those seconds, as they see the store's
# name and currency (credits_admin.store).
ENGINE_CONFIG_SECONDS = 5


@dataclass(frozen=True)
class EngineConfig:
    credits_enabled: bool
    program: ProgramSettings
    rules: dict  # method -> AllocationRule; shared instances: read them, never change them


_engine_config: tuple[float, EngineConfig] | None = None


def engine_config() -> EngineConfig:
    global _engine_config
    now = time.monotonic()
    if _engine_config is not None and now - _engine_config[0] < ENGINE_CONFIG_SECONDS:
        return _engine_config[1]
    store = StoreSettings.objects.filter(pk=1).values_list("credits_enabled", flat=True).first()
    config = EngineConfig(
        credits_enabled=StoreSettings._meta.get_field("credits_enabled").default if store is None else store,
        program=ProgramSettings.current(),
        rules={rule.method: rule for rule in AllocationRule.objects.all()},
    )
    _engine_config = (now, config)
    return config


def forget_engine_config() -> None:
    global _engine_config
    _engine_config = None


def forget_engine_config_on_change(**kwargs) -> None:
    """post_save / post_delete of StoreSettings, ProgramSettings and AllocationRule: forget
    now, and again when the change commits (a read in between may have cached the old rows)."""
    forget_engine_config()
    transaction.on_commit(forget_engine_config)


# --------------------------------------------------------------------------- back-test

def _order_grant_sql(rule: AllocationRule) -> tuple[str, str]:
    """(amount expression, grants-count expression) for one row `o` of a customer's paid
    orders: o.n = its rank, o.cum = the cumulative items total including it. The rule's
    values are validated ints, inlined through int() (never text)."""
    def i(value) -> str:
        return str(int(value))

    if rule.method in (Method.FIRST_ORDER, Method.PAID_ORDER):
        cond = "o.n = 1" if rule.method == Method.FIRST_ORDER else f"o.items_total >= {i(rule.min_spend or 0)}"
        if rule.mode == Mode.PER_VALUE:
            x, y = i(rule.per_amount), i(rule.amount)
            return (f"CASE WHEN {cond} THEN (o.items_total / {x}) * {y} ELSE 0 END",
                    f"CASE WHEN {cond} AND o.items_total >= {x} THEN 1 ELSE 0 END")
        return f"CASE WHEN {cond} THEN {i(rule.amount)} ELSE 0 END", f"CASE WHEN {cond} THEN 1 ELSE 0 END"
    if rule.method == Method.ORDER_HISTORY:
        whens = " ".join(f"WHEN o.n = {i(t['threshold'])} THEN {i(t['amount'])}" for t in rule.tiers)
        thresholds = ", ".join(i(t["threshold"]) for t in rule.tiers)
        return f"CASE {whens} ELSE 0 END", f"CASE WHEN o.n IN ({thresholds}) THEN 1 ELSE 0 END"
    if rule.mode == Mode.TIERS:
        crossed = [f"o.cum - o.items_total < {i(t['threshold'])} AND o.cum >= {i(t['threshold'])}" for t in rule.tiers]
        amounts = " + ".join(f"CASE WHEN {c} THEN {i(t['amount'])} ELSE 0 END"
                             for c, t in zip(crossed, rule.tiers, strict=True))
        counts = " + ".join(f"CASE WHEN {c} THEN 1 ELSE 0 END" for c in crossed)
        return f"({amounts})", f"({counts})"
    x, y = i(rule.per_amount), i(rule.amount)
    return (f"((o.cum / {x}) - ((o.cum - o.items_total) / {x})) * {y}",
            f"CASE WHEN (o.cum / {x}) > ((o.cum - o.items_total) / {x}) THEN 1 ELSE 0 END")


def backtest(rule: AllocationRule, *, now: dt.datetime | None = None, days: int = BACKTEST_DAYS) -> dict:
    """What `rule` (saved or not) would have granted over the last `days` days: the credits,
    the number of grants and of customers. One read-only query; writes nothing. The order
    methods count each customer's paid orders and spend from their whole history, as the
    engine does, and the expiry and the program switch are left aside."""
    end = now or clock.now()
    start = end - dt.timedelta(days=days)
    result = {"method": rule.method, "days": days, "start": start, "end": end, "amount": 0, "grants": 0, "customers": 0, "orders": 0}
    if rule.method == Method.REGISTRATION:
        n = Customer.objects.filter(registered_at__gte=start, registered_at__lt=end).count()
        result.update(amount=n * int(rule.amount or 0), grants=n if rule.amount else 0, customers=n if rule.amount else 0)
        return result
    amount_sql, count_sql = _order_grant_sql(rule)
    table = Order._meta.db_table
    window = "PARTITION BY customer_id ORDER BY paid_at, id"
    sql = f"""
        WITH o AS (
            SELECT customer_id, paid_at, items_total,
                   ROW_NUMBER() OVER ({window}) AS n,
                   CAST(SUM(items_total) OVER ({window} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                        AS BIGINT) AS cum
              FROM {table}
             WHERE paid_at IS NOT NULL AND paid_at < %s
        ), g AS (
            SELECT o.customer_id, {amount_sql} AS amount, {count_sql} AS grants
              FROM o WHERE o.paid_at >= %s
        )
        SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(grants), 0),
               COUNT(DISTINCT CASE WHEN amount > 0 THEN customer_id END), COUNT(*)
          FROM g"""
    with connection.cursor() as cursor:
        cursor.execute(sql, [end, start])
        amount, grants, customers, orders = cursor.fetchone()
    result.update(amount=int(amount), grants=int(grants), customers=int(customers), orders=int(orders))
    return result


# --------------------------------------------------------------------------- events

def recent_events(*, text: str = "", event_type: str = "", status: str = "") -> QuerySet:
    qs = StorefrontEvent.objects.select_related("customer", "order")
    if event_type:
        qs = qs.filter(type=event_type)
    if status:
        qs = qs.filter(status=status)
    text = (text or "").strip()
    if text:
        qs = qs.filter(Q(event_id=text) | Q(customer__member_id=text) | Q(order__external_id=text))
    return qs.order_by("-received_at", "-id")


def event_entries(event: StorefrontEvent) -> list[LedgerEntry]:
    """The grants and clawbacks the event posted."""
    ids = [g["entry"] for g in event.response.get("grants", [])]
    ids += [r["entry"] for r in event.response.get("reclaims", []) if r.get("entry")]
    if not ids:
        return []
    return list(LedgerEntry.objects.filter(pk__in=ids).select_related("account__customer", "lot").order_by("id"))


def event_reclaims(event: StorefrontEvent) -> QuerySet:
    return Reclaim.objects.filter(event=event).select_related("lot", "entry").order_by("id")


def order_reclaims(*, order) -> QuerySet:
    """Every reclaim step of an order's earned credits, with what could not be collected
    (for the order detail page)."""
    return Reclaim.objects.filter(order=order).select_related("event", "lot", "entry").order_by("id")


def order_uncollected(*, order) -> int:
    from django.db.models import Sum

    return int(Reclaim.objects.filter(order=order).aggregate(s=Sum("uncollected"))["s"] or 0)

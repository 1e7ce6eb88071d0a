"""The summary above the history table, checked against brute force: a random ledger of a
few hundred entries (posted through ledger.services, in time order, with lazy expiries,
reversals and clawbacks among them), many random searches, and for every search the
totals the page shows == a plain Python sum over all entries with the same predicates,
written here independently of the filter code. Period searches also reconcile:
opening + rewarded - deducted == closing, and both equal sums of amounts before a moment."""

import datetime as dt
import random
from dataclasses import dataclass

import pytest
import time_machine
from django.urls import reverse

from ledger import clock, selectors, services
from ledger.models import EntryKind, EntrySource, LedgerEntry
from tests.factories import CustomerFactory, OrderFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2030, 3, 20, 15, 30, tzinfo=UTC)
MIDNIGHT = dt.datetime(2030, 3, 20, tzinfo=UTC)
TOMORROW = MIDNIGHT + dt.timedelta(days=1)
PRESET_STARTS = {"today": MIDNIGHT, "7d": MIDNIGHT - dt.timedelta(days=6),
                 "30d": MIDNIGHT - dt.timedelta(days=29), "month": dt.datetime(2030, 3, 1, tzinfo=UTC)}
HISTORY = reverse("ledger:history")
SUMMARY = reverse("ledger:history_summary")  # the totals load from here, right after the table
SEED = 20300320
NAMES = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Anna Karenina", "Annabel Lee", "Barbara Liskov",
         "Ken Thompson", "Edsger Dijkstra", "Donald Knuth", "Radia Perlman"]
GRANT_REASONS = ["Welcome bonus", "Review reward", "Goodwill gesture", "Birthday credits", "Order reward"]
DEBIT_REASONS = ["Checkout", "Goodwill correction", "Cash refund", "Account closed"]


@dataclass
class Row:
    """One entry as plain values: what the brute force looks at."""
    id: int
    account_id: int
    amount: int
    created_at: dt.datetime
    kind: str
    source: str
    reason: str
    order: str | None
    actor_id: int | None


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def world(frozen):
    """A random ledger over the 100 days before NOW (same seed: the same ledger every run)."""
    rng = random.Random(SEED)
    customers = [CustomerFactory(member_id=f"M{n}", name=name, email=f"{name.split()[0].lower()}{n}@example.com")
                 for n, name in enumerate(NAMES, start=1)]  # M1 and M10 both exist: exact-wins is exercised
    staff = [StaffUserFactory(role="Support agent") for _ in range(3)]
    orders = [OrderFactory(customer=rng.choice(customers), external_id=f"ORD-{n}") for n in range(1, 7)]
    moments = sorted(NOW - dt.timedelta(seconds=rng.randrange(100 * 86400)) for _ in range(330))
    # a few bursts of several entries in one instant
    moments = sorted(moments + [moments[40]] * 5 + [moments[200]] * 5)
    debits = []
    for moment in moments:
        customer = rng.choice(customers)
        actor = rng.choice([None, None, *staff])
        order = rng.choice([None, None, None, *orders])
        with clock.posting_at(moment):
            available = selectors.available_balance(customer=customer)
            roll = rng.random()
            if available > 0 and roll < 0.45:
                amount = rng.randint(1, min(available, 20_000))
                kind = rng.choice(["redeem", "deduct", "cash_refund", "forfeit"])
                debits.append(services.debit(customer=customer, amount=amount, kind=kind,
                                             reason=rng.choice(DEBIT_REASONS), actor=actor,
                                             source=rng.choice(["staff", "api"]), order=order))
            elif available > 0 and roll < 0.5:
                services.clawback(customer=customer, amount=rng.randint(1, available + 500),
                                  reason="Order refunded", order=order)
            elif debits and roll < 0.55:
                candidate = debits.pop(rng.randrange(len(debits)))
                if candidate.account_id == customer.pk:
                    services.reverse(entry=candidate, actor=actor)
            else:
                expiry = rng.choice([None, None, moment + dt.timedelta(days=rng.randint(1, 30))])
                services.grant(customer=customer, amount=rng.choice([100, 500, 1000, 2500, rng.randint(1, 9999)]),
                               reason=rng.choice(GRANT_REASONS), expires_at=expiry, actor=actor,
                               source=rng.choice(["rule", "staff", "api", "bulk"]), order=order)
    assert selectors.verify_ledger() == []
    rows = [Row(e.id, e.account_id, e.amount, e.created_at, e.kind, e.source, e.reason,
                e.order.external_id if e.order else None, e.actor_id)
            for e in LedgerEntry.objects.select_related("order").order_by("id")]
    kinds = {row.kind for row in rows}
    assert {"grant", "redeem", "expire", "clawback", "reversal"} <= kinds, kinds  # the mix is really there
    return {"rng": rng, "customers": customers, "staff": staff, "orders": orders, "rows": rows}


# --------------------------------------------------------------------------- brute force

def customers_meant(text: str, customers) -> set[int]:
    """What a customer search box means: exact hits if any, otherwise partial matches."""
    text = text.strip()
    digits = text.replace(" ", "").replace("-", "")
    exact = {c.pk for c in customers
             if c.member_id == text or c.email.lower() == text.lower()
             or (digits.isdigit() and len(digits) == 16 and c.card_number == digits)}
    if exact:
        return exact
    return {c.pk for c in customers
            if text.lower() in c.name.lower() or c.member_id.lower().startswith(text.lower())
            or (digits.isdigit() and 4 <= len(digits) < 16 and c.card_number.endswith(digits))}


def minor(text: str) -> int:
    whole, _, cents = text.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


def bounds(params) -> tuple[dt.datetime | None, dt.datetime | None]:
    period = params.get("period", "")
    if period in PRESET_STARTS:
        return PRESET_STARTS[period], TOMORROW
    if period == "custom" or (not period and (params.get("date_from") or params.get("date_to"))):
        start = dt.datetime.fromisoformat(params["date_from"]).replace(tzinfo=UTC) if params.get("date_from") else None
        end = (dt.datetime.fromisoformat(params["date_to"]).replace(tzinfo=UTC) + dt.timedelta(days=1)
               if params.get("date_to") else None)
        return start, end
    return None, None


def brute_rows(params, world) -> list[Row]:
    start, end = bounds(params)
    who = customers_meant(params["customer"], world["customers"]) if params.get("customer", "").strip() else None
    lo = minor(params["amount_min"]) if params.get("amount_min") else None
    hi = minor(params["amount_max"]) if params.get("amount_max") else None

    def keep(row: Row) -> bool:
        size = abs(row.amount)
        return ((start is None or row.created_at >= start) and (end is None or row.created_at < end)
                and (who is None or row.account_id in who)
                and (params.get("direction") != "rewarded" or row.amount > 0)
                and (params.get("direction") != "deducted" or row.amount < 0)
                and (not params.get("kind") or row.kind == params["kind"])
                and (not params.get("source") or row.source == params["source"])
                and (not params.get("reason") or params["reason"].lower() in row.reason.lower())
                and (lo is None or size >= lo) and (hi is None or size <= hi)
                and (not params.get("order") or row.order == params["order"])
                and (not params.get("staff") or row.actor_id == int(params["staff"])))

    return [row for row in world["rows"] if keep(row)]


def brute_summary(rows: list[Row]) -> dict:
    rewarded = sum(r.amount for r in rows if r.amount > 0)
    deducted = -sum(r.amount for r in rows if r.amount < 0)
    return {"rewarded": rewarded, "deducted": deducted, "net": rewarded - deducted, "entries": len(rows),
            "customers": len({r.account_id for r in rows})}


def balance_before(moment, world, who=None) -> int:
    return sum(r.amount for r in world["rows"] if r.created_at < moment and (who is None or r.account_id in who))


# --------------------------------------------------------------------------- random searches

def random_customer_text(rng, customers) -> str:
    c = rng.choice(customers)
    return rng.choice([
        c.member_id, c.member_id[:2], c.name.split()[rng.randrange(2)].upper(), c.name[1:5].lower(),
        c.email.upper(), c.card_number, " ".join(c.card_number[i:i + 4] for i in range(0, 16, 4)),
        c.card_number[-4:], "ann", "M1", "nobody",
    ])


def random_day(rng) -> str:
    return (NOW - dt.timedelta(days=rng.randrange(-2, 105))).date().isoformat()


def random_search(rng, world) -> dict:
    params: dict[str, str] = {}
    if rng.random() < 0.6:
        params["period"] = rng.choice(["", "today", "7d", "30d", "month", "custom", "custom"])
        if params["period"] == "custom":
            a, b = sorted([random_day(rng), random_day(rng)])
            if rng.random() < 0.8:
                params["date_from"] = a
            if rng.random() < 0.8 or "date_from" not in params:
                params["date_to"] = b
    else:
        params["period"] = ""  # any time (otherwise the page would default to 30 days)
    if rng.random() < 0.4:
        params["customer"] = random_customer_text(rng, world["customers"])
    if rng.random() < 0.25:
        params["direction"] = rng.choice(["rewarded", "deducted"])
    if rng.random() < 0.25:
        params["kind"] = rng.choice(EntryKind.values)
    if rng.random() < 0.2:
        params["source"] = rng.choice(EntrySource.values)
    if rng.random() < 0.2:
        params["reason"] = rng.choice(["good", "REWARD", "check", "refund", "Expired", "reversal of", "zzz"])
    if rng.random() < 0.3:
        lo, hi = sorted(rng.randint(0, 150) for _ in range(2))
        if rng.random() < 0.7:
            params["amount_min"] = f"{lo}.{rng.randint(0, 99):02d}" if rng.random() < 0.5 else str(lo)
        if rng.random() < 0.7:
            params["amount_max"] = f"{hi + 1}.{rng.randint(0, 99):02d}"
    if rng.random() < 0.15:
        params["order"] = rng.choice(world["orders"]).external_id
    if rng.random() < 0.15:
        params["staff"] = str(rng.choice(world["staff"]).pk)
    return params


def test_summary_equals_a_brute_force_sum_for_random_searches(client, world):
    # given
    client.force_login(StaffUserFactory(role="Ops"))
    rng = random.Random(SEED + 1)
    nonempty = 0
    for i in range(60):
        params = random_search(rng, world)
        # when
        response = client.get(HISTORY, params)
        summary = client.get(SUMMARY, params)
        # then
        assert response.status_code == 200 and summary.status_code == 200, params
        expected_rows = brute_rows(params, world)
        assert summary.context["summary"] == brute_summary(expected_rows), (i, params)
        shown = [row.pk for row in response.context["page"].rows]
        newest_first = sorted(expected_rows, key=lambda r: (r.created_at, r.id), reverse=True)
        assert shown == [r.id for r in newest_first[:50]], (i, params)
        nonempty += bool(expected_rows)
    assert nonempty >= 25  # most searches select something: the comparison is not vacuous


@pytest.mark.parametrize("with_customer", [False, True], ids=["everyone", "customer"])
def test_period_search_reconciles_opening_and_closing_balances(client, world, with_customer):
    # given
    client.force_login(StaffUserFactory(role="Store admin"))
    rng = random.Random(SEED + 2 + with_customer)
    searches = [{"period": p} for p in PRESET_STARTS]
    for _ in range(25):
        a, b = sorted([random_day(rng), random_day(rng)])
        searches.append({"period": "custom", "date_from": a, "date_to": b})
    for params in searches:
        if with_customer:
            params["customer"] = random_customer_text(rng, world["customers"])
        who = customers_meant(params["customer"], world["customers"]) if with_customer else None
        start, end = bounds(params)
        # when
        context = client.get(SUMMARY, params).context
        # then
        summary, opening, closing = context["summary"], context["opening"], context["closing"]
        assert opening is not None and closing is not None, params
        assert opening + summary["rewarded"] - summary["deducted"] == closing, params
        assert opening == balance_before(start, world, who), params
        assert closing == balance_before(end, world, who), params


def test_period_search_with_another_filter_shows_no_opening_or_closing(client, world):
    # given
    client.force_login(StaffUserFactory(role="Store admin"))
    # when
    context = client.get(SUMMARY, {"period": "30d", "kind": "grant"}).context
    # then: the balances of a period do not describe "grants only"
    assert context["summary"] is not None
    assert context["opening"] is None and context["closing"] is None


def test_period_search_of_one_customer_matches_the_balance_after_of_its_entries(client, world):
    # given: a customer with entries before and inside the last 7 days
    client.force_login(StaffUserFactory(role="Store admin"))
    start = PRESET_STARTS["7d"]
    rows = world["rows"]
    customer = next(c for c in world["customers"]
                    if any(r.account_id == c.pk and r.created_at < start for r in rows)
                    and any(r.account_id == c.pk and r.created_at >= start for r in rows))
    entries = LedgerEntry.objects.filter(account_id=customer.pk).order_by("created_at", "id")
    # when
    context = client.get(SUMMARY, {"period": "7d", "customer": customer.member_id}).context
    # then: opening is the balance after its last entry before the period, closing after its last one
    assert context["opening"] == entries.filter(created_at__lt=start).last().balance_after
    assert context["closing"] == entries.last().balance_after
    assert context["closing"] == selectors.account_balance(customer=customer)

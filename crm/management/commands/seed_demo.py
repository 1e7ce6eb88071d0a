"""`manage.py seed_demo`: a believable demo store, the same every time.

Staff logins (admin/admin, support/support, agent/agent, ops/ops), ~500 customers, ~3,000
orders and ~20,000 ledger entries spread over the last 18 months, every entry posted through
`ledger.services` in time order "as of" its moment (`ledger.clock.posting_at`), with a daily
expiry sweep, so balances, lots, expiries and the history look like a real store's.

Deterministic: `random.Random(20260101)` and a base date of today 09:00 UTC minus 18 months
(history runs up to today 00:00 UTC, so it always looks recent). Safe to run twice: when the
first demo customer (member id M000001) exists it only makes sure the staff logins exist.
Rule grants use the rules app's methods and keys (`grant:registration:{event}`,
`grant:first_order:{event}`, `grant:paid_order:{event}`, `grant:order_history:tier{n}:{customer}`,
`grant:spend_history:tier{n}:{customer}`); birthday and review credits are bulk jobs
(`bulk:{job}:{customer}`). The ledger's `entries_posted` announcement is muted while seeding:
a seeded past must not queue thousands of "credits received" emails.

Demo only: never seed a real database.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import random
import time
import uuid
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from crm.cards import luhn_check_digit
from crm.models import Customer, CustomerMemo, Order
from ledger import clock, selectors, services
from ledger.models import CreditAccount, EntryKind, EntrySource, LedgerEntry
from ledger.signals import entries_posted

SEED = 20260101
MARKER_MEMBER_ID = "M000001"
HISTORY_MONTHS = 18

# username, password, role, email
DEMO_STAFF = [
    ("admin", "admin", "Store admin", "admin@store.example"),
    ("support", "support", "Support admin", "support@store.example"),
    ("agent", "agent", "Support agent", "agent@store.example"),
    ("ops", "ops", "Ops", "ops@store.example"),
]

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Charlotte", "James",
    "Ava", "William", "Isabella", "Benjamin", "Mia", "Lucas", "Evelyn", "Henry", "Harper", "Theodore",
    "Luna", "Jack", "Camila", "Levi", "Gianna", "Alexander", "Elizabeth", "Jackson", "Eleanor", "Mateo",
    "Ella", "Daniel", "Abigail", "Michael", "Sofia", "Mason", "Avery", "Sebastian", "Scarlett", "Ethan",
    "Emily", "Logan", "Aria", "Owen", "Penelope", "Samuel", "Chloe", "Jacob", "Layla", "Asher",
    "Mila", "Aiden", "Nora", "John", "Hazel", "Joseph", "Madison", "Wyatt", "Ellie", "David",
    "Priya", "Arjun", "Mei", "Hiroshi", "Yuna", "Minjun", "Seo-yeon", "Ji-ho", "Fatima", "Omar",
    "Aisha", "Diego", "Valentina", "Santiago", "Lucia", "Chen", "Wei", "Anh", "Linh", "Kwame",
    "Amara", "Tomasz", "Zofia", "Lars", "Ingrid", "Mateus", "Beatriz", "Nikolai", "Anya", "Rafael",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Kim", "Park", "Choi", "Tanaka", "Sato", "Suzuki", "Wang", "Zhang", "Patel", "Shah",
    "Khan", "Ali", "Silva", "Santos", "Costa", "Novak", "Kowalski", "Johansson", "Larsen", "Muller",
    "Schmidt", "Rossi", "Bianchi", "Dubois", "Moreau", "O'Brien", "Murphy", "Kelly", "Okafor", "Mensah",
]
EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com", "inbox.example.net"]
AREA_CODES = ["212", "213", "305", "312", "347", "404", "415", "503", "512", "602", "617", "646", "702",
              "718", "773", "818", "917", "206", "303", "971"]
# Orders by hour of day (UTC): a US evening peak.
HOUR_WEIGHTS = [6, 5, 4, 3, 2, 1, 1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 7, 7, 7, 8, 8, 8, 7]

CAMPAIGNS = [
    "Weekend bonus", "Spring sale bonus", "Summer kickoff", "Back to school", "Autumn treat",
    "Black Friday early access", "Holiday thank-you", "New year boost", "Valentine's gift",
    "Loyalty week", "App download bonus", "Flash sale bonus", "Members' day", "Rainy day treat",
]
GOODWILL = [
    ("Goodwill: late delivery", "Parcel arrived five days late; customer called support."),
    ("Goodwill: damaged item", "Box damaged in transit, customer kept the item."),
    ("Goodwill: missing item", "One item missing from the parcel; re-shipped and credited."),
    ("Goodwill: long wait on hold", "Waited 40 minutes on the phone line."),
    ("Price match", "Same product cheaper in the weekly flyer; difference credited."),
    ("Compensation: coupon not applied", "Checkout did not apply the welcome coupon."),
    ("Service recovery", "Wrong size sent twice."),
]
DEDUCTIONS = [
    ("Correction: duplicate credit", "Goodwill credit was posted twice by mistake."),
    ("Correction: credit for a returned item", "Item returned after the review reward was paid."),
    ("Policy: abuse of referral rewards", "Several accounts with the same address; reviewed by the team lead."),
]
MEMOS = [
    "Prefers contact by email, not phone.",
    "Asked about the expiry of campaign credits; explained the 90-day rule.",
    "VIP: handle refund requests with priority.",
    "Called about a late parcel; goodwill credit given.",
    "Moved abroad; asked how to cash out the balance.",
    "Requested an invoice copy for order history.",
]


# --------------------------------------------------------------------------- staff

def ensure_demo_staff() -> dict[str, object]:
    """The four demo logins, created with the same logic as `manage.py create_staff`. Users
    that already exist with their role are left alone (their password is not reset)."""
    User = get_user_model()
    users = {}
    for username, password, role, email in DEMO_STAFF:
        user = User.objects.filter(username=username).first()
        if user is None or not (user.is_active and user.is_staff and user.groups.filter(name=role).exists()):
            call_command("create_staff", username=username, password=password, role=role, email=email,
                         stdout=StringIO())
            user = User.objects.get(username=username)
        users[role] = user
    return users


@contextlib.contextmanager
def muted(signal):
    """No receiver hears `signal` inside the block (the seeded past sends no emails)."""
    with signal.lock:
        saved = signal.receivers
        signal.receivers = []
        signal.sender_receivers_cache.clear()
    try:
        yield
    finally:
        with signal.lock:
            signal.receivers = saved
            signal.sender_receivers_cache.clear()


# --------------------------------------------------------------------------- time helpers

def months_before(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def demo_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """(base, end): base is today 09:00 UTC minus 18 months; history ends today 00:00 UTC."""
    now = (now or timezone.now()).astimezone(UTC)
    today_9 = now.replace(hour=9, minute=0, second=0, microsecond=0)
    return months_before(today_9, HISTORY_MONTHS), today_9.replace(hour=0)


# --------------------------------------------------------------------------- the plan

@dataclass
class DemoCustomer:
    pk: int
    member_id: str
    registered_at: datetime
    weight: float
    birthday: tuple[int, int]
    paid_orders: int = 0
    spent: int = 0


@dataclass
class DemoOrder:
    external_id: str
    customer: DemoCustomer
    placed_at: datetime
    items_total: int
    fate: str  # paid / cancelled / partial_refund / full_refund / credit_refund
    order: Order | None = None
    redeem: LedgerEntry | None = None
    lot_id: int | None = None
    lot_amount: int = 0
    refunded: int = 0
    clawed: int = 0
    refunds: int = 0


class DemoSeeder:
    def __init__(self, *, customers: int, scale: float, now: datetime | None = None):
        self.n_customers = customers
        self.scale = scale
        self.rng = random.Random(SEED)
        self.base, self.end = demo_window(now)
        self._queue: list = []
        self._seq = itertools.count()
        self.customers: list[DemoCustomer] = []
        self.staff: dict[str, object] = {}
        self.reviews: dict[int, tuple[DemoCustomer, int, int]] = {}  # customer pk -> (customer, amount, count)

    # -- scheduling -------------------------------------------------------------------------
    def at(self, moment: datetime, handler, *args) -> None:
        """Run `handler(moment, *args)` at `moment` (dropped if after the end of history)."""
        if moment <= self.end:
            heapq.heappush(self._queue, (moment, next(self._seq), handler, args))

    def moment_between(self, start: datetime, stop: datetime) -> datetime:
        """A moment in [start, stop], on a day picked uniformly, at a busy-hour-weighted time."""
        if stop <= start:
            return start
        days = (stop - start).days
        for _ in range(5):
            day = (start + timedelta(days=self.rng.randint(0, days))).replace(hour=0, minute=0, second=0,
                                                                             microsecond=0)
            hour = self.rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
            moment = day + timedelta(hours=hour, seconds=self.rng.randint(0, 3599))
            if start <= moment <= stop:
                return moment
        return start + (stop - start) * self.rng.random()

    def new_key(self) -> str:
        """A UUID like the one a staff form carries (deterministic here)."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- run --------------------------------------------------------------------------------
    def run(self) -> dict:
        self.staff = ensure_demo_staff()
        self.make_customers()
        self.plan_orders()
        self.plan_campaigns()
        self.plan_staff_work()
        day = self.base.replace(hour=2, minute=5) + timedelta(days=1)
        while day <= self.end:  # the nightly expiry sweep, the daily review-reward job
            self.at(day, self.sweep)
            self.at(day.replace(hour=10, minute=0), self.review_rewards)
            day += timedelta(days=1)
        while self._queue:
            moment, _, handler, args = heapq.heappop(self._queue)
            with clock.posting_at(moment):
                handler(moment, *args)
        with clock.posting_at(self.end):
            services.expire_due(now=self.end)
        self.finish()
        return self.summary()

    # -- customers ---------------------------------------------------------------------------
    def make_customers(self) -> None:
        rng = self.rng
        span = self.end - timedelta(days=1) - self.base
        # More sign-ups lately (the store grows); the first customer joins on day one.
        registered = sorted(self.base + span * (rng.random() ** 0.8) for _ in range(self.n_customers))
        if registered:
            registered[0] = self.base + timedelta(minutes=rng.randint(0, 300))
        emails: set[str] = set()
        cards: set[str] = set()
        rows = []
        for i, reg in enumerate(registered, start=1):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            f, ln = first.lower().replace("'", "").replace("-", ""), last.lower().replace("'", "")
            local = rng.choice([f"{f}.{ln}", f"{f[0]}{ln}", f"{f}{ln}{rng.randint(1, 99)}", f"{f}_{ln}",
                                f"{ln}.{f}"])
            email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
            while email in emails:
                email = f"{local}{rng.randint(2, 999)}@{rng.choice(EMAIL_DOMAINS)}"
            emails.add(email)
            card = ""
            while not card or card in cards:
                body = "9" + "".join(rng.choice("0123456789") for _ in range(14))
                card = body + luhn_check_digit(body)
            cards.add(card)
            phone = f"+1 ({rng.choice(AREA_CODES)}) 555-{rng.randint(100, 199):04d}"
            rows.append(Customer(member_id=f"M{i:06d}", name=f"{first} {last}", email=email, phone=phone,
                                 card_number=card, registered_at=reg))
            self.customers.append(DemoCustomer(pk=0, member_id=f"M{i:06d}", registered_at=reg,
                                               weight=rng.lognormvariate(0, 0.9),
                                               birthday=(rng.randint(1, 12), rng.randint(1, 28))))
        Customer.objects.bulk_create(rows, batch_size=500)  # sets the pks (PostgreSQL, SQLite >= 3.35)
        for c, row in zip(self.customers, rows, strict=True):
            c.pk = row.pk or Customer.objects.get(member_id=c.member_id).pk
            self.at(c.registered_at + timedelta(seconds=rng.randint(5, 90)), self.registration_bonus, c)
            for year in range(self.base.year, self.end.year + 1):
                bday = datetime(year, c.birthday[0], c.birthday[1], 8, 0, tzinfo=UTC)
                if c.registered_at < bday:
                    self.at(bday, self.birthday_bonus, c)

    def rule_grant(self, moment, c: DemoCustomer, *, method: str, key: str, amount: int, reason: str,
                   days: int, order: Order | None = None, event: str = "", **rule) -> LedgerEntry:
        """A grant as the rules engine posts it (source rule, its key and details)."""
        details = {"rule": {"method": method, **rule}, "event": event, "expiry": {"mode": "days", "days": days}}
        if order is not None:
            details["order"] = order.external_id
        return services.grant(customer=c.pk, amount=amount, reason=reason, source=EntrySource.RULE, order=order,
                              expires_at=moment + timedelta(days=days), idempotency_key=key, details=details)

    def registration_bonus(self, moment, c: DemoCustomer) -> None:
        event = f"evt-reg-{c.member_id}"
        self.rule_grant(moment, c, method="registration", key=f"grant:registration:{event}", amount=500,
                        reason="Welcome bonus", days=90, event=event, amount_fixed=500)

    def birthday_bonus(self, moment, c: DemoCustomer) -> None:
        job = f"BDAY-{moment:%Y%m%d}"
        services.grant(customer=c.pk, amount=1000, reason="Birthday credits", source=EntrySource.BULK,
                       actor=self.staff["Store admin"], expires_at=moment + timedelta(days=180),
                       idempotency_key=f"bulk:{job}:{c.member_id}", details={"job": job})

    # -- orders ------------------------------------------------------------------------------
    def plan_orders(self) -> None:
        rng = self.rng
        total = round(self.n_customers * 6 * self.scale)
        if not self.customers or total <= 0:
            return
        weights = [c.weight * max(1.0, (self.end - c.registered_at).days) for c in self.customers]
        buyers = rng.choices(self.customers, weights=weights, k=total)
        planned = []
        for c in buyers:
            placed = self.moment_between(c.registered_at + timedelta(hours=1), self.end - timedelta(minutes=10))
            # Basket: lognormal around $45, in whole dollars less a cent, between $8.99 and $399.99.
            dollars = int(math.exp(rng.gauss(math.log(45), 0.8)))
            items_total = max(899, min(39_999, dollars * 100 + 99))
            roll = rng.random()
            fate = ("cancelled" if roll < 0.05 else "partial_refund" if roll < 0.09
                    else "full_refund" if roll < 0.11 else "credit_refund" if roll < 0.13 else "paid")
            planned.append((placed, c, items_total, fate))
        planned.sort(key=lambda p: p[0])
        for n, (placed, c, items_total, fate) in enumerate(planned, start=100_001):
            self.at(placed, self.place_order, DemoOrder(f"ORD-{n}", c, placed, items_total, fate))

    def place_order(self, moment, o: DemoOrder) -> None:
        rng = self.rng
        o.order = Order.objects.create(external_id=o.external_id, customer_id=o.customer.pk, placed_at=moment,
                                       status=Order.Status.PLACED, items_total=o.items_total, currency="USD")
        if rng.random() < 0.7:  # uses credits at checkout if it has some
            usable = min(selectors.available_balance(customer=o.customer.pk), o.items_total - 800)
            if usable >= 100:
                amount = usable if rng.random() < 0.5 else max(100, usable // 2 // 100 * 100)
                o.redeem = services.debit(customer=o.customer.pk, amount=amount, kind=EntryKind.REDEEM,
                                          reason="Redeemed at checkout", source=EntrySource.API, order=o.order,
                                          idempotency_key=f"api:redeem:{o.external_id}",
                                          details={"order": o.external_id})
        if o.fate == "cancelled":
            self.at(moment + timedelta(minutes=rng.randint(5, 36 * 60)), self.cancel_order, o)
        else:
            self.at(moment + timedelta(seconds=rng.randint(20, 300)), self.pay_order, o)

    def pay_order(self, moment, o: DemoOrder) -> None:
        rng = self.rng
        order = o.order
        order.status = Order.Status.PAID
        order.paid_at = moment
        order.paid_amount = o.items_total - (-o.redeem.amount if o.redeem else 0)
        order.save(update_fields=["status", "paid_at", "paid_amount", "updated_at"])
        c = o.customer
        event = f"evt-pay-{o.external_id}"
        reward = order.items_total * 3 // 100
        if reward > 0:
            entry = self.rule_grant(moment, c, method="paid_order", key=f"grant:paid_order:{event}", amount=reward,
                                    reason="Paid order reward (3%)", days=365, order=order, event=event,
                                    mode="per_value", amount_per=3, per_amount=100)
            o.lot_id, o.lot_amount = entry.lot.pk, reward
        c.paid_orders += 1
        c.spent += order.items_total
        if c.paid_orders == 1:
            self.rule_grant(moment, c, method="first_order", key=f"grant:first_order:{event}", amount=1000,
                            reason="First order bonus", days=90, order=order, event=event, mode="fixed")
        for tier, (threshold, amount) in enumerate([(3, 500), (5, 1000), (10, 2000)], start=1):
            if c.paid_orders == threshold:
                self.rule_grant(moment, c, method="order_history", key=f"grant:order_history:tier{tier}:{c.pk}",
                                amount=amount, reason=f"Order history: {threshold} paid orders", days=180,
                                event=event, tier=tier)
        for tier, (threshold, amount) in enumerate([(50_000, 1000), (100_000, 2000), (200_000, 5000)], start=1):
            if c.spent - order.items_total < threshold <= c.spent:
                self.rule_grant(moment, c, method="spend_history", key=f"grant:spend_history:tier{tier}:{c.pk}",
                                amount=amount, reason=f"Spend history: ${threshold // 100} spent", days=365,
                                event=event, tier=tier)
        if rng.random() < 0.5:
            self.at(moment + timedelta(days=rng.randint(3, 14), minutes=rng.randint(0, 600)), self.review, o)
        if o.fate == "partial_refund":
            first = max(100, order.paid_amount * rng.randint(20, 60) // 100)
            self.at(moment + timedelta(days=rng.randint(2, 20)), self.refund, o, min(first, order.paid_amount))
            if rng.random() < 0.3:
                self.at(moment + timedelta(days=rng.randint(21, 40)), self.refund, o, None)
        elif o.fate in ("full_refund", "credit_refund"):
            self.at(moment + timedelta(days=rng.randint(2, 25)), self.refund, o, None)

    def cancel_order(self, moment, o: DemoOrder) -> None:
        o.order.status = Order.Status.CANCELLED
        o.order.save(update_fields=["status", "updated_at"])
        if o.redeem is not None:
            services.reverse(entry=o.redeem, comment="Order cancelled before payment; credits returned.",
                             idempotency_key=f"reverse:cancel:{o.external_id}")

    def review(self, moment, o: DemoOrder) -> None:
        """A product review; the next daily job pays it (100, or 300 with a photo)."""
        amount = 300 if self.rng.random() < 0.3 else 100
        c, total, count = self.reviews.get(o.customer.pk, (o.customer, 0, 0))
        self.reviews[o.customer.pk] = (c, total + amount, count + 1)

    def review_rewards(self, moment) -> None:
        """The daily bulk job that pays yesterday's approved reviews, one grant per customer."""
        job = f"REV-{moment:%Y%m%d}"
        for c, amount, count in self.reviews.values():
            services.grant(customer=c.pk, amount=amount, reason=f"Review rewards ({count} review{'s' * (count > 1)})",
                           source=EntrySource.BULK, actor=self.staff["Store admin"],
                           expires_at=moment + timedelta(days=180), idempotency_key=f"bulk:{job}:{c.member_id}",
                           details={"job": job, "reviews": count})
        self.reviews = {}

    def refund(self, moment, o: DemoOrder, amount: int | None) -> None:
        order = o.order
        amount = order.paid_amount - o.refunded if amount is None else amount
        if amount <= 0:
            return
        o.refunds += 1
        refund_id = f"RF-{o.external_id[4:]}-{o.refunds}"
        o.refunded += amount
        order.refunded_amount = o.refunded
        full = o.refunded >= order.paid_amount
        order.status = Order.Status.REFUNDED if full else Order.Status.PARTIALLY_REFUNDED
        order.save(update_fields=["refunded_amount", "status", "updated_at"])
        if o.lot_id is not None:  # take back, pro rata, what the order earned
            target = o.lot_amount * o.refunded // order.paid_amount
            if target > o.clawed:
                services.clawback(customer=o.customer.pk, amount=target - o.clawed, lot=o.lot_id, order=order,
                                  reason=f"Refund {refund_id} of order {o.external_id}",
                                  idempotency_key=f"clawback:{refund_id}:{o.lot_id}",
                                  details={"refund": refund_id, "refunded": o.refunded, "total": order.paid_amount})
                o.clawed = target
        if o.fate == "credit_refund":  # the customer chose store credits instead of money back
            services.grant(customer=o.customer.pk, amount=amount, reason=f"Refund as store credits ({refund_id})",
                           actor=self.staff["Support admin"], source=EntrySource.STAFF, order=order,
                           comment=f"Customer chose store credits for the refund of {o.external_id}.",
                           idempotency_key=f"refund-credit:{refund_id}")
        if full and o.redeem is not None:  # credits spent on the order come back with a full refund
            services.reverse(entry=o.redeem, comment=f"Order {o.external_id} fully refunded; credits returned.",
                             idempotency_key=f"reverse:refund:{o.external_id}")

    # -- campaigns (bulk grants) ---------------------------------------------------------------
    def plan_campaigns(self) -> None:
        rng = self.rng
        moment = self.base + timedelta(days=10, hours=6)
        job = 0
        while moment < self.end:
            job += 1
            self.at(moment, self.campaign, job, rng.choice(CAMPAIGNS), rng.choice([100, 200, 200, 300, 500]))
            moment += timedelta(days=rng.randint(5, 9), hours=rng.randint(-3, 3))

    def campaign(self, moment, job: int, name: str, amount: int) -> None:
        share = min(0.9, 0.45 * self.scale)
        for c in self.customers:
            if c.registered_at < moment and self.rng.random() < share:
                services.grant(customer=c.pk, amount=amount, reason=f"Campaign: {name}", source=EntrySource.BULK,
                               actor=self.staff["Store admin"], expires_at=moment + timedelta(days=90),
                               idempotency_key=f"bulk:CMP-{job:03d}:{c.member_id}",
                               details={"job": f"CMP-{job:03d}", "campaign": name})

    # -- staff work: adjustments, cash refunds, mistakes, memos ------------------------------
    def plan_staff_work(self) -> None:
        rng = self.rng
        if not self.customers:
            return
        weights = [c.weight for c in self.customers]
        for c in rng.choices(self.customers, weights=weights, k=round(self.n_customers * 0.6 * self.scale)):
            self.at(self.moment_between(c.registered_at + timedelta(days=1), self.end), self.adjustment, c)
        for _ in range(max(1, round(self.n_customers * 0.06 * self.scale))):
            self.at(self.moment_between(self.base + timedelta(days=60), self.end), self.cash_refund)
        for c in rng.sample(self.customers, k=min(len(self.customers), max(1, round(4 * self.scale)))):
            self.at(self.moment_between(c.registered_at + timedelta(days=1), self.end), self.mistaken_grant, c)
        for c in rng.sample(self.customers, k=min(len(self.customers), max(1, round(30 * self.scale)))):
            self.at(self.moment_between(c.registered_at, self.end), self.memo, c)

    def _support_actor(self):
        return self.staff[self.rng.choice(["Support admin", "Support agent", "Support agent", "Store admin"])]

    def adjustment(self, moment, c: DemoCustomer) -> None:
        rng = self.rng
        actor = self._support_actor()
        if rng.random() < 0.7:
            reason, comment = rng.choice(GOODWILL)
            expires = None if rng.random() < 0.5 else moment + timedelta(days=180)
            services.grant(customer=c.pk, amount=rng.choice([200, 300, 500, 500, 1000, 1500, 2000]), reason=reason,
                           comment=comment, actor=actor, source=EntrySource.STAFF, expires_at=expires,
                           idempotency_key=self.new_key())
            return
        available = selectors.available_balance(customer=c.pk)
        if available >= 200:
            reason, comment = rng.choice(DEDUCTIONS)
            amount = min(available, rng.choice([100, 200, 300, 500, 1000]))
            services.debit(customer=c.pk, amount=amount, kind=EntryKind.DEDUCT, reason=reason, comment=comment,
                           actor=actor, source=EntrySource.STAFF, idempotency_key=self.new_key())

    def cash_refund(self, moment) -> None:
        """A customer with a good balance asks for it in cash; a few payouts fail and are undone."""
        rng = self.rng
        candidates = list(CreditAccount.objects.filter(balance__gte=1500).order_by("pk")
                          .values_list("pk", flat=True)[:200])
        if not candidates:
            return
        customer_id = rng.choice(candidates)
        available = selectors.available_balance(customer=customer_id)
        if available < 1000:
            return
        amount = available if rng.random() < 0.6 else available // 2
        entry = services.debit(customer=customer_id, amount=amount, kind=EntryKind.CASH_REFUND,
                               reason="Cash refund request", actor=self.staff["Support admin"],
                               source=EntrySource.STAFF, comment="Paid out to the customer's bank account.",
                               idempotency_key=self.new_key())
        if rng.random() < 0.2:
            self.at(moment + timedelta(days=rng.randint(1, 4)), self.payout_failed, entry)

    def payout_failed(self, moment, entry: LedgerEntry) -> None:
        services.reverse(entry=entry, actor=self.staff["Support admin"],
                         comment="Payout bounced: bank account closed. Credits returned.",
                         idempotency_key=self.new_key())

    def mistaken_grant(self, moment, c: DemoCustomer) -> None:
        actor = self._support_actor()
        entry = services.grant(customer=c.pk, amount=self.rng.choice([500, 1000, 2500]),
                               reason="Goodwill: late delivery", comment="Posted from the support queue.",
                               actor=actor, source=EntrySource.STAFF, idempotency_key=self.new_key())
        self.at(moment + timedelta(minutes=self.rng.randint(3, 50)), self.undo_mistake, entry, actor)

    def undo_mistake(self, moment, entry: LedgerEntry, actor) -> None:
        try:
            services.reverse(entry=entry, actor=actor, comment="Wrong customer: credited the namesake by mistake.",
                             idempotency_key=self.new_key())
        except services.NotReversible:  # already spent within the hour: leave it
            pass

    def memo(self, moment, c: DemoCustomer) -> None:
        memo = CustomerMemo.objects.create(customer_id=c.pk, author=self._support_actor(),
                                           body=self.rng.choice(MEMOS))
        CustomerMemo.objects.filter(pk=memo.pk).update(created_at=moment)

    def sweep(self, moment) -> None:
        services.expire_due(now=moment)

    # -- finish ------------------------------------------------------------------------------
    def finish(self) -> None:
        """Make row timestamps match the story, mark long-quiet customers dormant."""
        demo = Customer.objects.filter(pk__in=[c.pk for c in self.customers])
        demo.update(created_at=F("registered_at"), updated_at=F("registered_at"))
        Order.objects.filter(customer__in=demo).update(created_at=F("placed_at"))
        quiet_since = self.end - timedelta(days=180)
        (demo.filter(registered_at__lt=quiet_since).exclude(orders__placed_at__gte=quiet_since)
         .update(status=Customer.Status.DORMANT))

    def summary(self) -> dict:
        demo_ids = [c.pk for c in self.customers]
        return {
            "customers": len(demo_ids),
            "orders": Order.objects.filter(customer_id__in=demo_ids).count(),
            "entries": LedgerEntry.objects.filter(account_id__in=demo_ids).count(),
        }


class Command(BaseCommand):
    help = ("Load a believable demo store (staff logins, customers, orders, 18 months of credits history). "
            "Deterministic; safe to run twice. Demo only.")

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=500, help="Number of customers (default 500).")
        parser.add_argument("--scale", type=float, default=1.0,
                            help="Multiplies orders, campaign reach and staff work per customer (default 1.0).")

    def handle(self, *args, customers, scale, **options):
        if customers < 1 or not (0 < scale <= 10):
            raise CommandError("--customers must be at least 1 and --scale in (0, 10].")
        if Customer.objects.filter(member_id=MARKER_MEMBER_ID).exists():
            ensure_demo_staff()
            self.stdout.write("Demo data already present; staff logins checked.")
            return
        started = time.monotonic()
        with transaction.atomic(), muted(entries_posted):
            seeder = DemoSeeder(customers=customers, scale=scale)
            counts = seeder.run()
            problems = selectors.verify_ledger()
            if problems:
                raise CommandError("The demo ledger breaks an invariant (nothing was saved):\n" + "\n".join(problems))
        self.stdout.write(self.style.SUCCESS(
            f"Demo store seeded in {time.monotonic() - started:.1f}s: {counts['customers']} customers, "
            f"{counts['orders']} orders, {counts['entries']} ledger entries "
            f"({seeder.base:%Y-%m-%d} to {seeder.end:%Y-%m-%d}). Logins: admin/admin, support/support, "
            f"agent/agent, ops/ops."))

"""Bulk loader for benchmarks: millions of consistent ledger rows in minutes (PostgreSQL only).

`bulk_load(customers=N, entries=M)` adds N customers with their credit accounts and about M
ledger entries spread over the last 18 months, with lots and lot consumptions, written with
psycopg 3 `COPY ... FROM STDIN`. It bypasses `ledger.services` for speed, so it simulates
exactly what the services would have done, account by account in time order:

- grants (each with its lot; about two thirds expire 90, 180 or 365 days after the grant),
- debits (redeem, deduct, cash_refund) taking from the lots first-expiring-first (by
  `(expires_at, id)`, never-expiring last) with one consumption row per lot touched,
- expiries (an `expire` entry taking a lot's remainder) posted by the hourly sweep after a
  lot's expiry, or lazily by the account's next posting, whichever comes first,

so that balances, `balance_after` chains, versions, lot remainders, consumptions,
`next_expiry_at` and `last_entry_at` satisfy every check of `ledger.selectors.verify_ledger()`.

Entry and lot ids are assigned here, in time order within each chunk of accounts (so ids
grow with `created_at` as in real data, chunk by chunk); consumption ids come from the
table's identity. Sequences are moved past the loaded ids at the end and the tables are
ANALYZEd. Each chunk of accounts is one transaction; nothing is disabled (the append-only
triggers refuse only UPDATE and DELETE). Run it on a quiet database: it does not lock out
concurrent writers of the same tables.

This module imports no Django at import time, so `generate_chunk` can run in spawned
worker processes (the generation is pure Python; the main process only streams COPY data).
"""

from __future__ import annotations

import bisect
import os
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime

from crm.cards import luhn_check_digit

NULL = "\\N"  # COPY text format
DAY = 86_400
HISTORY_DAYS = 548  # about 18 months
TARGET_CHUNK_ENTRIES = 250_000
PARALLEL_FROM_ENTRIES = 400_000

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Charlotte", "James", "Ava",
    "William", "Isabella", "Benjamin", "Mia", "Lucas", "Evelyn", "Henry", "Harper", "Theodore", "Luna", "Jack",
    "Camila", "Levi", "Priya", "Arjun", "Mei", "Hiroshi", "Yuna", "Minjun", "Fatima", "Omar", "Diego",
    "Valentina", "Chen", "Wei", "Anh", "Kwame", "Amara", "Tomasz", "Zofia", "Lars", "Ingrid", "Rafael",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Lopez", "Wilson", "Anderson", "Taylor", "Moore", "Lee", "Perez", "White", "Harris", "Clark", "Lewis",
    "Walker", "Young", "King", "Nguyen", "Kim", "Park", "Choi", "Tanaka", "Sato", "Wang", "Zhang", "Patel",
    "Khan", "Silva", "Santos", "Novak", "Kowalski", "Larsen", "Muller", "Rossi", "Dubois", "Murphy", "Okafor",
]

# (weight, source, reason, key prefix, batch?) of grants after the welcome bonus.
GRANT_STYLES = [
    (40, "rule", "Purchase reward (3%)", "grant:purchase:B", False),
    (15, "rule", "Review reward", "grant:review:B", False),
    (5, "rule", "Birthday bonus", "grant:birthday:B", False),
    (25, "bulk", "Campaign: Weekend bonus", "bulk:BJ", True),
    (15, "staff", "Goodwill: late delivery", "staff:B", False),
]
GRANT_AMOUNTS = [100, 100, 200, 300, 300, 500, 500, 1000, 1500, 2000, 5000]
DEBIT_AMOUNTS = [100, 200, 300, 500, 500, 1000, 1500, 2000, 3000]
EXPIRY_DAYS = [None, None, 90, 180, 365, 365]
# kind, source, reason, key prefix (None: no key), cumulative probability among debits
DEBIT_STYLES = [
    ("redeem", "api", "Redeemed at checkout", "api:redeem:B", 0.86),
    ("deduct", "staff", "Correction: duplicate credit", "staff:B", 0.95),
    ("cash_refund", "staff", "Cash refund request", "staff:B", 1.01),
]


class BulkLoadError(Exception):
    pass


@dataclass(frozen=True)
class ChunkSpec:
    index: int
    seed: int
    first_customer_id: int
    quotas: tuple[int, ...]
    first_entry_id: int
    first_lot_id: int
    start: int  # epoch seconds
    end: int
    topup: int
    actor_id: int | None


@dataclass
class ChunkData:
    customers: str
    accounts: str
    entries: str
    lots: str
    consumptions: str
    n_entries: int
    n_lots: int
    n_consumptions: int
    last_entry_id: int
    last_lot_id: int


# --------------------------------------------------------------------------- formatting

_TOD = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_days: dict[int, str] = {}


def _ts(t: int) -> str:
    """Epoch seconds as a PostgreSQL timestamptz literal (UTC)."""
    d, s = divmod(t, DAY)
    day = _days.get(d)
    if day is None:
        day = _days[d] = date.fromordinal(_EPOCH_ORDINAL + d).isoformat()
    return f"{day} {_TOD[s]}+00"


def card_number_for(customer_id: int) -> str:
    """A 16-digit store card number (leading 9, Luhn check digit), unique per customer id: the
    middle 14 digits are a bijection of the id modulo 10**14."""
    body = "9" + f"{(customer_id * 7_919_000_023_757 + 31_415_926_535) % 10**14:014d}"
    return body + luhn_check_digit(body)


def _sweep_time(expires_at: int) -> int:
    """When the hourly sweep (minute 5) picks up a lot expiring at `expires_at`."""
    hour = expires_at - expires_at % 3600
    return hour + 300 if hour + 300 >= expires_at else hour + 3600 + 300


# --------------------------------------------------------------------------- generation

def generate_chunk(spec: ChunkSpec) -> ChunkData:
    """Simulate the accounts of one chunk and render the COPY text of every table."""
    rng = random.Random(spec.seed)
    start, end = spec.start, spec.end
    span = end - start
    style_weights = [s[0] for s in GRANT_STYLES]
    # Each entry: [t, kind, amount, balance_after, customer_id, lot|None, consumptions|None, style]
    # Each lot:   [fefo_key, seq, remaining, amount, expires_at|None, t, customer_id, id]
    entries: list[list] = []
    customers_out: list[str] = []
    accounts_out: list[str] = []
    never = 1 << 62
    lot_seq = 0
    randrange, random_ = rng.randrange, rng.random
    for offset, quota in enumerate(spec.quotas):
        cid = spec.first_customer_id + offset
        first_entry = len(entries)  # this account's entries are entries[first_entry:]
        t0 = start + int(span * (random_() ** 0.7)) - 1 if span else start
        t0 = max(start, min(t0, end - 3600))
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        customers_out.append(
            f"{cid}\tB{cid:09d}\t{first} {last}\t{first.lower()}.{last.lower()}.{cid}@example.com\t"
            f"+1 ({rng.randint(201, 989)}) 555-{rng.randint(100, 199):04d}\t{card_number_for(cid)}\t{_ts(t0)}\t"
            f"active\t{_ts(t0)}\t{_ts(t0)}\n")
        times = sorted(randrange(t0, end) for _ in range(quota))
        if times:
            times[0] = t0
        open_lots: list[list] = []
        balance = count = pending = 0  # pending: open lots that will expire by `end`
        last_t = t0
        for t in times:
            if count + pending >= quota:
                break
            # Lazy expiry / the sweep: lots expired by now go first.
            while open_lots and open_lots[0][4] is not None and open_lots[0][4] <= t:
                lot = open_lots.pop(0)
                amount = lot[2]
                lot[2] = 0
                balance -= amount
                te = min(_sweep_time(lot[4]), t)
                entries.append([te, "expire", -amount, balance, cid, None, [(lot, amount)], None])
                count += 1
                pending -= 1
            if count + pending >= quota:
                break
            if balance == 0 or count == 0 or random_() < 0.5:
                amount = GRANT_AMOUNTS[randrange(len(GRANT_AMOUNTS))]
                days = EXPIRY_DAYS[randrange(len(EXPIRY_DAYS))]
                expires = t + days * DAY if days else None
                style = -1 if count == 0 else rng.choices(range(len(GRANT_STYLES)), weights=style_weights)[0]
                if style == -1:
                    amount, expires = 500, t + 90 * DAY
                lot_seq += 1
                lot = [expires if expires is not None else never, lot_seq, amount, amount, expires, t, cid, 0]
                bisect.insort(open_lots, lot)
                if expires is not None and expires <= end:
                    pending += 1
                balance += amount
                entries.append([t, "grant", amount, balance, cid, lot, None, style])
            else:
                r = random_()
                style = 0 if r < DEBIT_STYLES[0][4] else 1 if r < DEBIT_STYLES[1][4] else 2
                amount = balance if random_() < 0.3 else min(balance, DEBIT_AMOUNTS[randrange(len(DEBIT_AMOUNTS))])
                left = amount
                taken = []
                used = 0
                for lot in open_lots:
                    part = lot[2] if lot[2] < left else left
                    lot[2] -= part
                    left -= part
                    taken.append((lot, part))
                    if lot[2] == 0:
                        used += 1
                        if lot[4] is not None and lot[4] <= end:
                            pending -= 1
                    if left == 0:
                        break
                del open_lots[:used]
                balance -= amount
                entries.append([t, DEBIT_STYLES[style][0], -amount, balance, cid, None, taken, style])
            count += 1
            last_t = t
        # The sweep up to `end`: what expired after the last posting.
        while open_lots and open_lots[0][4] is not None and open_lots[0][4] <= end:
            lot = open_lots.pop(0)
            amount = lot[2]
            lot[2] = 0
            balance -= amount
            last_t = min(_sweep_time(lot[4]), end)
            entries.append([last_t, "expire", -amount, balance, cid, None, [(lot, amount)], None])
            count += 1
        if spec.topup and balance < spec.topup:  # a standing balance for benchmarks
            amount = spec.topup - balance
            balance += amount
            lot_seq += 1
            last_t = max(last_t, end - 3600)
            lot = [never, lot_seq, amount, amount, None, last_t, cid, 0]
            open_lots.append(lot)
            entries.append([last_t, "grant", amount, balance, cid, lot, None, -2])
            count += 1
        dated = open_lots[0][4] if open_lots else None
        # last_entry_at: the latest created_at among the account's entries (NULL: none), as
        # the services keep it. An expiry can be later than the last posting, so take the max.
        latest = max((e[0] for e in entries[first_entry:]), default=None)
        accounts_out.append(f"{cid}\t{balance}\t{count}\t{_ts(dated) if dated is not None else NULL}\t"
                            f"{_ts(last_t)}\t{_ts(latest) if latest is not None else NULL}\n")

    # Ids in time order (stable: an account's own entries keep their order).
    entries.sort(key=lambda e: e[0])
    actor = NULL if spec.actor_id is None else str(spec.actor_id)
    entry_lines, lot_lines, cons_lines = [], [], []
    bulk_keys: set[str] = set()
    eid, lid = spec.first_entry_id - 1, spec.first_lot_id - 1
    for t, kind, amount, balance_after, cid, lot, taken, style in entries:
        eid += 1
        ts = _ts(t)
        batch = NULL
        details = "{}"
        if kind == "grant":
            lid += 1
            lot[7] = lid
            if style == -1:
                source, reason, key = "rule", "Welcome bonus", f"grant:signup:B{cid:09d}"
            elif style == -2:
                source, reason, key = "staff", "Opening balance (benchmark)", f"bench-topup:{cid}"
            else:
                _, source, reason, prefix, batched = GRANT_STYLES[style]
                if batched:  # a weekly campaign job; a second grant in the same week gets its own key
                    batch = f"BJ{t // (7 * DAY)}"
                    key = f"bulk:{batch}:{cid}"
                    if key in bulk_keys:
                        key = f"{key}:{eid}"
                    bulk_keys.add(key)
                else:
                    key = f"{prefix}{eid}"
            entry_actor = actor if source == "staff" else NULL
            expires = lot[4]
            lot_lines.append(f"{lid}\t{cid}\t{eid}\t{amount}\t{lot[2]}\t"
                             f"{_ts(expires) if expires is not None else NULL}\t{ts}\n")
        elif kind == "expire":
            lot_id = taken[0][0][7]
            source, reason, key, entry_actor = "system", "Expired", f"expire:{lot_id}", NULL
            details = f'{{"lot": {lot_id}, "expires_at": "{_ts(taken[0][0][4])}"}}'
            cons_lines.append(f"{eid}\t{lot_id}\t{-amount}\n")
        else:
            _, source, reason, prefix, _ = DEBIT_STYLES[style]
            key = f"{prefix}{eid}"
            entry_actor = actor if source == "staff" else NULL
            for lot, part in taken:
                cons_lines.append(f"{eid}\t{lot[7]}\t{part}\n")
        entry_lines.append(f"{eid}\t{cid}\t{kind}\t{amount}\t{balance_after}\t{ts}\t{entry_actor}\t{source}\t"
                           f"{reason}\t\t\\N\t\\N\t{key}\t\t{batch}\t0\t{details}\n")
    assert eid < spec.first_entry_id + sum(spec.quotas) + 2 * len(spec.quotas), "entry id range overflow"
    return ChunkData(customers="".join(customers_out), accounts="".join(accounts_out),
                     entries="".join(entry_lines), lots="".join(lot_lines), consumptions="".join(cons_lines),
                     n_entries=len(entry_lines), n_lots=len(lot_lines), n_consumptions=len(cons_lines),
                     last_entry_id=eid, last_lot_id=lid)


def _quotas(rng: random.Random, customers: int, entries: int) -> list[int]:
    """Entries per account: skewed (a few busy accounts, many quiet ones), summing to `entries`."""
    weights = [rng.lognormvariate(0, 1.0) for _ in range(customers)]
    total = sum(weights)
    quotas = [int(entries * w / total) for w in weights]
    for i in rng.sample(range(customers), entries - sum(quotas)):
        quotas[i] += 1
    return quotas


# --------------------------------------------------------------------------- loading

COPY_COLUMNS = {
    "crm_customer": "id, member_id, name, email, phone, card_number, registered_at, status, created_at, updated_at",
    "ledger_creditaccount": "customer_id, balance, version, next_expiry_at, updated_at, last_entry_at",
    "ledger_ledgerentry": ("id, account_id, kind, amount, balance_after, created_at, actor_id, source, reason, "
                           "comment, order_id, reverses_id, idempotency_key, fingerprint, batch, uncollected, details"),
    "ledger_creditlot": "id, account_id, entry_id, amount, remaining, expires_at, created_at",
    "ledger_lotconsumption": "entry_id, lot_id, amount",
}
ID_TABLES = ["crm_customer", "ledger_ledgerentry", "ledger_creditlot", "ledger_lotconsumption"]


def _next_id(cursor, table: str) -> int:
    cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
    highest = cursor.fetchone()[0]
    cursor.execute("SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'id'))", [table])
    last_value = cursor.fetchone()[0] or 0
    return max(highest, last_value) + 1


def _copy(cursor, table: str, text: str, block: int = 1 << 20) -> None:
    if not text:
        return
    with cursor.copy(f"COPY {table} ({COPY_COLUMNS[table]}) FROM STDIN") as copy:
        for i in range(0, len(text), block):
            copy.write(text[i:i + block])


def _windowed(pool, specs, *, ahead: int):
    """Generate chunks in the pool at most `ahead` chunks in advance (bounded memory), in order."""
    queue = []
    for spec in specs:
        queue.append(pool.apply_async(generate_chunk, (spec,)))
        if len(queue) > ahead:
            yield queue.pop(0).get()
    while queue:
        yield queue.pop(0).get()


def bulk_load(*, customers: int, entries: int, seed: int = 1, now: datetime | None = None, topup: int = 0,
              workers: int | None = None, copy_connections: int | None = None, analyze: bool = True,
              fk_checks: bool = True, log=None) -> dict:
    """Add `customers` customers and about `entries` ledger entries (see the module docstring).
    Returns counts and timings. `topup` > 0 ends every account with at least that balance (a
    final never-expiring grant), for posting benchmarks.

    `fk_checks=False` (superuser only) skips the foreign-key triggers for the loader's own
    transactions (`SET LOCAL session_replication_role = replica`; nothing changes for any
    other session or after the load): about 40% faster, at the price of trusting the
    generator's references (verify_ledger() still checks every ledger invariant)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    log = log or (lambda message: None)
    if connection.vendor != "postgresql":
        raise BulkLoadError(f"The bulk loader needs PostgreSQL (COPY); this database is {connection.vendor}. "
                            "Set DATABASE_URL=postgres://...")
    if customers < 1 or entries < 0:
        raise BulkLoadError("Need at least one customer and a non-negative number of entries.")
    started = time.monotonic()
    now = (now or timezone.now()).astimezone(UTC)
    end = int(now.timestamp())
    start = end - HISTORY_DAYS * DAY
    rng = random.Random(seed)
    quotas = _quotas(rng, customers, entries)
    actor = (get_user_model().objects.filter(is_staff=True, is_active=True).order_by("pk")
             .values_list("pk", flat=True).first())
    with connection.cursor() as cursor:
        if not fk_checks:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if not cursor.fetchone()[0]:
                raise BulkLoadError("Skipping foreign-key checks needs a superuser (session_replication_role).")
        next_customer = _next_id(cursor, "crm_customer")
        next_entry = _next_id(cursor, "ledger_ledgerentry")
        next_lot = _next_id(cursor, "ledger_creditlot")
    avg = max(1.0, entries / customers)
    per_chunk = max(1, int(TARGET_CHUNK_ENTRIES / avg))
    specs = []
    for index, lo in enumerate(range(0, customers, per_chunk)):
        part = tuple(quotas[lo:lo + per_chunk])
        reserved = sum(part) + 2 * len(part) + 1
        specs.append(ChunkSpec(index=index, seed=seed * 1_000_003 + index, first_customer_id=next_customer + lo,
                               quotas=part, first_entry_id=next_entry, first_lot_id=next_lot, start=start, end=end,
                               topup=topup, actor_id=actor))
        next_entry += reserved
        next_lot += reserved
    if workers is None:
        workers = 0 if entries < PARALLEL_FROM_ENTRIES else max(1, min(3, (os.cpu_count() or 2) - 1))
    if copy_connections is None:
        copy_connections = 1 if entries < PARALLEL_FROM_ENTRIES else 2
    totals = {"customers": customers, "entries": 0, "lots": 0, "consumptions": 0}
    lock = threading.Lock()

    def write(spec: ChunkSpec, data: ChunkData) -> None:
        """One chunk, one transaction, on this thread's own connection."""
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                if not fk_checks:
                    cursor.execute("SET LOCAL session_replication_role = replica")
                for table, text in (("crm_customer", data.customers), ("ledger_creditaccount", data.accounts),
                                    ("ledger_ledgerentry", data.entries), ("ledger_creditlot", data.lots),
                                    ("ledger_lotconsumption", data.consumptions)):
                    _copy(cursor, table, text)
        finally:
            if copy_connections > 1:
                connection.close()
        with lock:
            totals["entries"] += data.n_entries
            totals["lots"] += data.n_lots
            totals["consumptions"] += data.n_consumptions
            log(f"chunk {spec.index + 1}/{len(specs)}: {totals['entries']:,} entries "
                f"({time.monotonic() - started:.1f}s)")

    pool = None
    try:
        if workers and len(specs) > 1:
            import multiprocessing

            pool = multiprocessing.get_context("spawn").Pool(workers)
            chunks = _windowed(pool, specs, ahead=workers + copy_connections)
        else:
            chunks = map(generate_chunk, specs)
        if copy_connections > 1 and len(specs) > 1:
            with ThreadPoolExecutor(max_workers=copy_connections) as executor:
                pending: list[Future] = []
                for spec, data in zip(specs, chunks, strict=True):
                    pending.append(executor.submit(write, spec, data))
                    while len(pending) >= copy_connections:  # bounded memory: wait for the oldest
                        pending.pop(0).result()
                for future in pending:
                    future.result()
        else:
            for spec, data in zip(specs, chunks, strict=True):
                write(spec, data)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    copy_s = time.monotonic() - started
    t = time.monotonic()
    with connection.cursor() as cursor:
        for table in ID_TABLES:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), "
                f"COALESCE(pg_sequence_last_value(pg_get_serial_sequence('{table}', 'id')), 0), 1))")
        if analyze:
            cursor.execute("ANALYZE crm_customer, ledger_creditaccount, ledger_ledgerentry, ledger_creditlot, "
                           "ledger_lotconsumption")
    finish_s = time.monotonic() - t
    totals.update(seconds=round(time.monotonic() - started, 2), load_s=round(copy_s, 2),
                  finish_s=round(finish_s, 2), workers=workers, copy_connections=copy_connections,
                  first_customer_id=specs[0].first_customer_id if specs else None,
                  window=(datetime.fromtimestamp(start, UTC).isoformat(), now.isoformat()))
    return totals

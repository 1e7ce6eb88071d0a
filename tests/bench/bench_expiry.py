"""The hourly expiry sweep on PostgreSQL: `ledger.services.expire_due` over N due lots.

    python tests/bench/bench_expiry.py [--quick] [--lots N] [--lots-per-customer K] [--batch-size B]

Creates its own database (bench_expiry_<pid>) on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/postgres), migrates, and loads with COPY N lots that are
all overdue (default 1,000,000; --quick 50,000), K per customer (default 4): for each lot a
grant entry and its lot, with consistent balances, balance_after chains, versions and
next_expiry_at, so the ledger verifies before the sweep. Then it times one
`expire_due(batch_size=B)` (default: the service's own default) that expires them all,
checks that every lot was expired exactly once, runs verify_ledger(), and drops the
database (even on error).

Everything but the last stdout line goes to stderr; the last stdout line is one JSON object
with `expired_lots_per_s` (goal: 1,000,000 lots in under 120 s, i.e. >= 8,334 lots/s).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import bench_database, log  # noqa: E402

QUICK_LOTS = 50_000
FULL_LOTS = 1_000_000
GOAL_SECONDS_PER_MILLION = 120
CHUNK_CUSTOMERS = 25_000

COLUMNS = {
    "crm_customer": "id, member_id, name, email, phone, card_number, registered_at, status, created_at, updated_at",
    "ledger_creditaccount": "customer_id, balance, version, next_expiry_at, updated_at",
    "ledger_ledgerentry": ("id, account_id, kind, amount, balance_after, created_at, actor_id, source, reason, "
                           "comment, order_id, reverses_id, idempotency_key, fingerprint, batch, uncollected, details"),
    "ledger_creditlot": "id, account_id, entry_id, amount, remaining, expires_at, created_at",
}
AMOUNTS = (100, 250, 500, 1000, 1500, 2000, 5000)


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _chunk(first_customer: int, customers: int, per_customer: int, first_id: int, now: datetime) -> dict[str, str]:
    """COPY text for `customers` customers with `per_customer` overdue lots each."""
    from crm.cards import luhn_check_digit

    rows = {table: [] for table in COLUMNS}
    granted_at = now - timedelta(days=400)
    lot_id = first_id
    for c in range(first_customer, first_customer + customers):
        body = f"8{c:014d}"
        card = body + luhn_check_digit(body)
        created = _ts(granted_at)
        rows["crm_customer"].append(
            f"{c}\tBX{c:09d}\tBench customer {c}\t\t\t{card}\t{created}\tactive\t{created}\t{created}")
        balance = 0
        first_expiry = None
        for k in range(per_customer):
            amount = AMOUNTS[(c + k) % len(AMOUNTS)]
            balance += amount
            at = granted_at + timedelta(seconds=k)
            expires = now - timedelta(days=1, minutes=(c * per_customer + k) % 10_000)
            first_expiry = expires if first_expiry is None else min(first_expiry, expires)
            rows["ledger_ledgerentry"].append(
                f"{lot_id}\t{c}\tgrant\t{amount}\t{balance}\t{_ts(at)}\t\\N\tbulk\tBench promo\t\t\\N\t\\N\t\\N\t\t"
                f"\\N\t0\t{{}}")
            rows["ledger_creditlot"].append(f"{lot_id}\t{c}\t{lot_id}\t{amount}\t{amount}\t{_ts(expires)}\t{_ts(at)}")
            lot_id += 1
        rows["ledger_creditaccount"].append(f"{c}\t{balance}\t{per_customer}\t{_ts(first_expiry)}\t{created}")
    return {table: "\n".join(lines) + "\n" for table, lines in rows.items()}


# --------------------------------------------------------------------------- the proposal
def load(*, lots: int, per_customer: int, now: datetime) -> dict:
    from django.db import connection, transaction

    customers = lots // per_customer
    started = time.monotonic()
    first_customer = 1
    first_id = 1
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3
        while first_customer <= customers:
            n = min(CHUNK_CUSTOMERS, customers - first_customer + 1)
            texts = _chunk(first_customer, n, per_customer, first_id, now)
            with transaction.atomic():
                for table, text in texts.items():
                    with raw.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                        copy.write(text)
            first_customer += n
            first_id += n * per_customer
            log(f"  loaded {first_customer - 1:,} customers / {first_id - 1:,} lots")
        for table in ("crm_customer", "ledger_ledgerentry", "ledger_creditlot"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
        cursor.execute("ANALYZE crm_customer, ledger_creditaccount, ledger_ledgerentry, ledger_creditlot")
    return {"customers": customers, "lots": customers * per_customer, "seconds": time.monotonic() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_LOTS:,} lots instead of {FULL_LOTS:,}")
    parser.add_argument("--lots", type=int, default=None)
    parser.add_argument("--lots-per-customer", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None, help="expire_due's batch_size (default: its own)")
    args = parser.parse_args()
    lots = args.lots or (QUICK_LOTS if args.quick else FULL_LOTS)
    per_customer = max(1, args.lots_per_customer)

    with bench_database("bench_expiry"):
        from django.db import connection

        from ledger import services
        from ledger.models import CreditLot, EntryKind, LedgerEntry
        from ledger.selectors import verify_ledger

        batch_size = args.batch_size or inspect.signature(services.expire_due).parameters["batch_size"].default
        now = datetime.now(UTC).replace(microsecond=0)
        log(f"loading {lots:,} overdue lots ({per_customer} per customer) with COPY")
        loaded = load(lots=lots, per_customer=per_customer, now=now)
        log(f"loaded {loaded['lots']:,} lots for {loaded['customers']:,} customers in {loaded['seconds']:.1f}s")

        log(f"sweeping: expire_due(batch_size={batch_size})")
        started = time.monotonic()
        posted = services.expire_due(batch_size=batch_size)
        seconds = time.monotonic() - started
        rate = posted / seconds if seconds else 0.0
        log(f"expired {posted:,} lots in {seconds:.1f}s = {rate:,.0f} lots/s")

        left = CreditLot.objects.filter(remaining__gt=0, expires_at__lte=now).count()
        with connection.cursor() as cursor:
            # fresh statistics for the checks (autovacuum would get there later)
            cursor.execute("ANALYZE ledger_ledgerentry, ledger_creditlot, ledger_lotconsumption, ledger_creditaccount")
            cursor.execute("SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM ledger_ledgerentry WHERE kind = %s",
                           [EntryKind.EXPIRE])
            expire_entries, distinct_keys = cursor.fetchone()
        started = time.monotonic()
        problems = verify_ledger()
        verify_seconds = time.monotonic() - started
        for problem in problems:
            log(f"  ledger: {problem}")
        log(f"verify_ledger: {'ok' if not problems else 'BROKEN'} in {verify_seconds:.1f}s")
        once = expire_entries == distinct_keys == loaded["lots"] and left == 0
        result = {
            "bench": "expiry",
            "lots": loaded["lots"],
            "customers": loaded["customers"],
            "batch_size": batch_size,
            "load_seconds": round(loaded["seconds"], 1),
            "expired": posted,
            "seconds": round(seconds, 2),
            "expired_lots_per_s": round(rate, 1),
            "projected_seconds_per_million": round(1_000_000 / rate, 1) if rate else None,
            "goal_seconds_per_million": GOAL_SECONDS_PER_MILLION,
            "meets_goal": bool(rate and 1_000_000 / rate < GOAL_SECONDS_PER_MILLION),
            "each_lot_expired_once": once,
            "entries_total": LedgerEntry.objects.count(),
            "verify_ok": not problems,
            "verify_seconds": round(verify_seconds, 1),
        }
    print(json.dumps(result))
    return 0 if (result["verify_ok"] and once) else 1


if __name__ == "__main__":
    sys.exit(main())

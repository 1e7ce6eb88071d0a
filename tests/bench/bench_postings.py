"""Posting throughput and latency through ledger.services on PostgreSQL.

    python tests/bench/bench_postings.py [--quick]

Creates its own database (bench_postings_<pid>) on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/postgres), migrates, loads a history with the bulk loader
(every account ends with a large never-expiring lot, so redeems do not run dry), then runs
writers for a fixed time each:

- 1, 2 and 4 writers over many accounts (uniformly random account per posting),
- 4 writers on ONE hot account, and 8 writers on another hot account (deadlocks and lock
  timeouts are counted and retried with the same idempotency key, as the outermost boundary
  does; they must be 0),
- (full run only, on stderr) 4 writers with the receivers of `entries_posted` muted, which
  shows what the listeners (notifications' outbox rows) add to a posting,
- the ceiling: the same kind of postings with plain psycopg (no ORM: BEGIN; SELECT ... FOR
  UPDATE on the account; INSERT entry; INSERT lot, or SELECT lots + INSERT consumption +
  UPDATE lot; UPDATE account; COMMIT) with 4 writers.

The mix, like real callers, each posting with its idempotency key: 50% rule grants (half of
them expiring in 365 days), 45% redeems at checkout (api), 5% staff deductions.

Writers are separate processes (fork), each with its own connection: with threads the GIL
would make Python the bottleneck. Celery tasks queued by a posting (emails) are enqueued to
the broker, not run inline (CELERY_TASK_ALWAYS_EAGER=0), as in production. Throughput = successful postings / wall time of the run;
latency is per posting as the caller sees it (retries included), in ms.

Afterwards verify_ledger() runs on everything written and the database is dropped (even on
error). Everything but the last stdout line goes to stderr; the last stdout line is one JSON
object. --quick finishes within a minute; the full run takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import bench_database, log, percentile, run_writers  # noqa: E402

QUICK = {"duration": 3.0, "customers": 5_000, "entries": 50_000}
FULL = {"duration": 20.0, "customers": 20_000, "entries": 500_000}
OPENING_BALANCE = 10**10  # minor units on every account: redeems never run dry


def _classify(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return type(cause).__name__  # DeadlockDetected, LockNotAvailable (lock_timeout), ...


def _pick(rng: random.Random) -> tuple[str, int]:
    r = rng.random()
    if r < 0.50:
        return "grant", rng.randint(100, 5000)
    if r < 0.95:
        return "redeem", rng.randint(100, 2000)
    return "deduct", rng.randint(100, 1000)


def orm_writer(spec: dict, barrier, results) -> None:
    """Postings through ledger.services until the deadline."""
    try:
        from django.db import OperationalError, connection

        if spec.get("mute_receivers"):  # attribution only: what the listeners of entries_posted cost
            from ledger.signals import entries_posted

            entries_posted.receivers = []
            entries_posted.sender_receivers_cache.clear()

        from ledger import services
        from ledger.models import EntryKind, EntrySource

        rng = random.Random(spec["seed"])
        accounts = spec["accounts"]
        connection.ensure_connection()
        barrier.wait(timeout=60)
        deadline = time.monotonic() + spec["duration"]
        latencies: list[float] = []
        errors: Counter = Counter()
        ok = insufficient = n = 0
        tag = spec["tag"]
        while time.monotonic() < deadline:
            n += 1
            account = accounts[rng.randrange(len(accounts))]
            op, amount = _pick(rng)
            expires = datetime.now(UTC) + timedelta(days=365) if rng.random() < 0.5 else None
            started = time.perf_counter()
            while True:
                try:
                    if op == "grant":
                        services.grant(customer=account, amount=amount, reason="Purchase reward (3%)",
                                       source=EntrySource.RULE, expires_at=expires,
                                       idempotency_key=f"grant:purchase:{tag}-{n}")
                    elif op == "redeem":
                        services.debit(customer=account, amount=amount, kind=EntryKind.REDEEM,
                                       reason="Redeemed at checkout", source=EntrySource.API,
                                       idempotency_key=f"api:redeem:{tag}-{n}")
                    else:
                        services.debit(customer=account, amount=amount, kind=EntryKind.DEDUCT,
                                       reason="Correction: duplicate credit", source=EntrySource.STAFF,
                                       idempotency_key=f"staff:{tag}-{n}")
                    ok += 1
                except services.InsufficientCredits:
                    insufficient += 1
                except OperationalError as exc:  # deadlock / lock timeout: retried with the same key
                    errors[_classify(exc)] += 1
                    continue
                break
            latencies.append((time.perf_counter() - started) * 1000)
        results.put({"ok": ok, "latencies": latencies, "errors": dict(errors), "insufficient": insufficient})
    except BaseException:
        barrier.abort()
        results.put({"crashed": traceback.format_exc()})


RAW_SQL = {
    "lock": "SELECT balance FROM ledger_creditaccount WHERE customer_id = %s FOR UPDATE",
    "entry": ("INSERT INTO ledger_ledgerentry (account_id, kind, amount, balance_after, created_at, source, reason, "
              "comment, idempotency_key, fingerprint, uncollected, details) "
              "VALUES (%s, %s, %s, %s, %s, %s, %s, '', %s, '', 0, '{}') RETURNING id"),
    "lot": ("INSERT INTO ledger_creditlot (account_id, entry_id, amount, remaining, expires_at, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)"),
    "open_lots": ("SELECT id, remaining FROM ledger_creditlot WHERE account_id = %s AND remaining > 0 "
                  "ORDER BY expires_at, id LIMIT 8"),
    "consume": "INSERT INTO ledger_lotconsumption (entry_id, lot_id, amount) VALUES (%s, %s, %s)",
    "lot_update": "UPDATE ledger_creditlot SET remaining = remaining - %s WHERE id = %s",
    "account_grant": ("UPDATE ledger_creditaccount SET balance = %s, version = version + 1, "
                      "next_expiry_at = LEAST(next_expiry_at, %s), last_entry_at = %s, updated_at = %s "
                      "WHERE customer_id = %s"),
    "account_debit": ("UPDATE ledger_creditaccount SET balance = %s, version = version + 1, last_entry_at = %s, "
                      "updated_at = %s WHERE customer_id = %s"),
}


def raw_writer(spec: dict, barrier, results) -> None:
    """The same kind of postings in plain psycopg: the ceiling the ORM path is measured against."""
    try:
        import psycopg

        rng = random.Random(spec["seed"])
        accounts = spec["accounts"]
        conn = psycopg.connect(spec["url"], options="-c lock_timeout=5000")
        cur = conn.cursor()
        cur.execute("SELECT 1")
        conn.commit()
        barrier.wait(timeout=60)
        deadline = time.monotonic() + spec["duration"]
        latencies: list[float] = []
        errors: Counter = Counter()
        ok = insufficient = n = 0
        tag = spec["tag"]
        while time.monotonic() < deadline:
            n += 1
            account = accounts[rng.randrange(len(accounts))]
            op, amount = _pick(rng)
            expires = datetime.now(UTC) + timedelta(days=365) if rng.random() < 0.5 else None
            started = time.perf_counter()
            while True:
                try:
                    now = datetime.now(UTC)
                    cur.execute(RAW_SQL["lock"], (account,))
                    balance = cur.fetchone()[0]
                    if op == "grant":
                        balance += amount
                        cur.execute(RAW_SQL["entry"], (account, "grant", amount, balance, now, "rule",
                                                       "Purchase reward (3%)", f"grant:purchase:{tag}-{n}"))
                        entry_id = cur.fetchone()[0]
                        cur.execute(RAW_SQL["lot"], (account, entry_id, amount, amount, expires, now))
                        cur.execute(RAW_SQL["account_grant"], (balance, expires, now, now, account))
                    else:
                        if amount > balance:
                            conn.rollback()
                            insufficient += 1
                            break
                        cur.execute(RAW_SQL["open_lots"], (account,))
                        lots = cur.fetchall()
                        balance -= amount
                        kind, source = ("redeem", "api") if op == "redeem" else ("deduct", "staff")
                        cur.execute(RAW_SQL["entry"], (account, kind, -amount, balance, now, source,
                                                       "Redeemed at checkout", f"{source}:{tag}-{n}"))
                        entry_id = cur.fetchone()[0]
                        left = amount
                        for lot_id, remaining in lots:
                            part = min(left, remaining)
                            cur.execute(RAW_SQL["consume"], (entry_id, lot_id, part))
                            cur.execute(RAW_SQL["lot_update"], (part, lot_id))
                            left -= part
                            if left == 0:
                                break
                        if left:
                            raise RuntimeError("lots do not cover the balance")
                        cur.execute(RAW_SQL["account_debit"], (balance, now, now, account))
                    conn.commit()
                    ok += 1
                except psycopg.OperationalError as exc:
                    conn.rollback()
                    errors[type(exc).__name__] += 1
                    continue
                break
            latencies.append((time.perf_counter() - started) * 1000)
        conn.close()
        results.put({"ok": ok, "latencies": latencies, "errors": dict(errors), "insufficient": insufficient})
    except BaseException:
        barrier.abort()
        results.put({"crashed": traceback.format_exc()})


def run_scenario(name: str, target, writers: int, accounts: list[int], *, duration: float, url: str,
                 **extra) -> dict:
    specs = [{"seed": zlib.crc32(f"{name}-{i}".encode()), "accounts": accounts, "duration": duration,
              "tag": f"{name}-w{i}", "url": url, **extra} for i in range(writers)]
    collected, wall = run_writers(target, specs, timeout=duration + 120)
    ok = sum(r["ok"] for r in collected)
    latencies = [x for r in collected for x in r["latencies"]]
    errors: Counter = Counter()
    for r in collected:
        errors.update(r["errors"])
    result = {
        "scenario": name, "writers": writers, "accounts": len(accounts), "postings": ok, "seconds": round(wall, 2),
        "postings_per_s": round(ok / wall, 1) if wall else 0.0,
        "p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2), "max_ms": round(max(latencies, default=0), 2),
        "operational_errors": sum(errors.values()), "errors": dict(errors),
        "insufficient": sum(r["insufficient"] for r in collected),
    }
    log(json.dumps(result))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small and short (under a minute)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    started = time.monotonic()
    with bench_database("bench_postings") as url:
        from django.db import connection

        from ledger.bulk_load import bulk_load
        from ledger.models import CreditAccount, CreditLot
        from ledger.selectors import verify_ledger

        loaded = bulk_load(customers=size["customers"], entries=size["entries"], seed=7, topup=OPENING_BALANCE)
        log(f"loaded {loaded['entries']:,} entries for {loaded['customers']:,} customers in {loaded['seconds']}s")
        accounts = list(CreditAccount.objects.order_by("pk").values_list("pk", flat=True))
        hot_4, hot_8, many = accounts[0], accounts[1], accounts[2:]
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            log(f"synchronous_commit={cursor.fetchone()[0]}; writers are processes (fork), one connection each")
        duration = size["duration"]
        runs = {}
        for name, target, writers, pool in [
            ("orm_1_writer", orm_writer, 1, many),
            ("orm_2_writers", orm_writer, 2, many),
            ("orm_4_writers", orm_writer, 4, many),
            ("orm_4_writers_hot_account", orm_writer, 4, [hot_4]),
            ("orm_8_writers_hot_account", orm_writer, 8, [hot_8]),
            ("raw_4_writers", raw_writer, 4, many),
        ]:
            runs[name] = run_scenario(name, target, writers, pool, duration=duration, url=url)
        if not args.quick:  # attribution: the same 4-writer run with nobody listening to entries_posted
            run_scenario("orm_4_writers_without_receivers", orm_writer, 4, many, duration=duration, url=url,
                         mute_receivers=True)
        for label, account in (("4", hot_4), ("8", hot_8)):
            open_lots = CreditLot.objects.filter(account_id=account, remaining__gt=0).count()
            log(f"hot account of the {label}-writer run now has {open_lots} open lots")
        verify_started = time.monotonic()
        problems = verify_ledger()
        log(f"verify_ledger: {len(problems)} problem(s) in {time.monotonic() - verify_started:.1f}s")
        for problem in problems:
            log(f"  {problem}")
    result = {
        "postings_per_s_1_writer": runs["orm_1_writer"]["postings_per_s"],
        "postings_per_s_2_writers": runs["orm_2_writers"]["postings_per_s"],
        "postings_per_s_4_writers": runs["orm_4_writers"]["postings_per_s"],
        "p50_ms_4_writers": runs["orm_4_writers"]["p50_ms"],
        "p99_ms_4_writers": runs["orm_4_writers"]["p99_ms"],
        "postings_per_s_4_writers_hot_account": runs["orm_4_writers_hot_account"]["postings_per_s"],
        "p99_ms_4_writers_hot_account": runs["orm_4_writers_hot_account"]["p99_ms"],
        "deadlocks_8_writers_hot_account": runs["orm_8_writers_hot_account"]["operational_errors"],
        "raw_postings_per_s_4_writers": runs["raw_4_writers"]["postings_per_s"],
        "ledger_verify_ok": not problems,
    }
    log(f"bench_postings finished in {time.monotonic() - started:.1f}s")
    print(json.dumps(result), flush=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

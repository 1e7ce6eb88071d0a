"""The credits-history page, its 30-day summary and the big CSV export on PostgreSQL.

    python tests/bench/bench_history.py [--quick]

Creates its own database (bench_history_<pid>) on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/postgres) with settings `credits_admin.settings` (DEBUG
off, a throw-away SECRET_KEY unless one is set), migrates, and fills it with the bulk
loader (ledger/bulk_load.py): 5,000,000 entries of 200,000 customers over 18 months
(--quick: 300,000 / 20,000). Then, through Django's test Client logged in as a Store
admin:

- the history page's first page (the whole page: table, summary, opening/closing balance
  when they apply) for each filter type, each combined with what the page's filter form
  sends with it (the period select says "Last 30 days" unless changed): none (the 30-day
  default), customer by member ID (20 different customers), kind, direction, amount range,
  reason, order, staff, the 30 days sorted by amount (alone and with a kind), and a custom
  range of one month a year ago. 2 warm-up runs, then 20
  timed runs each; p50/p95 per filter, the worst p95 as first_page_p95_ms;
- the 30-day summary, as the page fetches it (GET /credits/history/summary/?period=30d:
  totals, customers, opening/closing balance, rendered): first the cold call right after
  the load, which builds the period's missing daily rollups itself (summary_30d_cold_ms);
  then the rollups are dropped and built as the hourly beat job does in production
  (ledger.rollups.build_day_totals: every closed day of the last 400; day_totals_build_s),
  and summary_30d_ms is the median of 20 calls after it (p95 in summary_30d_p95_ms; the
  selector alone, ledger.selectors.period_summary, in summary_30d_selector_ms). The old
  path (one aggregate with COUNT(DISTINCT) over the 30 days' rows, what any search with
  another filter still does) is kept as summary_30d_aggregate_ms;
- the CSV export of 1,000,000 rows (all rows in --quick) through the background-job path
  (ledger.exports.build_export: exact count, then COPY streamed to a file), run in a child
  process so its peak RSS (VmHWM; ru_maxrss where /proc is missing) is the export's own: csv_rows_per_s, csv_peak_rss_mb.

The database is dropped at the end, even on failure. Everything but the last stdout line
goes to stderr; the last stdout line is one JSON object. Targets: first page p95 < 100 ms
for every filter, summary < 200 ms, 1M-row CSV < 15 s at < 200 MB.

The static files are served unhashed (STATIC_MANIFEST=0: no collectstatic needed) and the
requests are made as HTTPS (SECURE_SSL_REDIRECT is on without DEBUG).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import ROOT, bench_database, log, percentile  # noqa: E402

QUICK = {"customers": 20_000, "entries": 300_000, "csv_rows": None}  # None: every row
FULL = {"customers": 200_000, "entries": 5_000_000, "csv_rows": 1_000_000}
RUNS, WARMUP, SUMMARY_RUNS = 20, 2, 20
TARGETS = {"first_page_p95_ms": 100, "summary_30d_ms": 200, "csv_seconds_1m": 15, "csv_peak_rss_mb": 200}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --------------------------------------------------------------------------- setup


def _store_admin():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user("bench.admin", password=None, is_staff=True)
    user.groups.add(Group.objects.get(name="Store admin"))
    return user


def _orders(count: int = 50):
    """Some orders (the bulk loader posts no entries with an order: the order search
    measures the lookup of an order reference, whose entries are few by nature)."""
    from django.utils import timezone

    from crm.models import Customer, Order

    customers = list(Customer.objects.order_by("pk").values_list("pk", flat=True)[:count])
    now = timezone.now()
    Order.objects.bulk_create(Order(external_id=f"BENCH-{i:05d}", customer_id=cid, placed_at=now, paid_at=now,
                                    status="paid", items_total=10_000, paid_amount=10_000)
                              for i, cid in enumerate(customers))
    return [f"BENCH-{i:05d}" for i in range(len(customers))]


def _recent_member_ids(n: int) -> list[str]:
    """Member IDs of customers with entries in the last 30 days."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""SELECT c.member_id FROM crm_customer c
                          WHERE c.id IN (SELECT account_id FROM ledger_ledgerentry
                                          ORDER BY created_at DESC, id DESC LIMIT 5000)
                          ORDER BY c.id LIMIT %s""", [n])
        return [row[0] for row in cursor.fetchall()]


def _filters(admin, member_ids, orders):
    from django.utils import timezone

    today = timezone.localdate()
    month_ago_year = today - timedelta(days=365)
    form = {"period": "30d"}  # what the filter form sends along with any other field
    return {
        "none (30d)": [{}],
        "customer (member ID)": [{**form, "customer": mid} for mid in member_ids],
        "kind": [{**form, "kind": "cash_refund"}],
        "direction": [{**form, "direction": "deducted"}],
        "amount range": [{**form, "amount_min": "10", "amount_max": "20"}],
        "reason": [{**form, "reason": "review"}],
        "order": [{**form, "order": orders[i % len(orders)]} for i in range(RUNS)],
        "staff": [{**form, "staff": str(admin.pk)}],
        "sorted by amount": [{**form, "sort": "-amount"}],
        "kind by amount": [{**form, "kind": "cash_refund", "sort": "amount"}],
        "custom range": [{"period": "custom", "date_from": (month_ago_year - timedelta(days=30)).isoformat(),
                          "date_to": month_ago_year.isoformat()}],
    }


# --------------------------------------------------------------------------- measurements


def _first_pages(client, filters) -> dict:
    results = {}
    for name, variants in filters.items():
        times, rows = [], None
        for i in range(WARMUP + RUNS):
            params = variants[i % len(variants)]
            started = time.perf_counter()
            response = client.get("/credits/history/", params, secure=True)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"{name}: HTTP {response.status_code} for {params}")
            if i >= WARMUP:
                times.append(elapsed)
                rows = response.content.count(b'class="customer-link"')  # one per table row
        results[name] = {"p50_ms": _ms(statistics.median(times)), "p95_ms": _ms(percentile(times, 95)),
                         "max_ms": _ms(max(times)), "rows_on_page": rows}
        log(f"  {name:22} p50 {results[name]['p50_ms']:8.1f} ms   p95 {results[name]['p95_ms']:8.1f} ms")
    return results


def _summary_30d(client) -> dict:
    """The 30-day summary: cold (lazy rollup build), the beat job's build, then warm calls."""
    from ledger import rollups, selectors
    from ledger.filters import HistoryFilter
    from ledger.models import LedgerDayTotal

    def call():
        started = time.perf_counter()
        response = client.get("/credits/history/summary/", {"period": "30d"}, secure=True,
                              headers={"HX-Request": "true"})
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"summary: HTTP {response.status_code}")
        shown = re.search(rb'data-testid="entries">(\d+)<', response.content)
        return elapsed, int(shown.group(1))

    result = {}
    cold, entries = call()
    result["summary_30d_cold_ms"] = _ms(cold)
    result["day_totals_lazy_rows"] = LedgerDayTotal.objects.count()
    LedgerDayTotal.objects.all().delete()  # a cache: production's beat job builds it hourly
    started = time.perf_counter()
    result["day_totals_built"] = rollups.build_day_totals()
    result["day_totals_build_s"] = round(time.perf_counter() - started, 2)
    times = []
    for i in range(SUMMARY_RUNS + 1):
        elapsed, shown = call()
        if shown != entries:
            raise RuntimeError(f"summary changed: {entries} entries, then {shown}")
        if i:  # the first run warms the caches
            times.append(elapsed)
    result["summary_30d_ms"] = _ms(statistics.median(times))
    result["summary_30d_p95_ms"] = _ms(percentile(times, 95))
    start, end = HistoryFilter({"period": "30d"}).period_range
    times = []
    for _ in range(SUMMARY_RUNS):
        started = time.perf_counter()
        summary = selectors.period_summary(start=start, end=end)
        times.append(time.perf_counter() - started)
    if summary is None or summary["entries"] != entries:
        raise RuntimeError(f"the page showed {entries} entries, the selector says {summary}")
    result["summary_30d_selector_ms"] = _ms(statistics.median(times))
    times = []
    for i in range(4):
        qs = HistoryFilter({"period": "30d"}).qs
        started = time.perf_counter()
        aggregate = selectors.history_summary(qs)
        if i:
            times.append(time.perf_counter() - started)
    if aggregate != summary:
        raise RuntimeError(f"rollups say {summary}, the aggregate {aggregate}")
    result["summary_30d_aggregate_ms"] = _ms(statistics.median(times))
    result["summary_30d_entries"] = summary["entries"]
    result["summary_30d_customers"] = summary["customers"]
    return result


def _export_search(csv_rows: int | None) -> str:
    """A search of about `csv_rows` rows (from the day of the csv_rows-th newest entry on),
    or of every row."""
    from django.db import connection
    from django.utils import timezone

    if csv_rows is None:
        return "period=custom&date_from=2000-01-01"
    with connection.cursor() as cursor:
        cursor.execute("SELECT created_at FROM ledger_ledgerentry ORDER BY created_at DESC, id DESC "
                       "OFFSET %s LIMIT 1", [csv_rows - 1])
        row = cursor.fetchone()
    if row is None:
        return "period=custom&date_from=2000-01-01"
    # the next day on, so the export has at most about csv_rows rows
    day = timezone.localtime(row[0]).date() + timedelta(days=1)
    return f"period=custom&date_from={day.isoformat()}"


def _csv_export(admin, csv_rows: int | None, media_root: str) -> dict:
    from ledger import exports
    from ledger.models import Export

    search = _export_search(csv_rows)
    export = Export.objects.create(requested_by=admin, description=f"bench: {search}", params={
        "scope": "search", "search": search, "columns": [c.key for c in exports.COLUMNS], "bom": True})
    env = {**os.environ, "MEDIA_ROOT": media_root}
    proc = subprocess.run([sys.executable, __file__, "--export-child", str(export.pk)], env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"export child failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    export.refresh_from_db()
    if export.status != Export.Status.DONE:
        raise RuntimeError(f"export ended {export.status}: {export.error}")
    result.update(rows=export.rows_written, bytes=export.size_bytes, search=search,
                  rows_per_s=round(export.rows_written / result["seconds"]))
    return result


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far. VmHWM belongs to this process's own
    memory map; ru_maxrss would also count the parent's size at fork/exec on Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _export_child(export_id: int) -> None:
    """In a fresh process: build one export; report seconds and peak RSS as JSON."""
    import django

    django.setup()
    from ledger import exports

    baseline_mb = _peak_rss_mb()
    started = time.perf_counter()
    exports.build_export(export_id=export_id)
    seconds = time.perf_counter() - started
    peak_mb = _peak_rss_mb()
    print(json.dumps({"seconds": round(seconds, 3), "peak_rss_mb": round(peak_mb, 1),
                      "rss_before_export_mb": round(baseline_mb, 1)}))


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300,000 entries / 20,000 customers")
    parser.add_argument("--export-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        _export_child(args.export_child)
        return 0
    size = QUICK if args.quick else FULL
    os.environ["STATIC_MANIFEST"] = "0"
    media_root = tempfile.mkdtemp(prefix="bench_history_media_")
    os.environ["MEDIA_ROOT"] = media_root
    result = {"quick": args.quick, **{k: v for k, v in size.items() if k != "csv_rows"}}
    try:
        with bench_database("bench_history"):
            from django.test import Client

            from ledger.bulk_load import bulk_load

            admin = _store_admin()  # first staff user: the loader's actor for staff entries
            log(f"loading {size['entries']:,} entries / {size['customers']:,} customers ...")
            started = time.monotonic()
            loaded = bulk_load(customers=size["customers"], entries=size["entries"], seed=1)
            result["load_seconds"] = round(time.monotonic() - started, 1)
            result["entries_loaded"] = loaded["entries"]
            log(f"loaded {loaded['entries']:,} entries in {result['load_seconds']}s")
            orders = _orders()
            member_ids = _recent_member_ids(RUNS)

            client = Client()
            client.force_login(admin)
            log("history first page per filter:")
            pages = _first_pages(client, _filters(admin, member_ids, orders))
            worst = max(pages, key=lambda name: pages[name]["p95_ms"])
            result["first_page_p95_ms"] = pages[worst]["p95_ms"]
            result["first_page_worst_filter"] = worst
            result["first_page"] = pages

            summary = _summary_30d(client)
            result.update(summary)
            summary_ms = summary["summary_30d_ms"]
            log(f"30-day summary over {summary['summary_30d_entries']:,} entries: cold (lazy rollups) "
                f"{summary['summary_30d_cold_ms']} ms; rollups of {summary['day_totals_built']} days built in "
                f"{summary['day_totals_build_s']} s; then median {summary_ms} ms, "
                f"p95 {summary['summary_30d_p95_ms']} ms (selector {summary['summary_30d_selector_ms']} ms; "
                f"one aggregate over the rows {summary['summary_30d_aggregate_ms']} ms)")

            log("CSV export (child process) ...")
            csv = _csv_export(admin, size["csv_rows"], media_root)
            result["csv_rows_per_s"] = csv["rows_per_s"]
            result["csv_peak_rss_mb"] = csv["peak_rss_mb"]
            result["csv"] = csv
            log(f"CSV: {csv['rows']:,} rows, {csv['bytes'] / 2**20:.1f} MiB in {csv['seconds']} s "
                f"({csv['rows_per_s']:,} rows/s), peak RSS {csv['peak_rss_mb']} MB "
                f"({csv['rss_before_export_mb']} MB before the export)")
            result["targets"] = TARGETS
            result["targets_met"] = {
                "first_page_p95_ms": all(p["p95_ms"] < TARGETS["first_page_p95_ms"] for p in pages.values()),
                "summary_30d_ms": summary_ms < TARGETS["summary_30d_ms"],
                "csv_1m_rows_under_15s": csv["rows_per_s"] * TARGETS["csv_seconds_1m"] >= 1_000_000,
                "csv_peak_rss_mb": csv["peak_rss_mb"] < TARGETS["csv_peak_rss_mb"],
            }
    except Exception as exc:
        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(result))
        return 1
    finally:
        shutil.rmtree(media_root, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())

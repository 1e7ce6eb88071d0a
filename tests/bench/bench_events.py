"""Storefront events per second through the real API into ledger grants, on PostgreSQL.

    python tests/bench/bench_events.py [--quick]

Creates its own database (bench_events_<pid>) next to DATABASE_URL's (default
postgres://postgres@127.0.0.1:5432/postgres), migrates it, sets up two rules (first order:
a fixed amount; each paid order: per value), serves the WSGI app with gunicorn (4 workers)
on a free 127.0.0.1 port, and runs 4 concurrent clients (threads with keep-alive
http.client connections) that POST customer.registered then order.paid events with an API
key. Email delivery is left to Celery (not run inside the requests), as in production.
Then it checks the ledger's invariants and the number of grants, drops the database
and prints one JSON line last: events_per_s (goal >= 150), p50_ms, p99_ms, grants_posted,
ledger_verify_ok, ...
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parents[2]
CLIENTS = 4
WORKERS = 4


def _db_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin(base_url: str, sql: str) -> None:
    import psycopg

    parts = urlsplit(base_url)
    with psycopg.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432, user=parts.username or "postgres",
                         password=parts.password, dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
                         autocommit=True) as conn:
        conn.execute(sql)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited early")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not become ready")


def _client(port: int, key: str, bodies: list[dict], latencies: list[float], failures: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Connection": "keep-alive"}
    for body in bodies:
        payload = json.dumps(body)
        started = time.perf_counter()
        for attempt in range(3):
            try:
                conn.request("POST", "/api/v1/events", body=payload, headers=headers)
                response = conn.getresponse()
                text = response.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                if attempt == 2:
                    raise
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            failures.append(f"{response.status} {text[:200]!r}")
    conn.close()


def _workload(clients: int, customers_per_client: int, orders_per_customer: int) -> list[list[dict]]:
    """Per client: for each of its customers, a registration then its paid orders."""
    occurred = "2030-01-01T12:00:00Z"
    work = []
    for c in range(clients):
        bodies = []
        for n in range(customers_per_client):
            member = f"B{c}-{n:05d}"
            bodies.append({"id": f"reg-{member}", "type": "customer.registered", "occurred_at": occurred,
                           "data": {"customer_id": member, "name": f"Bench {member}",
                                    "email": f"{member.lower()}@bench.example"}})
            for k in range(orders_per_customer):
                items = 1000 + (n * 7919 + k * 104729) % 20000  # 10.00 .. 209.99: every order earns
                bodies.append({"id": f"paid-{member}-{k}", "type": "order.paid", "occurred_at": occurred,
                               "data": {"order_id": f"O-{member}-{k}", "customer_id": member, "items_total": items,
                                        "paid_amount": items + 500}})
        work.append(bodies)
    return work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about 400 events)")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent clients (default 4)")
    parser.add_argument("--workers", type=int, default=WORKERS, help="gunicorn workers (default 4)")
    args = parser.parse_args()
    clients, workers = args.clients, args.workers
    customers, orders = (25, 3) if args.quick else (150, 3)

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    db_name = f"bench_events_{os.getpid()}"
    db_url = _db_url(base_url, db_name)
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnop",
           "DEBUG": "0", "SECURE_SSL_REDIRECT": "0", "ALLOWED_HOSTS": "127.0.0.1", "STATIC_MANIFEST": "0",
           "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "credits_admin.settings",
           # As in production: emails are queued (outbox rows written in the event's transaction)
           # and delivered by Celery workers, not inside the request. Without REDIS_URL the broker
           # is in-memory, so the queued delivery tasks are simply dropped here.
           "CELERY_TASK_ALWAYS_EAGER": "0"}
    _admin(base_url, f'CREATE DATABASE "{db_name}"')
    server = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env,
                       check=True)
        os.environ.update(env)
        sys.path.insert(0, str(BASE_DIR))
        import django

        django.setup()
        from credits_admin.apikeys import create_api_key
        from ledger.models import LedgerEntry
        from ledger.selectors import verify_ledger
        from rules import services

        _, key = create_api_key(name="bench")
        services.create_rule(actor=None, method="first_order", mode="fixed", amount=500)
        services.create_rule(actor=None, method="paid_order", mode="per_value", amount=100, per_amount=1000)

        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "credits_admin.wsgi", "-w", str(workers),
                                   "-b", f"127.0.0.1:{port}", "--keep-alive", "5", "--log-level", "warning"],
                                  cwd=BASE_DIR, env=env)
        _wait_ready(port, server)

        work = _workload(clients, customers, orders)
        latencies: list[list[float]] = [[] for _ in range(clients)]
        failures: list[str] = []
        threads = [threading.Thread(target=_client, args=(port, key, work[i], latencies[i], failures))
                   for i in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started

        all_latencies = sorted(x for part in latencies for x in part)
        events = len(all_latencies)
        problems = verify_ledger()
        grants = LedgerEntry.objects.filter(kind="grant").count()
        expected_grants = clients * customers * (1 + orders)
        from django.db import connections

        connections.close_all()
        result = {
            "events": events,
            "clients": clients,
            "gunicorn_workers": workers,
            "seconds": round(elapsed, 3),
            "events_per_s": round(events / elapsed, 1),
            "p50_ms": round(statistics.median(all_latencies), 2),
            "p99_ms": round(all_latencies[min(events - 1, int(events * 0.99))], 2),
            "failures": len(failures),
            "grants_posted": grants,
            "grants_expected": expected_grants,
            "ledger_verify_ok": not problems,
            "goal_events_per_s": 150,
        }
        for line in failures[:5]:
            print("failure:", line, file=sys.stderr)
        for line in problems[:5]:
            print("ledger:", line, file=sys.stderr)
        print(json.dumps(result))
        ok = not failures and not problems and grants == expected_grants
        return 0 if ok else 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # Django may not be set up yet
            pass
        _admin(base_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())

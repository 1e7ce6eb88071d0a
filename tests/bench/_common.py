"""Shared helpers of the benchmark scripts in tests/bench/ (not collected by pytest).

A benchmark creates its OWN throw-away PostgreSQL database next to the one DATABASE_URL
names, points Django at it, migrates, runs, prints its result as one JSON line on stdout
(everything else goes to stderr) and drops the database at the end, even on error.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
BENCH_SECRET_KEY = "bench-only-not-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def percentile(values, q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@contextlib.contextmanager
def bench_database(prefix: str, *, migrate: bool = True):
    """Create `<prefix>_<pid>` on the server of DATABASE_URL, set up Django on it (settings
    `credits_admin.settings`, DEBUG off, a throw-away SECRET_KEY unless one is set, Celery
    tasks enqueued rather than run eagerly, emails kept in memory), migrate,
    yield its URL, and drop it afterwards whatever happens."""
    import psycopg

    base_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if not base_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(f"benchmarks need PostgreSQL; DATABASE_URL is {base_url!r}")
    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    log(f"created database {name}")
    try:
        url = with_database(base_url, name)
        os.environ["DATABASE_URL"] = url
        os.environ.pop("DEBUG", None)  # DEBUG would record every query
        os.environ.setdefault("SECRET_KEY", BENCH_SECRET_KEY)
        # Celery tasks are enqueued (to the in-process memory broker unless REDIS_URL is set),
        # never run inline: a posting's cost is its transaction, not a worker's email delivery.
        os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
        os.environ["EMAIL_URL"] = "memorymail://"
        os.environ["DJANGO_SETTINGS_MODULE"] = "credits_admin.settings"
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        if migrate:
            from django.core.management import call_command

            started = time.monotonic()
            call_command("migrate", verbosity=0, interactive=False)
            log(f"migrated in {time.monotonic() - started:.1f}s")
        yield url
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with psycopg.connect(base_url, autocommit=True) as admin:
            try:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.errors.SyntaxError:  # PostgreSQL < 13
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        log(f"dropped database {name}")


def _drain(queue, wait: float = 2.0) -> list:
    items = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            items.append(queue.get(timeout=0.2))
        except Exception:  # queue.Empty
            if items:
                break
    return items


def run_writers(target, specs: list, *, timeout: float) -> tuple[list, float]:
    """Run `target(spec, barrier, results)` in one forked process per spec; every process
    connects and warms up, then waits at the barrier so all start together. Returns
    (what each put on `results`, wall seconds from the start to the last result).
    Processes, not threads: with the GIL, Python itself would be the bottleneck."""
    from django.db import connections

    connections.close_all()  # never share a connection with a forked child
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(specs) + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(spec, barrier, results), daemon=True) for spec in specs]
    for proc in procs:
        proc.start()
    try:
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            crashed = [item for item in _drain(results) if isinstance(item, dict) and item.get("crashed")]
            raise RuntimeError(f"a writer failed to start: {crashed[0]['crashed'] if crashed else 'timeout'}") from None
        started = time.monotonic()
        collected = [results.get(timeout=timeout) for _ in procs]
        wall = time.monotonic() - started
        for proc in procs:
            proc.join(timeout=30)
        failed = [item for item in collected if isinstance(item, dict) and item.get("crashed")]
        if failed:
            raise RuntimeError(f"writer crashed: {failed[0]['crashed']}")
        return collected, wall
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)

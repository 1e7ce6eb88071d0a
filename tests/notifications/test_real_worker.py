"""A real Celery worker, through a real Redis, delivers an email caused by a ledger grant.

The rest of the suite runs tasks eagerly. This test starts `celery -A credits_admin worker
--pool=solo` against the test database (PostgreSQL: the worker is another process) and the
Redis at REDIS_URL, sends the task through Redis from this process, and waits (at most 60 s)
for the outbox row to be sent and the file-backend email to appear. The worker listens on a
queue of its own, so other workers on the same Redis never take its task."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection

from credits_admin.celery import app as celery_app
from ledger import services as ledger_services
from notifications.models import OutboxMessage
from notifications.tasks import deliver_outbox_message_task
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
TIMEOUT_S = 60


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("needs REDIS_URL (a real Redis, e.g. redis://127.0.0.1:6379/0; CI has one)")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as exc:  # any failure means: no Redis to test against
        pytest.skip(f"Redis at {url} does not answer: {exc}")
    return url


def _test_database_url() -> str:
    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    return f"postgres://{auth}{host}:{port}/{db['NAME']}"


@pytest.fixture
def worker(redis_url, tmp_path):
    """A real worker process on its own queue; stopped (and its log shown on failure) after."""
    queue = f"test-emails-{os.getpid()}-{time.monotonic_ns()}"
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "credits_admin.settings",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "SECRET_KEY": "worker-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "EMAIL_URL": f"filemail://{mail_dir}",
        "DEBUG": "0",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [celery, "-A", "credits_admin", "worker", "--pool=solo", "-l", "info", "-Q", queue,
             "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=django_settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield {"queue": queue, "mail_dir": mail_dir, "log": log_path, "process": process}
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        _forget_queue(redis_url, queue)


def _forget_queue(redis_url: str, queue: str) -> None:
    """Remove what the worker's own queue left in Redis (its bindings, any message)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    keys = [queue, *client.scan_iter(match=f"_kombu.binding*.{queue}")]
    client.delete(*keys)


@pytest.fixture
def tasks_through_redis(settings, monkeypatch, redis_url, worker):
    """This process sends tasks to Redis (not eagerly), on the worker's queue."""
    # Celery's conf reads Django settings lazily: take what to restore before changing anything.
    saved = {key: celery_app.conf[key] for key in ("task_always_eager", "broker_url")}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = redis_url
    monkeypatch.setattr(deliver_outbox_message_task, "queue", worker["queue"], raising=False)
    # A task caches its routing options on first use (an eager run in an earlier test): drop them.
    monkeypatch.setattr(deliver_outbox_message_task, "_exec_options", None)
    _drop_broker_connections()
    yield
    celery_app.conf.update(saved)
    _drop_broker_connections()


def _drop_broker_connections():
    """Forget the broker connections made with the previous broker_url (kombu keeps them in
    global pools), so the next send connects to the current one."""
    from kombu import pools

    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def test_email_caused_by_a_grant_is_delivered_by_a_real_worker_through_redis(worker, tasks_through_redis):
    # given
    customer = CustomerFactory(name="Grace Hopper", email="grace@example.com")
    # when: the grant commits; its outbox row's task goes to Redis; the worker sends it
    ledger_services.grant(customer=customer, amount=4200, reason="Welcome bonus")
    message = OutboxMessage.objects.get(customer=customer)
    deadline = time.monotonic() + TIMEOUT_S
    files = []
    while time.monotonic() < deadline:
        message.refresh_from_db()
        files = list(worker["mail_dir"].glob("*.log")) + list(worker["mail_dir"].glob("*.eml"))
        if message.status == OutboxMessage.Status.SENT and files:
            break
        if worker["process"].poll() is not None:
            break
        time.sleep(0.5)
    log = worker["log"].read_text(errors="replace")
    # then
    assert message.status == OutboxMessage.Status.SENT, f"not sent within {TIMEOUT_S}s; worker log:\n{log[-4000:]}"
    assert message.attempts == 1 and message.sent_at is not None
    assert len(files) == 1
    content = files[0].read_text()
    assert "Subject: You received $42.00 in store credits at Demo Store" in content
    assert "To: grace@example.com" in content
    assert "Content-Type: text/html" in content and "Content-Type: text/plain" in content
    assert "notifications.tasks.deliver_outbox_message_task" in log and "succeeded" in log

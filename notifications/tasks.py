"""Thin Celery tasks: they take ids, re-read rows and call a service. Every one is safe to
run twice or concurrently (see the services they call)."""

from smtplib import SMTPException

from celery import shared_task

from credits_admin.db import retry_on_lock


@shared_task(acks_late=True, autoretry_for=(SMTPException, ConnectionError, OSError), retry_backoff=True,
             retry_backoff_max=600, retry_jitter=True, max_retries=5)
def deliver_outbox_message_task(message_id: int) -> str:
    from notifications import services

    return services.deliver(message_id=message_id)  # no-op if already claimed or sent


@shared_task(acks_late=True)
def redispatch_outbox_task() -> int:
    from notifications import services

    return retry_on_lock(services.redispatch)


@shared_task(acks_late=True)
def send_expiry_reminders_task() -> int:
    from notifications import services

    return retry_on_lock(services.send_expiry_reminders)


@shared_task(acks_late=True)
def purge_edit_logs_task() -> int:
    from notifications import services

    return retry_on_lock(services.purge_edit_logs)

"""Thin Celery tasks: they take ids and call a service (which re-reads and re-checks)."""

from celery import shared_task


@shared_task(acks_late=True)
def send_payout_task(payout_id: int) -> str | None:
    """The first send of a gateway payout, enqueued when the refund commits."""
    from refunds import services

    return services.attempt_payout(payout_id=payout_id)


@shared_task(acks_late=True)
def retry_payouts_task() -> int:
    """Daily (Celery beat): retry failed gateway payouts; give up after the last retry."""
    from refunds import services

    return services.retry_due_payouts()

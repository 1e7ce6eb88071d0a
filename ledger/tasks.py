from celery import shared_task


@shared_task(acks_late=True)
def sweep_expired_credits_task() -> int:
    from ledger import services

    return services.expire_due()  # safe to run twice: a lot expires once

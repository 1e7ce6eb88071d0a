from celery import shared_task


@shared_task(acks_late=True)
def sweep_expired_credits_task() -> int:
    from ledger import services

    return services.expire_due()  # safe to run twice: a lot expires once


@shared_task(acks_late=True)
def build_export_task(export_id: int) -> None:
    from ledger import exports

    exports.build_export(export_id=export_id)  # safe to run twice: a finished export is left alone


@shared_task(acks_late=True)
def cleanup_exports_task() -> int:
    from ledger import exports

    return exports.cleanup_exports()  # idempotent: expired exports are skipped


@shared_task(acks_late=True)
def build_day_totals_task() -> int:
    from ledger import rollups

    return rollups.build_day_totals()  # safe to run twice or concurrently: one build at a time, upserts

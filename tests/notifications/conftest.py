import pytest

from notifications import services
from notifications.kinds import EMAIL_TYPES
from notifications.models import EmailSettings, EmailTemplate, OutboxMessage

from .backends import FlakyBackend


@pytest.fixture
def held_deliveries(monkeypatch):
    """Delivery tasks are recorded instead of run: the list of message ids enqueued (after
    commit). Lets a test write pending rows and then run the task itself, once or twice."""
    from notifications import tasks

    enqueued: list[int] = []
    monkeypatch.setattr(tasks.deliver_outbox_message_task, "delay", lambda message_id: enqueued.append(message_id))
    return enqueued


@pytest.fixture
def flaky_mail(settings):
    """Mail goes through FlakyBackend: `flaky_mail.reset(failures=2)` makes the next sends fail."""
    settings.EMAIL_BACKEND = "tests.notifications.backends.FlakyBackend"
    FlakyBackend.reset()
    yield FlakyBackend
    FlakyBackend.reset()


def switch(kind: str, on: bool) -> None:
    """Turn one email type on or off (creating its template row if a flush removed it)."""
    services.load_template(kind)
    t = EMAIL_TYPES[kind]
    EmailTemplate.objects.get_or_create(kind=kind, defaults={
        "subject": t.default_subject, "body_text": t.default_text, "body_html": t.default_html})
    EmailTemplate.objects.filter(kind=kind).update(enabled=on)
    services.forget_templates()  # QuerySet.update sends no post_save


def set_staff_recipients(addresses: str) -> None:
    EmailSettings.load()
    EmailSettings.objects.filter(pk=1).update(staff_recipients=addresses)


def deliver_pending() -> list[str]:
    ids = OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).order_by("pk").values_list("pk", flat=True)
    return [services.deliver(message_id=pk) for pk in list(ids)]

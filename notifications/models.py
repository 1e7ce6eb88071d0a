"""Emails: their editable templates and switches, the store's email settings, and the outbox
every email goes through (written in the transaction of the change that causes it, sent by a
Celery task after commit)."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from .kinds import EmailKind


class EmailTemplate(models.Model):
    """One per email type: its on/off switch and its subject, text and HTML templates."""

    kind = models.CharField(max_length=40, choices=EmailKind.choices, unique=True)
    enabled = models.BooleanField(default=True)
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    body_html = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.get_kind_display()


class EmailSettings(models.Model):
    """The store's email settings (one row)."""

    expiry_reminder_days = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(60)])
    # Comma-separated addresses that get staff alerts (payout failures).
    staff_recipients = models.CharField(max_length=1000, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "email settings"

    def __str__(self):
        return "Email settings"

    @classmethod
    def load(cls) -> "EmailSettings":
        obj = cls.objects.filter(pk=1).first()
        if obj is None:
            obj, _ = cls.objects.get_or_create(
                pk=1, defaults={"expiry_reminder_days": getattr(settings, "EXPIRY_REMINDER_DAYS", 3)})
        return obj

    @property
    def staff_recipient_list(self) -> list[str]:
        return [a.strip() for a in self.staff_recipients.split(",") if a.strip()]


class OutboxMessage(models.Model):
    """One email, written in the same transaction as the change that causes it.

    `cause_key` is unique, so a cause (a ledger entry, a lot's reminder, a payout...) has
    at most one email; a resend is a new row whose key ends in `:resend:{n}`. Delivery
    claims the row (pending -> sending, `claimed_at`) in its own short transaction, sends
    with no lock held, then marks it sent or failed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    kind = models.CharField(max_length=40, choices=EmailKind.choices)
    to = models.CharField(max_length=1000)  # comma-separated addresses
    subject = models.CharField(max_length=300)
    text = models.TextField()
    html = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    cause_key = models.CharField(max_length=200, unique=True)
    customer = models.ForeignKey("crm.Customer", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="outbox_messages")
    resend_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends")
    created_at = models.DateTimeField()
    # When a delivery was last enqueued or attempted: the redispatch job re-enqueues rows
    # still pending some minutes after it.
    dispatched_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("resend_outboxmessage", "Can resend an email")]
        indexes = [
            models.Index(F("created_at").desc(), F("id").desc(), name="notif_outbox_recent_idx"),
            models.Index("kind", F("created_at").desc(), F("id").desc(), name="notif_outbox_kind_idx"),
            models.Index("status", F("created_at").desc(), F("id").desc(), name="notif_outbox_status_idx"),
            models.Index(fields=["status", "dispatched_at"], condition=Q(status__in=["pending", "sending"]),
                         name="notif_outbox_waiting_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(status="sent") | Q(sent_at__isnull=False),
                                   name="notif_outbox_sent_has_sent_at"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} to {self.to} ({self.status})"

    @property
    def recipients(self) -> list[str]:
        return [a.strip() for a in self.to.split(",") if a.strip()]


class RemindedLot(models.Model):
    """A credit lot whose expiry reminder is written: the guard that reminds each lot once,
    even when the reminder job runs twice or concurrently."""

    lot = models.OneToOneField("ledger.CreditLot", primary_key=True, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="reminded_lots")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Lot {self.lot_id} reminded by message {self.message_id}"

from django.conf import settings
from django.db import models
from django.db.models import JSONField


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only.")

    def delete(self):
        raise PermissionError("Audit events are append-only.")


class AuditEvent(models.Model):
    """Who did what, when, with the before/after values. Append-only."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=100, db_index=True)  # e.g. "ledger.credit", "crm.card_revealed"
    target_type = models.CharField(max_length=100, blank=True)  # "crm.customer"
    target_id = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    before = JSONField(default=dict, blank=True)
    after = JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id", "-created_at"], name="audit_target_idx")]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")


class StoreSettings(models.Model):
    """The store itself (one row). The currency fixes what an amount's minor unit is, so it
    can change only while the ledger is empty."""

    store_name = models.CharField(max_length=120, default="")
    currency = models.CharField(max_length=3, default="")
    # The credits program switch. Off: no rule grants credits and the member panel and
    # balance API say the program is off, but unexpired credits can still be redeemed.
    credits_enabled = models.BooleanField(default=True)
    refund_note = models.CharField(max_length=500, default="Refunded with store credits.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.store_name or 'Store'} ({self.currency or 'default currency'})"

    @classmethod
    def load(cls) -> "StoreSettings":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class ApiKey(models.Model):
    """A storefront API key. Only a SHA-256 of the secret is stored; the whole key is shown
    once, when it is created."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)  # public part, to find the row
    hashed_secret = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("manage_apikey", "Can create and revoke storefront API keys")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

"""The credits program: its expiry policy, the five allocation rules, and the storefront
events the engine has applied. Money is an int of minor units of the store currency."""

from __future__ import annotations

import datetime as dt
import json

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.functional import cached_property


class ExpiryMode(models.TextChoices):
    NEVER = "never", "Permanent (never expires)"
    DAYS = "days", "Valid for a number of days"
    DATE = "date", "Valid until a fixed date"


class ProgramSettings(models.Model):
    """The program's expiry policy (one row). The on/off switch, store name, currency and
    refund note live on credits_admin.StoreSettings; this model also carries the
    permissions of the program settings pages (`rules.view_programsettings`,
    `rules.change_programsettings`)."""

    # On: one policy (below) for the credits of every allocation rule. Off: each rule
    # carries its own expiry.
    same_expiry_for_all = models.BooleanField(default=True)
    expiry_mode = models.CharField(max_length=8, choices=ExpiryMode.choices, default=ExpiryMode.NEVER)
    expiry_days = models.PositiveIntegerField(null=True, blank=True)
    expiry_date = models.DateField(null=True, blank=True)
    # Credits posted by staff (manual credit, set balance, bulk jobs).
    staff_expiry_mode = models.CharField(max_length=8, choices=ExpiryMode.choices, default=ExpiryMode.NEVER)
    staff_expiry_days = models.PositiveIntegerField(null=True, blank=True)
    staff_expiry_date = models.DateField(null=True, blank=True)
    # Refunds with store credits.
    refund_expiry_mode = models.CharField(max_length=8, choices=ExpiryMode.choices, default=ExpiryMode.NEVER)
    refund_expiry_days = models.PositiveIntegerField(null=True, blank=True)
    refund_expiry_date = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        verbose_name = "program settings"
        verbose_name_plural = "program settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="rules_programsettings_singleton"),
        ]

    def __str__(self):
        return "Credits program settings"

    @classmethod
    def current(cls) -> ProgramSettings:
        """The saved settings, or the defaults (unsaved) before anyone saved them. Never writes."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)


class Method(models.TextChoices):
    FIRST_ORDER = "first_order", "First order"
    PAID_ORDER = "paid_order", "Each paid order"
    REGISTRATION = "registration", "Registration"
    ORDER_HISTORY = "order_history", "Order history"
    SPEND_HISTORY = "spend_history", "Spend history"


METHOD_HELP = {
    Method.FIRST_ORDER: "Credits after a customer's first paid order: a fixed amount, or an amount for "
                        "every X paid for the items.",
    Method.PAID_ORDER: "Credits for every paid order (fixed, or per value), optionally only from a minimum "
                       "spend. Granted once the order is paid.",
    Method.REGISTRATION: "Credits when a customer registers.",
    Method.ORDER_HISTORY: "Up to 5 tiers by the number of paid orders; each tier is rewarded once.",
    Method.SPEND_HISTORY: "Every X spent, receive Y (the excess carries over), or up to 5 cumulative spend "
                          "tiers, each rewarded once.",
}


class Mode(models.TextChoices):
    FIXED = "fixed", "Fixed amount"
    PER_VALUE = "per_value", "Based on order value"
    EVERY = "every", "Every X spent, receive Y"
    TIERS = "tiers", "Accumulated amount tiers"


MAX_TIERS = 5


class AllocationRule(models.Model):
    """How customers earn credits by one method (at most one rule per method).

    Parameters by method:
      first_order    mode fixed (amount) | per_value (amount per per_amount of items_total)
      paid_order     as first_order, plus min_spend (items_total >= min_spend)
      registration   amount
      order_history  tiers [{"threshold": paid orders, "amount": minor units}, ...] (1-5)
      spend_history  mode every (amount per per_amount spent, excess carried over)
                     | tiers [{"threshold": minor units spent, "amount": ...}, ...] (1-5)
    `version` grows by one per edit; every grant records the parameters as they were."""

    method = models.CharField(max_length=20, choices=Method.choices)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.FIXED)
    amount = models.BigIntegerField(null=True, blank=True)
    per_amount = models.BigIntegerField(null=True, blank=True)
    min_spend = models.BigIntegerField(default=0)
    tiers = models.JSONField(default=list, blank=True)
    # Used only while ProgramSettings.same_expiry_for_all is off.
    expiry_mode = models.CharField(max_length=8, choices=ExpiryMode.choices, default=ExpiryMode.NEVER)
    expiry_days = models.PositiveIntegerField(null=True, blank=True)
    expiry_date = models.DateField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["method"], name="rules_one_rule_per_method",
                                    violation_error_message="There is already a rule for this method."),
            models.CheckConstraint(condition=Q(amount__isnull=True) | Q(amount__gt=0),
                                   name="rules_rule_amount_gt_0"),
            models.CheckConstraint(condition=Q(per_amount__isnull=True) | Q(per_amount__gt=0),
                                   name="rules_rule_per_amount_gt_0"),
            models.CheckConstraint(condition=Q(min_spend__gte=0), name="rules_rule_min_spend_gte_0"),
        ]

    def __str__(self):
        return f"{self.get_method_display()} rule"

    def parameters(self) -> dict:
        """The rule as it is now: what a grant records in its details."""
        params = {"method": self.method, "mode": self.mode, "version": self.version}
        if self.method == Method.REGISTRATION:
            params["amount"] = self.amount
        elif self.method in (Method.FIRST_ORDER, Method.PAID_ORDER):
            params["amount"] = self.amount
            if self.mode == Mode.PER_VALUE:
                params["per_amount"] = self.per_amount
            if self.method == Method.PAID_ORDER:
                params["min_spend"] = self.min_spend
        elif self.method == Method.ORDER_HISTORY or self.mode == Mode.TIERS:
            params["tiers"] = [dict(t) for t in self.tiers]
        else:  # spend_history, every X receive Y
            params["amount"] = self.amount
            params["per_amount"] = self.per_amount
        return params


class StorefrontEvent(models.Model):
    """An event from the storefront that the engine accepted, with the answer it gave.
    Written in the same transaction as everything the event caused; a rejected event
    (4xx) writes nothing and may be sent again with the same id."""

    class Status(models.TextChoices):
        APPLIED = "applied", "Applied"
        UNCHANGED = "unchanged", "Nothing to change"
        STALE = "stale", "Older than what is known"

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=64, db_index=True)
    occurred_at = models.DateTimeField()
    payload = models.JSONField()
    body_hash = models.CharField(max_length=64)
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.APPLIED)
    status_code = models.PositiveSmallIntegerField(default=200)
    # The answer exactly as sent (text, not jsonb: a replay must return the same bytes).
    response_text = models.TextField(default="{}")
    customer = models.ForeignKey("crm.Customer", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    order = models.ForeignKey("crm.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    granted = models.BigIntegerField(default=0)
    reclaimed = models.BigIntegerField(default=0)
    uncollected = models.BigIntegerField(default=0)
    program_enabled = models.BooleanField(default=True)

    class Meta:
        indexes = [
            models.Index(F("received_at").desc(), F("id").desc(), name="rules_event_recent_idx"),
            models.Index("customer", "type", F("occurred_at").desc(), name="rules_event_customer_idx"),
            models.Index("order", F("received_at").desc(), name="rules_event_order_idx"),
        ]

    def __str__(self):
        return f"{self.type} {self.event_id}"

    @property
    def data(self) -> dict:
        return self.payload.get("data") or {}

    @cached_property
    def response(self) -> dict:
        return json.loads(self.response_text or "{}")


class Reclaim(models.Model):
    """One step of the pro-rata reclaim of a lot an order earned: after cumulative refunds
    `refunded` of the order's `total`, `target` = floor(lot.amount * refunded / total) is
    what should have been taken back in all; this step claimed `claimed` (target minus what
    earlier steps claimed), of which `collected` was taken (by `entry`) and `uncollected`
    could not be, because the balance did not allow it."""

    event = models.ForeignKey(StorefrontEvent, on_delete=models.PROTECT, related_name="reclaims")
    order = models.ForeignKey("crm.Order", on_delete=models.PROTECT, related_name="+")
    lot = models.ForeignKey("ledger.CreditLot", on_delete=models.PROTECT, related_name="+")
    entry = models.OneToOneField("ledger.LedgerEntry", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    refunded = models.BigIntegerField()
    total = models.BigIntegerField()
    target = models.BigIntegerField()
    claimed = models.BigIntegerField()
    collected = models.BigIntegerField()
    uncollected = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "lot"], name="rules_reclaim_once_per_event_lot"),
            models.CheckConstraint(condition=Q(claimed__gt=0), name="rules_reclaim_claimed_gt_0"),
            models.CheckConstraint(condition=Q(collected__gte=0) & Q(uncollected__gte=0)
                                   & Q(claimed=F("collected") + F("uncollected")),
                                   name="rules_reclaim_parts_add_up"),
        ]

    def __str__(self):
        return f"Reclaim of {self.claimed} from lot {self.lot_id} (order {self.order_id})"


def end_of_day(day: dt.date) -> dt.datetime:
    """'Valid until 2026-12-31' means usable through that whole day in the store's time zone."""
    tz = timezone.get_current_timezone()
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min), tz)

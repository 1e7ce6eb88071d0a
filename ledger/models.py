"""The credits ledger. Only ledger/services.py writes these tables.

Money is an int of minor units in BigIntegerFields. Entries and lot consumptions are
append-only: the ORM refuses to update or delete them, and on PostgreSQL a trigger does
too (migration 0002)."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class EntryKind(models.TextChoices):
    GRANT = "grant", "Grant"
    REDEEM = "redeem", "Redeem"
    EXPIRE = "expire", "Expire"
    CLAWBACK = "clawback", "Clawback"
    DEDUCT = "deduct", "Deduct"
    CASH_REFUND = "cash_refund", "Cash refund"
    FORFEIT = "forfeit", "Forfeit"
    REVERSAL = "reversal", "Reversal"


# Kinds a caller may pass to services.debit (expire is posted by the ledger itself).
DEBIT_KINDS = frozenset({EntryKind.REDEEM, EntryKind.CLAWBACK, EntryKind.DEDUCT, EntryKind.CASH_REFUND,
                         EntryKind.FORFEIT})
NEGATIVE_KINDS = DEBIT_KINDS | {EntryKind.EXPIRE}


class EntrySource(models.TextChoices):
    RULE = "rule", "Rule"
    STAFF = "staff", "Staff"
    BULK = "bulk", "Bulk"
    API = "api", "API"
    SYSTEM = "system", "System"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError(f"{self.model._meta.label} rows are append-only; post a reversal instead.")

    def delete(self):
        raise PermissionError(f"{self.model._meta.label} rows are append-only; post a reversal instead.")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError(f"{self._meta.label} rows are append-only; post a reversal instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"{self._meta.label} rows are append-only; post a reversal instead.")


class CreditAccount(models.Model):
    """One per customer (its primary key is the customer's). `balance` is a cache of the
    sum of its entries; `version` grows by one per entry."""

    customer = models.OneToOneField("crm.Customer", primary_key=True, on_delete=models.PROTECT,
                                    related_name="credit_account")
    balance = models.BigIntegerField(default=0)
    version = models.BigIntegerField(default=0)
    # The earliest expiry among lots with a remainder, or earlier (never later): lets a
    # posting skip the lazy-expiry query when nothing can be overdue.
    next_expiry_at = models.DateTimeField(null=True, blank=True)
    # created_at of the account's latest entry (None: no entry yet). Entries are posted at
    # `now`, so the customers with an entry in a window that runs to now are the accounts
    # with last_entry_at >= its start: the history summary counts them without a DISTINCT.
    last_entry_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="ledger_account_balance_gte_0"),
            models.CheckConstraint(condition=Q(version__gte=0), name="ledger_account_version_gte_0"),
        ]

    def __str__(self):
        return f"Account of customer {self.customer_id}: {self.balance}"


class LedgerEntry(AppendOnlyModel):
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    created_at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    source = models.CharField(max_length=16, choices=EntrySource.choices)
    reason = models.CharField(max_length=200)
    comment = models.TextField(blank=True, max_length=2000)
    order = models.ForeignKey("crm.Order", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="ledger_entries")
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="reversed_by")
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    # sha256 of the call's arguments: a replayed key with other arguments is a conflict.
    fingerprint = models.CharField(max_length=64, blank=True)
    batch = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    # For clawbacks: what could not be taken back because the balance did not allow it.
    uncollected = models.BigIntegerField(default=0)
    # What caused the entry, as it was (e.g. the rule and its parameters).
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        permissions = [("export_ledgerentry", "Can export the credits history")]
        indexes = [
            models.Index(F("created_at").desc(), F("id").desc(), name="ledger_entry_recent_idx"),
            models.Index("account", F("created_at").desc(), F("id").desc(), name="ledger_entry_account_idx"),
            models.Index("kind", F("created_at").desc(), F("id").desc(), name="ledger_entry_kind_idx"),
            # the history sorted by amount (keyset pages on (amount, id), either way), alone and
            # with a kind: without the second, "kind X by amount" walks every amount for X's rows
            models.Index(F("amount").desc(), F("id").desc(), name="ledger_entry_amount_idx"),
            models.Index("kind", F("amount").desc(), F("id").desc(), name="ledger_entry_kind_amount_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_amount_not_0"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_entry_balance_after_gte_0"),
            models.CheckConstraint(condition=Q(uncollected__gte=0), name="ledger_entry_uncollected_gte_0"),
            models.CheckConstraint(
                condition=(Q(kind=EntryKind.GRANT, amount__gt=0)
                           | Q(kind__in=sorted(NEGATIVE_KINDS), amount__lt=0)
                           | Q(kind=EntryKind.REVERSAL, reverses__isnull=False)),
                name="ledger_entry_sign_matches_kind",
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.kind} {self.amount} on account {self.account_id}"

    @property
    def customer_id(self):
        return self.account_id

    @property
    def is_credit(self) -> bool:
        return self.amount > 0


class CreditLot(models.Model):
    """What a grant put in. `remaining` goes down as debits consume it first-expiring-first;
    `expires_at` is fixed when granted (null: never)."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="lots")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="lot")
    amount = models.BigIntegerField()
    remaining = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["account", "expires_at", "id"], condition=Q(remaining__gt=0),
                         name="ledger_lot_open_fefo_idx"),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0, expires_at__isnull=False),
                         name="ledger_lot_due_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_lot_amount_gt_0"),
            models.CheckConstraint(condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")),
                                   name="ledger_lot_remaining_within_amount"),
        ]

    def __str__(self):
        return f"Lot {self.pk}: {self.remaining}/{self.amount} (expires {self.expires_at or 'never'})"


class LotConsumption(AppendOnlyModel):
    """How much an entry took from (amount > 0) or restored to (amount < 0) a lot."""

    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="consumptions")
    lot = models.ForeignKey(CreditLot, on_delete=models.PROTECT, related_name="consumptions")
    amount = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_consumption_amount_not_0"),
        ]

    def __str__(self):
        return f"Entry {self.entry_id} took {self.amount} from lot {self.lot_id}"


class Export(models.Model):
    """A CSV export of the credits history too large to download at once: built by a
    Celery job, downloadable from the Exports page, deleted after `expires_at`."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # The search (a query string of the history filter) and the chosen columns/options.
    params = models.JSONField(default=dict)
    description = models.CharField(max_length=300, blank=True)
    total_rows = models.BigIntegerField(null=True, blank=True)
    rows_written = models.BigIntegerField(default=0)
    file = models.CharField(max_length=300, blank=True)  # relative to MEDIA_ROOT
    size_bytes = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Export {self.pk} ({self.status})"

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(99, int(self.rows_written * 100 / self.total_rows))


class LedgerDayTotal(models.Model):
    """A cache of the history summary's totals for one closed day of the current time zone
    (ledger.rollups): the entries with `starts_at <= created_at < ends_at` and
    `id <= built_through_id`. Never part of the ledger: rows can be deleted or rebuilt at
    any time. `time_zone` says whose day it is: a build drops the rows of any other zone
    (TIME_ZONE changed)."""

    time_zone = models.CharField(max_length=64)  # the TIME_ZONE whose day this is
    starts_at = models.DateTimeField(unique=True)
    ends_at = models.DateTimeField()
    rewarded = models.BigIntegerField(default=0)  # sum of the positive amounts
    deducted = models.BigIntegerField(default=0)  # minus the sum of the negative amounts (>= 0)
    entries = models.BigIntegerField(default=0)
    # The highest entry id when built: an entry with a higher id dated inside the day (a
    # backdated or bulk-loaded one) makes the row stale.
    built_through_id = models.BigIntegerField(default=0)
    built_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="ledger_daytotal_ends_after_start"),
        ]

    def __str__(self):
        return f"Day from {self.starts_at}: +{self.rewarded} -{self.deducted} ({self.entries} entries)"

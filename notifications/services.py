"""Every write of the notifications app: outbox rows (queued inside the transaction of the
change that causes them), their delivery, the scheduled jobs, template and settings edits,
and the account-deletion steps of the storefront's deletion events.

Delivery guarantees (the outbox row's status is the guard, not the broker):

- One email per cause: `cause_key` is unique (`credits_received:{entry}`,
  `credits_expiring:{lot}`, ...); a second write for the same cause writes nothing.
- The row is written in the caller's transaction and its delivery task is enqueued only
  after that transaction commits (a robust `on_commit`: a broker outage never turns a
  committed change into an error; the redispatch job enqueues what was not).
- `deliver` claims the row (pending -> sending, with `claimed_at`) in a short transaction
  of its own (`select_for_update(skip_locked=True)` plus the status check), sends with no
  lock and no transaction open, then marks it sent. A second run of the task, concurrent or
  later, finds it claimed or sent and does nothing.
- A worker that dies after the claim leaves the row `sending`; after
  OUTBOX_SENDING_TIMEOUT_MINUTES it can be claimed again (the redispatch job enqueues it).
  So delivery is at-least-once in exactly one edge: a crash AFTER the SMTP server accepted
  the message and BEFORE the `sent` status was written sends it twice. That is the accepted
  trade-off (the alternative, marking sent before sending, loses emails). Both copies carry
  the same Message-ID, so mail clients can fold them.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from itertools import groupby
from smtplib import SMTPException

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.formats import date_format

from credits_admin import money
from credits_admin.audit import record_change
from credits_admin.store import store_facts
from crm.models import Customer, CustomerEditLog, Order
from ledger import clock
from ledger import selectors as ledger_selectors
from ledger.models import CreditAccount, CreditLot, EntryKind, LedgerEntry

from . import sandbox
from .exceptions import NotResendable
from .kinds import EMAIL_TYPES, EmailKind, email_type
from .models import EmailSettings, EmailTemplate, OutboxMessage, RemindedLot

log = logging.getLogger(__name__)

# What the delivery task retries (with backoff): the mail server or the network said no.
RETRYABLE_ERRORS = (SMTPException, OSError)
Status = OutboxMessage.Status


# --------------------------------------------------------------------------- values

def store_name() -> str:
    """The store's name as every page shows it (read at most every 30 s per process)."""
    return store_facts().name


def format_date(value) -> str:
    """A date the way customers read it ('June 30, 2026'), in the store's time zone."""
    if value is None:
        return ""
    return date_format(timezone.localtime(value), "DATE_FORMAT")


def customer_values(customer: Customer, *, balance: int | None, store: str | None = None) -> dict[str, str]:
    """The placeholders every customer email has, as plain strings."""
    return {
        "customer_name": customer.name,
        "store_name": store if store is not None else store_name(),
        "card_last4": customer.card_last4,
        "member_id": customer.member_id,
        "balance": money.format_amount(balance or 0),
    }


def can_email(customer: Customer | None) -> bool:
    return bool(customer is not None and customer.email and customer.status != Customer.Status.DELETED)


# --------------------------------------------------------------------------- templates

def load_template(kind: str) -> EmailTemplate:
    """The stored template of `kind`, or an unsaved one with the defaults."""
    template = EmailTemplate.objects.filter(kind=kind).first()
    if template is None:
        t = email_type(kind)
        template = EmailTemplate(kind=kind, enabled=True, subject=t.default_subject, body_text=t.default_text,
                                 body_html=t.default_html)
    return template


# The emails a posting queues (credits received / redeemed) need their templates inside
# every grant and redeem; they are read at most every TEMPLATE_CACHE_SECONDS per process.
# A save in this process forgets them at once (receivers below, on the model's signals);
# other processes see an edit or a switch within those seconds.
TEMPLATE_CACHE_SECONDS = 10
_template_cache: dict[str, tuple[float, EmailTemplate]] = {}


def cached_templates(kinds) -> dict[str, EmailTemplate]:
    """The templates of `kinds` (stored or default), read at most every few seconds. Shared
    instances: read them, never change them."""
    now = time.monotonic()
    found = {}
    stale = []
    for kind in kinds:
        hit = _template_cache.get(kind)
        if hit is not None and now - hit[0] < TEMPLATE_CACHE_SECONDS:
            found[kind] = hit[1]
        else:
            stale.append(kind)
    if stale:
        loaded = {t.kind: t for t in EmailTemplate.objects.filter(kind__in=stale)}
        for kind in stale:
            template = loaded.get(kind) or load_template(kind)
            _template_cache[kind] = (now, template)
            found[kind] = template
    return found


def forget_templates() -> None:
    """Drop the cached templates."""
    _template_cache.clear()


def forget_templates_on_change(**kwargs) -> None:
    """EmailTemplate's post_save and post_delete: drop the cached templates now, and again
    when the change commits (a read in between may have cached the old row)."""
    _template_cache.clear()
    transaction.on_commit(_template_cache.clear)


def render_parts(*, kind: str, subject: str, body_text: str, body_html: str, values: dict) -> dict[str, str]:
    """Subject, text and HTML rendered in the sandbox; TemplateProblem for a bad template."""
    placeholders = email_type(kind).placeholders
    shown = {name: values.get(name, "") for name in placeholders}
    return {
        "subject": sandbox.render_subject(subject, shown, placeholders=placeholders),
        "text": sandbox.render(body_text, shown, placeholders=placeholders, html=False),
        "html": sandbox.render(body_html, shown, placeholders=placeholders, html=True),
    }


def render_email(template: EmailTemplate, values: dict) -> dict[str, str]:
    """Render a stored template; if it cannot be (it was validated when saved, so only a
    template from before a placeholder was renamed could), fall back to the defaults rather
    than fail the change that caused the email."""
    try:
        return render_parts(kind=template.kind, subject=template.subject, body_text=template.body_text,
                            body_html=template.body_html, values=values)
    except sandbox.TemplateProblem:
        log.exception("email template %s cannot be rendered; using the default", template.kind)
        t = email_type(template.kind)
        return render_parts(kind=template.kind, subject=t.default_subject, body_text=t.default_text,
                            body_html=t.default_html, values=values)


# --------------------------------------------------------------------------- the outbox

def _enqueue_after_commit(message_id: int) -> None:
    """`delay_on_commit`, made robust: an error enqueueing (the broker is down) is logged
    and never reaches the caller, whose change has committed; the redispatch job enqueues
    the row later."""
    from .tasks import deliver_outbox_message_task

    def enqueue_delivery():
        deliver_outbox_message_task.delay(message_id)

    transaction.on_commit(enqueue_delivery, robust=True)


def _create_message(*, kind: str, to: str, parts: dict, cause_key: str, customer=None,
                    resend_of=None) -> OutboxMessage | None:
    """Insert the row; None when its cause already has one. One statement (INSERT ... ON
    CONFLICT (cause_key) DO NOTHING RETURNING id), no savepoint: this runs inside every
    posting that emails."""
    now = timezone.now()
    message = OutboxMessage(kind=kind, to=to, subject=parts["subject"], text=parts["text"], html=parts["html"],
                            cause_key=cause_key[:200], customer=customer, resend_of=resend_of, created_at=now,
                            dispatched_at=now)
    message.pk = _insert_unless_caused(message)
    if message.pk is None:
        return None
    message._state.adding = False
    message._state.db = "default"
    _enqueue_after_commit(message.pk)
    return message


def _insert_unless_caused(message: OutboxMessage) -> int | None:
    """The new row's id, or None when a row with its cause_key exists (PostgreSQL and
    SQLite 3.35+ both have ON CONFLICT ... DO NOTHING RETURNING)."""
    quote = connection.ops.quote_name
    fields = [f for f in OutboxMessage._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(f.column) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(message, add=True), connection) for f in fields]
    sql = (f"INSERT INTO {quote(OutboxMessage._meta.db_table)} ({columns}) "
           f"VALUES ({', '.join(['%s'] * len(fields))}) "
           f"ON CONFLICT ({quote('cause_key')}) DO NOTHING RETURNING {quote('id')}")
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    return row[0] if row else None


def queue_email(*, kind: str, cause_key: str, values: dict, customer: Customer | None = None,
                to: str | None = None, template: EmailTemplate | None = None) -> OutboxMessage | None:
    """Write one outbox row in the current transaction, unless the email type is switched
    off, there is no recipient, or the cause already has its email. Never sends."""
    template = template or load_template(kind)
    if not template.enabled:
        return None
    if to is None:
        if not can_email(customer):
            return None
        to = customer.email
    if not to:
        return None
    return _create_message(kind=kind, to=to, parts=render_email(template, values), cause_key=cause_key,
                           customer=customer)


# --------------------------------------------------------------------------- ledger events

def queue_ledger_emails(*, entries: list[LedgerEntry]) -> int:
    """Credits received (grants) and redeemed (redeem entries) emails for entries just posted."""
    wanted = [e for e in entries if e.kind in (EntryKind.GRANT, EntryKind.REDEEM)]
    if not wanted:
        return 0
    kinds = {EntryKind.GRANT: EmailKind.CREDITS_RECEIVED, EntryKind.REDEEM: EmailKind.CREDITS_REDEEMED}
    needed = {kinds[e.kind] for e in wanted}
    templates = cached_templates(needed)
    wanted = [e for e in wanted if templates[kinds[e.kind]].enabled]
    if not wanted:
        return 0
    store = store_name()
    # A posting's entries carry their account and its customer; the sweep's and others may not.
    customers = {e.account_id: e.account.customer for e in wanted
                 if _cached(LedgerEntry.account, e) and _cached(CreditAccount.customer, e.account)}
    missing = {e.account_id for e in wanted} - set(customers)
    if missing:
        customers.update(Customer.objects.in_bulk(missing))
    # A posting's entries carry their order and (a grant) its lot already: ask only for the rest.
    orders = {e.order_id: e.order.external_id for e in wanted if e.order_id and _cached(LedgerEntry.order, e)}
    missing = {e.order_id for e in wanted if e.order_id} - set(orders)
    if missing:
        orders.update(Order.objects.filter(pk__in=missing).values_list("pk", "external_id"))
    grants = [e for e in wanted if e.kind == EntryKind.GRANT]
    expiries = {e.pk: e.lot.expires_at for e in grants if _cached(LedgerEntry.lot, e)}
    missing = [e.pk for e in grants if e.pk not in expiries]
    if missing:
        expiries.update(CreditLot.objects.filter(entry_id__in=missing).values_list("entry_id", "expires_at"))
    queued = 0
    for entry in wanted:
        customer = customers.get(entry.account_id)
        if not can_email(customer):
            continue
        kind = kinds[entry.kind]
        values = customer_values(customer, balance=entry.balance_after, store=store) | {
            "amount": money.format_amount(abs(entry.amount)),
            "reason": entry.reason,
            "order_id": orders.get(entry.order_id, ""),
            "expiry_date": format_date(expiries.get(entry.pk)),
        }
        if queue_email(kind=kind, cause_key=f"{kind}:{entry.pk}", values=values, customer=customer,
                       template=templates[kind]):
            queued += 1
    return queued


def _cached(descriptor, instance) -> bool:
    """Whether a relation (LedgerEntry.order, LedgerEntry.lot) is loaded on the instance."""
    relation = getattr(descriptor, "field", None) or descriptor.related
    return relation.is_cached(instance)


# --------------------------------------------------------------------------- refund events

def queue_refund_with_store_credits_email(*, order, entry: LedgerEntry, notify: bool, note: str) -> None:
    """The refund email replaces the "credits received" email of the refund's grant: that one
    is removed (it is still pending and unsent: both are in this same transaction). With
    notify=False the customer gets neither."""
    OutboxMessage.objects.filter(cause_key=f"{EmailKind.CREDITS_RECEIVED}:{entry.pk}",
                                 status=Status.PENDING, attempts=0).delete()
    if not notify:
        return
    customer = Customer.objects.get(pk=entry.account_id)
    expires_at = CreditLot.objects.filter(entry_id=entry.pk).values_list("expires_at", flat=True).first()
    values = customer_values(customer, balance=entry.balance_after) | {
        "amount": money.format_amount(entry.amount),
        "order_id": order.external_id,
        "note": note,
        "expiry_date": format_date(expires_at),
    }
    queue_email(kind=EmailKind.REFUND_WITH_STORE_CREDITS, cause_key=f"{EmailKind.REFUND_WITH_STORE_CREDITS}:"
                f"{entry.pk}", values=values, customer=customer)


def _status_label(request, status: str) -> str:
    if not status:
        return ""
    try:
        return str(type(request).Status(status).label)
    except (AttributeError, ValueError):
        return str(status).replace("_", " ").capitalize()


def queue_cash_refund_status_email(*, request, old_status: str, new_status: str, reason: str = "") -> None:
    """One email per transition of a cash-refund request. The refunds service holds the
    request's row lock, so counting its earlier emails gives each transition its own key."""
    if old_status == new_status:
        return
    prefix = f"{EmailKind.CASH_REFUND_STATUS_CHANGED}:{request.pk}:"
    seq = OutboxMessage.objects.filter(cause_key__startswith=prefix).exclude(cause_key__contains=":resend:").count()
    customer = request.customer
    values = customer_values(customer, balance=ledger_selectors.available_balance(customer=customer)) | {
        "amount": money.format_amount(request.amount),
        "status": _status_label(request, new_status),
        "old_status": _status_label(request, old_status),
        "reason": reason or "",
        "request_id": str(request.pk),
    }
    queue_email(kind=EmailKind.CASH_REFUND_STATUS_CHANGED, cause_key=f"{prefix}{seq + 1}", values=values,
                customer=customer)


def queue_payout_failure_alert(*, request, payout, attempts: int) -> OutboxMessage | None:
    """The staff alert, to the addresses set on the Emails page (none set: nothing to send)."""
    recipients = EmailSettings.load().staff_recipient_list
    if not recipients:
        log.warning("payout %s failed but no staff alert address is set on the Emails page", payout.pk)
        return None
    customer = request.customer
    values = {
        "customer_name": customer.name,
        "member_id": customer.member_id,
        "store_name": store_name(),
        "amount": money.format_amount(payout.amount),
        "request_id": str(request.pk),
        "attempts": str(attempts),
        "reason": getattr(payout, "last_error", "") or "",
    }
    return queue_email(kind=EmailKind.PAYOUT_FAILURE_ALERT, cause_key=f"{EmailKind.PAYOUT_FAILURE_ALERT}:{payout.pk}",
                       values=values, to=", ".join(recipients))


# --------------------------------------------------------------------------- delivery

def _skip_locked(qs):
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True)
    return qs.select_for_update()


def _claim(message_id: int, now) -> OutboxMessage | None:
    stale = now - timedelta(minutes=settings.OUTBOX_SENDING_TIMEOUT_MINUTES)
    with transaction.atomic():
        message = _skip_locked(
            OutboxMessage.objects.filter(pk=message_id)
            .filter(Q(status=Status.PENDING) | Q(status=Status.SENDING, claimed_at__lt=stale))
        ).first()
        if message is None:
            return None
        message.status = Status.SENDING
        message.claimed_at = now
        message.dispatched_at = now
        message.attempts += 1
        message.save(update_fields=["status", "claimed_at", "dispatched_at", "attempts"])
    return message


def _message_id_header(message: OutboxMessage) -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "localhost"
    return f"<outbox.{message.pk}@{domain}>"


def build_email(message: OutboxMessage) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=message.subject, body=message.text, from_email=settings.DEFAULT_FROM_EMAIL,
        to=message.recipients,
        headers={"Message-ID": _message_id_header(message), "X-Credits-Email": message.kind},
    )
    email.attach_alternative(message.html, "text/html")
    return email


def deliver(*, message_id: int) -> str:
    """Send one outbox row once: 'sent', 'skipped' (already claimed/sent/cancelled), or
    'failed'. A retryable error (mail server, network) is re-raised after it is recorded,
    so the Celery task retries with backoff; after OUTBOX_MAX_ATTEMPTS the row is failed."""
    if connection.in_atomic_block:
        raise RuntimeError("deliver() sends email: call it outside any transaction (it is a task).")
    now = timezone.now()
    message = _claim(message_id, now)
    if message is None:
        return "skipped"
    mine = OutboxMessage.objects.filter(pk=message.pk, status=Status.SENDING, claimed_at=message.claimed_at)
    try:
        build_email(message).send(fail_silently=False)
    except Exception as exc:
        retryable = isinstance(exc, RETRYABLE_ERRORS) and message.attempts < settings.OUTBOX_MAX_ATTEMPTS
        mine.update(status=Status.PENDING if retryable else Status.FAILED,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000], dispatched_at=timezone.now())
        log.warning("email %s (%s) attempt %s failed: %s", message.pk, message.cause_key, message.attempts, exc)
        if retryable:
            raise
        return "failed"
    OutboxMessage.objects.filter(pk=message.pk, status=Status.SENDING).update(
        status=Status.SENT, sent_at=timezone.now(), last_error="")
    return "sent"


def redispatch(*, now=None, limit: int = 1000) -> int:
    """Enqueue again the rows a lost task left behind: pending for more than
    OUTBOX_REDISPATCH_MINUTES since they were last enqueued or tried, and sending for more
    than OUTBOX_SENDING_TIMEOUT_MINUTES (their worker died). Concurrent runs take disjoint
    rows (skip_locked) and a row enqueued twice is still sent once (deliver's claim)."""
    now = now or timezone.now()
    pending_before = now - timedelta(minutes=settings.OUTBOX_REDISPATCH_MINUTES)
    stale_before = now - timedelta(minutes=settings.OUTBOX_SENDING_TIMEOUT_MINUTES)
    with transaction.atomic():
        ids = list(_skip_locked(
            OutboxMessage.objects.filter(Q(status=Status.PENDING, dispatched_at__lt=pending_before)
                                         | Q(status=Status.SENDING, claimed_at__lt=stale_before))
            .order_by("dispatched_at", "id")
        ).values_list("pk", flat=True)[:limit])
        if ids:
            OutboxMessage.objects.filter(pk__in=ids).update(dispatched_at=now)
        for message_id in ids:
            _enqueue_after_commit(message_id)
    return len(ids)


@transaction.atomic
def resend(*, message: OutboxMessage, actor) -> OutboxMessage:
    """A new row with the same content; its key is the original cause's plus `:resend:{n}`."""
    root = message.resend_of or message
    root = OutboxMessage.objects.select_for_update().get(pk=root.pk)  # serialises resends of one email
    message = OutboxMessage.objects.get(pk=message.pk)
    if message.status == Status.CANCELLED or not message.recipients:
        raise NotResendable("This email was cancelled (its customer was deleted) and cannot be sent again.")
    if message.status in (Status.PENDING, Status.SENDING):
        raise NotResendable("This email is still waiting to be sent; it can be resent once it was sent or failed.")
    n = OutboxMessage.objects.filter(resend_of=root).count() + 1
    copy = _create_message(kind=message.kind, to=message.to,
                           parts={"subject": message.subject, "text": message.text, "html": message.html},
                           cause_key=f"{root.cause_key}:resend:{n}", customer=message.customer, resend_of=root)
    if copy is None:  # unreachable while the root is locked; say so rather than pretend
        raise NotResendable("This email was just resent; refresh the log.")
    record_change(actor=actor, action="notifications.email_resent", target=copy,
                  summary=f"Resent “{message.subject}” to {message.to}"[:500],
                  after={"original": message.pk, "resend": copy.pk, "cause_key": copy.cause_key})
    return copy


# --------------------------------------------------------------------------- scheduled jobs

def send_expiry_reminders(*, now=None) -> int:
    """Remind customers of credits expiring within the next N days (the Emails page's
    setting), one email per customer per run and each lot once ever: a lot is reminded when
    its RemindedLot row commits with the email. A second or concurrent run finds the lots
    reminded (or collides on their rows and rolls that customer back) and writes nothing.
    Returns the number of emails queued."""
    template = load_template(EmailKind.CREDITS_EXPIRING)
    if not template.enabled:
        return 0
    now = now or clock.now()
    horizon = now + timedelta(days=EmailSettings.load().expiry_reminder_days)
    due = (CreditLot.objects.filter(remaining__gt=0, expires_at__gt=now, expires_at__lte=horizon)
           .filter(~Exists(RemindedLot.objects.filter(lot_id=OuterRef("pk"))))
           .order_by("account_id", "expires_at", "id")
           .values_list("id", "account_id", "remaining", "expires_at"))
    queued = 0
    for account_id, rows in groupby(due.iterator(chunk_size=2000), key=lambda row: row[1]):
        lots = list(rows)
        if _remind(account_id=account_id, lots=lots, template=template):
            queued += 1
    return queued


def _remind(*, account_id: int, lots: list[tuple], template: EmailTemplate) -> bool:
    customer = Customer.objects.filter(pk=account_id).first()
    if not can_email(customer):
        return False
    values = customer_values(customer, balance=ledger_selectors.available_balance(customer=customer)) | {
        "amount": money.format_amount(sum(row[2] for row in lots)),
        "expiry_date": format_date(min(row[3] for row in lots)),
    }
    first_lot = min(row[0] for row in lots)
    try:
        with transaction.atomic():
            message = queue_email(kind=EmailKind.CREDITS_EXPIRING, cause_key=f"{EmailKind.CREDITS_EXPIRING}:{first_lot}",
                                  values=values, customer=customer, template=template)
            if message is None:
                return False
            RemindedLot.objects.bulk_create([RemindedLot(lot_id=row[0], message=message) for row in lots])
    except IntegrityError:  # a concurrent run reminded some of these lots first
        return False
    return True


def purge_edit_logs(*, now=None, batch_size: int = 5000) -> int:
    """Delete customer edit logs older than EDIT_LOG_RETENTION_DAYS, a batch per statement.
    Deleting what another run already deleted deletes nothing, so it is safe twice."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.EDIT_LOG_RETENTION_DAYS)
    total = 0
    while True:
        ids = list(CustomerEditLog.objects.filter(changed_at__lt=cutoff).order_by("pk")
                   .values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        deleted, _ = CustomerEditLog.objects.filter(pk__in=ids).delete()
        total += deleted


# --------------------------------------------------------------------------- staff edits

@transaction.atomic
def save_template(*, kind: str, subject: str, body_text: str, body_html: str, actor) -> EmailTemplate:
    """Store a template (validated by the form; checked again here so nothing unusable is
    ever stored)."""
    render_parts(kind=kind, subject=subject, body_text=body_text, body_html=body_html,
                 values=email_type(kind).sample)
    template = _locked_template(kind)
    before = {"subject": template.subject, "body_text": template.body_text, "body_html": template.body_html}
    template.subject, template.body_text, template.body_html = subject, body_text, body_html
    template.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    template.save()
    after = {"subject": subject, "body_text": body_text, "body_html": body_html}
    changed = {k for k in after if after[k] != before[k]}
    record_change(actor=actor, action="notifications.template_changed", target=template,
                  summary=f"Email template “{template.get_kind_display()}” edited",
                  before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
    return template


@transaction.atomic
def reset_template(*, kind: str, actor) -> EmailTemplate:
    t = email_type(kind)
    return save_template(kind=kind, subject=t.default_subject, body_text=t.default_text, body_html=t.default_html,
                         actor=actor)


def _locked_template(kind: str) -> EmailTemplate:
    t = email_type(kind)
    EmailTemplate.objects.get_or_create(kind=kind, defaults={
        "subject": t.default_subject, "body_text": t.default_text, "body_html": t.default_html})
    return EmailTemplate.objects.select_for_update().get(kind=kind)


@transaction.atomic
def save_email_settings(*, enabled: dict[str, bool], expiry_reminder_days: int, staff_recipients: list[str],
                        actor) -> EmailSettings:
    """The Emails page: which emails are on, the reminder lead time and the staff addresses."""
    before, after = {}, {}
    for kind in EMAIL_TYPES:
        template = _locked_template(kind)
        if template.enabled != bool(enabled.get(kind)):
            before[f"{kind}.enabled"] = template.enabled
            after[f"{kind}.enabled"] = bool(enabled.get(kind))
            template.enabled = bool(enabled.get(kind))
            template.updated_by = actor if getattr(actor, "is_authenticated", False) else None
            template.save(update_fields=["enabled", "updated_at", "updated_by"])
    EmailSettings.load()
    config = EmailSettings.objects.select_for_update().get(pk=1)
    recipients = ", ".join(staff_recipients)
    if config.expiry_reminder_days != expiry_reminder_days:
        before["expiry_reminder_days"], after["expiry_reminder_days"] = config.expiry_reminder_days, expiry_reminder_days
    if config.staff_recipients != recipients:
        before["staff_recipients"], after["staff_recipients"] = config.staff_recipients, recipients
    config.expiry_reminder_days = expiry_reminder_days
    config.staff_recipients = recipients
    config.save()
    if after:
        record_change(actor=actor, action="notifications.settings_changed", target=config,
                      summary="Email settings changed: " + ", ".join(sorted(after)), before=before, after=after)
    return config


# --------------------------------------------------------------------------- account deletion

def _set_status(customer: Customer, status: str, *, reason: str) -> None:
    old = customer.status
    if old == status:
        return
    Customer.objects.filter(pk=customer.pk).update(status=status, updated_at=timezone.now())
    customer.status = status
    CustomerEditLog.objects.create(customer=customer, source="storefront", changes={"status": [old, status]})
    record_change(actor=None, action="crm.customer_status_changed", target=customer,
                  summary=f"{customer.member_id}: {old} → {status} ({reason})", before={"status": old},
                  after={"status": status})


def request_account_deletion(*, customer: Customer, event_id: str) -> dict:
    """The storefront says the customer asked to delete their account: mark it, and if they
    still have credits, queue the remaining-credits notice (once per event)."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.status == Customer.Status.DELETED:
        return {"customer": customer.member_id, "status": customer.status, "balance": 0, "notice": "not_needed"}
    _set_status(customer, Customer.Status.DELETION_REQUESTED, reason="deletion requested by the customer")
    balance = ledger_selectors.available_balance(customer=customer)
    notice = "not_needed"
    if balance > 0:
        template = load_template(EmailKind.DELETION_NOTICE)
        if not template.enabled:
            notice = "disabled"
        elif not can_email(customer):
            notice = "no_email"
        else:
            message = queue_email(kind=EmailKind.DELETION_NOTICE, cause_key=f"{EmailKind.DELETION_NOTICE}:{event_id}",
                                  values=customer_values(customer, balance=balance), customer=customer,
                                  template=template)
            notice = "queued" if message is not None else "already_queued"
    return {"customer": customer.member_id, "status": customer.status, "balance": balance, "notice": notice}


def confirm_account_deletion(*, customer: Customer, event_id: str) -> dict:
    """The deletion is confirmed: cancel an open cash-refund request and remove the payout
    details from all of them, forfeit what is left (a `forfeit` entry; the ledger keeps
    every entry) and anonymise the customer's personal data. Emails already written for the customer are cancelled (if unsent) and stripped of their
    content and address."""
    from crm import services as crm_services
    from ledger import services as ledger_services
    from refunds import selectors as refund_selectors
    from refunds import services as refund_services

    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    # An open cash-refund request cannot be paid once the credits are forfeited: cancel it.
    cancelled = []
    while (open_request := refund_selectors.open_request_for(customer=customer)) is not None:
        refund_services.cancel(request=open_request, reason="The customer's account was deleted.")
        cancelled.append(open_request.pk)
    # No request keeps the bank details (holder, bank, account number) or the memo.
    refund_requests_anonymised = refund_services.anonymise_customer_requests(customer=customer)
    # Hold the account's lock while reading the balance, so the forfeit takes exactly it.
    CreditAccount.objects.select_for_update().filter(pk=customer.pk).first()
    balance = ledger_selectors.available_balance(customer=customer)
    forfeited = 0
    if balance > 0:
        entry = ledger_services.debit(customer=customer, amount=balance, kind=EntryKind.FORFEIT, source="api",
                                      reason="Account deleted: remaining credits forfeited",
                                      idempotency_key=f"forfeit:{event_id}")
        forfeited = -entry.amount
    crm_services.anonymise_customer(customer=customer, actor=None)
    redacted = redact_customer_emails(customer=customer)
    return {"customer": customer.member_id, "status": Customer.Status.DELETED, "forfeited": forfeited,
            "refund_requests_cancelled": cancelled, "refund_requests_anonymised": refund_requests_anonymised,
            "emails_redacted": redacted}


def redact_customer_emails(*, customer: Customer) -> int:
    """Strip an anonymised customer's emails of their address and content; unsent ones are
    cancelled. The rows stay (the log shows that an email of that kind was sent when)."""
    redacted = "(removed: the customer's account was deleted)"
    qs = OutboxMessage.objects.filter(customer=customer)
    qs.filter(status__in=[Status.PENDING, Status.SENDING, Status.FAILED]).update(status=Status.CANCELLED)
    return qs.update(to="", subject=redacted, text=redacted, html=f"<p>{redacted}</p>")

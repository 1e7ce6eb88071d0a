"""Every write of the refunds app: plain functions, keyword-only, one transaction each.

The workflow of a cash-refund request:

    requested --mark_pending--> pending
    requested/pending --refund--> refunded      (debits the credits: kind cash_refund)
    refunded --undo--> pending                  (reverses that debit into the very lots)
    requested/pending --reject--> rejected      (with a reason the customer is told)
    requested/pending --cancel--> cancelled     (the customer, through the storefront API)
    refunded --(gateway gave up)--> pending     (credits restored, staff emailed)

Each transition row-locks the request (`select_for_update`), checks the status after the
lock is held, writes an audit event and sends `refund_request_status_changed`, all in one
transaction, so two staff pressing Refund at once refund once. A form that posts the
`version` it showed makes a double click answer as the first click did.

One open (requested or pending) request per customer at a time; a new one is also refused
while an earlier refund is still being paid out by the gateway (its payout could still
fail and reopen it). A partial unique constraint backs the rule when submissions race.

Payouts (refunds.payouts): the manual backend records the payout as paid when Refund is
pressed; the gateway backend queues it and sends it after commit, outside any transaction
or lock, then records the result in a new transaction. A failure is retried once a day
(`retry_due_payouts`, run by Celery beat); when the last retry fails the credits are
restored, the request returns to pending and `payout_failed` is sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from credits_admin.audit import record_change
from credits_admin.models import StoreSettings
from credits_admin.money import MAX_AMOUNT, format_amount, store_currency
from crm.models import Customer, Order, OrderNote
from ledger import clock
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services

from . import crypto, payouts, selectors
from .exceptions import (
    IllegalTransition,
    InsufficientCreditsForRefund,
    NoEmailAddress,
    OpenRequestExists,
    PayoutInFlight,
    ProgramOff,
    RefundExceedsOrder,
    RequestChanged,
    RequestConflict,
    RequestInvalid,
)
from .models import Payout, RefundRequest, StoreCreditRefund
from .signals import payout_failed, refund_request_status_changed, refunded_with_store_credits

log = logging.getLogger(__name__)

S = RefundRequest.Status
# action -> (statuses it may start from, status it leads to, past participle for messages)
TRANSITIONS = {
    "mark_pending": ({S.REQUESTED}, S.PENDING, "marked pending"),
    "refund": ({S.REQUESTED, S.PENDING}, S.REFUNDED, "refunded"),
    "undo": ({S.REFUNDED}, S.PENDING, "undone"),
    "reject": ({S.REQUESTED, S.PENDING}, S.REJECTED, "rejected"),
    "cancel": ({S.REQUESTED, S.PENDING}, S.CANCELLED, "cancelled"),
}
# A payout claimed this long ago whose result was never recorded (the worker died mid-call)
# is sent again; the gateway's idempotency key (payout:<id>) keeps it from paying twice.
SENDING_STALE_AFTER = dt.timedelta(hours=1)
MAX_REASON = 500
MAX_MEMO = 1000


def _fmt(minor: int) -> str:
    return format_amount(minor)


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


# --------------------------------------------------------------------------- transitions

def _lock(request) -> RefundRequest:
    pk = request if isinstance(request, int) else request.pk
    return RefundRequest.objects.select_for_update().get(pk=pk)


def _illegal(req: RefundRequest, action: str) -> IllegalTransition:
    _, _, done = TRANSITIONS[action]
    hint = {
        S.REFUNDED: " Undo the refund first." if action in ("reject", "cancel", "mark_pending") else "",
        S.PENDING: " It is already pending." if action == "mark_pending" else "",
        S.REJECTED: " It was rejected; the customer can send a new request.",
        S.CANCELLED: " The customer cancelled it.",
    }.get(req.status, "")
    if action == "undo":
        hint = " Only a refunded request can be undone."
    return IllegalTransition(f"Request #{req.pk} is {req.get_status_display()}, so it cannot be {done}.{hint}")


def _already_done(req: RefundRequest, action: str, expected_version: int | None) -> bool:
    """True when a form that saw `expected_version` asks for what already happened (a
    double click, or two staff at once): answer as the first time, change nothing.
    RequestChanged when the request moved on to something else meanwhile."""
    if expected_version is None or req.version == expected_version:
        return False
    _, target, _ = TRANSITIONS[action]
    if req.status == target:
        req.replayed = True
        return True
    raise RequestChanged(f"Request #{req.pk} was changed by someone else meanwhile (it is now "
                         f"{req.get_status_display()}). Look at the list again before you act.")


def _require(req: RefundRequest, action: str) -> None:
    allowed, _, _ = TRANSITIONS[action]
    if req.status not in allowed:
        raise _illegal(req, action)


def _transition(req: RefundRequest, new_status: str, *, actor, action: str, reason: str = "",
                summary: str = "", before: dict | None = None, after: dict | None = None) -> None:
    """Move the locked request to `new_status`; audit and announce it in this transaction."""
    old_status = req.status
    now = clock.now()
    req.status = new_status
    req.version += 1
    req.status_changed_at = now
    req.status_changed_by = _user(actor)
    req.save()
    record_change(actor=actor, action=action, target=req,
                  summary=summary or f"Request #{req.pk}: {old_status} → {new_status}",
                  before={"status": old_status, **(before or {})},
                  after={"status": new_status, **({"reason": reason} if reason else {}), **(after or {})})
    refund_request_status_changed.send(sender=RefundRequest, request=req, old_status=old_status,
                                       new_status=new_status, actor=_user(actor), reason=reason)


# --------------------------------------------------------------------------- create

def _replay(existing: RefundRequest, *, customer, amount: int, details: payouts.PayoutDetails) -> RefundRequest:
    same = (existing.customer_id == customer.pk and existing.amount == amount
            and existing.account_last4 == details.last4
            and crypto.decrypt(existing.account_number_encrypted) == details.account_number)
    if not same:
        raise RequestConflict("This request id was already used for a different request.")
    existing.replayed = True
    return existing


def _open_request_error(customer, existing: RefundRequest) -> OpenRequestExists:
    return OpenRequestExists(
        f"{customer.member_id} already has an open cash refund request (#{existing.pk}, "
        f"{existing.get_status_display()}). One open request per customer: it must be refunded, "
        f"rejected or cancelled before a new one.", existing_id=existing.pk)


# An error report (a 500's email or page) shows the number starred, never in full: here and
# in transaction.atomic's frame below (its keyword arguments are `kwds`).
@sensitive_variables("account_number", "kwds")
@transaction.atomic
def create_request(*, customer: Customer, amount: int, account_holder: str, bank_name: str,
                   account_number: str, channel: str, memo: str = "", actor=None,
                   idempotency_key: str | None = None) -> RefundRequest:
    """A new request in status `requested`. Refused (RefundError, nothing written) when the
    amount is not positive or above the customer's available credits, the payout details
    are not valid, or the customer already has an open request. Replaying
    `idempotency_key` with the same data returns the first request (`.replayed`)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise RequestInvalid("The amount must be a whole number of minor units.", field="amount")
    if amount <= 0:
        raise RequestInvalid("The amount must be greater than zero.", field="amount")
    if amount >= MAX_AMOUNT:
        raise RequestInvalid("The amount is too large.", field="amount")
    details = payouts.clean_payout_details(account_holder=account_holder, bank_name=bank_name,
                                           account_number=account_number)
    memo = (memo or "").strip()
    if len(memo) > MAX_MEMO:
        raise RequestInvalid(f"The memo is too long ({MAX_MEMO} characters at most).", field="memo")
    if channel not in RefundRequest.Channel.values:
        raise RequestInvalid(f"Unknown channel {channel!r}.", field="channel")
    if idempotency_key and (existing := RefundRequest.objects.filter(idempotency_key=idempotency_key).first()):
        return _replay(existing, customer=customer, amount=amount, details=details)
    if customer.status == Customer.Status.DELETED:
        raise RequestInvalid("This customer's account has been deleted.", field="customer")
    if (existing := selectors.open_request_for(customer=customer)) is not None:
        raise _open_request_error(customer, existing)
    if (unsettled := selectors.unsettled_payout_for(customer=customer)) is not None:
        raise OpenRequestExists(
            f"{customer.member_id}'s refund #{unsettled.request_id} is still being paid out by the gateway; "
            f"a new request can be made once that payout is settled.", existing_id=unsettled.request_id)
    available = ledger_selectors.available_balance(customer=customer)
    if amount > available:
        raise InsufficientCreditsForRefund(
            f"The amount is more than the available credits: {customer.member_id} has {_fmt(available)} "
            f"available, the request is for {_fmt(amount)}.", requested=amount, available=available)
    now = clock.now()
    try:
        with transaction.atomic():
            req = RefundRequest.objects.create(
                customer=customer, amount=amount, status=S.REQUESTED, channel=channel, requested_at=now,
                created_by=_user(actor), idempotency_key=idempotency_key or None,
                account_holder=details.account_holder, bank_name=details.bank_name,
                account_number_encrypted=crypto.encrypt(details.account_number), account_last4=details.last4,
                memo=memo, status_changed_at=now, status_changed_by=_user(actor),
            )
    except IntegrityError:
        # A concurrent submission committed first: the same request id, or another open request.
        if idempotency_key and (existing := RefundRequest.objects.filter(idempotency_key=idempotency_key).first()):
            return _replay(existing, customer=customer, amount=amount, details=details)
        if (existing := selectors.open_request_for(customer=customer)) is not None:
            raise _open_request_error(customer, existing) from None
        raise
    record_change(actor=actor, action="refunds.request_created", target=req,
                  summary=f"Cash refund request #{req.pk} for {customer.member_id}: {_fmt(amount)} "
                          f"({req.get_channel_display()})",
                  after={"status": S.REQUESTED, "amount": amount, "customer": customer.member_id,
                         "channel": channel, "payout": req.payout_display})
    refund_request_status_changed.send(sender=RefundRequest, request=req, old_status="", new_status=S.REQUESTED,
                                       actor=_user(actor), reason="")
    return req


# --------------------------------------------------------------------------- staff actions

@transaction.atomic
def mark_pending(*, request, actor, expected_version: int | None = None) -> RefundRequest:
    """requested -> pending: staff have started processing it."""
    req = _lock(request)
    if _already_done(req, "mark_pending", expected_version):
        return req
    _require(req, "mark_pending")
    _transition(req, S.PENDING, actor=actor, action="refunds.request_pending",
                summary=f"Request #{req.pk} marked pending")
    return req


@transaction.atomic
def refund(*, request, actor, expected_version: int | None = None) -> RefundRequest:
    """requested/pending -> refunded: debit the credits (cash_refund) and record the payout.
    Refused, writing nothing, when the amount is above the available credits."""
    backend = payouts.get_backend()
    req = _lock(request)
    if _already_done(req, "refund", expected_version):
        return req
    _require(req, "refund")
    attempt = req.refund_attempts + 1
    try:
        entry = ledger_services.debit(
            customer=req.customer_id, amount=req.amount, kind="cash_refund", reason="Cash refund",
            actor=_user(actor), source="staff" if _user(actor) else "system",
            comment=f"Cash refund request #{req.pk}", idempotency_key=f"cash_refund:{req.pk}:{attempt}",
            details={"refund_request": req.pk, "refund_attempt": attempt},
        )
    except ledger_services.InsufficientCredits as exc:
        raise InsufficientCreditsForRefund(
            f"Refund refused: {req.customer.member_id} has only {_fmt(exc.available)} available and the "
            f"request is for {_fmt(req.amount)}. Nothing was changed.",
            requested=req.amount, available=exc.available) from None
    now = entry.created_at
    manual = not backend.automatic
    payout = Payout.objects.create(
        request=req, refund_attempt=attempt, amount=req.amount, backend=backend.path,
        status=Payout.Status.PAID if manual else Payout.Status.QUEUED,
        next_attempt_at=None if manual else now, confirmed_by=_user(actor) if manual else None,
        paid_at=now if manual else None, created_at=now,
    )
    req.refund_entry = entry
    req.refund_attempts = attempt
    req.refunded_at = now
    _transition(req, S.REFUNDED, actor=actor, action="refunds.request_refunded",
                summary=f"Request #{req.pk} refunded: {_fmt(req.amount)} debited ({backend.label})",
                after={"entry": entry.pk, "payout": payout.pk, "payout_status": payout.status})
    if not manual:
        from .tasks import send_payout_task

        send_payout_task.delay_on_commit(payout.pk)
    return req


@transaction.atomic
def undo(*, request, actor, expected_version: int | None = None) -> RefundRequest:
    """refunded -> pending: reverse the cash_refund debit back into the very lots it came
    from. Refused while the gateway is paying it out, once the gateway has paid it, or
    when the customer has another open request."""
    req = _lock(request)
    if _already_done(req, "undo", expected_version):
        return req
    _require(req, "undo")
    payout = (Payout.objects.select_for_update()
              .filter(request=req, refund_attempt=req.refund_attempts).first())
    if payout is not None:
        if payout.status == Payout.Status.SENDING:
            raise PayoutInFlight(f"The gateway is paying request #{req.pk} out right now; "
                                 f"try again in a minute.")
        if payout.status == Payout.Status.PAID and payout.attempts > 0:
            raise IllegalTransition(f"The payment gateway has already paid request #{req.pk} out; "
                                    f"it cannot be undone here.")
    others = RefundRequest.objects.filter(customer_id=req.customer_id).exclude(pk=req.pk)
    if (other := others.filter(status__in=RefundRequest.OPEN_STATUSES).first()) is not None:
        raise OpenRequestExists(f"Undo refused: {req.customer.member_id} has another open request "
                                f"(#{other.pk}). Settle that one first.", existing_id=other.pk)
    busy = Payout.objects.filter(request__in=others, status__in=Payout.UNSETTLED_STATUSES).first()
    if busy is not None:
        raise OpenRequestExists(f"Undo refused: {req.customer.member_id}'s refund #{busy.request_id} is "
                                f"still being paid out. Try again once it is settled.",
                                existing_id=busy.request_id)
    reversal = ledger_services.reverse(entry=req.refund_entry_id, actor=_user(actor),
                                       comment=f"Undo of cash refund request #{req.pk}",
                                       idempotency_key=f"cash_refund_undo:{req.pk}:{req.refund_attempts}")
    if payout is not None:
        payout.status = Payout.Status.CANCELLED
        payout.next_attempt_at = None
        payout.save(update_fields=["status", "next_attempt_at", "updated_at"])
    debit_id = req.refund_entry_id
    req.refund_entry = None
    req.refunded_at = None
    _transition(req, S.PENDING, actor=actor, action="refunds.refund_undone",
                summary=f"Refund of request #{req.pk} undone: {_fmt(req.amount)} restored",
                before={"entry": debit_id}, after={"reversal": reversal.pk})
    return req


@transaction.atomic
def reject(*, request, actor, reason: str, expected_version: int | None = None) -> RefundRequest:
    """requested/pending -> rejected, with a reason the customer is told."""
    reason = (reason or "").strip()
    if not reason:
        raise RequestInvalid("Tell the customer why the request is rejected.", field="reason")
    if len(reason) > MAX_REASON:
        raise RequestInvalid(f"The reason is too long ({MAX_REASON} characters at most).", field="reason")
    req = _lock(request)
    if _already_done(req, "reject", expected_version):
        return req
    _require(req, "reject")
    req.rejection_reason = reason
    _transition(req, S.REJECTED, actor=actor, action="refunds.request_rejected", reason=reason,
                summary=f"Request #{req.pk} rejected: {reason[:200]}")
    return req


@transaction.atomic
def cancel(*, request, reason: str = "", actor=None) -> RefundRequest:
    """requested/pending -> cancelled, by the customer (storefront API)."""
    reason = (reason or "").strip()[:MAX_REASON]
    req = _lock(request)
    _require(req, "cancel")
    _transition(req, S.CANCELLED, actor=actor, action="refunds.request_cancelled", reason=reason,
                summary=f"Request #{req.pk} cancelled by the customer")
    return req


@transaction.atomic
def send_customer_email(*, request: RefundRequest, subject: str, message: str, actor) -> None:
    """Email the customer about their request. Sent after commit; audited now."""
    customer = request.customer
    if not customer.email:
        raise NoEmailAddress(f"{customer.member_id} has no email address.")
    subject, message = subject.strip(), message.strip()
    if not subject or not message:
        raise RequestInvalid("Write a subject and a message.", field="subject" if not subject else "message")
    record_change(actor=actor, action="refunds.customer_emailed", target=request,
                  summary=f"Email to {customer.member_id} about request #{request.pk}: {subject[:200]}",
                  after={"subject": subject, "to": customer.member_id})
    to = [customer.email]
    transaction.on_commit(
        lambda: send_mail(subject, message, settings.DEFAULT_FROM_EMAIL, to, fail_silently=False), robust=True)


@transaction.atomic
def anonymise_customer_requests(*, customer: Customer) -> int:
    """Remove the payout details from every cash-refund request of a customer whose account
    deletion is confirmed: the account holder, bank name and memo blanked, the account
    number replaced by an encryption of "" (so the column still decrypts) and its last four
    digits cleared. The rows, their statuses and amounts, their payouts and the ledger stay
    as they are. The caller cancels an open request first (`cancel`); this one never
    changes a status. Safe to call twice. Returns how many requests were scrubbed."""
    # Row-locked in id order; the ones already scrubbed (a repeated deletion event) are skipped.
    ids = list(RefundRequest.objects.select_for_update().filter(customer_id=customer.pk)
               .exclude(account_holder="", bank_name="", account_last4="", memo="")
               .order_by("pk").values_list("pk", flat=True))
    if not ids:
        return 0
    scrubbed = RefundRequest.objects.filter(pk__in=ids).update(
        account_holder="", bank_name="", account_number_encrypted=crypto.encrypt(""), account_last4="", memo="",
        updated_at=timezone.now())
    if scrubbed:
        # The audit event counts the requests; it holds none of the details it removed.
        record_change(actor=None, action="refunds.requests_anonymised", target=customer,
                      summary=f"Payout details removed from {scrubbed} cash refund request(s) of "
                              f"{customer.member_id} (account deleted)",
                      after={"requests": ids, "cleared": ["account_holder", "bank_name", "account_number",
                                                          "account_last4", "memo"]})
    return scrubbed


# --------------------------------------------------------------------------- payouts

def next_retry_at(now: dt.datetime) -> dt.datetime:
    """Once a day: the next retry is due from the start of the next day (store time zone),
    so a daily beat run retries each failed payout on each following day."""
    local = timezone.localtime(now)
    tomorrow = local.date() + dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(tomorrow, dt.time.min), timezone.get_current_timezone())


def _claim(payout_id: int, now: dt.datetime):
    """Mark a due payout `sending` (attempt +1) in a short transaction of its own; None if
    it is not due, settled, or another worker holds it."""
    with transaction.atomic():
        qs = Payout.objects.filter(pk=payout_id)
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        payout = qs.first()
        if payout is None:
            return None
        due = ((payout.status in Payout.DUE_STATUSES
                and (payout.next_attempt_at is None or payout.next_attempt_at <= now))
               or (payout.status == Payout.Status.SENDING and payout.claimed_at is not None
                   and payout.claimed_at <= now - SENDING_STALE_AFTER))
        if not due:
            return None
        req = RefundRequest.objects.get(pk=payout.request_id)
        if req.status != S.REFUNDED or req.refund_attempts != payout.refund_attempt:
            Payout.objects.filter(pk=payout.pk).update(status=Payout.Status.CANCELLED, next_attempt_at=None)
            return None
        # Conditional update: claims it once even where row locks are not available (SQLite).
        claimed = (Payout.objects.filter(pk=payout.pk, status=payout.status, attempts=payout.attempts)
                   .update(status=Payout.Status.SENDING, attempts=F("attempts") + 1, claimed_at=now,
                           updated_at=now))
        if not claimed:
            return None
        payout.refresh_from_db()
        details = payouts.PayoutDetails(req.account_holder, req.bank_name,
                                        crypto.decrypt(req.account_number_encrypted))
        return payout, details


def attempt_payout(*, payout_id: int, now: dt.datetime | None = None) -> str | None:
    """Send one due payout through its backend and record the result. The gateway is called
    between two transactions, never while a lock is held. Returns the payout's new status,
    or None when there was nothing to send."""
    now = now or clock.now()
    claimed = _claim(payout_id, now)
    if claimed is None:
        return None
    payout, details = claimed
    backend = payouts.get_backend(payout.backend)
    result = backend.send(payout=payout, details=details, currency=store_currency())
    return _record_payout_result(payout_id=payout.pk, result=result)


@transaction.atomic
def _record_payout_result(*, payout_id: int, result: payouts.PayoutResult) -> str:
    now = clock.now()
    request_id = Payout.objects.filter(pk=payout_id).values_list("request_id", flat=True).get()
    req = _lock(request_id)  # same lock order as undo: request, then payout
    payout = Payout.objects.select_for_update().get(pk=payout_id)
    if payout.status != Payout.Status.SENDING:
        return payout.status
    payout.claimed_at = None
    if result.ok:
        payout.status = Payout.Status.PAID
        payout.paid_at = now
        payout.reference = result.reference
        payout.next_attempt_at = None
        payout.save()
        record_change(actor=None, action="refunds.payout_paid", target=req,
                      summary=f"Payout of request #{req.pk} paid by the gateway ({result.reference})",
                      after={"payout": payout.pk, "attempts": payout.attempts, "reference": result.reference})
        return payout.status
    payout.last_error = (result.error or "The gateway gave no reason.")[:1000]
    if payout.retries < payouts.max_retries():
        payout.status = Payout.Status.RETRYING
        payout.next_attempt_at = next_retry_at(now)
        payout.save()
        record_change(actor=None, action="refunds.payout_retry_scheduled", target=req,
                      summary=f"Payout of request #{req.pk} failed (attempt {payout.attempts}); "
                              f"retrying {payout.next_attempt_at:%Y-%m-%d}",
                      after={"payout": payout.pk, "attempts": payout.attempts, "error": payout.last_error,
                             "next_attempt_at": payout.next_attempt_at})
        return payout.status
    # The last retry failed too: give up, restore the credits, reopen the request.
    payout.status = Payout.Status.FAILED
    payout.next_attempt_at = None
    payout.save()
    if req.status == S.REFUNDED and req.refund_attempts == payout.refund_attempt:
        reversal = ledger_services.reverse(entry=req.refund_entry_id, actor=None,
                                           comment=f"Payout of cash refund request #{req.pk} failed",
                                           idempotency_key=f"payout_failed:{payout.pk}")
        debit_id = req.refund_entry_id
        req.refund_entry = None
        req.refunded_at = None
        reason = (f"The payout failed {payout.attempts} times ({payout.last_error}); "
                  f"the credits were restored.")[:MAX_REASON]
        _transition(req, S.PENDING, actor=None, action="refunds.payout_failed", reason=reason,
                    summary=f"Payout of request #{req.pk} failed for good; {_fmt(req.amount)} restored",
                    before={"entry": debit_id},
                    after={"reversal": reversal.pk, "payout": payout.pk, "attempts": payout.attempts})
    payout_failed.send(sender=Payout, request=req, payout=payout, attempts=payout.attempts)
    return payout.status


def retry_due_payouts(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Send every payout that is due: queued ones whose first send was lost, failed ones
    whose daily retry has come, and claims left behind by a dead worker. Safe to run twice
    or concurrently (each payout is claimed once). Returns how many were attempted."""
    now = now or clock.now()
    stale = now - SENDING_STALE_AFTER
    due = (Payout.objects.filter(Q(status__in=Payout.DUE_STATUSES, next_attempt_at__lte=now)
                                 | Q(status=Payout.Status.SENDING, claimed_at__lte=stale))
           .order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit])
    attempted = 0
    for payout_id in list(due):
        if attempt_payout(payout_id=payout_id, now=now) is not None:
            attempted += 1
    return attempted


# --------------------------------------------------------------------------- refund an order with credits

def refund_credits_expiry(*, now: dt.datetime | None = None) -> dt.datetime | None:
    """When store credits refunded at `now` expire, as the store's policy for refunds says
    (None: never; the default)."""
    return ledger_services.policy_expiry(source="staff", now=now or clock.now(), purpose="refund")


@transaction.atomic
def refund_with_store_credits(*, order: Order, amount: int, note: str, notify: bool, actor,
                              idempotency_key: str) -> StoreCreditRefund:
    """Refund (part of) an order by granting store credits to its customer, expiring as the
    store's policy says for refunds. At most what was paid, less what the storefront
    refunded and earlier refunds with credits. The note is written on the order.
    Refused while store credits are switched off."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise RequestInvalid("Enter an amount greater than zero.", field="amount")
    note = (note or "").strip()
    if not note:
        raise RequestInvalid("Write the note that goes on the order.", field="note")
    if len(note) > MAX_REASON:
        raise RequestInvalid(f"The note is too long ({MAX_REASON} characters at most).", field="note")
    if not idempotency_key:
        idempotency_key = str(uuid.uuid4())
    key = f"order_credit_refund:{idempotency_key}"
    if (existing := StoreCreditRefund.objects.filter(idempotency_key=key).first()) is not None:
        if existing.order_id != order.pk or existing.amount != amount:
            raise RequestConflict("This form was already submitted with other values. Close it and start again.")
        existing.replayed = True
        return existing
    if not StoreSettings.load().credits_enabled:
        raise ProgramOff("Store credits are switched off, so an order cannot be refunded with them. "
                         "Switch the credits program on first.")
    order = Order.objects.select_for_update().select_related("customer").get(pk=order.pk)
    limits = selectors.order_refundable_with_credits(order=order)
    if amount > limits["refundable"]:
        parts = [f"paid {_fmt(limits['paid'])}"]
        if limits["refunded"]:
            parts.append(f"refunded by the store {_fmt(limits['refunded'])}")
        if limits["earlier"]:
            parts.append(f"already refunded with credits {_fmt(limits['earlier'])}")
        raise RefundExceedsOrder(f"At most {_fmt(limits['refundable'])} of order {order.external_id} can still be "
                                 f"refunded with store credits ({', '.join(parts)}).")
    now = clock.now()
    expires_at = refund_credits_expiry(now=now)
    if expires_at is not None and expires_at <= now:
        raise RequestInvalid("The expiry policy for refunds with store credits ends on a date that has passed, "
                             "so these credits could never be used. Change it on the Expiry date page first.")
    entry = ledger_services.grant(
        customer=order.customer_id, amount=amount, reason="Refund with store credits",
        expires_at=expires_at, actor=_user(actor), source="staff", comment=note, order=order,
        idempotency_key=key,
    )
    OrderNote.objects.create(order=order, author=_user(actor), body=note)
    refund_row = StoreCreditRefund.objects.create(order=order, entry=entry, amount=amount, note=note,
                                                  notify=bool(notify), actor=_user(actor), idempotency_key=key,
                                                  created_at=entry.created_at)
    record_change(actor=actor, action="refunds.order_refunded_with_credits", target=order,
                  summary=f"Order {order.external_id} refunded with {_fmt(amount)} of store credits",
                  after={"amount": amount, "entry": entry.pk, "expires_at": entry.lot.expires_at,
                         "notify": bool(notify), "note": note})
    refunded_with_store_credits.send(sender=StoreCreditRefund, order=order, entry=entry, notify=bool(notify),
                                     note=note, actor=_user(actor))
    return refund_row

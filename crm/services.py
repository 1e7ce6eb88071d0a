from django.db import transaction

from credits_admin.audit import record_change

from .models import Customer, CustomerEditLog, CustomerMemo


@transaction.atomic
def add_memo(*, customer: Customer, author, body: str) -> CustomerMemo:
    memo = CustomerMemo.objects.create(customer=customer, author=author, body=body.strip())
    record_change(actor=author, action="crm.memo_added", target=customer, summary=body.strip()[:200],
                  after={"memo": memo.pk})
    return memo


@transaction.atomic
def reveal_card_number(*, customer: Customer, actor) -> str:
    """The full card number, with an audit event saying who saw it."""
    record_change(actor=actor, action="crm.card_revealed", target=customer,
                  summary=f"Card number of {customer.member_id} revealed")
    return customer.card_number


# --------------------------------------------------------------------------- storefront upserts
# Called by the credits engine (rules) for customer.registered / customer.updated events,
# inside the event's transaction. The storefront is not a staff user: no audit event; the
# edit log says what changed.

EDITABLE_FIELDS = ("name", "email", "phone")


@transaction.atomic
def register_customer(*, member_id: str, name: str, email: str = "", phone: str = "",
                      registered_at=None) -> Customer:
    """A customer the storefront reports as newly registered."""
    return Customer.objects.create(member_id=member_id, name=name, email=email or "", phone=phone or "",
                                   registered_at=registered_at)


@transaction.atomic
def update_customer(*, customer: Customer, changes: dict, actor=None, source: str = "storefront") -> dict:
    """Apply `changes` (name / email / phone -> new value). Writes one CustomerEditLog with
    {"field": [before, after]} for what really changed and returns that dict; nothing is
    written when nothing changes."""
    changed = {}
    for name in EDITABLE_FIELDS:
        if name in changes and changes[name] is not None and getattr(customer, name) != changes[name]:
            changed[name] = [getattr(customer, name), changes[name]]
            setattr(customer, name, changes[name])
    if changed:
        customer.save(update_fields=[*changed, "updated_at"])
        CustomerEditLog.objects.create(customer=customer, actor=actor if getattr(actor, "is_authenticated", False)
                                       else None, source=source, changes=changed)
    return changed


# --------------------------------------------------------------------------- account deletion

ANONYMOUS_NAME = "Deleted customer"


@transaction.atomic
def anonymise_customer(*, customer: Customer, actor) -> Customer:
    """Remove a customer's personal data once their account deletion is confirmed (the
    caller forfeits the credits first). Name -> "Deleted customer", email and phone blanked,
    memos and edit logs (which hold old names, emails and phones) deleted, status deleted.

    Kept, on purpose: the row itself and its id (the ledger's entries and lots, orders and
    refund requests point at it, and the ledger is never rewritten); `member_id` (the
    storefront's opaque key, so a repeated deletion event or a late order event still finds
    this row instead of creating a new customer); `card_number` (a store-issued code, not
    personal data: it is what storefront orders that redeemed credits reference, and with
    the balance forfeited it can no longer pay for anything); `registered_at`. Safe to call
    twice."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    had = [f for f in ("name", "email", "phone") if getattr(customer, f) not in ("", ANONYMOUS_NAME)]
    memos = CustomerMemo.objects.filter(customer=customer).delete()[0]
    logs = CustomerEditLog.objects.filter(customer=customer).delete()[0]
    old_status = customer.status
    customer.name = ANONYMOUS_NAME
    customer.email = ""
    customer.phone = ""
    customer.status = Customer.Status.DELETED
    customer.save(update_fields=["name", "email", "phone", "status", "updated_at"])
    # The audit event names the fields cleared, never their values.
    record_change(actor=actor, action="crm.customer_anonymised", target=customer,
                  summary=f"Customer {customer.member_id} anonymised (account deleted)",
                  before={"status": old_status, "cleared": had, "memos": memos, "edit_logs": logs},
                  after={"status": customer.status})
    return customer

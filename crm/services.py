from django.db import transaction

from credits_admin.audit import record_change

from .models import Customer, CustomerMemo


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

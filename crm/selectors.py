from django.db.models import Q

from .models import Customer, CustomerMemo


def customer_match(text: str, *, exact: bool = False) -> Q:
    """What a search box means by `text`. Exact: a member ID, an email or a whole card
    number. Otherwise also part of a name, the start of a member ID, or a card's last digits."""
    text = (text or "").strip()
    digits = text.replace(" ", "").replace("-", "")
    match = Q(member_id=text) | Q(email__iexact=text)
    if digits.isdigit() and len(digits) == 16:
        match |= Q(card_number=digits)
    if not exact:
        match |= Q(name__icontains=text) | Q(member_id__istartswith=text)
        if digits.isdigit() and 4 <= len(digits) < 16:
            match |= Q(card_number__endswith=digits)
    return match


def customer_search(*, text: str = ""):
    qs = Customer.objects.select_related("credit_account").order_by("member_id")
    if not (text or "").strip():
        return qs
    return qs.filter(customer_match(text))


def customer_memos(*, customer, limit: int = 20):
    return CustomerMemo.objects.filter(customer=customer).select_related("author")[:limit]

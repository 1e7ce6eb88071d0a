from django.db.models import Exists, Q

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


def customer_lookup(text: str):
    """The customers a history search box means by `text`: the exact hits (member ID, email,
    whole card number) when there are any, otherwise the partial matches. So "M1" finds
    customer M1 alone, not M10..M19 too; "ann" still finds every Ann. One query (the
    fallback is an uncorrelated EXISTS), usable as a subquery: `.values("pk")`."""
    exact = Customer.objects.filter(customer_match(text, exact=True)).values("pk")
    return Customer.objects.filter(customer_match(text, exact=True)
                                   | (customer_match(text) & ~Exists(exact))).values("pk")


def customer_ids_for_search(text: str, *, cap: int) -> list[int] | None:
    """`customer_lookup` as a list of at most `cap` ids, in two indexed steps: the exact
    hits first (member ID, email, whole card number: each has an index), and only when
    there are none the partial matches. None when there are more than `cap` of them."""
    exact = list(Customer.objects.filter(customer_match(text, exact=True)).values_list("pk", flat=True)[:cap + 1])
    ids = exact or list(Customer.objects.filter(customer_match(text)).values_list("pk", flat=True)[:cap + 1])
    return ids if len(ids) <= cap else None


def customer_search(*, text: str = ""):
    qs = Customer.objects.select_related("credit_account").order_by("member_id")
    if not (text or "").strip():
        return qs
    return qs.filter(customer_match(text))


def customer_memos(*, customer, limit: int = 20):
    return CustomerMemo.objects.filter(customer=customer).select_related("author")[:limit]

from django import template

from credits_admin import money as money_lib

register = template.Library()


@register.filter
def money(minor, currency=None):
    """{{ entry.amount|money }} -> $12.34"""
    return money_lib.format_amount(minor, currency=currency or None)


@register.filter
def signed_money(minor, currency=None):
    """{{ entry.amount|signed_money }} -> +$12.34 / −$12.34"""
    return money_lib.format_amount(minor, currency=currency or None, signed=True)


@register.filter
def mask_card(number):
    """Show only the last four digits of a card number."""
    number = str(number or "")
    if len(number) < 8:
        return "••••"
    return f"•••• •••• •••• {number[-4:]}"

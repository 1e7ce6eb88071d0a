"""What each allocation rule grants, as pure functions of the rule and the facts of an
event (no database access here), and the rule in plain words."""

from __future__ import annotations

from dataclasses import dataclass, field

from credits_admin.money import format_amount

from .models import AllocationRule, Method, Mode


@dataclass
class Grant:
    amount: int
    reason: str
    basis: dict = field(default_factory=dict)
    tier: int | None = None  # 1-based; once-per-tier rewards use a per-customer key


@dataclass(frozen=True)
class OrderFacts:
    """An order being paid and the customer's history before it (orders paid earlier,
    whatever happened to them afterwards)."""

    items_total: int
    prev_paid_orders: int
    prev_spend: int

    @property
    def paid_orders(self) -> int:
        return self.prev_paid_orders + 1

    @property
    def spend(self) -> int:
        return self.prev_spend + self.items_total


def _per_value(rule: AllocationRule, items_total: int) -> int:
    return (items_total // rule.per_amount) * rule.amount


def registration_grants(rule: AllocationRule) -> list[Grant]:
    return [Grant(amount=rule.amount, reason="Registration reward")]


def order_grants(rule: AllocationRule, facts: OrderFacts) -> list[Grant]:
    """The grants `rule` gives for the payment of an order."""
    if rule.method == Method.FIRST_ORDER:
        if facts.prev_paid_orders:
            return []
        amount = rule.amount if rule.mode == Mode.FIXED else _per_value(rule, facts.items_total)
        return [Grant(amount=amount, reason="First order reward", basis={"items_total": facts.items_total})]
    if rule.method == Method.PAID_ORDER:
        if facts.items_total < (rule.min_spend or 0):
            return []
        amount = rule.amount if rule.mode == Mode.FIXED else _per_value(rule, facts.items_total)
        return [Grant(amount=amount, reason="Order reward", basis={"items_total": facts.items_total})]
    if rule.method == Method.ORDER_HISTORY:
        return _tier_grants(rule, before=facts.prev_paid_orders, after=facts.paid_orders,
                            label=lambda t: f"{t} paid orders", basis_name="paid_orders")
    if rule.method == Method.SPEND_HISTORY:
        if rule.mode == Mode.TIERS:
            return _tier_grants(rule, before=facts.prev_spend, after=facts.spend,
                                label=lambda t: f"{format_amount(t)} spent", basis_name="spend")
        ranges = facts.spend // rule.per_amount - facts.prev_spend // rule.per_amount
        if ranges <= 0:
            return []
        return [Grant(amount=ranges * rule.amount, reason="Spend reward",
                      basis={"spend_before": facts.prev_spend, "spend_after": facts.spend, "ranges": ranges,
                             "carried_over": facts.spend % rule.per_amount})]
    return []


def _tier_grants(rule, *, before: int, after: int, label, basis_name: str) -> list[Grant]:
    """Each tier whose threshold this event reaches (before < threshold <= after)."""
    grants = []
    for n, tier in enumerate(rule.tiers, start=1):
        if before < tier["threshold"] <= after:
            grants.append(Grant(amount=tier["amount"], tier=n,
                                reason=f"{'Order' if basis_name == 'paid_orders' else 'Spend'} history reward "
                                       f"(tier {n}: {label(tier['threshold'])})",
                                basis={f"{basis_name}_before": before, f"{basis_name}_after": after,
                                       "threshold": tier["threshold"]}))
    return grants


# --------------------------------------------------------------------------- plain words

def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def describe(rule: AllocationRule) -> str:
    """The rule in one plain sentence, e.g. "Customers receive $5.00 for every $50.00 paid
    for items in each paid order of at least $20.00." Works on unsaved rules."""
    m = format_amount
    if rule.method == Method.REGISTRATION:
        return f"Customers receive {m(rule.amount)} when they register."
    if rule.method in (Method.FIRST_ORDER, Method.PAID_ORDER):
        which = "their first paid order" if rule.method == Method.FIRST_ORDER else "each paid order"
        if rule.method == Method.PAID_ORDER and rule.min_spend:
            which += f" of at least {m(rule.min_spend)}"
        if rule.mode == Mode.PER_VALUE:
            return f"Customers receive {m(rule.amount)} for every {m(rule.per_amount)} paid for items in {which}."
        if rule.method == Method.FIRST_ORDER:
            return f"Customers receive {m(rule.amount)} after {which}."
        return f"Customers receive {m(rule.amount)} for {which}."
    if rule.method == Method.ORDER_HISTORY:
        parts = [f"{m(t['amount'])} when they reach {t['threshold']} paid order{'s' if t['threshold'] != 1 else ''}"
                 for t in rule.tiers]
        return f"Customers receive {_join(parts)}; each tier is rewarded once."
    if rule.mode == Mode.TIERS:
        parts = [f"{m(t['amount'])} when their total spend reaches {m(t['threshold'])}" for t in rule.tiers]
        return f"Customers receive {_join(parts)}; each tier is rewarded once."
    return (f"Customers receive {m(rule.amount)} for every {m(rule.per_amount)} they spend in paid orders; "
            f"any excess carries over to the next {m(rule.per_amount)}.")

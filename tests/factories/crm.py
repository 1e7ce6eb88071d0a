import datetime as dt

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from crm.models import Customer, CustomerMemo, Order


class CustomerFactory(DjangoModelFactory):
    class Meta:
        model = Customer

    member_id = factory.Sequence(lambda n: f"M{n:06d}")
    name = factory.Faker("name")
    email = factory.LazyAttribute(lambda o: f"{o.member_id.lower()}@example.com")
    phone = factory.Faker("numerify", text="010-####-####")
    registered_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=200))


class OrderFactory(DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"ORD-{n:07d}")
    customer = factory.SubFactory(CustomerFactory)
    placed_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=1))
    paid_at = factory.LazyAttribute(lambda o: o.placed_at + dt.timedelta(minutes=5))
    status = Order.Status.PAID
    items_total = 10_000
    paid_amount = factory.LazyAttribute(lambda o: o.items_total)
    refunded_amount = 0
    currency = "USD"


class CustomerMemoFactory(DjangoModelFactory):
    class Meta:
        model = CustomerMemo

    customer = factory.SubFactory(CustomerFactory)
    body = factory.Faker("sentence")

import os

import pytest
from django.db import connection
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from credits_admin.roles import ROLE_NAMES
from ledger import services as ledger_services
from tests.factories import CustomerFactory, StaffUserFactory

hypothesis_settings.register_profile(
    "default", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
hypothesis_settings.register_profile(
    "ci-heavy", deadline=None, max_examples=1000, stateful_step_count=80,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` skip, with the reason shown, when the database is SQLite."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def is_postgres():
    return connection.vendor == "postgresql"


@pytest.fixture
def customer(db):
    return CustomerFactory()


@pytest.fixture
def funded_customer(db):
    """A customer with 5000 minor units, funded through the ledger (never written directly)."""
    customer = CustomerFactory()
    ledger_services.grant(customer=customer, amount=5000, reason="test setup")
    return customer


@pytest.fixture
def staff(db):
    """staff("Ops") -> a user with that role."""

    def make(role):
        assert role in ROLE_NAMES
        return StaffUserFactory(role=role)

    return make


@pytest.fixture
def htmx_headers():
    return {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _fresh_store_currency():
    """The store currency is cached per process; every test starts without the cache."""
    from credits_admin.money import forget_store_currency

    forget_store_currency()
    yield
    forget_store_currency()


@pytest.fixture(autouse=True)
def _fresh_engine_config():
    """The engine's settings and rules are cached per process for a few seconds; every test
    starts without."""
    from rules.selectors import forget_engine_config

    forget_engine_config()
    yield
    forget_engine_config()


@pytest.fixture(autouse=True)
def _fresh_email_templates():
    """Email templates are cached per process for a few seconds; every test starts without."""
    from notifications.services import forget_templates

    forget_templates()
    yield
    forget_templates()



@pytest.fixture(autouse=True)
def _celery_join_flag_reset():
    """Eager tasks run in several threads at once (the PostgreSQL race tests commit from
    threads, and each commit enqueues an email) race on Celery's process-wide
    "join will block" flag: `Task.apply` sets it for the task's duration and restores the
    value it saw, so interleaved threads can leave it set. A later test calling
    `.apply().get()` would then be refused as if inside a worker. Reset it after each test."""
    yield
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)

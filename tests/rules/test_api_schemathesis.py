"""Schemathesis against the storefront API's own OpenAPI schema: no generated request,
valid or not, gets a 5xx. Bounded: 25 examples per operation."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from credits_admin.apikeys import create_api_key
from credits_admin.wsgi import application
from rules import services

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture
def wsgi_in_test_transaction():
    """Schemathesis calls the WSGI app directly; like Django's test client, keep the request
    signals from closing the test's connection (it is inside the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_headers(db, wsgi_in_test_transaction):
    _, key = create_api_key(name="schemathesis")
    # Some rules, so generated events also exercise the grant paths.
    services.create_rule(actor=None, method="registration", mode="fixed", amount=100)
    services.create_rule(actor=None, method="paid_order", mode="per_value", amount=100, per_amount=1)
    services.create_rule(actor=None, method="spend_history", mode="tiers",
                         tiers=[{"threshold": 1, "amount": 1}, {"threshold": 10**9, "amount": 5}])
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_operation_answers_a_server_error(case, api_headers):
    # given: a generated request, with a valid API key
    # when
    response = case.call(headers=api_headers)
    # then
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500

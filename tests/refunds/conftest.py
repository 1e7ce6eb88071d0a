import pytest

from refunds import services
from tests.refunds.fakes import FakeGateway

PAYOUT = {"account_holder": "Jane Doe", "bank_name": "First Bank", "account_number": "1234-5678-9012"}


@pytest.fixture
def make_request():
    """make_request(customer, amount=1000, **overrides) -> a request submitted by the customer."""

    def make(customer, amount=1000, **kwargs):
        args = {"channel": "storefront", **PAYOUT, **kwargs}
        return services.create_request(customer=customer, amount=amount, **args)

    return make


@pytest.fixture
def agent(staff):
    return staff("Support agent")


@pytest.fixture
def gateway(settings):
    """Payouts go through GatewayBackend with the FakeGateway client; script it with
    gateway.will(True, False, ...)."""
    settings.REFUNDS_PAYOUT_BACKEND = "refunds.payouts.GatewayBackend"
    settings.REFUNDS_GATEWAY_CLIENT = "tests.refunds.fakes.FakeGateway"
    FakeGateway.reset()
    yield FakeGateway
    FakeGateway.reset()

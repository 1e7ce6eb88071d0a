"""A payment gateway the tests control: each call takes the next scripted outcome."""

from django.db import connection

from refunds.payouts import PayoutResult


class FakeGateway:
    outcomes: list = []
    calls: list = []
    default = True

    @classmethod
    def reset(cls):
        cls.outcomes = []
        cls.calls = []
        cls.default = True

    @classmethod
    def will(cls, *outcomes):
        """True: paid; False: declined; a string: declined with that error; an exception: raised."""
        cls.outcomes.extend(outcomes)

    def send_payout(self, **kwargs):
        cls = type(self)
        cls.calls.append({**kwargs, "in_atomic_block": connection.in_atomic_block})
        outcome = cls.outcomes.pop(0) if cls.outcomes else cls.default
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is True:
            return PayoutResult(ok=True, reference=f"gw-{len(cls.calls)}")
        return PayoutResult(ok=False, error=outcome if isinstance(outcome, str) else "Declined by the bank.")

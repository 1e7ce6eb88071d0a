"""Domain errors raised by refunds.services. Each carries a message fit to show a person
(next to `field` when it concerns one input) and to return in a 4xx JSON answer (`code`)."""


class RefundError(Exception):
    code = "refund_error"
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class RequestInvalid(RefundError):
    """Input a request cannot have (amount, payout details, customer)."""
    code = "invalid"


class InsufficientCreditsForRefund(RefundError):
    """The amount is greater than the customer's available credits."""
    code = "insufficient_credits"
    field = "amount"

    def __init__(self, message: str, *, requested: int, available: int):
        super().__init__(message)
        self.requested = requested
        self.available = available


class OpenRequestExists(RefundError):
    """One open (requested/pending) request per customer at a time."""
    code = "open_request_exists"

    def __init__(self, message: str, *, existing_id: int | None = None):
        super().__init__(message)
        self.existing_id = existing_id


class RequestConflict(RefundError):
    """An idempotency key (request id) reused with different data."""
    code = "request_id_conflict"


class IllegalTransition(RefundError):
    """The request's status does not allow this action."""
    code = "illegal_transition"


class RequestChanged(RefundError):
    """Someone else changed the request since the form was shown."""
    code = "request_changed"


class PayoutInFlight(RefundError):
    """The gateway is being called for this request right now."""
    code = "payout_in_flight"


class ProgramOff(RefundError):
    """Store credits are switched off."""
    code = "program_off"


class RefundExceedsOrder(RefundError):
    """More than the order has left to refund."""
    code = "exceeds_order"
    field = "amount"


class NoEmailAddress(RefundError):
    code = "no_email"

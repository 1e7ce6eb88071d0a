class NotResendable(Exception):
    """The email cannot be resent (still unsent, or cancelled); the message says why."""

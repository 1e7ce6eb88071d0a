"""Email backends for tests: one that fails a set number of times first."""

from smtplib import SMTPServerDisconnected

from django.core.mail.backends.locmem import EmailBackend


class FlakyBackend(EmailBackend):
    """Fails the first `failures` sends (raising `error`), then delivers to mail.outbox."""

    failures = 0
    error: Exception = SMTPServerDisconnected("Connection unexpectedly closed")
    calls = 0

    @classmethod
    def reset(cls, *, failures=0, error=None):
        cls.failures = failures
        cls.error = error or SMTPServerDisconnected("Connection unexpectedly closed")
        cls.calls = 0

    def send_messages(self, messages):
        type(self).calls += 1
        if type(self).failures > 0:
            type(self).failures -= 1
            raise type(self).error
        return super().send_messages(messages)

"""One exception tree whose classes say what happens next: retry, reject, or dead-letter.

HTTP statuses for these classes are mapped in exactly one place (the gateway's error handler),
stream handling in exactly one place (the consumer's batch loop).
"""

from __future__ import annotations


class FraudopsError(Exception):
    """Base of every error fraudops raises on purpose."""


class ConfigurationError(FraudopsError):
    """The platform is misconfigured; a human must fix settings or the environment. Never retried."""


class RetryableError(FraudopsError):
    """A dependency is temporarily unavailable (database, broker, model server); retry with backoff."""

    def __init__(self, message: str, *, delay_s: float = 1.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class RejectedInputError(FraudopsError):
    """The input is invalid and will stay invalid: reject it (HTTP 422) or dead-letter it (stream).

    `field` names the offending field (dotted path) and `reason` says which rule it broke.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFoundError(FraudopsError):
    """The thing asked for does not exist (HTTP 404)."""


class InfraError(FraudopsError):
    """A local infrastructure step failed (install, start, stop). The message says what to do."""

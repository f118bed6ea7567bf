"""`fraudops simulate` (placeholder, being written)."""


def simulate() -> None:
    """Simulate transactions."""

"""What a simulation run is asked to produce: validated parameters with the defaults the CLI shows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from fraudops_simulator.difficulty import DIFFICULTIES, HARDER_PATTERNS, Difficulty
from fraudops_simulator.names import PATTERN_NAMES

#: Seconds in a day; the simulation clock counts seconds since `start`.
DAY_S = 86_400.0


class SimulationParameterError(ValueError):
    """A parameter is outside what the simulator supports; `option` names the CLI option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class SimulationConfig:
    """One simulation run. The same config (seed included) always gives the same transactions."""

    transactions: int = 100_000
    customers: int | None = None  # default: transactions / 100
    days: int = 90
    start: date = date(2026, 8, 1)
    seed: int = 42
    fraud_rate: float = 0.008
    label_delay_days: float = 7.0
    patterns: tuple[str, ...] | None = None  # None = every pattern
    rows_per_chunk: int = 100_000
    difficulty: str = "realistic"  # easy | realistic | hard: see difficulty.py

    def __post_init__(self) -> None:
        if self.transactions < 1 or self.transactions > 2_000_000_000:
            raise SimulationParameterError("--transactions", "--transactions must be between 1 and 2e9")
        if self.customers is not None and not 1 <= self.customers <= 50_000_000:
            raise SimulationParameterError("--customers", "--customers must be between 1 and 50,000,000")
        if not 1 <= self.days <= 3_650:
            raise SimulationParameterError("--days", "--days must be between 1 and 3650")
        if not (math.isfinite(self.fraud_rate) and 0.0 <= self.fraud_rate <= 0.2):
            raise SimulationParameterError(
                "--fraud-rate",
                f"--fraud-rate must be a fraction between 0 and 0.2 (got {self.fraud_rate}); e.g. 0.008",
            )
        if not (math.isfinite(self.label_delay_days) and 1.0 <= self.label_delay_days <= 60.0):
            raise SimulationParameterError(
                "--label-delay-days", "--label-delay-days must be between 1 and 60"
            )
        if not 0 <= self.seed < 2**63:
            raise SimulationParameterError("--seed", "--seed must be a non-negative integer below 2**63")
        if self.difficulty not in DIFFICULTIES:
            raise SimulationParameterError(
                "--difficulty",
                f"--difficulty must be one of {', '.join(DIFFICULTIES)} (got {self.difficulty!r})",
            )
        if self.patterns is not None:
            unknown = sorted(set(self.patterns) - set(PATTERN_NAMES))
            if unknown or not self.patterns:
                raise SimulationParameterError(
                    "--patterns",
                    f"unknown pattern(s) {', '.join(unknown) or '(none given)'}; choose from: {', '.join(PATTERN_NAMES)}",
                )

    @property
    def hardness(self) -> Difficulty:
        return DIFFICULTIES[self.difficulty]

    def includes(self, pattern: str) -> bool:
        """Whether this run draws episodes of `pattern` (the harder patterns need a harder setting)."""
        if pattern in HARDER_PATTERNS and self.difficulty == "easy":
            return False
        return self.patterns is None or pattern in self.patterns

    @property
    def n_customers(self) -> int:
        """Customers in the population: about 100 transactions each over the span unless set."""
        if self.customers is not None:
            return self.customers
        return max(50, self.transactions // 100)

    @property
    def span_s(self) -> float:
        return self.days * DAY_S

    @property
    def start_datetime(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def start_us(self) -> int:
        """The simulation start as microseconds since the Unix epoch."""
        return int(self.start_datetime.timestamp()) * 1_000_000


def label_delays_s(
    config: SimulationConfig, rng: np.random.Generator, n: int, *, noisy: bool = False
) -> np.ndarray:
    """How long until a transaction's label is known: log-normal, mean `label_delay_days`, within 1–60 days.

    Fraud labels arrive with the chargeback or the customer's report; a legit row is taken as
    confirmed legit after a delay from the *same* distribution, so when a label arrives says
    nothing about what it is (label timing must not leak the label into features or splits).
    With `noisy`, a share of the delays (the difficulty's `late_label_share`) is 3–6 times longer: the
    report that comes after the next statement, or after the customer's holiday. The extra draws are
    only made when that share is non-zero, so the `easy` setting draws exactly what it always did.
    """
    sigma = 0.6
    mu = np.log(config.label_delay_days) - sigma**2 / 2
    delays = rng.lognormal(mu, sigma, n)
    late_share = config.hardness.late_label_share if noisy else 0.0
    if late_share > 0.0:
        late = rng.random(n) < late_share
        delays = np.where(late, delays * rng.uniform(3.0, 6.0, n), delays)
    return np.clip(delays, 1.0, 60.0) * DAY_S

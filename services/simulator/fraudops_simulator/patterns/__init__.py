"""The fraud patterns, their share of fraud rows, and the planning of every episode of a run.

Planning happens before any legit traffic exists: it draws each pattern's episodes until the
pattern's share of the fraud budget (fraud_rate x transactions) is used, then the legit
look-alikes at their own fixed rates, and returns all those rows. The engine fills the rest of
the requested transactions with legit background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fraudops_simulator.merchants import MEDIAN_AMOUNT
from fraudops_simulator.names import PATTERN_NAMES
from fraudops_simulator.params import SimulationConfig, label_delays_s
from fraudops_simulator.patterns import accounts, card_online, card_present
from fraudops_simulator.patterns.kit import Kit, build_ring, resolve_rows
from fraudops_simulator.patterns.lookalikes import LOOKALIKES
from fraudops_simulator.rows import Part, Rows, build_rows
from fraudops_simulator.world import World


@dataclass(frozen=True)
class Pattern:
    """A named fraud pattern: its share of fraud rows and the size range of one episode (fraud rows)."""

    name: str
    share: float
    min_rows: int
    max_rows: int
    generate: Callable[[Kit, int], list[Part] | None]


PATTERNS: tuple[Pattern, ...] = (
    Pattern("account_takeover", 0.08, 1, 4, accounts.account_takeover),
    Pattern("money_mule_layering", 0.07, 4, 10, accounts.money_mule_layering),
    Pattern("burst_fraud", 0.09, 5, 14, card_present.burst_fraud),
    Pattern("card_testing", 0.08, 3, 8, card_online.card_testing),
    Pattern("late_night_fraud", 0.05, 1, 5, card_present.late_night_fraud),
    Pattern("impossible_travel", 0.05, 1, 4, card_present.impossible_travel),
    Pattern("high_risk_merchant", 0.06, 1, 4, card_online.high_risk_merchant),
    Pattern("unexpected_international", 0.05, 1, 5, card_present.unexpected_international),
    Pattern("overdraft_probing", 0.05, 3, 7, card_present.overdraft_probing),
    Pattern("new_account_fraud", 0.07, 4, 14, accounts.new_account_fraud),
    Pattern("compromised_terminal", 0.06, 2, 12, card_present.compromised_terminal),
    Pattern("cnp_credential_leak", 0.08, 1, 5, card_online.cnp_credential_leak),
    Pattern("amount_anomaly", 0.04, 1, 2, card_present.amount_anomaly),
    Pattern("shared_device", 0.05, 4, 12, accounts.shared_device),
    Pattern("app_scam", 0.06, 1, 4, accounts.app_scam),
    Pattern("bust_out", 0.06, 5, 15, accounts.bust_out),
    Pattern("rogue_terminal", 0.08, 6, 30, card_present.rogue_terminal),
)
if tuple(p.name for p in PATTERNS) != PATTERN_NAMES:  # names.py must list them in code order
    raise ImportError("fraudops_simulator.names.PATTERN_NAMES is out of step with PATTERNS")

_MAX_FAILURES = 30  # consecutive episodes without a victim before a pattern gives up


def fraud_budgets(config: SimulationConfig) -> dict[str, int]:
    """Fraud rows per selected pattern: the fraud budget split by share (largest remainder)."""
    selected = [p for p in PATTERNS if config.includes(p.name)]
    total = round(config.transactions * config.fraud_rate)
    shares = np.array([p.share for p in selected])
    exact = total * shares / shares.sum()
    rows = np.floor(exact).astype(np.int64)
    rows[np.argsort(-(exact - rows), kind="stable")[: total - rows.sum()]] += 1
    return {p.name: int(r) for p, r in zip(selected, rows, strict=True)}


def plan_episodes(world: World, config: SimulationConfig, rng: np.random.Generator) -> Rows:
    """All fraud episodes and legit look-alikes of the run, as rows (unsorted)."""
    budgets = fraud_budgets(config)
    mean_size = {p.name: (p.min_rows + p.max_rows) / 2 for p in PATTERNS}
    expected_episodes = int(sum(budgets[name] / mean_size[name] for name in budgets))
    kit = Kit(world, rng, build_ring(world, rng, expected_episodes))
    episodes = _Episodes()
    emerging = config.hardness.emerging_pattern
    for code, pattern in enumerate(PATTERNS):
        if pattern.name in budgets:
            kit.not_before_s = config.span_s / 2 if pattern.name == emerging else 0.0
            _draw_episodes(kit, code, pattern, budgets[pattern.name], episodes)
    kit.not_before_s = 0.0
    scale = config.transactions / 1_000_000
    for generate, per_million in LOOKALIKES:
        expected = per_million * scale
        count = int(np.floor(expected) + (rng.random() < expected - np.floor(expected)))
        for _ in range(count):
            episodes.add(generate(kit) or [], code=-1, fraud_rows=0)
    return episodes.build(world, config, rng)


class _Episodes:
    """Parts of all episodes, with which episode each part belongs to, for labelling in one pass."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.part_episode: list[int] = []
        self.codes: list[int] = []
        self.fraud_rows: list[int] = []

    def add(self, parts: list[Part], *, code: int, fraud_rows: int) -> None:
        self.parts.extend(parts)
        self.part_episode.extend([len(self.codes)] * len(parts))
        self.codes.append(code)
        self.fraud_rows.append(fraud_rows)

    def build(self, world: World, config: SimulationConfig, rng: np.random.Generator) -> Rows:
        """Rows with pattern codes and label times: each episode is reported at once, some time
        (a chargeback delay) after its last fraud."""
        rows = resolve_rows(world, build_rows(self.parts), rng)
        if not self.parts:
            return rows
        episode = np.repeat(np.array(self.part_episode), [p.n for p in self.parts])
        fraud = rows["is_fraud"] == 1
        made = np.bincount(episode[fraud], minlength=len(self.codes))
        wrong = np.flatnonzero(made != np.array(self.fraud_rows))
        if len(wrong):
            name = PATTERN_NAMES[self.codes[wrong[0]]] if self.codes[wrong[0]] >= 0 else "a look-alike"
            raise AssertionError(
                f"{name} made {made[wrong[0]]} fraud rows, planned {self.fraud_rows[wrong[0]]}"
            )
        last_fraud_s = np.full(len(self.codes), -np.inf)
        np.maximum.at(last_fraud_s, episode[fraud], rows["t"][fraud])
        reported_s = last_fraud_s + label_delays_s(config, rng, len(self.codes), noisy=True)
        rows["pattern"] = np.where(fraud, np.array(self.codes, dtype=np.int8)[episode], -1).astype(np.int8)
        rows["label_at"] = np.where(fraud, reported_s[episode], np.nan)
        hardness = config.hardness
        if hardness.imitation_share > 0.0:
            _imitate_victims(world, rows, episode, fraud, last_fraud_s, hardness.imitation_share, rng)
        if hardness.unreported_share > 0.0:
            # never reported: the rows keep their pattern (the truth) but carry the label 0
            unreported = (rng.random(len(self.codes)) < hardness.unreported_share)[episode] & fraud
            rows["is_fraud"] = np.where(unreported, 0, rows["is_fraud"]).astype(np.int8)
            rows["label_at"] = np.where(unreported, np.nan, rows["label_at"])
        return rows


def _imitate_victims(
    world: World,
    rows: Rows,
    episode: np.ndarray,
    fraud: np.ndarray,
    last_fraud_s: np.ndarray,
    share: float,
    rng: np.random.Generator,
) -> None:
    """Redraw the fraud amounts of some episodes around what the victim usually spends in that category.

    The share grows with time (half of `share` at the start, one and a half at the end): fraudsters
    learn which amounts pass unnoticed.
    """
    span = world.config.span_s
    chance = share * (0.5 + np.clip(last_fraud_s / span, 0.0, 1.0))
    imitating = (rng.random(len(last_fraud_s)) < chance)[episode] & fraud
    customer = rows["customer"][imitating]
    category = rows["category"][imitating].astype(np.int64)
    typical = MEDIAN_AMOUNT[category] * np.exp(0.8 * world.customers.amount_log_scale[customer])
    rows["amount"][imitating] = np.maximum(
        np.round(typical * rng.lognormal(0.0, 0.35, len(customer)), 2), 1.0
    )


def _draw_episodes(kit: Kit, code: int, pattern: Pattern, budget: int, episodes: _Episodes) -> None:
    """Episodes of one pattern until its budget of fraud rows is used (at least one episode if any)."""
    remaining, failures, made = budget, 0, 0
    while remaining > 0 and failures < _MAX_FAILURES:
        size = int(kit.rng.integers(pattern.min_rows, pattern.max_rows + 1))
        if remaining - size < pattern.min_rows:
            if remaining < pattern.min_rows and made:
                break
            size = max(remaining, pattern.min_rows)
        parts = pattern.generate(kit, size)
        if parts is None:
            failures += 1
            continue
        failures = 0
        episodes.add(parts, code=code, fraud_rows=size)
        remaining -= size
        made += 1

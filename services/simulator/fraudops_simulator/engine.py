"""The simulation run: world, then fraud and look-alike episodes, then the legit days in chunks.

Output comes as a stream of Arrow tables ordered by event time, so a file writer or a Kafka
producer never holds the whole run in memory. Determinism: every random stream is seeded from
(seed, purpose, index), so the same config always yields identical bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fraudops_simulator.arrow import IdTables, id_tables, to_table, transaction_ids
from fraudops_simulator.background import background_days, day_weights, salary_customers
from fraudops_simulator.difficulty import FALSE_CHARGEBACK
from fraudops_simulator.pacing import Pacer
from fraudops_simulator.params import DAY_S, SimulationConfig, label_delays_s
from fraudops_simulator.patterns import PATTERN_NAMES, plan_episodes
from fraudops_simulator.rows import Rows, concat_rows, n_rows, take_rows
from fraudops_simulator.world import World, build_world

# purposes of the seeded random streams
_WORLD, _EPISODES, _DAY_TOTALS, _DAY, _OUTPUT, _PACE, _TURNOVER = range(7)


@dataclass(frozen=True)
class RunPlan:
    """What the run will produce, known before the first row is generated."""

    world: World
    episodes: Rows  # fraud and look-alike episode rows, sorted by time
    legit_per_day: np.ndarray  # background rows per day, salary deposits excluded
    salaries_per_day: np.ndarray
    days_per_chunk: int

    @property
    def total_rows(self) -> int:
        return int(n_rows(self.episodes) + self.legit_per_day.sum() + self.salaries_per_day.sum())


def _rng(config: SimulationConfig, *purpose: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, *purpose])


def plan_run(config: SimulationConfig) -> RunPlan:
    """Build the world, plan every episode and fix how many legit rows each day gets."""
    world = build_world(config, _rng(config, _WORLD))
    world.freeze_events()  # episodes see the legit credential changes...
    episodes = plan_episodes(world, config, _rng(config, _EPISODES))
    world.freeze_events()  # ...and the background also sees those that episodes added
    order = np.argsort(episodes["t"], kind="stable")
    episodes = take_rows(episodes, order)

    weights = np.array([day_weights(world, day).sum() for day in range(config.days)])
    growth = config.hardness.volume_growth
    if growth > 0.0:  # drift: the bank grows, so later months carry more legit traffic
        weights = weights * (1.0 + growth * np.arange(config.days) / max(config.days - 1, 1))
    salaries = np.array([len(salary_customers(world, day)) for day in range(config.days)], dtype=np.int64)
    legit_total = max(0, config.transactions - n_rows(episodes) - int(salaries.sum()))
    if weights.sum() > 0:
        legit_per_day = _rng(config, _DAY_TOTALS).multinomial(legit_total, weights / weights.sum())
    else:
        legit_per_day = np.zeros(config.days, dtype=np.int64)
    rows_per_day = max(1.0, config.transactions / config.days)
    days_per_chunk = max(1, min(config.days, int(config.rows_per_chunk // rows_per_day)))
    return RunPlan(world, episodes, legit_per_day, salaries, days_per_chunk)


def merchant_turnover(config: SimulationConfig, n_merchants: int) -> np.ndarray:
    """When each merchant is replaced by a new one (inf: never): the difficulty's share of them, at a
    uniform time between a fifth and nine tenths of the history (drift training has not seen)."""
    replaced_s = np.full(n_merchants, np.inf)
    share = config.hardness.merchant_turnover
    if share > 0.0:
        rng = _rng(config, _TURNOVER)
        chosen = rng.random(n_merchants) < share
        replaced_s[chosen] = rng.uniform(0.2, 0.9, int(chosen.sum())) * config.days * DAY_S
    return replaced_s


def simulate(config: SimulationConfig, plan: RunPlan | None = None) -> Iterator[pa.Table]:
    """Labelled transactions as Arrow tables, in event-time order (ties: generation order)."""
    plan = plan or plan_run(config)
    world, episodes = plan.world, plan.episodes
    tables = id_tables(
        _rng(config, _OUTPUT).permutation(world.customers.n) + 1,
        n_cards=int(world.customers.cards.max()) + 1,
        n_merchants=world.merchants.n,
        n_terminals=world.n_terminals,
        opened_s=world.customers.opened_s,
        pattern_names=(*PATTERN_NAMES, FALSE_CHARGEBACK),
        merchant_replaced_s=merchant_turnover(config, world.merchants.n),
    )
    pacer = Pacer(world.customers.n)
    episode_t = episodes["t"]
    carry: Rows = take_rows(episodes, np.zeros(0, dtype=np.int64))
    chunk_index = 0
    for first_day in range(0, config.days, plan.days_per_chunk):
        last_day = min(config.days, first_day + plan.days_per_chunk)
        end_s = last_day * DAY_S if last_day < config.days else np.inf
        days = range(first_day, last_day)
        parts = [carry, background_days(world, days, plan.legit_per_day, _rng(config, _DAY, first_day))]
        lo, hi = np.searchsorted(episode_t, [first_day * DAY_S, end_s], side="left")
        if first_day == 0:
            lo = 0  # episode rows never precede the start, but keep any that would
        parts.append(take_rows(episodes, np.arange(lo, hi)))
        rows = concat_rows(parts)
        pacer.pace(rows, _rng(config, _PACE, first_day))
        t_ms = np.round(rows["t"] * 1000.0)
        order = np.argsort(t_ms, kind="stable")
        rows = take_rows(rows, order)
        ready = int(np.searchsorted(t_ms[order], end_s * 1000.0, side="left"))
        carry = take_rows(rows, np.arange(ready, n_rows(rows)))
        out = take_rows(rows, np.arange(ready))
        pacer.remember(out)
        if n_rows(out):
            yield _finish(config, out, tables, chunk_index)
            chunk_index += 1
    if n_rows(carry):
        yield _finish(config, carry, tables, chunk_index)


def _finish(config: SimulationConfig, rows: Rows, tables: IdTables, chunk_index: int) -> pa.Table:
    """Ids and legit label times for one output chunk, then the Arrow table."""
    rng = _rng(config, _OUTPUT, chunk_index + 1)
    n = n_rows(rows)
    ids = transaction_ids(rng, n)
    missing = np.isnan(rows["label_at"])
    if missing.any():
        rows = dict(rows)
        rows["label_at"] = np.where(
            missing, rows["t"] + label_delays_s(config, rng, n, noisy=True), rows["label_at"]
        )
    rate = config.hardness.false_chargeback_rate
    if rate > 0.0:  # legit rows the customer disputes anyway ("friendly fraud"): labelled fraud, are not
        disputed = (rows["pattern"] < 0) & (rows["is_fraud"] == 0) & (rng.random(n) < rate)
        rows = dict(rows)
        rows["is_fraud"] = np.where(disputed, 1, rows["is_fraud"]).astype(np.int8)
        rows["pattern"] = np.where(disputed, len(PATTERN_NAMES), rows["pattern"]).astype(np.int8)
    return to_table(rows, start_us=config.start_us, tables=tables, ids=ids)

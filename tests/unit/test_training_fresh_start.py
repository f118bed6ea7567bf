"""Training's fresh start: the rows an online engine started without state computes, trained on.

Without them a default-trained model flagged 17.6% of a 1.1%-fraud stream scored by a fresh engine
(tests/integration/test_training.py): the burn-in had kept every cold-state row out of training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudops.features.encode import encode_records
from fraudops.features.engine import FeatureEngine, labels_from_history
from fraudops.features.spec import DAY, Feature, FeatureConfig
from fraudops_simulator import SimulationConfig
from fraudops_stream.decode import decode_batch
from fraudops_training.coldstart import fresh_engine_features
from fraudops_training.windows import WindowBounds, split_windows
from tests.unit.histories import history_and_values

CONFIG = FeatureConfig(label_delay_s=5 * DAY)


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, list[bytes]]:
    return history_and_values(SimulationConfig(transactions=12_000, customers=300, days=40, seed=5))


def online_from(
    frame: pd.DataFrame, values: list[bytes], window: np.ndarray, started: pd.Timestamp
) -> np.ndarray:
    """An engine started at `started` with no state: the window's records decoded as the stream decodes
    them, in micro-batches, and the labels that become known from then on delivered once known."""
    labels = labels_from_history(frame, CONFIG)
    labels = labels.take(np.flatnonzero(labels.known_at >= started.timestamp()))
    labels = labels.take(np.argsort(labels.known_at, kind="stable"))
    times = frame["event_time"].dt.as_unit("ns").astype("int64").to_numpy() / 1e9
    engine = FeatureEngine(CONFIG)
    rows = np.flatnonzero(window)
    delivered, parts = 0, []
    for start in range(rows[0], rows[-1] + 1, 97):
        end = min(start + 97, rows[-1] + 1)
        known = int(np.searchsorted(labels.known_at, times[end - 1], side="left"))
        engine.add_fraud_labels(labels.take(slice(delivered, known)))
        delivered = known
        indexes, records, rejects = decode_batch(values[start:end])
        assert not rejects and len(indexes) == end - start
        parts.append(engine.transform(encode_records(records)))
    return np.concatenate(parts)


def test_the_fresh_start_rows_are_what_an_online_engine_started_then_computes(
    history: tuple[pd.DataFrame, list[bytes]],
) -> None:
    frame, values = history
    windows = split_windows(frame["event_time"], WindowBounds(label_delay_days=5))
    window, started = windows.fresh_start, windows.fresh_start_at
    keep = window & (np.arange(len(frame)) % 3 == 0)  # a sample, as training draws one
    offline = fresh_engine_features(frame, window, started, keep, CONFIG, entity_table=False)
    online = online_from(frame, values, window, started)[keep[window]]
    np.testing.assert_array_equal(offline, online)
    # and they are cold, unlike the same transactions replayed from the history's start
    warm = FeatureEngine(CONFIG).replay(frame, keep=keep)
    first = offline[:, Feature.IS_FIRST_TRANSACTION].sum()
    assert first > 0.1 * len(offline) and first > 3 * warm[:, Feature.IS_FIRST_TRANSACTION].sum()


def test_the_fresh_start_follows_the_burn_in_for_as_long_and_inside_the_training_window() -> None:
    times = pd.Series(pd.date_range("2026-01-01", periods=24 * 100, freq="h", tz="UTC"))
    windows = split_windows(times, WindowBounds(label_delay_days=5, burn_in_days=10))
    fresh = times[windows.fresh_start]
    assert fresh.min() == windows.fresh_start_at == times[0] + pd.Timedelta(days=10)
    assert fresh.max() == times[0] + pd.Timedelta(days=20) - pd.Timedelta(hours=1)
    assert not (windows.fresh_start & ~windows.train).any()
    assert not split_windows(times, WindowBounds(label_delay_days=5, burn_in_days=0)).fresh_start.any()

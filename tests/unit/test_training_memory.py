"""Training's memory: what keeps a ten-million-row run within its 8 GiB (`fraudops bench load`), on small data.

Each test pins one way that run went over the budget: the replay holding every kept row twice, whole
time windows copied again for each use, the textbook features of rows nobody reads.
"""

from __future__ import annotations

import tracemalloc
from datetime import date

import numpy as np
import pandas as pd
import pytest

from fraudops.features.engine import FeatureEngine
from fraudops_simulator import SimulationConfig, simulate
from fraudops_training.textbook import textbook_features
from fraudops_training.windows import KeptRows, WindowBounds, sampled, split_windows


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    config = SimulationConfig(transactions=20_000, customers=200, days=60, seed=3, start=date(2026, 3, 1))
    frame = pd.concat([t.to_pandas() for t in simulate(config)], ignore_index=True)
    return frame.sort_values(["event_time", "transaction_id"], kind="stable").reset_index(drop=True)


def replay_peak_bytes(history: pd.DataFrame, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """A replay in ten chunks, and the most memory it held at once (numpy's arrays included)."""
    FeatureEngine().replay(history.head(100))  # compiles the kernel: not what is measured
    engine = FeatureEngine()
    tracemalloc.start()
    try:
        features = engine.replay(history, keep=keep, chunk_rows=len(history) // 10)
        return features, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_replay_in_chunks_holds_the_kept_rows_once_not_once_more_to_concatenate(
    history: pd.DataFrame,
) -> None:
    every_row = np.ones(len(history), dtype=bool)
    every_tenth = np.arange(len(history)) % 10 == 0
    features, peak = replay_peak_bytes(history, every_row)
    sample, sample_peak = replay_peak_bytes(history, every_tenth)
    # the same chunks and state either way: only the kept rows' share of the peak differs, and they
    # are held once (collecting the chunks and concatenating them at the end held them twice)
    kept_bytes = features.nbytes - sample.nbytes
    assert peak - sample_peak < 1.25 * kept_bytes, (
        f"{(peak - sample_peak) / 2**20:.1f} MiB more for {kept_bytes / 2**20:.1f} MiB more rows kept"
    )
    np.testing.assert_array_equal(sample, features[every_tenth])


def test_a_time_window_kept_whole_is_a_view_and_sampled_rows_a_copy(history: pd.DataFrame) -> None:
    windows = split_windows(history["event_time"], WindowBounds(label_delay_days=7))
    labels = history["is_fraud"].to_numpy()
    uniform = np.random.default_rng(1).random(len(history))
    train = sampled(windows.train, labels, uniform, 0.1)
    kept = train | windows.validation | windows.test
    features = np.arange(int(kept.sum()) * 2, dtype=np.float32).reshape(-1, 2)
    rows = KeptRows(features, kept)
    for window in (windows.validation, windows.test):
        assert np.shares_memory(rows[window], features)
        np.testing.assert_array_equal(rows[window], features[np.flatnonzero(window[kept])])
    assert not np.shares_memory(rows[train], features)
    np.testing.assert_array_equal(rows[train], features[np.flatnonzero(train[kept])])


def test_rows_that_were_not_kept_are_refused_not_read_from_a_neighbour() -> None:
    kept = np.array([True, False, True, True])
    rows = KeptRows(np.arange(3.0)[:, None], kept)
    with pytest.raises(ValueError, match="not kept"):
        rows[np.array([True, True, False, False])]


def test_the_textbook_features_of_kept_rows_are_those_of_the_whole_history(history: pd.DataFrame) -> None:
    keep = np.arange(len(history)) % 3 == 0
    np.testing.assert_array_equal(textbook_features(history, keep=keep), textbook_features(history)[keep])
